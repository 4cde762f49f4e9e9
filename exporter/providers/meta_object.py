"""Meta's WhatsApp phone-number object (Graph API), as providers pass it through.

Kaleyra's ``phone_number_details`` mirrors it, and Meta's own Cloud API serves
it.  Since October 2025 messaging limits belong to the business portfolio:
``whatsapp_business_manager_messaging_limit`` is read first and the deprecated
``messaging_limit_tier`` (often null now) only when the new field is absent.
Which of the two answered is kept as ``limit_scope``.

``health_status`` (``{"can_send_message", "entities": [...]}``) gives the
overall sending ability, the ability of the number's WABA, business portfolio
and app (``entities``; the PHONE_NUMBER entity is the number itself and a
MESSAGE_TEMPLATE entity never belongs to a number), and the errors that block
any of them.  Every part of it is optional and garbage is ignored: a parser
here never raises on a strange value.
"""

from __future__ import annotations

from typing import Any

from exporter import model
from exporter.providers.cams.parse import normalize_phone_number
from exporter.providers.wire import meta_states, text

#: the portfolio-era limit first, then the deprecated per-number tier
TIER_FIELDS = (
    ("whatsapp_business_manager_messaging_limit", "business_portfolio"),
    ("messaging_limit_tier", "phone_number"),
)
#: health entities that are not exported in ``entities``: the number itself, and templates
OWN_ENTITY_TYPES = ("PHONE_NUMBER", "MESSAGE_TEMPLATE")
MAX_ENTITIES = 16
MAX_ERRORS = 16
MAX_TEXT = 256


def _token(value: Any, limit: int = 64) -> str:
    """A short identifier-like string from a wire value ("" for garbage)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        value = str(int(value)) if isinstance(value, int) or float(value).is_integer() else str(value)
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:limit]


def tier_and_scope(item: dict[str, Any], provider: str) -> tuple[str, str]:
    """``(tier, limit_scope)``: which of the two limit fields answered, and its tier."""
    for key, scope in TIER_FIELDS:
        value = item.get(key)
        if isinstance(value, dict):  # tolerate {"tier": ...} wrappers
            value = value.get("tier") or value.get("value")
        if value not in (None, ""):
            return model.TIER.normalize(value, provider), scope
    return model.UNKNOWN, "unknown"


def tier_of(item: dict[str, Any], provider: str) -> str:
    return tier_and_scope(item, provider)[0]


def quality_of(item: dict[str, Any], provider: str) -> str:
    value = item.get("quality_rating")
    if value in (None, ""):
        score = item.get("quality_score")
        value = score.get("score") if isinstance(score, dict) else score if isinstance(score, str) else None
    return model.QUALITY_RATING.normalize(value, provider)


def throughput_of(item: dict[str, Any], provider: str) -> str:
    value = item.get("throughput")
    if isinstance(value, dict):
        value = value.get("level")
    if value is not None and not isinstance(value, str):
        value = None  # a number or a list is not a level
    return model.THROUGHPUT_LEVEL.normalize(value, provider)


def parse_health_status(
    health: Any, provider: str
) -> tuple[str, tuple[model.EntityHealth, ...], tuple[model.BlockingError, ...]]:
    """``health_status`` → (overall can_send_message, other entities, blocking errors)."""
    if not isinstance(health, dict):
        return model.UNKNOWN, (), ()
    raw_overall = health.get("can_send_message")
    overall = model.CAN_SEND_MESSAGE.normalize(raw_overall if isinstance(raw_overall, str) else None, provider)
    entities: list[model.EntityHealth] = []
    errors: list[model.BlockingError] = []
    raw_entities = health.get("entities")
    for entity in raw_entities if isinstance(raw_entities, list) else ():
        if not isinstance(entity, dict):
            continue
        entity_type = _token(entity.get("entity_type")).upper()
        entity_id = _token(entity.get("id"))
        if not entity_type:
            continue
        if entity_type not in OWN_ENTITY_TYPES and len(entities) < MAX_ENTITIES:
            raw = entity.get("can_send_message")
            entities.append(
                model.EntityHealth(
                    entity_type=entity_type,
                    entity_id=entity_id,
                    can_send_message=model.CAN_SEND_MESSAGE.normalize(raw if isinstance(raw, str) else None, provider),
                )
            )
        raw_errors = entity.get("errors")
        for error in raw_errors if isinstance(raw_errors, list) else ():
            if not isinstance(error, dict) or len(errors) >= MAX_ERRORS:
                continue
            code = _token(error.get("error_code"))
            description = _token(error.get("error_description"), MAX_TEXT)
            if not code and not description:
                continue
            errors.append(
                model.BlockingError(
                    entity_type=entity_type, entity_id=entity_id, error_code=code, error_description=description
                )
            )
    return overall, tuple(entities), tuple(errors)


def parse_phone_object(item: Any, provider: str, space_id: str, phone_hint: str = "") -> model.PhoneNumber | None:
    """One Meta phone-number object → the model; None when it names no number."""
    if not isinstance(item, dict):
        return None
    raw_phone = text(item, "display_phone_number") or text(item, "phone_number") or phone_hint
    if not raw_phone:
        return None
    tier, limit_scope = tier_and_scope(item, provider)
    can_send, entities, blocking = parse_health_status(item.get("health_status"), provider)
    business_id = next((e.entity_id for e in entities if e.entity_type == "BUSINESS" and e.entity_id), "")
    states = meta_states(item, provider)
    states["quality_rating"] = quality_of(item, provider)  # falls back on quality_score
    return model.PhoneNumber(
        phone_number=normalize_phone_number(raw_phone),
        messaging_limit_tier=tier,
        verified_name=text(item, "verified_name"),
        space_id=space_id,
        phone_number_id=_token(item.get("id")),
        can_send_message=can_send,
        throughput_level=throughput_of(item, provider),
        limit_scope=limit_scope,
        platform_type=_token(item.get("platform_type")),
        account_mode=_token(item.get("account_mode")),
        entities=entities,
        blocking_errors=blocking,
        business_id=business_id,
        **states,
    )
