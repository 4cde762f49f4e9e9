"""The accounts: settings shared with ``global:``, one model per provider in its own words, and the registry.

To add a provider, write its account model (a ``provider`` literal, a
``credentials`` section from :func:`~exporter.config.secrets.secret_pairs`, a
list of its units, and a mixin of its own settings if it has any) and add one
:class:`ProviderSpec` to :data:`PROVIDERS`; ``global:``, the JSON Schema and
the messages follow.  A setting comes from the account, else from ``global:``,
else from its default; :func:`interval_rules` states the rules between them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args

from pydantic import AfterValidator, Field, create_model, model_validator
from pydantic_core import ErrorDetails

from exporter.config.errors import bad, custom, did_you_mean, raise_all, show
from exporter.config.fields import AccountName, Endpoint
from exporter.config.model import Account, Labels
from exporter.config.secrets import SecretPairs
from exporter.config.settings import (
    DEFAULT_GRAPH_API_VERSION,
    NOT_APPLICABLE,
    SIGNATURE_VERSIONS,
    TIER_VOCABULARIES,
    CamsTunables,
    MetaTunables,
    Tunables,
    TwilioTunables,
    default_poll_jitter,
    interval_rules,
)
from exporter.config.units import (
    APPS,
    SENDER_GROUPS,
    SPACES,
    TWILIO_ACCOUNTS,
    WABAS,
    CamsCredentials,
    InfobipCredentials,
    KaleyraCredentials,
    MetaCredentials,
    NxCloudCredentials,
    TwilioCredentials,
    UnitModel,
)
from exporter.config.values import choice

# -- Accounts ----------------------------------------------------------------


class AccountBase(Tunables):
    """What every provider's account has; each provider adds ``provider``, ``credentials`` and its units."""

    name: AccountName = Field(description="Unique name of the account: its account label.")
    endpoint: Endpoint = Field(None, description="API base URL (default: the provider's).")
    units_key: ClassVar[str]  # spaces, apps, wabas
    if TYPE_CHECKING:  # fields of every provider's model
        provider: str
        credentials: SecretPairs

    @classmethod
    def unknown_key(cls, key: str) -> str:
        provider = get_args(cls.model_fields["provider"].annotation)[0]
        if any(key == spec.model.units_key for spec in PROVIDERS.values()):
            return f'not valid for provider "{provider}" (use {cls.units_key})'
        if key in GlobalSection.model_fields:
            return f'not supported by provider "{provider}"'
        if any(key in spec.model.model_fields for spec in PROVIDERS.values()):
            return f'not valid for provider "{provider}"'
        return super().unknown_key(key)

    def resolve(self, spec: ProviderSpec, glob: Tunables, here: str) -> Account:
        """The account with every setting decided, or a ValidationError listing every broken rule."""
        fields = type(self).model_fields

        def pick(key: str, default: Any = None) -> tuple[Any, str]:  # (value, where an inherited one came from)
            if key not in fields:
                return NOT_APPLICABLE.get(key, default), ""
            if getattr(self, key) is not None:
                return getattr(self, key), ""
            if getattr(glob, key, None) is not None:
                return getattr(glob, key), f" (inherited from global.{key})"
            return default, ""

        errors: list[ErrorDetails] = []
        seen: dict[str, int] = {}
        key = spec.unit_id_key
        units = [item.unit() for item in getattr(self, self.units_key)]
        for i, unit in enumerate(units):
            if seen.setdefault(unit.id, i) != i:
                errors.append(
                    custom(
                        (self.units_key, i, key),
                        f"duplicate {key} {show(unit.id)} (also {here}.{self.units_key}[{seen[unit.id]}])",
                    )
                )
        interval = pick("poll_interval", 60.0)[0]
        defaults = {
            "poll_jitter": default_poll_jitter(interval),
            "timeout": min(10.0, interval / 2),
            "max_staleness": 10 * interval,
            "waba_poll_interval": max(600.0, interval),
            "verification_poll_interval": 0.0,
            "health_poll_interval": 300.0,
            "signature_version": SIGNATURE_VERSIONS[0],
            "tier_vocabulary": TIER_VOCABULARIES[0],
            "graph_api_version": DEFAULT_GRAPH_API_VERSION,
            "max_numbers": 0,
            "qps": spec.default_qps,
            "retries": 3,
            "page_size": 100,
            "max_concurrent_requests": 2,
        }
        errors += interval_rules(interval, lambda key: pick(key, defaults[key]))
        value: dict[str, Any] = {key: pick(key, default)[0] for key, default in defaults.items()}
        action_qps = dict(spec.action_qps)
        action_qps.update({a: v for a, v in (glob.action_qps or {}).items() if a in spec.action_qps})
        for action, limit in (self.action_qps or {}).items():
            if action not in spec.action_qps:
                errors.append(
                    custom(
                        ("action_qps", action),
                        f'unknown action for provider "{self.provider}"'
                        + did_you_mean(action, spec.action_qps, f" (known: {', '.join(spec.action_qps) or 'none'})"),
                    )
                )
            action_qps[action] = limit
        endpoint, pod = self.endpoint, getattr(self, "pod", None)
        if pod is not None and endpoint is not None:
            errors.append(custom((), "set only one of pod and endpoint"))
        elif pod is not None:
            endpoint = spec.pods[pod]
        elif endpoint is None and spec.default_endpoint is None:
            errors.append(
                custom(
                    ("endpoint",),
                    f"required (or pod: one of {', '.join(spec.pods)})"
                    if spec.pods
                    else "required (the account's personal base URL, e.g. https://xxxxx.api.infobip.com)",
                )
            )
        raise_all(errors)
        url = endpoint or spec.default_endpoint
        assert url is not None  # else an error was raised above
        qps = value.pop("qps")
        return Account(
            name=self.name,
            provider=self.provider,
            credentials=self.credentials.neutral(),
            endpoint=url,
            units=tuple(units),
            qps=qps,
            poll_interval=interval,
            labels=Labels({**(glob.labels or {}), **(self.labels or {})}),
            action_qps=Labels(action_qps),
            # by default as many units at once as the budget allows requests per second
            concurrency=pick("concurrency", max(1, min(16, math.ceil(qps))))[0],
            **value,
        )


class CamsAccount(AccountBase, CamsTunables):
    """An Alibaba Cloud CAMS account: an AccessKey pair and the spaces it polls."""

    units_key: ClassVar[str] = "spaces"
    provider: Literal["alibaba_cams"]
    credentials: CamsCredentials
    spaces: SPACES


class NxCloudAccount(AccountBase):
    """An NxCloud account: an accessKey pair and the apps it polls."""

    units_key: ClassVar[str] = "apps"
    provider: Literal["nxcloud"]
    credentials: NxCloudCredentials
    apps: APPS


KALEYRA_PODS = {
    "IN": "https://api.in.kaleyra.io",
    "SG": "https://api.ap.kaleyra.io",
    "EU": "https://api.eu.kaleyra.io",
    "NA": "https://api.na.kaleyra.io",
}


class KaleyraAccount(AccountBase):
    """A Kaleyra account: an account SID and API key, a pod (or endpoint), and the WABAs it polls."""

    units_key: ClassVar[str] = "wabas"
    provider: Literal["kaleyra"]
    pod: Annotated[str | None, choice(tuple(KALEYRA_PODS), "pod")] = Field(
        None, description="Kaleyra's region; or set endpoint."
    )
    credentials: KaleyraCredentials
    wabas: WABAS


class MetaAccount(AccountBase, MetaTunables):
    """A Meta Cloud API account: a system-user access token (and optionally its app id) and the WABAs it polls."""

    units_key: ClassVar[str] = "wabas"
    provider: Literal["meta"]
    credentials: MetaCredentials
    wabas: WABAS


def _one_twilio_account(units: list[Any] | None) -> list[Any] | None:
    if units is not None and len(units) > 1:
        bad(
            "must hold exactly one Twilio account: the one the credential belongs to (use one exporter account "
            "per Twilio account or subaccount)"
        )
    return units


class TwilioAccount(AccountBase, TwilioTunables):
    """A Twilio account: an API key SID and secret (or the Account SID and Auth Token), and its Account SID."""

    units_key: ClassVar[str] = "twilio_accounts"
    provider: Literal["twilio"]
    credentials: TwilioCredentials
    twilio_accounts: Annotated[TWILIO_ACCOUNTS, AfterValidator(_one_twilio_account)]


class InfobipAccount(AccountBase):
    """An Infobip account: its personal base URL (endpoint), an API key, and the sender numbers it watches."""

    units_key: ClassVar[str] = "sender_groups"
    provider: Literal["infobip"]
    credentials: InfobipCredentials
    sender_groups: SENDER_GROUPS


# -- Registry ----------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSpec:
    """One provider: its account model and the facts its defaults come from."""

    model: type[AccountBase]
    default_endpoint: str | None
    default_qps: float = 10.0
    #: named endpoints (Kaleyra's pods)
    pods: Mapping[str, str] = field(default_factory=dict)
    #: documented per-action limits (calls per second per credential) inside the
    #: credential's overall qps; ``action_qps`` in the configuration overrides them
    action_qps: Mapping[str, float] = field(default_factory=dict)

    # the model's key names, for code that writes configurations (the demo, benchmarks)
    @property
    def credentials_model(self) -> type[SecretPairs]:
        model: type[SecretPairs] = self.model.model_fields["credentials"].annotation  # type: ignore[assignment]  # a model of secret_pairs()
        return model

    @property
    def id_key(self) -> str:
        return self.credentials_model.ids[0]

    @property
    def secret_key(self) -> str:
        return self.credentials_model.secrets[0]

    @property
    def units_key(self) -> str:
        return self.model.units_key

    @property
    def unit_model(self) -> type[UnitModel]:
        model: type[UnitModel] = get_args(self.model.model_fields[self.units_key].annotation)[0]
        return model

    @property
    def unit_id_key(self) -> str:
        return self.unit_model.id_key

    @property
    def unit_keys(self) -> frozenset[str]:
        return frozenset(self.unit_model.file_keys())


PROVIDERS: dict[str, ProviderSpec] = {
    # The per-user QPS of each action's API page (alibaba-cams reference, section 7).
    "alibaba_cams": ProviderSpec(
        CamsAccount,
        "https://cams.ap-southeast-1.aliyuncs.com",
        action_qps={
            "QueryChatappPhoneNumbers": 10.0,
            "QueryChatappBindWaba": 10.0,
            "GetPhoneNumberVerificationStatus": 10.0,
            "GetWhatsappHealthStatus": 5.0,
        },
    ),
    # NxCloud documents no QPS for its WhatsApp API: stay conservative.
    "nxcloud": ProviderSpec(NxCloudAccount, "https://api2.nxcloud.com", default_qps=2.0),
    # No public read limit; one call per WABA plus one per number each poll.
    "kaleyra": ProviderSpec(KaleyraAccount, None, default_qps=5.0, pods=KALEYRA_PODS),
    # Graph budgets these reads per hour (200, or 5,000 once the WABA has a registered number,
    # per app per WABA); the usage headers steer the rest.
    "meta": ProviderSpec(MetaAccount, "https://graph.facebook.com", default_qps=2.0),
    # Twilio publishes no rate for the Senders API, only per-account concurrency (20429):
    # one list walk per poll needs little; stay modest.
    "twilio": ProviderSpec(TwilioAccount, "https://messaging.twilio.com", default_qps=5.0),
    # 10 requests per second per account (the endpoint's page); the base URL is personal.
    "infobip": ProviderSpec(InfobipAccount, None, default_qps=10.0),
}
for _name, _spec in PROVIDERS.items():
    assert get_args(_spec.model.model_fields["provider"].annotation) == (_name,), (_name, _spec.model)


# -- global: -----------------------------------------------------------------


class _GlobalRules(Tunables):
    @model_validator(mode="after")
    def _rules(self) -> _GlobalRules:
        errors: list[ErrorDetails] = (
            []
            if self.poll_interval is None
            else interval_rules(self.poll_interval, lambda key: (getattr(self, key, None), ""))
        )
        known = {a for spec in PROVIDERS.values() for a in spec.action_qps}
        raise_all(
            errors
            + [
                custom(
                    ("action_qps", a),
                    "unknown action" + did_you_mean(a, known, f" (known: {', '.join(sorted(known))})"),
                )
                for a in self.action_qps or {}
                if a not in known
            ]
        )
        return self


if TYPE_CHECKING:  # made from the registry at run time; statically, with today's providers' settings

    class GlobalSection(_GlobalRules, Tunables, CamsTunables, MetaTunables):
        pass

else:
    GlobalSection = create_model(
        "GlobalSection",
        __doc__="Defaults for every account; a provider's own settings apply to its accounts only.",
        __base__=(
            _GlobalRules,
            Tunables,
            *dict.fromkeys(b for spec in PROVIDERS.values() for b in spec.model.__bases__ if b is not AccountBase),
        ),
    )
