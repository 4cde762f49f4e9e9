"""Pure functions from CAMS (2020-06-06) response JSON to the normalized model.

No I/O here: each function takes the decoded body and returns model objects or
raises :class:`ProviderError`.  They are tested on the documented example
payloads (tests/unit/test_cams_parse.py).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from exporter import model
from exporter.lane import Steps, at_once
from exporter.providers.errors import ProviderError
from exporter.providers.wire import list_field, meta_states, text

PROVIDER = "alibaba_cams"
log = logging.getLogger(__name__)

THROTTLE_CODES = ("System.LimitControl", "Rejected.Throttling")
AUTH_CODES = (
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSignatureMethod",
    "SignatureNonceUsed",
    "MissingAccessKeyId",
    "InvalidAccessKeyId",  # prefix: .NotFound, .Inactive
    "InvalidTimeStamp",  # prefix: .Expired, .Format
    "InvalidSecurityToken",  # prefix: .Expired, .Malformed, .MismatchWithAccessKey
)
PERMISSION_CODES = (
    "Forbidden",  # prefix: Forbidden.RAM, Forbidden.RiskControl
    "Ram.PermissionDeny",
    "Authentication.NoAuth",
    "Product.Unsubscript",
    "Unknown.ResourceOwnerId",
)
REQUEST_CODES = (
    "InvalidParameter",
    "MissingParameter",
    "InvalidApi.NotFound",
    "InvalidAction.NotFound",
    "InvalidProduct.NotFound",
    "UnsupportedHTTPMethod",
)


def _matches(code: str, prefixes: tuple[str, ...]) -> bool:
    return any(code == p or code.startswith(p + ".") for p in prefixes)


def classify(code: str, http_status: int | None) -> str:
    """Map a POP gateway or CAMS business error code to a reason (see errors.py)."""
    if code.startswith("Throttling") or _matches(code, THROTTLE_CODES) or http_status == 429:
        return "throttled"
    if _matches(code, AUTH_CODES):
        return "auth"
    if _matches(code, PERMISSION_CODES):
        return "permission"
    if _matches(code, REQUEST_CODES) or re.fullmatch(r"(Missing|Invalid)[A-Z]\w*(\.\w+)?", code or ""):
        return "request"
    return "upstream"


def check_envelope(body: Any, http_status: int, retry_after: float | None = None) -> dict[str, Any]:
    """Return the body if it is a successful CAMS answer, else raise ProviderError.

    A CAMS call succeeds only when the HTTP status is 2xx *and* ``Code`` is
    ``OK``: CAMS sends business errors with HTTP 200 too.
    """
    if not isinstance(body, dict):
        if http_status >= 500:
            raise ProviderError("upstream", f"HTTP {http_status} without a JSON error body", http_status=http_status)
        raise ProviderError("parse", "response is not a JSON object", http_status=http_status)
    code = body.get("Code", body.get("code"))
    request_id = str(body.get("RequestId", body.get("requestId", "")) or "")
    if 200 <= http_status < 300 and isinstance(code, str) and code.upper() == "OK":
        return body
    message = str(body.get("Message", body.get("message", "")) or "")[:300]
    if not isinstance(code, str) or not code:
        if http_status >= 500:
            raise ProviderError("upstream", f"HTTP {http_status}", http_status=http_status, request_id=request_id)
        if 200 <= http_status < 300:
            raise ProviderError("parse", "response has no Code field", http_status=http_status, request_id=request_id)
        raise ProviderError(
            "upstream", f"HTTP {http_status} without an error code", http_status=http_status, request_id=request_id
        )
    reason = classify(code, http_status)
    if reason == "upstream" and 400 <= http_status < 500 and http_status != 429:
        # An unlisted 4xx business code: the request itself was refused.
        reason = "request"
    raise ProviderError(
        reason, message or code, code=code, http_status=http_status, request_id=request_id, retry_after=retry_after
    )


#: the model's vocabulary fields → CAMS' names for them (Meta's, in CamelCase)
FIELD_KEYS = {
    "status": "Status",
    "quality_rating": "QualityRating",
    "code_verification_status": "CodeVerificationStatus",
    "name_status": "NameStatus",
    "new_name_status": "NewNameStatus",
}

_DIGITS = re.compile(r"[\s\-().]")
#: entries of an answer parsed between two steps of :func:`parse_phone_numbers_steps` (about 0.3 ms)
STEP = 25


def normalize_phone_number(raw: str) -> str:
    """CAMS returns digits with the country code and no ``+``; export E.164 (``+8613800000000``)."""
    if raw.isdigit() and not raw.startswith("00"):  # the usual spelling: nothing to strip
        return "+" + raw
    value = _DIGITS.sub("", raw.strip())
    if value.startswith("00") and value[2:].isdigit():
        value = value[2:]
    if value.isdigit():
        return "+" + value
    return value


def parse_phone_numbers_steps(
    body: dict[str, Any], space_id: str, tier_vocabulary: str = "api_reference"
) -> Steps[list[model.PhoneNumber]]:
    """``QueryChatappPhoneNumbers`` → numbers of one space.

    Tolerates missing fields (UNKNOWN), unknown values (OTHER) and malformed
    entries (skipped and logged); a missing ``PhoneNumbers`` key is an empty space.
    """
    numbers: dict[str, model.PhoneNumber] = {}
    malformed = duplicates = 0
    for i, item in enumerate(list_field(body, "PhoneNumbers")):
        if i and not i % STEP:
            yield
        if not isinstance(item, dict) or not text(item, "PhoneNumber"):
            malformed += 1
            continue
        phone = normalize_phone_number(item["PhoneNumber"])
        if phone in numbers:
            duplicates += 1
            continue
        tier = model.normalize_tier(item.get("MessagingLimitTier"), tier_vocabulary, PROVIDER)
        numbers[phone] = model.PhoneNumber(
            phone_number=phone,
            messaging_limit_tier=tier,
            limit_scope=model.per_number_scope(tier),
            verified_name=text(item, "VerifiedName"),
            space_id=space_id,
            **meta_states(item, PROVIDER, FIELD_KEYS),
        )
    if malformed or duplicates:  # once per answer, not once per entry
        log.warning(
            "skipped malformed or duplicate PhoneNumbers entries",
            extra={"space_id": space_id, "malformed": malformed, "duplicates": duplicates},
        )
    return list(numbers.values())


parse_phone_numbers = at_once(parse_phone_numbers_steps)


def parse_bind_waba(body: dict[str, Any], space_id: str) -> model.Waba | None:
    """``QueryChatappBindWaba`` → the WABA bound to a space, or None if none is bound."""
    data = body.get("Data")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ProviderError("parse", "Data is not an object")
    waba_id = text(data, "Id")
    if not waba_id:
        return None
    return model.Waba(
        waba_id=waba_id,
        name=text(data, "Name"),
        account_review_status=model.ACCOUNT_REVIEW_STATUS.normalize(data.get("AccountReviewStatus"), PROVIDER),
        space_id=space_id,
        currency=text(data, "Currency"),
    )


def parse_verification_status(body: dict[str, Any]) -> model.Verification:
    """``GetPhoneNumberVerificationStatus`` → the code-verification state of one number."""
    data = body.get("Data")
    if not isinstance(data, dict) or not text(data, "PhoneNumber"):
        raise ProviderError("parse", "Data.PhoneNumber missing")
    return model.Verification(
        phone_number=normalize_phone_number(data["PhoneNumber"]),
        code_verification_status=model.CODE_VERIFICATION_STATUS.normalize(data.get("CodeVerificationStatus"), PROVIDER),
        phone_number_id=text(data, "Id"),
    )


#: the typed id field of each entity in GetWhatsappHealthStatus (CAMS has no EntityId, and none for APP)
_ENTITY_ID_FIELDS = {"PHONE_NUMBER": "PhoneNumber", "WABA": "WabaId", "BUSINESS": "BusinessId"}
#: entities that are the node itself, not above it (a template never belongs to a number)
_OWN_ENTITIES = ("PHONE_NUMBER", "MESSAGE_TEMPLATE")
MAX_ENTITIES = 16
MAX_ERRORS = 16


def _short(value: Any, limit: int = 64) -> str:
    """A wire value as a short one-line string ("" for garbage); CAMS sends error codes as strings, Meta as numbers."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        value = str(int(value))
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:limit]


def parse_health_status(body: dict[str, Any]) -> model.Health:
    """``GetWhatsappHealthStatus`` → the node's sending health (Meta's ``health_status``, in CAMS' PascalCase).

    The node's own state is the worst of ``Data.CanSendMessage`` and every
    entity's (a number cannot send when the WABA or business above it cannot).
    Entities above the node (WABA, BUSINESS, APP) are kept with their ids
    (``WabaId``, ``BusinessId``; an APP has none); ``Errors`` of any entity
    become blocking errors.  Garbage inside the answer is skipped, never raised.
    """
    data = body.get("Data")
    if not isinstance(data, dict):
        raise ProviderError("parse", "Data is not an object")
    raw = data.get("CanSendMessage")
    overall = model.CAN_SEND_MESSAGE.normalize(raw if isinstance(raw, str) else None, PROVIDER)
    states = [overall]
    entities: list[model.EntityHealth] = []
    errors: list[model.BlockingError] = []
    business_id = ""
    raw_entities = data.get("Entities")
    for entity in raw_entities if isinstance(raw_entities, list) else ():
        if not isinstance(entity, dict):
            continue
        entity_type = _short(entity.get("EntityType")).upper()
        if not entity_type:
            continue
        entity_id = _short(entity.get(_ENTITY_ID_FIELDS.get(entity_type, ""), ""))
        if entity_type == "PHONE_NUMBER":
            entity_id = normalize_phone_number(entity_id) if entity_id else ""
        raw_state = entity.get("CanSendMessage")
        state = model.CAN_SEND_MESSAGE.normalize(raw_state if isinstance(raw_state, str) else None, PROVIDER)
        if entity_type != "MESSAGE_TEMPLATE":
            states.append(state)
        if entity_type == "BUSINESS" and entity_id:
            business_id = entity_id
        if entity_type not in _OWN_ENTITIES and len(entities) < MAX_ENTITIES:
            entities.append(model.EntityHealth(entity_type, entity_id, state))
        raw_errors = entity.get("Errors")
        for error in raw_errors if isinstance(raw_errors, list) else ():
            if not isinstance(error, dict) or len(errors) >= MAX_ERRORS:
                continue
            code, description = _short(error.get("ErrorCode")), _short(error.get("ErrorDescription"), 256)
            if code or description:
                errors.append(model.BlockingError(entity_type, entity_id, code, description))
    known = [s for s in states if s != model.UNKNOWN]
    return model.Health(
        can_send_message=model.worst_can_send(*known) if known else model.UNKNOWN,
        entities=tuple(entities),
        blocking_errors=tuple(errors),
        business_id=business_id,
    )
