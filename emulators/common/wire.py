"""Wire helpers shared by the emulators: health ranks, unknown enum values, phone display, JSON bytes, wire field
lists."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

MAX_BODY_BYTES = 1 << 20


# Meta's health_status vocabulary, derived from a number's status / a WABA's review status when a
# scenario does not set can_send_message explicitly.
HEALTH_BY_STATUS = {
    "CONNECTED": "AVAILABLE",
    "FLAGGED": "LIMITED",
    "RATE_LIMITED": "LIMITED",
    "RESTRICTED": "LIMITED",
    "BANNED": "BLOCKED",
    "DISCONNECTED": "BLOCKED",
    "DELETED": "BLOCKED",
    "OFFLINE": "BLOCKED",
    "PENDING": "BLOCKED",
    "UNVERIFIED": "BLOCKED",
    "MIGRATED": "BLOCKED",
    "PAUSED": "LIMITED",
    # the list edge's spelling in Meta's OpenAPI (WhatsAppPhoneNumberStatus)
    "LINKED": "AVAILABLE",
    "UNLINKED": "BLOCKED",
}


HEALTH_BY_REVIEW = {"APPROVED": "AVAILABLE", "PENDING": "LIMITED", "REJECTED": "BLOCKED", "DISABLED": "BLOCKED"}


HEALTH_RANK = {"AVAILABLE": 0, "LIMITED": 1, "BLOCKED": 2}


#: the attributes of Meta's phone-number node (which Kaleyra passes through) whose changes the state watcher records
PHONE_NODE_OBSERVED_FIELDS = (
    "present",
    "status",
    "quality_rating",
    "messaging_limit_tier",
    "whatsapp_business_manager_messaging_limit",
    "name_status",
    "new_name_status",
    "code_verification_status",
    "throughput_level",
    "verified_name",
)


#: the emulator-only error code of a call with side effects (recorded, then refused): an exporter must never make one
WRITE_REFUSED = "Emulator.WriteActionCalled"


def write_refused(calls: str) -> tuple[int, str]:
    """The (HTTP status, message) of :data:`WRITE_REFUSED` in a provider's error table (``calls``: its word)."""
    return 400, f"The emulator refuses {calls} with side effects; an exporter must never call them."


# What an ``unknown_enum`` fault puts in place of each kind of enumerated value.
UNKNOWN_ENUM_VALUES = {"status": "BRAND_NEW_STATE", "quality": "BRAND_NEW_RATING", "tier": "TIER_BRAND_NEW"}


def worst_health(values: Iterable[str], default: str = "AVAILABLE") -> str:
    """BLOCKED if any value is BLOCKED, else LIMITED if any is LIMITED (unknown strings rank as LIMITED)."""
    return max(values, key=lambda v: HEALTH_RANK.get(v, 1), default=default)


# ---------------------------------------------------------------------------
# small wire helpers

# ITU-T E.164 country calling codes of one and two digits; every other code has three.
_CC_ONE = {"1", "7"}


_CC_TWO = {
    "20",
    "27",
    "30",
    "31",
    "32",
    "33",
    "34",
    "36",
    "39",
    "40",
    "41",
    "43",
    "44",
    "45",
    "46",
    "47",
    "48",
    "49",
    "51",
    "52",
    "53",
    "54",
    "55",
    "56",
    "57",
    "58",
    "60",
    "61",
    "62",
    "63",
    "64",
    "65",
    "66",
    "81",
    "82",
    "84",
    "86",
    "90",
    "91",
    "92",
    "93",
    "94",
    "95",
    "98",
}


def country_code_length(digits: str) -> int:
    """Length of the country calling code at the start of an E.164 number given as digits."""
    if digits[:1] in _CC_ONE:
        return 1
    if digits[:2] in _CC_TWO:
        return 2
    return min(3, len(digits))


def display_number(digits: str) -> str:
    """``"+<cc> <national number>"``, e.g. ``8613800000001`` -> ``+86 13800000001``."""
    if not digits.isdigit():
        return digits
    cc = country_code_length(digits)
    rest = digits[cc:]
    return f"+{digits[:cc]} {rest}" if rest else f"+{digits}"


def json_bytes(payload: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII left unescaped, as the providers' servers send it)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def wire_fields(state: Mapping[str, Any], mapping: Iterable[tuple[str, str]], extra: bool = True) -> dict[str, Any]:
    """Map snake_case attributes to wire keys; None / absent attributes are omitted.

    With ``extra``, the entity's ``wire_extra`` mapping is merged verbatim (a None value removes a key).
    """
    out: dict[str, Any] = {}
    for attr, key in mapping:
        put(out, key, state.get(attr))
    if extra:
        merge_wire_extra(out, state)
    return out


def put(out: dict[str, Any], key: str, value: Any) -> None:
    """``out[key] = value``; a None value leaves no ``key`` at all (the wire omits nulls)."""
    if value is None:
        out.pop(key, None)
    else:
        out[key] = value


def merge_wire_extra(out: dict[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    extras = state.get("wire_extra")
    for key, value in extras.items() if isinstance(extras, Mapping) else ():
        put(out, key, value)
    return out
