"""Pure functions from NxCloud ``getPhone`` responses to the normalized model.

The documentation shows two shapes for ``data`` and both are accepted:

* the worked example: an object keyed by phone number (digits), each value a
  one-item array holding the phone object;
* the field table: ``data.business_phones`` as an array of phone objects.
"""

from __future__ import annotations

import logging
from typing import Any

from exporter import model
from exporter.providers.cams.parse import normalize_phone_number
from exporter.providers.errors import ProviderError
from exporter.providers.wire import first_per_number, meta_states, text

PROVIDER = "nxcloud"
log = logging.getLogger(__name__)

# Result codes of the WhatsApp API.
AUTH_CODES = {1000, 1001, 1002, 1003, 1004}
PERMISSION_CODES = {1005, 9008, 9010}
REQUEST_CODES = {9000, 9002, 9003, 9006}
THROTTLING_META_CODES = {4, 17, 80007, 130429}


def classify(code: int, data: Any = None) -> str:
    if code in AUTH_CODES:
        return "auth"
    if code in PERMISSION_CODES:
        return "permission"
    if code in REQUEST_CODES:
        return "request"
    if code == 9099:
        # Meta's own error passed through in data.error.
        meta = data.get("error") if isinstance(data, dict) else None
        meta_code = meta.get("code") if isinstance(meta, dict) else None
        if meta_code in THROTTLING_META_CODES:
            return "throttled"
        if meta_code == 190:
            return "auth"
        if isinstance(meta_code, int) and 200 <= meta_code <= 299:
            return "permission"
        if meta_code == 100:
            return "request"
    return "upstream"


def check_envelope(body: Any, http_status: int) -> Any:
    """Return ``data`` of a successful answer (``code`` 0), else raise ProviderError."""
    if http_status == 429:
        raise ProviderError("throttled", "HTTP 429", http_status=429)
    if not isinstance(body, dict):
        if http_status >= 500:
            raise ProviderError("upstream", f"HTTP {http_status} without a JSON body", http_status=http_status)
        raise ProviderError("parse", "response is not a JSON object", http_status=http_status)
    code = body.get("code")
    if isinstance(code, str) and code.lstrip("-").isdigit():
        code = int(code)
    if code == 0 and 200 <= http_status < 300:
        return body.get("data")
    message = str(body.get("message") or "")[:300]
    if not isinstance(code, int) or isinstance(code, bool):
        reason = "upstream" if http_status >= 500 else "parse"
        raise ProviderError(reason, f"HTTP {http_status} without a result code", http_status=http_status)
    raise ProviderError(
        classify(code, body.get("data")), message or f"code {code}", code=str(code), http_status=http_status
    )


def _phone_items(data: Any) -> list[tuple[str, dict[str, Any]]]:
    """(phone key, phone object) pairs from either documented shape."""
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ProviderError("parse", "data is not an object")
    items: list[tuple[str, dict[str, Any]]] = []
    listed = data.get("business_phones")
    if isinstance(listed, list):
        for entry in listed:
            if isinstance(entry, dict):
                key = (
                    text(entry, "business_phone") or text(entry, "phone_number") or text(entry, "display_phone_number")
                )
                items.append((key, entry))
        return items
    for key, value in data.items():
        entry = value[0] if isinstance(value, list) and value else value
        if isinstance(entry, dict):
            items.append((str(key), entry))
        else:
            log.warning("skipping a malformed getPhone entry", extra={"phone_number": str(key)[:32]})
    return items


def parse_phone(key: str, item: dict[str, Any], appkey: str) -> model.PhoneNumber | None:
    """One phone object (under its key, when the answer has one) → the model; None when it names no number."""
    raw_phone = key or text(item, "display_phone_number")
    if not raw_phone:
        return None
    tier = model.TIER.normalize(item.get("current_limit"), PROVIDER)
    return model.PhoneNumber(
        phone_number=normalize_phone_number(raw_phone),
        messaging_limit_tier=tier,
        limit_scope=model.per_number_scope(tier),
        verified_name=text(item, "verified_name"),
        space_id=appkey,
        waba_id=text(item, "waba_id"),
        **meta_states(item, PROVIDER),
    )


def parse_phones(data: Any, appkey: str) -> list[model.PhoneNumber]:
    """Every number of a ``getPhone`` answer, one per phone number (the first listed wins)."""
    return first_per_number(parse_phone(key, item, appkey) for key, item in _phone_items(data))
