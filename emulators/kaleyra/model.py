"""Kaleyra's wire vocabulary: actions, codes, field lists, the error class and the number-object helpers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..common import ApiError, display_number
from ..common.wire import PHONE_NODE_OBSERVED_FIELDS, WRITE_REFUSED, write_refused

logger = logging.getLogger("emulators.kaleyra")

JSON_CONTENT_TYPE = "application/json"
LIST_ACTION = "list_numbers"
DETAILS_ACTION = "phone_number_details"
READ_ACTIONS = frozenset({LIST_ACTION, DETAILS_ACTION})
# .../<waba_id>/number/<op> -> action; every /v1/ path is the action "v1"
WRITE_OPS = {"add": "add_number", "verify": "verify_number", "retry_otp": "retry_otp", "update": "update_number"}
WRITE_ACTIONS = frozenset(WRITE_OPS.values()) | {"v1"}
KALEYRA_EVENTS = frozenset({"FLAGGED", "UNFLAGGED", "UPGRADE", "DOWNGRADE"})
SUCCESS_CODE = "WA200"
SUCCESS_MESSAGE = "Request Processed Successfully"

# code -> (HTTP status, message)
ERROR_TABLE: dict[str, tuple[int, str]] = {
    "RBC001": (401, "Incorrect SID or API key."),
    "WA400": (400, "Refer to correct payload format"),
    "WA401": (400, "Unauthorized access"),
    "WA404": (404, "Not Found"),
    "WA405": (405, "Method Not Allowed"),
    "WA429": (429, "Too Many Requests"),
    "WA500": (500, "Please try again later"),
    "E110": (400, "Insufficient Balance"),
    "WAV2101": (400, "Account daily limit reached"),
    WRITE_REFUSED: write_refused("endpoints"),
}

LIST_FIELDS = (
    ("id", "id"),
    ("display_phone_number", "display_phone_number"),
    ("phone_number", "phone_number"),
    ("verified_name", "verified_name"),
    ("status", "status"),
    ("quality_rating", "quality_rating"),
    ("name_status", "name_status"),
)
_NUMBER_KNOWN = frozenset(
    {
        *PHONE_NODE_OBSERVED_FIELDS,
        "id",
        "display_phone_number",
        "quality_score",
        "platform_type",
        "account_mode",
        "is_official_business_account",
        "can_send_message",
        "health_errors",
        "health_additional_info",
        "wire_extra",
    }
)
_WABA_KNOWN = frozenset(
    {
        "id",
        "name",
        "account_review_status",
        "business_id",
        "can_send_message",
        "health_errors",
        "health_additional_info",
        "present",
    }
)
# attributes with a default when the scenario does not mention them (an explicit null omits them)
_DEFAULTS = {"throughput_level": "STANDARD", "platform_type": "CLOUD_API", "account_mode": "LIVE"}


class _KError(ApiError):
    ERRORS = ERROR_TABLE
    DEFAULT = (400, "Request failed")


def _auth_error(detail: str) -> _KError:
    return _KError("RBC001", detail={"body": ERROR_TABLE["RBC001"][1], "error": detail})


def _with_display(state: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(state)
    if values.get("display_phone_number") is None and "display_phone_number" not in state:
        values["display_phone_number"] = display_number(state["phone_number"])
    return values


def _entity(kind: str, entity_id: Any, state: Mapping[str, Any], derived: str) -> dict[str, Any]:
    entity: dict[str, Any] = {"entity_type": kind}
    if entity_id is not None:
        entity["id"] = entity_id
    entity["can_send_message"] = state.get("can_send_message") or derived
    info = state.get("health_additional_info")
    if info:
        entity["additional_info"] = list(info) if isinstance(info, list) else [info]
    errors = state.get("health_errors")
    if errors:
        entity["errors"] = list(errors) if isinstance(errors, list) else [errors]
    return entity
