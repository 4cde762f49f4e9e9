"""The settings an account shares with ``global:``, and the rules that tie them together.

A setting is taken from the account, else from ``global:``, else from its
default.  The rules between settings (a timeout shorter than the poll
interval, a jitter of at most half of it, ...) are stated once, in
:func:`interval_rules`, checked on ``global:`` alone and on every account's
result, and name the key the offending value came from.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Callable, ClassVar, get_args

from pydantic import Field, ValidationInfo, model_validator

from exporter.config.errors import custom, fmt_seconds, raise_all, show, suggest
from exporter.config.model import Account, Labels, Unit
from exporter.config.types import Duration, NotNegative, Qps, Section, between, choice, ctx_of, rule, whole_number
from exporter.config.values import AccountName, ActionLimits, Endpoint, GraphVersion, label_map

if TYPE_CHECKING:
    from exporter.config.providers import ProviderSpec

__all__ = ["AccountBase", "CamsTunables", "MetaTunables", "RESERVED_LABEL_NAMES", "Tunables", "interval_rules"]

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_WABA_POLL_INTERVAL = 600.0
DEFAULT_HEALTH_POLL_INTERVAL = 300.0
DEFAULT_MAX_STALENESS_FACTOR = 10.0
TIER_VOCABULARIES = ("api_reference", "legacy_console")
DEFAULT_GRAPH_API_VERSION = "v24.0"
SIGNATURE_VERSIONS = ("v3", "v2")

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
    """Jitter used when none is configured: ``min(5s, interval / 10)``."""
    return min(5.0, poll_interval / 10.0)


def default_timeout(poll_interval: float) -> float:
    """Timeout used when none is configured: 10s, or half the interval when that is shorter."""
    return min(DEFAULT_TIMEOUT, poll_interval / 2)


class Tunables(Section):
    """Settings of every provider, in an account or as defaults in ``global:``."""

    poll_interval: Annotated[Duration, between(5.0, 3600.0)] = Field(
        None, description="How often the account is polled, 5s to 1h (default 1m).")
    poll_jitter: Annotated[Duration, NotNegative] = Field(
        None, description="Random delay before each poll, at most half the interval (default min(5s, interval/10)).")
    timeout: Annotated[Duration, between(0.1, 120.0)] = Field(
        None, description="Timeout of one API call, less than poll_interval (default min(10s, poll_interval/2)).")
    qps: Qps = Field(None, description="Calls per second the credential may make (default: the provider's).")
    action_qps: ActionLimits = Field(
        None, description="Calls per second per API action inside qps (default: the provider's documented limits).")
    max_staleness: Annotated[Duration, NotNegative] = Field(
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
    waba_poll_interval: Annotated[Duration, NotNegative] = Field(
        None, description="WABA lookups: 0 (off) or at least poll_interval (default 10m).")
    verification_poll_interval: Annotated[Duration, NotNegative] = Field(
        None, description="Code verification checks: 0 (off, the default) or at least poll_interval.")
    tier_vocabulary: choice(TIER_VOCABULARIES, "tier vocabulary") = Field(None, description="Default api_reference.")
    health_poll_interval: Annotated[Duration, NotNegative, rule(lambda v: v == 0 or v >= 10, "must be 0 (disabled) or at least 10s, got {got}")] = Field(
        None, description="GetWhatsappHealthStatus sweeps: 0 (off) or at least 10s (default 5m).")


class MetaTunables(Section):
    """Settings of Meta's Cloud API only."""

    graph_api_version: GraphVersion = Field(
        None, description=f"Graph API version in every path (default {DEFAULT_GRAPH_API_VERSION}).")


Pick = Callable[[str], tuple[Any, str]]


def interval_rules(interval: float, pick: Pick) -> list[dict]:
    """The rules between the poll interval and the other durations; *pick* gives (value or None, suffix)."""
    errors = []
    every = fmt_seconds(interval)

    def rule(key: str, broken: Callable[[float], bool], message: str) -> None:
        value, suffix = pick(key)
        if value is not None and broken(value):
            errors.append(custom((key,), message.format(got=fmt_seconds(value)) + suffix))

    rule("poll_jitter", lambda v: v > interval / 2,
         f"must be at most half of poll_interval ({fmt_seconds(interval / 2)}), got {{got}}")
    rule("timeout", lambda v: v >= interval, f"must be less than poll_interval ({every}), got {{got}}")
    rule("max_staleness", lambda v: v < interval, f"must be at least poll_interval ({every}), got {{got}}")
    for key in ("waba_poll_interval", "verification_poll_interval"):
        rule(key, lambda v: 0 < v < interval, f"must be 0 (disabled) or at least poll_interval ({every}), got {{got}}")
    return errors


class AccountBase(Tunables):
    """What every provider's account has; each provider adds ``provider``, ``credentials`` and its units."""

    name: AccountName = Field(description="Unique name of the account: its account label.")
    endpoint: Endpoint = Field(None, description="API base URL (default: the provider's).")

    #: the key of the unit list (spaces, apps, wabas)
    units_key: ClassVar[str]

    @classmethod
    def provider_name(cls) -> str:
        return get_args(cls.model_fields["provider"].annotation)[0]

    @classmethod
    def required_hint(cls, key: str) -> str | None:
        if key == cls.units_key:
            return f"a list of {{{get_args(cls.model_fields[key].annotation)[0].id_key}: ...}}"
        return super().required_hint(key)

    @classmethod
    def unknown_key(cls, key: str) -> str:
        from exporter.config.providers import PROVIDERS  # the registry is built from these models

        provider = cls.provider_name()
        if any(key == spec.model.units_key for spec in PROVIDERS.values()):
            return f'not valid for provider "{provider}" (use {cls.units_key})'
        if any(spec.tunables and key in spec.tunables.model_fields for spec in PROVIDERS.values()):
            return f'not supported by provider "{provider}"'
        if any(key in spec.model.model_fields for spec in PROVIDERS.values()):
            return f'not valid for provider "{provider}"'
        return super().unknown_key(key)

    @model_validator(mode="after")
    def _distinct_units(self, info: ValidationInfo) -> "AccountBase":
        here = ctx_of(info).path
        errors, seen = [], {}
        for i, item in enumerate(getattr(self, self.units_key)):
            unit_id = item.unit().id
            if unit_id in seen:
                errors.append(custom((self.units_key, i, item.id_key), f"duplicate {item.id_key} {show(unit_id)} "
                                     f"(also {here + '.' if here else ''}{self.units_key}[{seen[unit_id]}])"))
            seen.setdefault(unit_id, i)
        raise_all(errors)
        return self

    def units(self) -> tuple[Unit, ...]:
        return tuple(item.unit() for item in getattr(self, self.units_key))

    def resolve(self, spec: "ProviderSpec", glob: Section) -> Account:
        """The account with every setting decided, or a ValidationError listing every broken rule."""
        fields = type(self).model_fields

        def pick(key: str, default: Any = None) -> tuple[Any, str]:
            """(value, message suffix naming where an inherited value came from)."""
            if key not in fields:
                return default, ""
            if getattr(self, key) is not None:
                return getattr(self, key), ""
            if getattr(glob, key, None) is not None:
                return getattr(glob, key), f" (inherited from global.{key})"
            return default, ""

        interval = pick("poll_interval", DEFAULT_POLL_INTERVAL)[0]
        defaults = {"poll_jitter": default_poll_jitter(interval), "timeout": default_timeout(interval),
                    "max_staleness": DEFAULT_MAX_STALENESS_FACTOR * interval,
                    "waba_poll_interval": max(DEFAULT_WABA_POLL_INTERVAL, interval), "verification_poll_interval": 0.0,
                    "signature_version": spec.signature_versions[0] if spec.signature_versions else "",
                    "tier_vocabulary": TIER_VOCABULARIES[0], "graph_api_version": DEFAULT_GRAPH_API_VERSION,
                    "health_poll_interval": DEFAULT_HEALTH_POLL_INTERVAL, "max_numbers": 0, "qps": spec.default_qps}
        errors = interval_rules(interval, lambda key: pick(key, defaults[key]))
        value = {key: pick(key, default)[0] for key, default in defaults.items()}
        for key in ("waba_poll_interval", "verification_poll_interval", "health_poll_interval"):
            value[key] = value[key] if key in fields else 0.0
        value["graph_api_version"] = value["graph_api_version"] if "graph_api_version" in fields else ""

        action_qps = dict(spec.action_qps)
        action_qps.update({a: v for a, v in (glob.action_qps or {}).items() if a in spec.action_qps})
        for action, limit in (self.action_qps or {}).items():
            if action not in spec.action_qps:
                hint = suggest(action, spec.action_qps)
                errors.append(custom(("action_qps", action), f'unknown action for provider "{self.provider}"' + (
                    f' (did you mean "{hint}"?)' if hint else f" (known: {', '.join(spec.action_qps) or 'none'})")))
            action_qps[action] = limit

        endpoint, pod = self.endpoint, getattr(self, "pod", None)
        if pod is not None and endpoint is not None:
            errors.append(custom((), "set only one of pod and endpoint"))
        elif pod is not None:
            endpoint = spec.pods[pod]
        elif endpoint is None and spec.default_endpoint is None:
            errors.append(custom(("endpoint",), f"required (or pod: one of {', '.join(spec.pods)})"))
        raise_all(errors)

        qps = value.pop("qps")
        return Account(
            name=self.name, provider=self.provider, credentials=self.credentials.neutral(),
            endpoint=endpoint or spec.default_endpoint, units=self.units(), qps=qps, poll_interval=interval,
            labels=Labels({**(glob.labels or {}), **(self.labels or {})}), action_qps=Labels(action_qps),
            # by default as many units at once as the budget allows requests per second
            concurrency=pick("concurrency", max(1, min(16, math.ceil(qps))))[0], **value)
