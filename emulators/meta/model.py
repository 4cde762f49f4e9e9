"""The Meta emulator's data model: Graph actions, error table, node fields, the business portfolio and its
restrictions, scenario validation."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..scenario import Scenario, ScenarioError, Space, Timeline, parse_duration

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"


DEFAULT_API_VERSION = "v24.0"


LIST_ACTION = "list_phone_numbers"


NUMBER_ACTION = "get_phone_number"


WABA_ACTION = "get_waba"


UNKNOWN_NODE_ACTION = "get_node"


UNKNOWN_EDGE_ACTION = "get_edge"


READ_ACTIONS = frozenset({LIST_ACTION, NUMBER_ACTION, WABA_ACTION})


WRITE_EDGES = frozenset({"register", "deregister", "request_code", "verify_code", "messages"})


WRITE_METHODS = frozenset({"POST", "DELETE", "PUT", "PATCH", "OPTIONS"})


WRITE_ACTIONS = WRITE_EDGES | {m.lower() for m in WRITE_METHODS}


BUC_TYPE = "whatsapp_business_management"


HOUR = 3600.0


_VERSION = re.compile(r"^v(\d+)\.(\d+)$")


_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


# Graph code -> (HTTP status, message)
ERROR_TABLE: dict[int, tuple[int, str]] = {
    0: (401, "(#0) The user could not be authenticated."),
    1: (500, "An unknown error occurred"),
    2: (503, "An unexpected error has occurred. Please retry your request later."),
    3: (500, "(#3) Application does not have the capability to make this API call."),
    4: (429, "(#4) Application request limit reached"),
    10: (403, "(#10) Application does not have permission for this action"),
    17: (429, "(#17) User request limit reached"),
    32: (429, "(#32) Page request limit reached"),
    33: (400, "(#33) This object does not exist or does not support this action"),
    100: (400, "(#100) Invalid parameter"),
    104: (401, "An access token is required to request this resource."),
    190: (401, "Invalid OAuth access token data."),
    200: (403, "(#200) Permissions error"),
    368: (403, "(#368) The action attempted has been deemed abusive or is otherwise disallowed"),
    613: (429, "(#613) Calls to this api have exceeded the rate limit."),
    803: (404, "(#803) Some of the aliases you requested do not exist"),
    2500: (400, "Unknown path components"),
    80007: (
        429,
        "(#80007) There have been too many calls to this WhatsApp Business account. Wait a bit and try again.",
    ),
    130429: (400, "(#130429) Rate limit hit"),
    131000: (500, "(#131000) Something went wrong"),
    131048: (400, "(#131048) Spam rate limit hit"),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
}


THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007})


TRANSIENT_CODES = THROTTLING_CODES | {1, 2, 130429, 131000, 131056}


# Graph fields of a phone-number node (WhatsAppBusinessPhoneNumber)
NUMBER_FIELDS = frozenset(
    {
        "id",
        "display_phone_number",
        "verified_name",
        "quality_rating",
        "quality_score",
        "status",
        "code_verification_status",
        "name_status",
        "new_name_status",
        "messaging_limit_tier",
        "whatsapp_business_manager_messaging_limit",
        "throughput",
        "platform_type",
        "account_mode",
        "is_official_business_account",
        "is_pin_enabled",
        "is_on_biz_app",
        "is_preverified_number",
        "last_onboarded_time",
        "certificate",
        "new_certificate",
        "eligibility_for_api_business_global_search",
        "search_visibility",
        "conversational_automation",
        "health_status",
        "country_code",
        "country_dial_code",
        "unified_cert_status",
        "host_platform",
        "username",
        "webhook_configuration",
    }
)


DEFAULT_NUMBER_FIELDS = ("id", "display_phone_number", "verified_name", "quality_rating")


# fields introduced with the October 2025 portfolio messaging limits
FIELDS_SINCE = {"whatsapp_business_manager_messaging_limit": (24, 0)}


WABA_FIELDS = frozenset(
    {
        "id",
        "name",
        "currency",
        "timezone_id",
        "message_template_namespace",
        "account_review_status",
        "business_verification_status",
        "ownership_type",
        "country",
        "primary_funding_id",
        "purchase_order_number",
        "on_behalf_of_business_info",
        "health_status",
        "status",
        "is_enabled_for_insights",
        "auth_international_rate_eligibility",
    }
)


DEFAULT_WABA_FIELDS = ("id", "name")


_NUMBER_KNOWN = (NUMBER_FIELDS - {"throughput", "health_status"}) | frozenset(
    {
        "throughput_level",
        "can_send_message",
        "errors",
        "health_errors",
        "additional_info",
        "health_additional_info",
        "present",
        "wire_extra",
    }
)


#: the WABA-level state since October 2025 (business portfolio, restrictions, bans, violations) whose changes
#: the state watcher records
WABA_STANDING_ATTRIBUTES = (
    "portfolio_messaging_limit",
    "restrictions",
    "ban_state",
    "ban_date",
    "ban_after",
    "violation_type",
)


#: every WABA-level attribute of that state (see the section below)
WABA_LEVEL_ATTRIBUTES = (*WABA_STANDING_ATTRIBUTES, "max_phone_numbers_per_waba", "max_phone_numbers_per_business")


_WABA_KNOWN = (WABA_FIELDS - {"health_status"}) | frozenset(
    {
        "business_id",
        "can_send_message",
        "errors",
        "health_errors",
        "additional_info",
        "health_additional_info",
        "business_can_send_message",
        "business_errors",
        "business_additional_info",
        "app_can_send_message",
        "app_errors",
        "app_additional_info",
        "present",
        *WABA_LEVEL_ATTRIBUTES,
    }
)


# attributes with a default when the scenario does not mention them (an explicit null omits them)
_DEFAULTS = {"throughput_level": "STANDARD", "platform_type": "CLOUD_API", "account_mode": "LIVE"}


# -- the business portfolio, restrictions, bans and violations (WABA-level state since October 2025) --------

#: a portfolio limit given as an integer (Meta's business_capability_update example form; -1 = unlimited)
#: -> the TIER_* string its numbers report in whatsapp_business_manager_messaging_limit
PORTFOLIO_TIERS = {250: "TIER_250", 2000: "TIER_2K", 10000: "TIER_10K", 100000: "TIER_100K", -1: "TIER_UNLIMITED"}


#: restriction types that do not restrict sending messages (calling, adding numbers); every other type does
NON_MESSAGING_RESTRICTIONS = frozenset(
    {
        "RESTRICTED_ADD_PHONE_NUMBER_ACTION",
        "RESTRICTED_BUSINESS_INITIATED_CALLING",
        "RESTRICTED_USER_INITIATED_CALLING",
        "RESTRICTED_BIZ_INITIATED_AND_USER_INITIATED_CALLING",
        "RESTRICTED_USER_INITIATED_CALLING_CALL_BUTTON_HIDDEN",
    }
)


MESSAGING_RESTRICTIONS = frozenset(
    {
        "RESTRICTED_BIZ_INITIATED_MESSAGING",
        "RESTRICTED_CUSTOMER_INITIATED_MESSAGING",
        "RESTRICTED_UTILITY_TEMPLATES",
        "RESTRICTED_DIRECT_SEND_UTILITY_TEMPLATES",
    }
)


#: restricted together, these leave a WABA nothing it can send: its entity is BLOCKED (see the docstring)
ALL_MESSAGING = frozenset({"RESTRICTED_BIZ_INITIATED_MESSAGING", "RESTRICTED_CUSTOMER_INITIATED_MESSAGING"})


#: Graph's integrity code ("temporarily blocked for policy violations"), the emulator's error for a WABA
#: that is disabled or cannot send because of restrictions (Meta's health-status page lists no code for it)
POLICY_ERROR_CODE = 368


MAX_NUMBERS_PER_WABA = 25  # Meta's business_capability_update example


MAX_NUMBERS_PER_BUSINESS = 2  # the emulator's choice for a portfolio at the 250 level


SPACE_SWITCHES = ("legacy_quality_events", "deprecated_limit_fields")


_RESTRICTION_KEYS = ("restriction_type", "duration", "remediation")


FLAGGED_REFUSED = (
    "Meta numbers cannot be FLAGGED since 7 October 2025 (the state no longer exists and a low "
    "rating no longer lowers a limit); use quality_rating RED, or the CAMS, NxCloud or Kaleyra "
    "emulators, whose APIs still report FLAGGED (extra.legacy_quality_events sends Meta's legacy "
    "webhook forms)"
)


def portfolio_tier(value: Any) -> Any:
    """The ``TIER_*`` form of a portfolio limit given as an integer, a ``TIER_*`` string or ``UNLIMITED``
    (other strings are kept: unknown values are served as they are)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return PORTFOLIO_TIERS.get(value, value)
    if value == "UNLIMITED":
        return "TIER_UNLIMITED"
    return value


def _attribute_sets(
    attributes: Mapping[str, Any], timeline: Timeline, path: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(key path, attributes) of an entity's base attributes and of each timeline ``set``."""
    yield path, attributes
    for transition in timeline.transitions:
        yield f"{path}.timeline[at={transition.at:g}s].set", transition.set


def _check_waba_attributes(attrs: Mapping[str, Any], path: str) -> None:
    """Validate the WABA-level attributes of one attribute set (raises :class:`ScenarioError`)."""
    if "portfolio_messaging_limit" in attrs:
        value = attrs["portfolio_messaging_limit"]
        if isinstance(value, bool) or not (
            value is None or (isinstance(value, str) and value) or (isinstance(value, int) and value in PORTFOLIO_TIERS)
        ):
            raise ScenarioError(
                f"{path}.portfolio_messaging_limit",
                f"expected 250, 2000, 10000, 100000, -1 (unlimited), a TIER_* string or UNLIMITED, got {value!r}",
            )
    if "restrictions" in attrs and attrs["restrictions"] is not None:
        rpath = f"{path}.restrictions"
        entries = attrs["restrictions"]
        if not isinstance(entries, list):
            raise ScenarioError(rpath, "expected a list of {restriction_type, duration, remediation?}")
        seen = set()
        for k, entry in enumerate(entries):
            epath = f"{rpath}[{k}]"
            if not isinstance(entry, Mapping):
                raise ScenarioError(epath, "expected a mapping {restriction_type, duration, remediation?}")
            for key in entry:
                if key not in _RESTRICTION_KEYS:
                    raise ScenarioError(f"{epath}.{key}", f"unknown key (allowed: {', '.join(_RESTRICTION_KEYS)})")
            kind = entry.get("restriction_type")
            if not isinstance(kind, str) or not kind:
                raise ScenarioError(
                    f"{epath}.restriction_type", "is required (a string such as RESTRICTED_BIZ_INITIATED_MESSAGING)"
                )
            if kind in seen:
                raise ScenarioError(f"{epath}.restriction_type", f"duplicate restriction {kind!r}")
            seen.add(kind)
            if "duration" not in entry:
                raise ScenarioError(f"{epath}.duration", "is required (how long the restriction lasts, e.g. 10m)")
            if parse_duration(entry["duration"], f"{epath}.duration") <= 0:
                raise ScenarioError(f"{epath}.duration", "must be > 0")
            if entry.get("remediation") is not None and not isinstance(entry["remediation"], str):
                raise ScenarioError(f"{epath}.remediation", "expected a string")
    for key in ("ban_state", "ban_date", "violation_type"):
        value = attrs.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ScenarioError(f"{path}.{key}", f"expected a non-empty string or null, got {value!r}")
    if attrs.get("ban_after") is not None:
        parse_duration(attrs["ban_after"], f"{path}.ban_after")
    for key in ("max_phone_numbers_per_waba", "max_phone_numbers_per_business"):
        value = attrs.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ScenarioError(f"{path}.{key}", f"expected a positive integer or null, got {value!r}")


#: a WABA's portfolio limit: (base value, the timeline's repeat period, ((time, value) of each change))
_PortfolioSignature = tuple[Any, float | None, tuple[tuple[float, Any], ...]]


def _portfolio_signature(space: Space) -> _PortfolioSignature:
    waba = space.waba
    assert waba is not None
    return (
        waba.attributes.get("portfolio_messaging_limit"),
        waba.timeline.repeat_every,
        tuple(
            (tr.at, tr.set["portfolio_messaging_limit"])
            for tr in waba.timeline.transitions
            if "portfolio_messaging_limit" in tr.set
        ),
    )


def validate_meta_scenario(scenario: Scenario) -> None:
    """The rules a Meta scenario must follow since October 2025 (raises :class:`ScenarioError`):
    no number is ever FLAGGED; the WABA-level attributes are valid and set on WABAs only; a WABA with a
    portfolio limit leaves the per-number limit alone; WABAs of one business share one limit."""
    portfolios: dict[str, tuple[int, _PortfolioSignature]] = {}
    for i, space in enumerate(scenario.spaces):
        spath = f"spaces[{i}]"
        for key in SPACE_SWITCHES:
            value = space.extra.get(key)
            if value is not None and not isinstance(value, bool):
                raise ScenarioError(f"{spath}.extra.{key}", f"expected true or false, got {value!r}")
        has_portfolio = False
        if space.waba is not None:
            for path, attrs in _attribute_sets(space.waba.attributes, space.waba.timeline, f"{spath}.waba"):
                _check_waba_attributes(attrs, path)
                has_portfolio = has_portfolio or attrs.get("portfolio_messaging_limit") is not None
                if "active_restrictions" in attrs:
                    raise ScenarioError(f"{path}.active_restrictions", "is derived by the emulator; set restrictions")
            business = space.waba.attributes.get("business_id")
            if business is not None and has_portfolio:
                signature = _portfolio_signature(space)
                other = portfolios.setdefault(str(business), (i, signature))
                if other[1] != signature:
                    raise ScenarioError(
                        f"{spath}.waba.portfolio_messaging_limit",
                        f"WABAs of one business portfolio share its limit, but business "
                        f"{business} has another limit (or timeline) in spaces[{other[0]}].waba",
                    )
        for j, number in enumerate(space.numbers):
            for path, attrs in _attribute_sets(number.attributes, number.timeline, f"{spath}.numbers[{j}]"):
                if attrs.get("status") == "FLAGGED":
                    raise ScenarioError(f"{path}.status", FLAGGED_REFUSED)
                for key in WABA_LEVEL_ATTRIBUTES:
                    if key in attrs:
                        raise ScenarioError(f"{path}.{key}", "is a WABA-level attribute: set it on the space's waba")
                if has_portfolio and attrs.get("whatsapp_business_manager_messaging_limit") is not None:
                    raise ScenarioError(
                        f"{path}.whatsapp_business_manager_messaging_limit",
                        "the messaging limit lives on the business portfolio: this WABA sets "
                        "portfolio_messaging_limit, which every number of it reports; leave "
                        "the per-number value out",
                    )
