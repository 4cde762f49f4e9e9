"""Meta's WhatsApp phone-number object (Graph API), as providers pass it through.

Kaleyra's ``phone_number_details`` mirrors it, and Meta's own Cloud API serves
it.  Since October 2025 messaging limits belong to the business portfolio:
``whatsapp_business_manager_messaging_limit`` is read first and the deprecated
``messaging_limit_tier`` (often null now) only when the new field is absent.
"""

from __future__ import annotations

from typing import Any

from exporter import model
from exporter.providers.cams.parse import normalize_phone_number


def _text(item: dict, key: str) -> str:
    value = item.get(key)
    return value.strip() if isinstance(value, str) else ""


def tier_of(item: dict, provider: str) -> str:
    for key in ("whatsapp_business_manager_messaging_limit", "messaging_limit_tier"):
        value = item.get(key)
        if isinstance(value, dict):  # tolerate {"tier": ...} wrappers
            value = value.get("tier") or value.get("value")
        if value not in (None, ""):
            return model.TIER.normalize(value, provider)
    return model.UNKNOWN


def quality_of(item: dict, provider: str) -> str:
    value = item.get("quality_rating")
    if value in (None, ""):
        score = item.get("quality_score")
        value = score.get("score") if isinstance(score, dict) else None
    return model.QUALITY_RATING.normalize(value, provider)


def parse_phone_object(item: Any, provider: str, space_id: str, phone_hint: str = "") -> model.PhoneNumber | None:
    """One Meta phone-number object → the model; None when it names no number."""
    if not isinstance(item, dict):
        return None
    raw_phone = _text(item, "display_phone_number") or _text(item, "phone_number") or phone_hint
    if not raw_phone:
        return None
    return model.PhoneNumber(
        phone_number=normalize_phone_number(raw_phone),
        status=model.STATUS.normalize(item.get("status"), provider),
        quality_rating=quality_of(item, provider),
        messaging_limit_tier=tier_of(item, provider),
        code_verification_status=model.CODE_VERIFICATION_STATUS.normalize(item.get("code_verification_status"), provider),
        name_status=model.NAME_STATUS.normalize(item.get("name_status"), provider),
        new_name_status=model.NAME_STATUS.normalize(item.get("new_name_status"), provider),
        verified_name=_text(item, "verified_name"),
        space_id=space_id,
        phone_number_id=str(item.get("id") or "").strip(),
    )
