"""Pure functions from Twilio's WhatsApp Senders API (``/v2/Channels/Senders``) to the model.

* :func:`check_response`: a decoded body and its HTTP status → the body, or a
  classified :class:`ProviderError` from either of Twilio's error bodies: the
  legacy ``{code, message, more_info, status}`` and the RFC 9457 problem
  ``{type, title, status, detail, code?}``.
* :func:`parse_page`: one list page → its senders in the model and the
  ``meta.next_page_url`` to follow (``None`` on the last page).
* :func:`parse_sender`: one sender resource → the model.

Vocabulary (the exporter's docs/providers/twilio.md has the full table):

* ``status``: ``ONLINE`` and ``ONLINE:UPDATING`` are CONNECTED, ``OFFLINE`` is
  OFFLINE (its ``offline_reasons`` become blocking errors of the number), the
  registration states (``CREATING``, ``PENDING_VERIFICATION``, ``VERIFYING``,
  ``TWILIO_REVIEW``, ``DRAFT``) are PENDING; ``STUBBED`` (meaning unpublished)
  and anything unseen are OTHER; null is UNKNOWN.
* ``properties.quality_rating``: HIGH/MEDIUM/LOW are GREEN/YELLOW/RED, UNKNOWN
  and null are UNKNOWN, an unseen value is OTHER.
* ``properties.messaging_limit`` ("10K Customers/24hr"): the leading token,
  case-insensitively, is Meta's tier; ``Unavailable`` is TIER_NOT_SET; null is
  UNKNOWN; an unreadable string is OTHER.

Nothing here raises on odd values inside an otherwise valid answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from exporter import model
from exporter.providers import wire
from exporter.providers.cams.parse import normalize_phone_number
from exporter.providers.errors import ProviderError

PROVIDER = "twilio"

#: Twilio's sender status → the model's status
STATUS_MAP = {
    "ONLINE": "CONNECTED",
    "ONLINE:UPDATING": "CONNECTED",
    "OFFLINE": "OFFLINE",
    "CREATING": "PENDING",
    "PENDING_VERIFICATION": "PENDING",
    "VERIFYING": "PENDING",
    "TWILIO_REVIEW": "PENDING",
    "DRAFT": "PENDING",
    "STUBBED": model.OTHER,
}

#: leading token of ``messaging_limit`` → tier
LIMIT_TOKENS = {
    "50": "TIER_50",
    "250": "TIER_250",
    "1K": "TIER_1K",
    "2K": "TIER_2K",
    "10K": "TIER_10K",
    "100K": "TIER_100K",
    "UNLIMITED": "TIER_UNLIMITED",
    "UNAVAILABLE": "TIER_NOT_SET",
}

#: Twilio error codes with a fixed reason (the HTTP status decides the rest)
AUTH_CODES = frozenset({20003, 20005, 20006})  # authenticate; account not active; access denied (auth)
THROTTLE_CODES = frozenset({20429, 14107})
REQUEST_CODES = frozenset({20001, 20404, 21211})

_SID = re.compile(r"^XE[0-9a-fA-F]{32}$")


def is_sender_sid(value: str) -> bool:
    return bool(_SID.match(value))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def classify(code: int | None, http_status: int) -> str:
    if code in THROTTLE_CODES or http_status == 429:
        return "throttled"
    if code in AUTH_CODES or http_status == 401:
        return "auth"
    if http_status == 403:
        return "permission"
    if http_status >= 500:
        return "upstream"
    if code in REQUEST_CODES or 400 <= http_status < 500:
        return "request"
    return "upstream"


def twilio_error(body: Any, http_status: int, retry_after: float | None = None) -> ProviderError:
    """A ProviderError from an error answer in either of Twilio's formats (or none)."""
    code: int | None = None
    message = ""
    if isinstance(body, dict):
        code = _int(body.get("code"))
        # legacy: message; RFC 9457: detail, else title
        for key in ("message", "detail", "title"):
            if isinstance(body.get(key), str) and body[key].strip():
                message = body[key].strip()
                break
        if code is None and isinstance(body.get("type"), str):
            # RFC 9457 "type" is a URL such as https://www.twilio.com/docs/errors/20404
            tail = body["type"].rstrip("/").rsplit("/", 1)[-1]
            code = _int(tail)
        status = _int(body.get("status"))
        if http_status < 400 and status is not None and status >= 400:
            http_status = status  # an error body sent with 200
    shown = str(code) if code is not None else ""
    return wire.answered_error(classify(code, http_status), message, http_status, shown, retry_after)


def check_response(body: Any, http_status: int, retry_after: float | None = None) -> dict[str, Any]:
    """The decoded body of a successful answer, else a classified ProviderError."""
    if not 200 <= http_status < 300:
        raise twilio_error(body, http_status, retry_after)
    answer = wire.json_object(body, http_status)
    if "code" in answer and "more_info" in answer and _int(answer.get("status")) not in (None, http_status):
        raise twilio_error(answer, http_status, retry_after)
    return answer


def _leading_token(value: str) -> str:
    """``"10K Customers/24hr"`` → ``10K``, upper case."""
    return value.split()[0].upper()


map_status = wire.WireMap(PROVIDER, "status", STATUS_MAP)
map_quality = wire.WireMap(PROVIDER, "quality_rating", wire.QUALITY_LEVELS)
map_limit = wire.WireMap(PROVIDER, "messaging_limit", LIMIT_TOKENS, _leading_token)


def offline_reasons(sender: dict[str, Any]) -> tuple[model.BlockingError, ...]:
    """``offline_reasons[]`` as blocking errors of the number (entity PHONE_NUMBER, id the sender's SID)."""
    reasons = sender.get("offline_reasons")
    if not isinstance(reasons, list):
        return ()
    sid = wire.text(sender, "sid")
    out: list[model.BlockingError] = []
    for item in reasons:
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        code = str(code).strip() if isinstance(code, (str, int)) and not isinstance(code, bool) else ""
        message = wire.text(item, "message")
        if not code and not message:
            continue
        error = model.BlockingError("PHONE_NUMBER", sid, code or model.UNKNOWN, message[:200])
        if error not in out:
            out.append(error)
    return tuple(out)


def sender_phone(sender_id: str) -> str:
    """``whatsapp:+15017122661`` → ``+15017122661`` ("" for other channels)."""
    channel, sep, address = sender_id.partition(":")
    if not sep or channel.strip().lower() != "whatsapp":
        return ""
    return normalize_phone_number(address)


def parse_sender(sender: Any, space_id: str = "") -> model.PhoneNumber | None:
    """One sender resource → the model; None when it is not a WhatsApp sender with a number."""
    if not isinstance(sender, dict):
        return None
    phone = sender_phone(wire.text(sender, "sender_id"))
    if not phone.startswith("+"):
        return None
    properties = sender.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    configuration = sender.get("configuration")
    configuration = configuration if isinstance(configuration, dict) else {}
    profile = sender.get("profile")
    profile = profile if isinstance(profile, dict) else {}
    status = map_status(sender.get("status"))
    tier = map_limit(properties.get("messaging_limit"))
    waba = configuration.get("waba_id")
    return model.PhoneNumber(
        phone_number=phone,
        status=status,
        quality_rating=map_quality(properties.get("quality_rating")),
        messaging_limit_tier=tier,
        limit_scope=model.per_number_scope(tier),
        verified_name=wire.text(profile, "name"),
        space_id=space_id,
        waba_id=str(waba).strip() if isinstance(waba, (str, int)) and not isinstance(waba, bool) else "",
        phone_number_id=wire.text(sender, "sid"),
        blocking_errors=offline_reasons(sender) if status == "OFFLINE" else (),
    )


@dataclass(frozen=True)
class Page:
    senders: list[dict[str, Any]]
    next_page_url: str | None


def parse_page(body: dict[str, Any]) -> Page:
    """One list page: the records under ``meta.key`` (``senders``) and the next page's URL."""
    meta = body.get("meta")
    if not isinstance(meta, dict):
        raise ProviderError("parse", "list page without meta")
    named = meta.get("key")
    key = named if isinstance(named, str) and named else "senders"
    records = wire.list_field(body, key)
    nxt = meta.get("next_page_url")
    if nxt is not None and (not isinstance(nxt, str) or not nxt.strip()):
        nxt = None
    return Page([r for r in records if isinstance(r, dict)], nxt)


def parse_senders(records: list[dict[str, Any]], space_id: str = "") -> list[model.PhoneNumber]:
    """Senders → numbers, one per phone number (the first listed wins)."""
    return wire.first_per_number(parse_sender(record, space_id) for record in records)
