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
from typing import Annotated, Any, Callable, ClassVar, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, create_model, model_validator

from exporter.config.errors import bad, custom, did_you_mean, fmt_seconds, raise_all, show
from exporter.config.model import Account, Labels, Unit
from exporter.config.secrets import secret_pairs
from exporter.config.values import ActionLimits, AccountName, Duration, Endpoint, GraphVersion, NotNegative, \
    PhoneList, Qps, SenderList, Section, UnitId, between, choice, label_map, listed, rule, text_value, value_type, \
    whole_number

TIER_VOCABULARIES = ("api_reference", "legacy_console")
SIGNATURE_VERSIONS = ("v3", "v2")
DEFAULT_GRAPH_API_VERSION = "v24.0"

#: Label names the exporter itself uses; static ``labels`` must not use them.
RESERVED_LABEL_NAMES = frozenset({
    "provider", "account", "phone_number", "space_id", "waba_id", "status", "quality_rating", "tier",
    "code_verification_status", "name_status", "new_name_status", "account_review_status", "action", "reason",
    "verified_name", "le", "quantile", "instance", "job",
    # labels of the health, portfolio and webhook families
    "phone_number_id", "platform_type", "account_mode", "limit_scope", "can_send_message", "throughput_level",
    "entity_type", "entity_id", "error_code", "error_description", "business_id", "restriction_type", "ban_state",
    "violation_type", "header", "type", "event", "result",
})


def default_poll_jitter(poll_interval: float) -> float:
    return min(5.0, poll_interval / 10.0)


# -- Settings ----------------------------------------------------------------

Interval = Annotated[Duration, NotNegative]


class Tunables(Section):
    """Settings of every provider, in an account or as defaults in ``global:``."""

    poll_interval: Annotated[Duration, between(5.0, 3600.0)] = Field(
        None, description="How often the account is polled, 5s to 1h (default 1m).")
    poll_jitter: Interval = Field(
        None, description="Random delay before each poll, at most half the interval (default min(5s, interval/10)).")
    timeout: Annotated[Duration, between(0.1, 120.0)] = Field(
        None, description="Timeout of one API call, less than poll_interval (default min(10s, poll_interval/2)).")
    qps: Qps = Field(None, description="Calls per second the credential may make (default: the provider's).")
    action_qps: ActionLimits = Field(
        None, description="Calls per second per API action inside qps (default: the provider's documented limits).")
    max_staleness: Interval = Field(
        None, description="How long the numbers of a failing account are kept, at least poll_interval "
                          "(default 10 × poll_interval).")
    max_numbers: whole_number(0, 10_000_000, "0 (no cap)") = Field(
        None, description="Most numbers kept for the account (0: no cap, the default).")
    concurrency: whole_number(1, 64, "1") = Field(
        None, description="Units polled at once (default: qps rounded up, at most 16).")
    labels: label_map(RESERVED_LABEL_NAMES) = Field(None, description="Static labels added to every series.")


class CamsTunables(Section):
    """Settings of Alibaba Cloud CAMS only."""

    signature_version: choice(SIGNATURE_VERSIONS, "signature version") = Field(None, description="Default v3.")
    waba_poll_interval: Interval = Field(
        None, description="WABA lookups: 0 (off) or at least poll_interval (default 10m).")
    verification_poll_interval: Interval = Field(
        None, description="Code verification checks: 0 (off, the default) or at least poll_interval.")
    tier_vocabulary: choice(TIER_VOCABULARIES, "tier vocabulary") = Field(None, description="Default api_reference.")
    health_poll_interval: Annotated[Interval, rule(
        lambda v: v == 0 or v >= 10, "must be 0 (disabled) or at least 10s, got {got}")] = Field(
        None, description="GetWhatsappHealthStatus sweeps: 0 (off) or at least 10s (default 5m).")


class MetaTunables(Section):
    """Settings of Meta's Cloud API only."""

    graph_api_version: GraphVersion = Field(
        None, description=f"Graph API version in every path (default {DEFAULT_GRAPH_API_VERSION}).")


#: a provider's own settings, in the accounts of the other providers
NOT_APPLICABLE = {"signature_version": "", "waba_poll_interval": 0.0, "verification_poll_interval": 0.0,
                  "health_poll_interval": 0.0, "graph_api_version": "", "page_size": 0,
                  "max_concurrent_requests": 0}


def interval_rules(interval: float, pick: Callable[[str], tuple[Any, str]]) -> list[dict]:
    """The rules between the poll interval and the other durations; *pick* gives (value or None, suffix)."""
    every, half = fmt_seconds(interval), fmt_seconds(interval / 2)
    rules = [("poll_jitter", lambda v: v > interval / 2, f"must be at most half of poll_interval ({half})"),
             ("timeout", lambda v: v >= interval, f"must be less than poll_interval ({every})"),
             ("max_staleness", lambda v: v < interval, f"must be at least poll_interval ({every})")]
    rules += [(key, lambda v: 0 < v < interval, f"must be 0 (disabled) or at least poll_interval ({every})")
              for key in ("waba_poll_interval", "verification_poll_interval")]
    return [custom((key,), f"{message}, got {fmt_seconds(value)}{suffix}") for key, broken, message in rules
            for value, suffix in [pick(key)] if value is not None and broken(value)]


# -- Units -------------------------------------------------------------------

class UnitModel(Section):
    """One polling unit in the file: its id (the key ``id_key``), maybe the only numbers to poll, maybe params."""

    id_key: ClassVar[str]

    def unit(self) -> Unit:
        numbers = (getattr(self, "phone_numbers", None) or getattr(self, "business_phones", None)
                   or getattr(self, "senders", None) or ())
        isv_code = getattr(self, "isv_code", None)
        return Unit(id=getattr(self, self.id_key), phone_numbers=numbers,
                    params=Labels({"isv_code": isv_code} if isv_code else {}))


def unit_list(name: str, doc: str, noun: str, id_key: str, **extra: Any) -> Any:
    """A non-empty list of units (*noun* names one in messages): model *name*, its id *id_key* and *extra* keys."""
    model = create_model(name, __base__=UnitModel, __doc__=doc, __module__=__name__,
                         id_key=(ClassVar, id_key), **{id_key: (UnitId, ...)}, **extra)

    check = BeforeValidator(lambda raw: listed(raw, noun, f"a list of {{{id_key}: ...}}"))
    return Annotated[list[model], check, Field(min_length=1)]


ONLY = "Only these numbers (default: all of the {}'s)."
SPACES = unit_list("CamsSpace", "A CAMS space (CustSpaceId), optionally with the ISV code of the partner that owns it.",
                   "space", "cust_space_id", isv_code=(value_type(str, text_value, {"type": "string"}), None))
APPS = unit_list("NxCloudApp", "An NxCloud app (appkey), optionally limited to some of its business numbers.", "app",
                 "appkey", business_phones=(PhoneList, Field(None, description=ONLY.format("app"))))
WABAS = unit_list("Waba", "A WhatsApp Business Account id, optionally limited to some of its numbers.", "waba",
                  "waba_id", phone_numbers=(PhoneList, Field(None, description=ONLY.format("WABA"))))


TWILIO_ACCOUNTS = unit_list(
    "TwilioAccountUnit", "The Twilio account the credential belongs to (its Account SID, the space_id label), "
    "optionally limited to some of its WhatsApp senders.", "Twilio account", "account_sid",
    senders=(SenderList, Field(None, description="Only these senders: SIDs or phone numbers (default: all "
                                                         "of the account's WhatsApp senders, listed page by page).")))
SENDER_GROUPS = unit_list(
    "InfobipSenderGroup", "A group of the account's WhatsApp senders (its name is the space_id label): Infobip "
    "has no endpoint that lists them, so they are configured.", "sender group", "group",
    senders=(Annotated[PhoneList, AfterValidator(lambda v: v if v is not None else bad(
        "required (a list of the sender numbers to watch, with country code)"))],
        Field(..., description="The sender numbers (asked for in batches of at most 100).")))


# -- Accounts ----------------------------------------------------------------

class AccountBase(Tunables):
    """What every provider's account has; each provider adds ``provider``, ``credentials`` and its units."""

    name: AccountName = Field(description="Unique name of the account: its account label.")
    endpoint: Endpoint = Field(None, description="API base URL (default: the provider's).")
    units_key: ClassVar[str]  # spaces, apps, wabas

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

    def resolve(self, spec: ProviderSpec, glob: Section, here: str) -> Account:
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

        errors, seen, key = [], {}, spec.unit_id_key
        units = [item.unit() for item in getattr(self, self.units_key)]
        for i, unit in enumerate(units):
            if seen.setdefault(unit.id, i) != i:
                errors.append(custom((self.units_key, i, key), f"duplicate {key} {show(unit.id)} "
                                     f"(also {here}.{self.units_key}[{seen[unit.id]}])"))
        interval = pick("poll_interval", 60.0)[0]
        defaults = {"poll_jitter": default_poll_jitter(interval), "timeout": min(10.0, interval / 2),
                    "max_staleness": 10 * interval, "waba_poll_interval": max(600.0, interval),
                    "verification_poll_interval": 0.0, "health_poll_interval": 300.0,
                    "signature_version": SIGNATURE_VERSIONS[0], "tier_vocabulary": TIER_VOCABULARIES[0],
                    "graph_api_version": DEFAULT_GRAPH_API_VERSION, "max_numbers": 0, "qps": spec.default_qps,
                    "page_size": 100, "max_concurrent_requests": 2}
        errors += interval_rules(interval, lambda key: pick(key, defaults[key]))
        value = {key: pick(key, default)[0] for key, default in defaults.items()}
        action_qps = dict(spec.action_qps)
        action_qps.update({a: v for a, v in (glob.action_qps or {}).items() if a in spec.action_qps})
        for action, limit in (self.action_qps or {}).items():
            if action not in spec.action_qps:
                errors.append(custom(("action_qps", action), f'unknown action for provider "{self.provider}"'
                                     + did_you_mean(action, spec.action_qps,
                                                    f" (known: {', '.join(spec.action_qps) or 'none'})")))
            action_qps[action] = limit
        endpoint, pod = self.endpoint, getattr(self, "pod", None)
        if pod is not None and endpoint is not None:
            errors.append(custom((), "set only one of pod and endpoint"))
        elif pod is not None:
            endpoint = spec.pods[pod]
        elif endpoint is None and spec.default_endpoint is None:
            errors.append(custom(("endpoint",), f"required (or pod: one of {', '.join(spec.pods)})" if spec.pods
                                 else "required (the account's personal base URL, e.g. https://xxxxx.api.infobip.com)"))
        raise_all(errors)
        qps = value.pop("qps")
        return Account(
            name=self.name, provider=self.provider, credentials=self.credentials.neutral(),
            endpoint=endpoint or spec.default_endpoint, units=tuple(units), qps=qps, poll_interval=interval,
            labels=Labels({**(glob.labels or {}), **(self.labels or {})}), action_qps=Labels(action_qps),
            # by default as many units at once as the budget allows requests per second
            concurrency=pick("concurrency", max(1, min(16, math.ceil(qps))))[0], **value)


class CamsAccount(AccountBase, CamsTunables):
    """An Alibaba Cloud CAMS account: an AccessKey pair and the spaces it polls."""

    units_key: ClassVar[str] = "spaces"
    provider: Literal["alibaba_cams"]
    credentials: secret_pairs("CamsCredentials", "A RAM user's AccessKey pair.",
                              ids=("access_key_id",), secrets=("access_key_secret",))
    spaces: SPACES


class NxCloudAccount(AccountBase):
    """An NxCloud account: an accessKey pair and the apps it polls."""

    units_key: ClassVar[str] = "apps"
    provider: Literal["nxcloud"]
    credentials: secret_pairs("NxCloudCredentials", "An NxCloud accessKey and its secret.",
                              ids=("access_key",), secrets=("access_secret",))
    apps: APPS


KALEYRA_PODS = {"IN": "https://api.in.kaleyra.io", "SG": "https://api.ap.kaleyra.io",
                "EU": "https://api.eu.kaleyra.io", "NA": "https://api.na.kaleyra.io"}


class KaleyraAccount(AccountBase):
    """A Kaleyra account: an account SID and API key, a pod (or endpoint), and the WABAs it polls."""

    units_key: ClassVar[str] = "wabas"
    provider: Literal["kaleyra"]
    pod: choice(tuple(KALEYRA_PODS), "pod") = Field(None, description="Kaleyra's region; or set endpoint.")
    credentials: secret_pairs("KaleyraCredentials", "The account SID and an API key.",
                              ids=("sid",), secrets=("api_key",))
    wabas: WABAS


class MetaAccount(AccountBase, MetaTunables):
    """A Meta Cloud API account: a system-user access token (and optionally its app id) and the WABAs it polls."""

    units_key: ClassVar[str] = "wabas"
    provider: Literal["meta"]
    credentials: secret_pairs("MetaCredentials", "A system user's access token, and optionally the app's id.",
                              ids=("app_id",), secrets=("access_token",), optional=("app_id",))
    wabas: WABAS


class TwilioTunables(Section):
    """Settings of Twilio only."""

    page_size: whole_number(1, 1000, "1") = Field(
        None, description="Senders per page of the list (PageSize, 1 to 1000; default 100).")
    max_concurrent_requests: whole_number(1, 16, "1") = Field(
        None, description="Requests of the account in flight at once (Twilio limits concurrency per account; "
                          "default 2).")


class TwilioAccount(AccountBase, TwilioTunables):
    """A Twilio account: an API key SID and secret (or the Account SID and Auth Token), and its Account SID."""

    units_key: ClassVar[str] = "twilio_accounts"
    provider: Literal["twilio"]
    credentials: secret_pairs("TwilioCredentials", "HTTP Basic: an API key SID (SK...) and its secret, "
                              "or the Account SID (AC...) and its Auth Token.", ids=("sid",), secrets=("secret",))
    twilio_accounts: Annotated[TWILIO_ACCOUNTS, AfterValidator(lambda v: v if v is None or len(v) <= 1 else bad(
        "must hold exactly one Twilio account: the one the credential belongs to (use one exporter account "
        "per Twilio account or subaccount)"))]


class InfobipAccount(AccountBase):
    """An Infobip account: its personal base URL (endpoint), an API key, and the sender numbers it watches."""

    units_key: ClassVar[str] = "sender_groups"
    provider: Literal["infobip"]
    credentials: secret_pairs("InfobipCredentials", "An API key (sent as Authorization: App <key>), and "
                              "optionally a name for it.", ids=("key_name",), secrets=("api_key",),
                              optional=("key_name",))
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
    id_key = property(lambda self: self.model.model_fields["credentials"].annotation.ids[0])
    secret_key = property(lambda self: self.model.model_fields["credentials"].annotation.secrets[0])
    units_key = property(lambda self: self.model.units_key)
    unit_model = property(lambda self: get_args(self.model.model_fields[self.units_key].annotation)[0])
    unit_id_key = property(lambda self: self.unit_model.id_key)
    unit_keys = property(lambda self: frozenset(self.unit_model.file_keys()))


PROVIDERS: dict[str, ProviderSpec] = {
    # The per-user QPS of each action's API page (alibaba-cams reference, section 7).
    "alibaba_cams": ProviderSpec(CamsAccount, "https://cams.ap-southeast-1.aliyuncs.com", action_qps={
        "QueryChatappPhoneNumbers": 10.0, "QueryChatappBindWaba": 10.0, "GetPhoneNumberVerificationStatus": 10.0,
        "GetWhatsappHealthStatus": 5.0}),
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

class _GlobalRules(Section):
    @model_validator(mode="after")
    def _rules(self) -> "_GlobalRules":
        errors = [] if self.poll_interval is None else \
            interval_rules(self.poll_interval, lambda key: (getattr(self, key, None), ""))
        known = {a for spec in PROVIDERS.values() for a in spec.action_qps}
        raise_all(errors + [custom(("action_qps", a), "unknown action" + did_you_mean(
            a, known, f" (known: {', '.join(sorted(known))})")) for a in self.action_qps or {} if a not in known])
        return self


GlobalSection = create_model(
    "GlobalSection", __doc__="Defaults for every account; a provider's own settings apply to its accounts only.",
    __base__=(_GlobalRules, Tunables, *dict.fromkeys(
        b for spec in PROVIDERS.values() for b in spec.model.__bases__ if b is not AccountBase)))
