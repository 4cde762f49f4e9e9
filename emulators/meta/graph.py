"""Graph API helpers of the Meta emulator: errors, request context, cursors, field lists, versions, answer
corruption."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..common import UNKNOWN_ENUM_VALUES, ApiError, Context
from ..scenario import Credential, Space
from .model import _FIELD_NAME, _VERSION, DEFAULT_API_VERSION, ERROR_TABLE, TRANSIENT_CODES


class GraphError(ApiError):
    """A Graph error answer; ``code`` is an int (or a raw string from a fault)."""

    ERRORS = ERROR_TABLE
    DEFAULT = (400, "An unknown error has occurred.")

    def __init__(
        self,
        code: Any,
        *args: Any,
        subcode: int | None = None,
        error_type: str = "OAuthException",
        transient: bool | None = None,
        user_title: str | None = None,
        **options: Any,
    ):
        """``args`` and ``options``: the message, status and options of :class:`ApiError`."""
        super().__init__(code, *args, **options)
        self.subcode = subcode
        self.error_type = error_type
        self.transient = (code in TRANSIENT_CODES) if transient is None else transient
        self.user_title = user_title


@dataclass
class _MetaContext(Context):
    api_version: str | None = None
    credential: Credential | None = None
    waba_id: str | None = None  # the WABA whose BUC usage the answer reports
    forced_buc_minutes: int | None = None  # a throttling fault: report 100% and this wait
    forced_app_full: bool = False
    www_authenticate: str | None = None


@dataclass
class _Target:
    kind: str  # "waba", "number", "unknown"
    space: Space | None = None
    phone_number: str | None = None
    owned: bool = False


def _int_code(code: Any) -> Any:
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        return int(code.strip())
    return code


def _fbtrace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(9)).decode("ascii")


def _encode_cursor(pos: int, node_id: str) -> str:
    return base64.b64encode(f"{pos}:{node_id}".encode()).decode("ascii")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        text = base64.b64decode(cursor.encode("ascii"), validate=True).decode("utf-8")
        pos, node_id = text.split(":", 1)
        return int(pos), node_id
    except (ValueError, UnicodeError, binascii.Error):
        raise GraphError(100, "(#100) The parameter after/before is not a valid cursor") from None


def _split_fields(raw: str) -> list[str]:
    """Top-level names of a ``fields`` value: ``a,b{c,d},e.limit(3)`` -> ``[a, b, e]``."""
    names: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in raw:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            names.append("".join(current))
            current = []
        else:
            current.append(ch)
    names.append("".join(current))
    out = []
    for name in names:
        base = re.split(r"[{.(]", name.strip(), maxsplit=1)[0].strip()
        if not base:
            continue
        if not _FIELD_NAME.match(base):
            raise GraphError(100, f"(#100) Syntax error in the fields parameter near {base[:40]!r}")
        out.append(base)
    return out


def _version_tuple(version: str | None) -> tuple[int, int]:
    match = _VERSION.match(version or DEFAULT_API_VERSION)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _first(values: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if values.get(key) is not None:
            return values[key]
    return None


def _entity(kind: str, entity_id: Any, explicit: Any, derived: str, errors: Any, info: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {"entity_type": kind, "id": str(entity_id), "can_send_message": explicit or derived}
    if info:
        entity["additional_info"] = list(info) if isinstance(info, list) else [info]
    if errors:
        entity["errors"] = list(errors) if isinstance(errors, list) else [errors]
    return entity


def _corrupt_health(obj: dict[str, Any], unknown: bool) -> None:
    health = obj.get("health_status")
    if isinstance(health, dict):
        obj["health_status"] = {**health, "can_send_message": UNKNOWN_ENUM_VALUES["status"] if unknown else None}


def _corrupt_number(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """unknown_enum / null_fields on one number object, touching only the fields it carries."""
    obj = dict(payload)
    unknown = kind == "unknown_enum"
    replacements = {
        "status": UNKNOWN_ENUM_VALUES["status"],
        "quality_rating": UNKNOWN_ENUM_VALUES["quality"],
        "messaging_limit_tier": UNKNOWN_ENUM_VALUES["tier"],
        "whatsapp_business_manager_messaging_limit": UNKNOWN_ENUM_VALUES["tier"],
    }
    for key, value in replacements.items():
        if key in obj:
            obj[key] = value if unknown else None
    if "quality_score" in obj:
        if unknown:
            obj["quality_score"] = {"score": UNKNOWN_ENUM_VALUES["quality"]}
        else:
            obj.pop("quality_score")
    if not unknown:
        for key in ("verified_name", "name_status", "new_name_status", "code_verification_status"):
            obj.pop(key, None)
    _corrupt_health(obj, unknown)
    return obj
