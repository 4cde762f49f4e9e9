"""Pure functions from Kaleyra WhatsApp v2 responses to the normalized model.

Kaleyra wraps every answer in ``{code, message, data, error}``.  The bodies of
the two read endpoints are not published; the number details are taken to be
Meta's phone-number object (the page lists exactly its fields), and discovery
to be a list of number objects.  Both parsers are tolerant, and
``whatsapp-number-exporter``'s tests can be pointed at a captured response.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from exporter import model
from exporter.providers.cams.parse import normalize_phone_number
from exporter.providers.errors import ProviderError
from exporter.providers.meta_object import parse_phone_object

PROVIDER = "kaleyra"

AUTH_CODES = {"RBC001"}
PERMISSION_CODES = {"WA401"}
REQUEST_CODES = {"WA400", "E13001"}


def classify(code: str, http_status: int) -> str:
    if http_status == 429 or code in ("WA429", "130429", "80007"):
        return "throttled"
    if code in AUTH_CODES or http_status == 401:
        return "auth"
    if code in PERMISSION_CODES or http_status == 403:
        return "permission"
    if code in REQUEST_CODES or (400 <= http_status < 500 and http_status != 404 and code != "WA500"):
        return "request"
    return "upstream"


def _is_success_code(code: str) -> bool:
    # WA200 (send API) and WS2xx (monitoring API) are the documented successes.
    return code == "" or code[:3] in ("WA2", "WS2") or code in ("200", "201")


def check_envelope(body: Any, http_status: int) -> Any:
    """Return ``data`` of a successful answer, else raise ProviderError."""
    if not isinstance(body, dict):
        if http_status == 429:
            raise ProviderError("throttled", "HTTP 429", http_status=429)
        if http_status >= 500:
            raise ProviderError("upstream", f"HTTP {http_status} without a JSON body", http_status=http_status)
        raise ProviderError("parse", "response is not a JSON object", http_status=http_status)
    code = str(body.get("code") or "").strip()
    error = body.get("error")
    if 200 <= http_status < 300 and _is_success_code(code) and not (isinstance(error, dict) and error.get("code")):
        return body.get("data")
    message = str(body.get("message") or "")
    if isinstance(error, dict) and error.get("message"):
        message = f"{message}: {error['message']}" if message else str(error["message"])
    raise ProviderError(
        classify(code, http_status), message[:300] or f"HTTP {http_status}", code=code, http_status=http_status
    )


def parse_discovery(data: Any) -> list[str]:
    """``GET …/<waba_id>/number`` → the WABA's numbers as digits with country code."""
    if isinstance(data, dict):
        data = next((data[k] for k in ("numbers", "phone_numbers", "data") if isinstance(data.get(k), list)), None)
    if data is None:
        return []
    if not isinstance(data, list):
        raise ProviderError("parse", "number list is not a list")
    phones: list[str] = []
    for item in data:
        raw = ""
        if isinstance(item, dict):
            for key in ("phone_number", "display_phone_number", "business_phone_number", "number"):
                if isinstance(item.get(key), (str, int)) and str(item[key]).strip():
                    raw = str(item[key])
                    break
        elif isinstance(item, (str, int)):
            raw = str(item)
        phone = normalize_phone_number(raw) if raw else ""
        if phone.startswith("+") and phone[1:] not in phones:
            phones.append(phone[1:])
    return phones


def parse_details(data: Any, waba_id: str, digits: str) -> model.PhoneNumber:
    """``GET …/<number>/phone_number_details`` → the number in the model."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    number = parse_phone_object(data, PROVIDER, waba_id, phone_hint=digits)
    if number is None:
        raise ProviderError("parse", "phone number details missing")
    # The path names the number; trust it over a formatted display string.
    return dataclasses.replace(number, phone_number="+" + digits, waba_id=number.waba_id or waba_id)
