"""Errors, request context and wire encoding (JSON and XML) of the CAMS emulator."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape as _xml_escape

from ..common import ApiError, Context, Reply, Request, wire_fields
from .model import DEFAULT_HOST_ID, ERROR_TABLE, MAX_PARAMS

# ---------------------------------------------------------------------------
# errors and request context


class _ApiError(ApiError):
    """A CAMS error answer; its ``detail`` is the ``AccessDeniedDetail`` of a RAM refusal (None otherwise)."""

    ERRORS = ERROR_TABLE


def _missing(param: str) -> _ApiError:
    return _ApiError(f"Missing{param}", f"{param} is mandatory for this action.", 400)


_Reply = Reply


_Request = Request


@dataclass
class _Ctx(Context):
    host_id: str = DEFAULT_HOST_ID
    fmt: str = "JSON"


_TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$")


def _parse_timestamp(value: str) -> float | None:
    match = _TIMESTAMP.match(value)
    if not match:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp()


def _parse_pairs(text: str, where: str) -> list[tuple[str, str]]:
    if not text:
        return []
    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAMS,
        )
    except UnicodeDecodeError:
        raise _ApiError("InvalidParameter", f"The {where} is not valid percent-encoded UTF-8.") from None
    except ValueError:
        raise _ApiError("InvalidParameter", f"The {where} has too many parameters (limit {MAX_PARAMS}).") from None


def _xml_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"_{cleaned}"


def _to_xml(root: str, payload: Mapping[str, Any]) -> bytes:
    def emit(tag: str, value: Any) -> str:
        tag = _xml_name(tag)
        if isinstance(value, Mapping):
            return f"<{tag}>{''.join(emit(k, v) for k, v in value.items())}</{tag}>"
        if isinstance(value, list):
            return f"<{tag}>{''.join(emit(tag, v) for v in value)}</{tag}>"
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = ""
        else:
            text = _xml_escape(str(value))
        return f"<{tag}>{text}</{tag}>"

    return ("<?xml version='1.0' encoding='UTF-8'?>" + emit(root, payload)).encode("utf-8")


_wire = wire_fields


def _health_entity(
    kind: str, typed_id: tuple[str, Any] | None, explicit: Any, derived: str, errors: Any
) -> dict[str, Any]:
    """One ``Entities`` item: ``EntityType``, ``CanSendMessage``, the typed id field (none for APP) and
    ``Errors`` (always a list; never ``AdditionalInfo``, which CAMS does not relay)."""
    entity: dict[str, Any] = {"EntityType": kind, "CanSendMessage": explicit or derived}
    if typed_id is not None and typed_id[1] is not None:
        entity[typed_id[0]] = str(typed_id[1])
    entity["Errors"] = _health_errors(errors)
    return entity


def _health_errors(raw: Any) -> list[dict[str, Any]]:
    """Scenario errors (snake_case like Meta's, or CAMS' PascalCase) in CAMS' shape, ``ErrorCode`` a string."""
    if raw is None:
        return []
    out = []
    for item in raw if isinstance(raw, list) else [raw]:
        if not isinstance(item, Mapping):
            continue
        error = {}
        for wire, snake in (
            ("ErrorCode", "error_code"),
            ("ErrorDescription", "error_description"),
            ("PossibleSolution", "possible_solution"),
        ):
            value = item.get(wire, item.get(snake))
            if value is not None:
                error[wire] = str(value)
        out.append(error)
    return out
