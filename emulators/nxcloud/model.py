"""The NxCloud emulator's data model: endpoints, headers, error table, number fields."""

from __future__ import annotations

import hashlib
import logging

logger = logging.getLogger("emulators.nxcloud")


PATH = "/api/wa/getPhone"


ACTION = "getPhone"


BIZ_TYPE = "2"  # WhatsApp


MAX_TS_SKEW_MS = 60_000


JSON_CONTENT_TYPE = "application/json;charset=UTF-8"


COMMON_HEADERS = ("accessKey", "ts", "bizType", "action", "sign")


ALGORITHMS = {"md5": hashlib.md5, "sha256": hashlib.sha256}


RESPONSE_SHAPES = ("map", "array")


THROTTLE_STATUS = 429


THROTTLE_MESSAGE = "Request is too frequent"


# path -> action, for the endpoints the emulator recognises; the write ones are refused
ENDPOINTS = {PATH: ACTION, "/api/wa/mt": "mt"}


WRITE_ACTIONS = frozenset({"mt"})


# code -> (HTTP status, message).  HTTP 200 throughout is an assumption (see the module docstring).
ERROR_TABLE: dict[int, tuple[int, str]] = {
    -1: (200, "Request failed"),
    1001: (200, "Missing common parameters"),
    1002: (200, "Parameter error"),
    1003: (200, "Invalid signature"),
    1004: (200, "Timestamp has expired"),
    1005: (200, "Insufficient permissions"),
    9000: (200, "Parameter exception"),
    9001: (200, "System business error"),
    9002: (200, "Merchant phone number error"),
    9003: (200, "The application does not exist or is unavailable"),
    9006: (200, "WhatsApp number not bound to the application"),
    9099: (200, "WhatsApp error"),
}


# scenario attribute -> wire key, in the order of NxCloud's example
NUMBER_FIELDS = (
    ("display_phone_number", "display_phone_number"),
    ("quality_rating", "quality_rating"),
    ("name_status", "name_status"),
    ("verified_name", "verified_name"),
    ("code_verification_status", "code_verification_status"),
    ("messaging_limit_tier", "current_limit"),
    ("status", "status"),
)


_NUMBER_KNOWN = frozenset({k for k, _ in NUMBER_FIELDS} | {"id", "present", "wire_extra"})
