"""Pure functions from Infobip's ``GET /whatsapp/1/senders/quality`` to the model.

* :func:`check_response`: a decoded body and its HTTP status → the body, or a
  classified :class:`ProviderError` from either error format: the legacy
  ``{"requestError": {"serviceException": {"messageId", "text", "validationErrors"}}}``
  and the newer ``ApiError`` ``{errorCode, description, action, violations[], resources[]}``.
* :func:`parse_results`: ``results[]`` → the senders in the model.

Vocabulary (docs/providers/infobip.md has the table): ``status`` is Meta's
phone-number status, 1:1; ``qualityRating`` HIGH/MEDIUM/LOW are GREEN/YELLOW/RED,
UNKNOWN is UNKNOWN; ``currentLimit`` ``LIMIT_250`` … ``UNLIMITED`` are Meta's
tiers (with the legacy ``LIMIT_50`` and ``LIMIT_1K``), ``LIMIT_NA`` is
TIER_NOT_SET.  Any unseen value is OTHER (Infobip's own SDK throws on one; the
enum history shows values come and go).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exporter import model
from exporter.providers import wire
from exporter.providers.cams.parse import normalize_phone_number
from exporter.providers.errors import ProviderError

PROVIDER = "infobip"
MAX_SENDERS_PER_CALL = 100

LIMIT_MAP = {
    "LIMIT_50": "TIER_50",
    "LIMIT_250": "TIER_250",
    "LIMIT_1K": "TIER_1K",
    "LIMIT_2K": "TIER_2K",
    "LIMIT_10K": "TIER_10K",
    "LIMIT_100K": "TIER_100K",
    "UNLIMITED": "TIER_UNLIMITED",
    "LIMIT_NA": "TIER_NOT_SET",
}
#: legacy messageId → the new error codes (as Infobip's SDK maps them)
LEGACY_CODES = {
    "BAD_REQUEST": "E400",
    "UNAUTHORIZED": "E401",
    "FORBIDDEN": "E403",
    "NOT_FOUND": "E404",
    "TOO_MANY_REQUESTS": "E429",
    "GENERAL_ERROR": "E500",
}


def classify(code: str, http_status: int) -> str:
    if code == "E429" or http_status == 429:
        return "throttled"
    if code == "E401" or http_status == 401:
        return "auth"
    if code == "E403" or http_status == 403:
        return "permission"
    if http_status >= 500 or code == "E500":
        return "upstream"
    if code in ("E400", "E404") or 400 <= http_status < 500:
        return "request"
    return "upstream"


def infobip_error(body: Any, http_status: int, retry_after: float | None = None) -> ProviderError:
    code, message = "", ""
    if isinstance(body, dict):
        request_error = body.get("requestError")
        service = request_error.get("serviceException") if isinstance(request_error, dict) else None
        if isinstance(service, dict):
            raw = str(service.get("messageId") or "").strip()
            code = LEGACY_CODES.get(raw.upper(), raw)
            message = str(service.get("text") or "").strip()
            errors = service.get("validationErrors")
            if isinstance(errors, dict) and errors:
                detail = "; ".join(
                    f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in list(errors.items())[:5]
                )
                message = f"{message} ({detail})" if message else detail
        elif "errorCode" in body or "description" in body:
            code = str(body.get("errorCode") or "").strip()
            message = str(body.get("description") or "").strip()
            violations = body.get("violations")
            if isinstance(violations, list) and violations:
                detail = "; ".join(
                    f"{v.get('property', '')}: {v.get('violation', '')}" for v in violations[:5] if isinstance(v, dict)
                )
                message = f"{message} ({detail})" if message else detail
    return wire.answered_error(classify(code.upper(), http_status), message, http_status, code[:40], retry_after)


def check_response(body: Any, http_status: int, retry_after: float | None = None) -> dict[str, Any]:
    """The decoded body of a successful answer, else a classified ProviderError (a legacy error body sent
    with a 2xx status is a 400)."""
    if not 200 <= http_status < 300:
        raise infobip_error(body, http_status, retry_after)
    answer = wire.json_object(body, http_status)
    if "requestError" in answer:
        raise infobip_error(answer, 400, retry_after)
    return answer


map_quality = wire.WireMap(PROVIDER, "qualityRating", wire.QUALITY_LEVELS)
map_limit = wire.WireMap(PROVIDER, "currentLimit", LIMIT_MAP)


def map_status(raw: Any) -> str:
    """Meta's phone-number status, 1:1 (OTHER for any value outside it)."""
    state = model.STATUS.normalize(raw, PROVIDER)
    # OFFLINE and PAUSED are in the model for CAMS' console; Infobip does not send them
    if state in ("OFFLINE", "PAUSED"):
        return model.note_other("status", str(raw), PROVIDER)
    return state


def parse_timestamp(raw: Any) -> float | None:
    """``2022-02-18T08:12:26.422Z`` → Unix seconds; None when absent or unreadable."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def sender_digits(raw: str) -> str:
    """A configured or answered sender → digits only (what Infobip expects): ``+44 7796`` → ``447796``."""
    phone = normalize_phone_number(str(raw))
    return phone[1:] if phone.startswith("+") else ""


def parse_result(item: Any, space_id: str = "") -> model.PhoneNumber | None:
    if not isinstance(item, dict):
        return None
    raw = item.get("sender")
    digits = sender_digits(str(raw)) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not digits:
        return None
    tier = map_limit(item.get("currentLimit"))
    return model.PhoneNumber(
        phone_number="+" + digits,
        status=map_status(item.get("status")),
        quality_rating=map_quality(item.get("qualityRating")),
        messaging_limit_tier=tier,
        limit_scope=model.per_number_scope(tier),
        space_id=space_id,
    )


def parse_results(body: dict[str, Any], space_id: str = "") -> list[model.PhoneNumber]:
    return wire.first_per_number(parse_result(item, space_id) for item in wire.list_field(body, "results"))


def last_updated(body: dict[str, Any]) -> dict[str, float]:
    """E.164 number → its ``lastUpdated`` (Unix seconds), for the senders that carry a readable one."""
    out: dict[str, float] = {}
    for item in body.get("results") or []:
        if isinstance(item, dict):
            digits = sender_digits(str(item.get("sender") or ""))
            ts = parse_timestamp(item.get("lastUpdated"))
            if digits and ts is not None:
                out["+" + digits] = ts
    return out


def batches(senders: tuple[str, ...], size: int = MAX_SENDERS_PER_CALL) -> list[tuple[str, ...]]:
    """Configured senders (digits) → de-duplicated batches of at most ``size``."""
    unique = tuple(dict.fromkeys(s for s in senders if s))
    return [unique[i : i + size] for i in range(0, len(unique), size)]
