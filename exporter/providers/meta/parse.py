"""Pure functions from Meta Graph API (WhatsApp Cloud API) answers to the model.

* :func:`check_response`: a decoded body and its HTTP status → the body, or a
  classified :class:`ProviderError` from Graph's error envelope
  ``{"error": {"message", "type", "code", "error_subcode", "is_transient",
  "fbtrace_id"}}``.
* :func:`parse_list_page`: one page of ``GET /{waba}/phone_numbers`` → its
  number objects and the cursor of the next page.
* :func:`parse_number`: one phone-number object → the model (through
  :mod:`exporter.providers.meta_object`, shared with Kaleyra).
* :func:`parse_business_use_case_usage` / :func:`parse_app_usage`: the
  ``X-Business-Use-Case-Usage`` and ``X-App-Usage`` headers → usage ratios.

None of them raises on garbage inside an otherwise valid answer.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter import model
from exporter.providers.errors import ProviderError
from exporter.providers.meta_object import parse_phone_object

PROVIDER = "meta"

#: Graph codes of the call-rate limits: 4 app, 17 user, 32 page, 613 API-specific,
#: 80007 WhatsApp Business Account (Business Use Case), 130429 Cloud API throughput
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80007, 130429})
#: throttles of the app (or user) as a whole, not only of one WABA
APP_THROTTLE_CODES = frozenset({4, 17, 32, 613})
#: 190 invalid/expired token, 102 session key, 104 token missing
AUTH_CODES = frozenset({102, 104, 190})
#: 10 and 200-299 permission, 3 capability
PERMISSION_CODES = frozenset({3, 10}) | frozenset(range(200, 300))
#: 100 invalid parameter (also an unknown node), 803 unknown alias, 2500 unknown path
REQUEST_CODES = frozenset({100, 803, 2500})
#: 1 unknown error, 2 service temporarily unavailable
UPSTREAM_CODES = frozenset({1, 2})

USAGE_TYPES = ("call_count", "total_cputime", "total_time")
MAX_MESSAGE = 300


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def classify(code: int | None, http_status: int, transient: bool = False) -> str:
    """The reason of a Graph error: its code first, the HTTP status otherwise."""
    if code in THROTTLE_CODES or http_status == 429:
        return "throttled"
    if code in AUTH_CODES or http_status == 401:
        return "auth"
    if code in PERMISSION_CODES:
        return "permission"
    if code in REQUEST_CODES:
        return "request"
    if code in UPSTREAM_CODES or transient or http_status >= 500:
        return "upstream"
    if http_status == 403:
        return "permission"
    if 400 <= http_status < 500:
        return "request"
    return "upstream"


def graph_error(body: Any, http_status: int) -> ProviderError | None:
    """The classified error of an answer, or None when it is a success."""
    error = body.get("error") if isinstance(body, dict) else None
    if error is None and 200 <= http_status < 300 and isinstance(body, dict):
        return None
    if not isinstance(error, dict):
        if http_status == 429:
            return ProviderError("throttled", "HTTP 429", http_status=429)
        if http_status == 401:
            return ProviderError("auth", "HTTP 401 without a Graph error", http_status=401)
        if http_status >= 500:
            return ProviderError("upstream", f"HTTP {http_status} without a Graph error", http_status=http_status)
        if not isinstance(body, dict):
            return ProviderError("parse", "response is not a JSON object", http_status=http_status)
        return ProviderError(
            classify(None, http_status), f"HTTP {http_status} without a Graph error", http_status=http_status
        )
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    transient = error.get("is_transient") is True
    message = error.get("message")
    message = " ".join(message.split()) if isinstance(message, str) else ""
    kind = error.get("type")
    if isinstance(kind, str) and kind.strip() and kind.strip() not in message:
        message = f"{kind.strip()}: {message}" if message else kind.strip()
    if subcode is not None:
        message += f" (subcode {subcode})"
    trace = error.get("fbtrace_id")
    return ProviderError(
        classify(code, http_status, transient),
        message[:MAX_MESSAGE] or f"HTTP {http_status}",
        code="" if code is None else str(code),
        http_status=http_status,
        request_id=trace.strip()[:64] if isinstance(trace, str) else "",
    )


def check_response(body: Any, http_status: int) -> dict[str, Any]:
    """Return a successful answer's JSON object, else raise ProviderError."""
    err = graph_error(body, http_status)
    if err is not None:
        raise err
    if not isinstance(body, dict):  # graph_error answers None only for a JSON object
        raise ProviderError("parse", "response is not a JSON object", http_status=http_status)
    return body


def parse_list_page(body: Any) -> tuple[list[Any], str]:
    """One page of the ``phone_numbers`` edge → (number objects, cursor of the next page or "").

    The next cursor is ``paging.cursors.after``, but only when Graph says more
    follow (``paging.next``); an ``after`` parameter inside ``next`` is used when
    the cursors are missing.  The ``next`` URL itself is never followed.
    """
    if not isinstance(body, dict):
        raise ProviderError("parse", "phone_numbers answer is not a JSON object")
    data = body.get("data")
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ProviderError("parse", "phone_numbers data is not a list")
    paging = body.get("paging")
    if not isinstance(paging, dict) or not paging.get("next"):
        return data, ""
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    if not isinstance(after, str) or not after.strip():
        nxt = paging.get("next")
        values = parse_qs(urlsplit(nxt).query).get("after") if isinstance(nxt, str) else None
        after = values[0] if values else ""
    return data, after.strip()


def number_id(item: Any) -> str:
    """The node id of a number object ("" when it has none)."""
    if not isinstance(item, dict):
        return ""
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    text = str(value).strip()
    return text if text.isdigit() else ""


def parse_number(item: Any, waba_id: str) -> model.PhoneNumber | None:
    """One phone-number object (list edge or node) → the model; None when it names no number."""
    number = parse_phone_object(item, PROVIDER, waba_id)
    if number is None:
        return None
    return dataclasses.replace(number, waba_id=number.waba_id or waba_id)


def _ratio(value: Any) -> float | None:
    """A usage percentage → a ratio in 0..1 (None for garbage)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return min(1.0, max(0.0, value / 100.0))


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None


def parse_business_use_case_usage(value: str | None) -> dict[str, tuple[dict[str, float], float]]:
    """``X-Business-Use-Case-Usage`` → business id → (usage type → ratio, seconds to regain access).

    The header is ``{"<business id>": [{"type", "call_count", "total_cputime",
    "total_time", "estimated_time_to_regain_access"}, ...]}`` with percentages
    and minutes.  Several entries of one business (several use cases) keep
    the highest of each value.
    """
    decoded = _json_header(value)
    out: dict[str, tuple[dict[str, float], float]] = {}
    if not isinstance(decoded, dict):
        return out
    for business_id, entries in decoded.items():
        if not isinstance(business_id, str) or not business_id.strip() or len(out) >= 64:
            continue
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list):
            continue
        ratios: dict[str, float] = {}
        regain = 0.0
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            for kind in USAGE_TYPES:
                ratio = _ratio(entry.get(kind))
                if ratio is not None:
                    ratios[kind] = max(ratios.get(kind, 0.0), ratio)
            minutes = entry.get("estimated_time_to_regain_access")
            if isinstance(minutes, str):
                try:
                    minutes = float(minutes.strip())
                except ValueError:
                    minutes = None
            if isinstance(minutes, (int, float)) and not isinstance(minutes, bool) and math.isfinite(minutes):
                regain = max(regain, min(float(minutes), 24 * 60.0) * 60.0)
        out[business_id.strip()[:64]] = (ratios, regain)
    return out


def parse_app_usage(value: str | None) -> dict[str, float]:
    """``X-App-Usage: {"call_count", "total_cputime", "total_time"}`` (percentages) → ratios."""
    decoded = _json_header(value)
    out: dict[str, float] = {}
    if not isinstance(decoded, dict):
        return out
    for kind in USAGE_TYPES:
        ratio = _ratio(decoded.get(kind))
        if ratio is not None:
            out[kind] = ratio
    return out
