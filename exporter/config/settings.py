"""The settings every provider shares with ``global:``, each provider's own, and the rules between them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field
from pydantic_core import ErrorDetails

from exporter.config.errors import custom, fmt_seconds
from exporter.config.fields import ActionLimits, GraphVersion, label_map
from exporter.config.values import Duration, NotNegative, Qps, Section, between, choice, rule, whole_number

TIER_VOCABULARIES = ("api_reference", "legacy_console")
SIGNATURE_VERSIONS = ("v3", "v2")
DEFAULT_GRAPH_API_VERSION = "v24.0"

#: Label names the exporter itself uses; static ``labels`` must not use them.
# fmt: off
RESERVED_LABEL_NAMES = frozenset({
    "provider", "account", "phone_number", "space_id", "waba_id", "status", "quality_rating", "tier",
    "code_verification_status", "name_status", "new_name_status", "account_review_status", "action", "reason",
    "verified_name", "le", "quantile", "instance", "job",
    # labels of the health, portfolio and webhook families
    "phone_number_id", "platform_type", "account_mode", "limit_scope", "can_send_message", "throughput_level",
    "entity_type", "entity_id", "error_code", "error_description", "business_id", "restriction_type", "ban_state",
    "violation_type", "header", "type", "event", "result",
})
# fmt: on


def default_poll_jitter(poll_interval: float) -> float:
    return min(5.0, poll_interval / 10.0)


# -- Settings ----------------------------------------------------------------

Interval = Annotated[Duration, NotNegative]


class Tunables(Section):
    """Settings of every provider, in an account or as defaults in ``global:``."""

    poll_interval: Annotated[Duration, between(5.0, 3600.0)] = Field(
        None, description="How often the account is polled, 5s to 1h (default 1m)."
    )
    poll_jitter: Interval = Field(
        None, description="Random delay before each poll, at most half the interval (default min(5s, interval/10))."
    )
    timeout: Annotated[Duration, between(0.1, 120.0)] = Field(
        None, description="Timeout of one API call, less than poll_interval (default min(10s, poll_interval/2))."
    )
    qps: Qps = Field(None, description="Calls per second the credential may make (default: the provider's).")
    action_qps: ActionLimits = Field(
        None, description="Calls per second per API action inside qps (default: the provider's documented limits)."
    )
    max_staleness: Interval = Field(
        None,
        description="How long the numbers of a failing account are kept, at least poll_interval "
        "(default 10 × poll_interval).",
    )
    max_numbers: Annotated[float | None, whole_number(0, 10_000_000, "0 (no cap)")] = Field(
        None, description="Most numbers kept for the account (0: no cap, the default)."
    )
    concurrency: Annotated[float | None, whole_number(1, 64, "1")] = Field(
        None, description="Units polled at once (default: qps rounded up, at most 16)."
    )
    retries: Annotated[float | None, whole_number(0, 10, "0")] = Field(
        None,
        description="Retries of a call after a transient failure (timeout, 5xx, throttling), 0 to 10 (default 3).",
    )
    labels: Annotated[dict[str, str] | None, label_map(RESERVED_LABEL_NAMES)] = Field(
        None, description="Static labels added to every series."
    )


class CamsTunables(Section):
    """Settings of Alibaba Cloud CAMS only."""

    signature_version: Annotated[str | None, choice(SIGNATURE_VERSIONS, "signature version")] = Field(
        None, description="Default v3."
    )
    waba_poll_interval: Interval = Field(
        None, description="WABA lookups: 0 (off) or at least poll_interval (default 10m)."
    )
    verification_poll_interval: Interval = Field(
        None, description="Code verification checks: 0 (off, the default) or at least poll_interval."
    )
    tier_vocabulary: Annotated[str | None, choice(TIER_VOCABULARIES, "tier vocabulary")] = Field(
        None, description="Default api_reference."
    )
    health_poll_interval: Annotated[
        Interval, rule(lambda v: v == 0 or v >= 10, "must be 0 (disabled) or at least 10s, got {got}")
    ] = Field(None, description="GetWhatsappHealthStatus sweeps: 0 (off) or at least 10s (default 5m).")


class MetaTunables(Section):
    """Settings of Meta's Cloud API only."""

    graph_api_version: GraphVersion = Field(
        None, description=f"Graph API version in every path (default {DEFAULT_GRAPH_API_VERSION})."
    )


class TwilioTunables(Section):
    """Settings of Twilio only."""

    page_size: Annotated[float | None, whole_number(1, 1000, "1")] = Field(
        None, description="Senders per page of the list (PageSize, 1 to 1000; default 100)."
    )
    max_concurrent_requests: Annotated[float | None, whole_number(1, 16, "1")] = Field(
        None,
        description="Requests of the account in flight at once (Twilio limits concurrency per account; default 2).",
    )


#: a provider's own settings, in the accounts of the other providers
NOT_APPLICABLE: dict[str, str | float] = {
    "signature_version": "",
    "waba_poll_interval": 0.0,
    "verification_poll_interval": 0.0,
    "health_poll_interval": 0.0,
    "graph_api_version": "",
    "page_size": 0,
    "max_concurrent_requests": 0,
}


def interval_rules(interval: float, pick: Callable[[str], tuple[Any, str]]) -> list[ErrorDetails]:
    """The rules between the poll interval and the other durations; *pick* gives (value or None, suffix)."""
    every, half = fmt_seconds(interval), fmt_seconds(interval / 2)
    rules: list[tuple[str, Callable[[float], bool], str]] = [
        ("poll_jitter", lambda v: v > interval / 2, f"must be at most half of poll_interval ({half})"),
        ("timeout", lambda v: v >= interval, f"must be less than poll_interval ({every})"),
        ("max_staleness", lambda v: v < interval, f"must be at least poll_interval ({every})"),
    ]
    rules += [
        (key, lambda v: 0 < v < interval, f"must be 0 (disabled) or at least poll_interval ({every})")
        for key in ("waba_poll_interval", "verification_poll_interval")
    ]
    return [
        custom((key,), f"{message}, got {fmt_seconds(value)}{suffix}")
        for key, broken, message in rules
        for value, suffix in [pick(key)]
        if value is not None and broken(value)
    ]
