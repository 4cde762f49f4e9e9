"""Webhook events of the emulators: derivation of events from state changes, per provider."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("emulators.webhooks")


#: the conversation limits of the messaging-limit tiers, increasing (Meta's per-number and portfolio tiers merged)
TIER_LEVELS = (10, 50, 250, 1_000, 2_000, 10_000, 100_000)


def tier_name(conversations: int) -> str:
    """A limit's tier: ``TIER_<n>``, or ``TIER_<n>K`` for thousands (``TIER_1K``, ``TIER_100K``)."""
    return f"TIER_{conversations // 1_000}K" if conversations >= 1_000 else f"TIER_{conversations}"


#: tier -> the conversations it allows (its rank): None for TIER_NOT_SET, unbounded for TIER_UNLIMITED
TIER_RANK: Mapping[str, float | None] = {
    "TIER_NOT_SET": None,
    **{tier_name(level): level for level in TIER_LEVELS},
    "TIER_UNLIMITED": float("inf"),
}


#: name_status spellings (Meta's and the BSPs') -> phone_number_name_update ``decision``
NAME_DECISIONS = {
    "APPROVED": "APPROVED",
    "Approval": "APPROVED",
    "AVAILABLE_WITHOUT_REVIEW": "APPROVED",
    "DECLINED": "REJECTED",
    "REJECTED": "REJECTED",
    "Rejected": "REJECTED",
    "PENDING_REVIEW": "PENDING",
    "Pending_Review": "PENDING",
    "PENDING": "PENDING",
    "DEFERRED": "DEFERRED",
}


RESTRICTION_TYPE = "RESTRICTED_BIZ_INITIATED_MESSAGING"


#: a number's throughput levels in increasing order (standard 80 mps, higher 1,000 mps; NOT_APPLICABLE lowest)
#: keyed by any scenario value (one that is not a level has no rank)
THROUGHPUT_RANK: Mapping[object, int] = {"NOT_APPLICABLE": 0, "STANDARD": 1, "HIGH": 2}


RESPONSE_CAP = 64 * 1024


def tier_rank(value: Any) -> float | None:
    """The number of conversations a tier allows (``inf`` for unlimited); None if unknown or unset.

    Integers are accepted too (Meta's ``business_capability_update`` example sends ``2000``; -1 = unlimited).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float("inf") if value < 0 else float(value)
    return TIER_RANK.get(value) if isinstance(value, str) else None


def is_flagged(state: Mapping[str, Any]) -> bool:
    """Legacy Meta meaning of "flagged": the number's status is FLAGGED or its quality is RED (low)."""
    return state.get("status") == "FLAGGED" or state.get("quality_rating") == "RED"


@dataclass
class Event:
    """One webhook event in Meta's vocabulary, before a provider puts it on the wire."""

    field: str  # Meta webhook field, e.g. "phone_number_quality_update"
    value: dict[str, Any]  # Meta-shaped value (display_phone_number as digits)
    phone_number: str | None  # None for WABA-level events
    changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # (the field ``field`` shadows it)

    @property
    def event(self) -> str | None:
        event = self.value.get("event")
        return event if isinstance(event, str) else None


def ban_date_text(wall: float) -> str:
    """Meta's ``waba_ban_date`` style, e.g. ``April 17, 2025``."""
    t = time.gmtime(wall)
    return f"{time.strftime('%B', t)} {t.tm_mday}, {t.tm_year}"


def derive_events(
    phone_number: str | None, old: Mapping[str, Any], new: Mapping[str, Any], changes: list[dict[str, Any]], wall: float
) -> list[Event]:
    """The BSP relays' events (NxCloud, Kaleyra) for the changes of one number (``phone_number``) or one
    WABA (``phone_number`` None): the legacy quality events, name updates, and an ``account_update``
    derived from the number's status or health.  The Meta emulator sends Meta's current forms instead
    (:func:`meta_number_events`, and WABA-level events built in :mod:`emulators.meta`).

    ``old``/``new`` are the observable states before and after (the watcher's field names, with the
    derived ``health``).  The mapping is described in :mod:`emulators.nxcloud` and
    :mod:`emulators.kaleyra`.
    """
    changed = {c["field"] for c in changes}
    if phone_number is None:
        review = review_event(new, changes)
        return [review] if review is not None else []
    if new.get("present") is False:
        return []  # a number that disappeared says nothing more (a removal is not a health event)
    digits = phone_number
    events = legacy_quality_events(digits, old, new, changes)
    name = name_update_event(digits, new, changes)
    if name is not None:
        events.append(name)
    # bans, restrictions and sending health
    account = _account_update(old, new, changed, wall)
    if (
        account is not None
        and account["event"] == "ACCOUNT_RESTRICTION"
        and is_flagged(old) != is_flagged(new)
        and "RESTRICTED" not in (old.get("status"), new.get("status"))
    ):
        account = None  # a number's health going LIMITED because it is flagged is told by FLAGGED alone
    if account is not None:
        account = {"phone_number": digits, **account}
        events.append(
            Event("account_update", account, digits, _related(changes, "status", "health", "can_send_message"))
        )
    return events


def _related(changes: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [c for c in changes if c["field"] in names]


def review_event(new: Mapping[str, Any], changes: list[dict[str, Any]]) -> Event | None:
    """``account_review_update`` ``{decision}`` when a WABA's ``account_review_status`` changed."""
    related = _related(changes, "account_review_status")
    if not related or new.get("account_review_status") is None:
        return None
    return Event("account_review_update", {"decision": str(new["account_review_status"])}, None, related)


def name_update_event(digits: str, new: Mapping[str, Any], changes: list[dict[str, Any]]) -> Event | None:
    """``phone_number_name_update`` when a number's ``name_status`` changed (display name review)."""
    related = _related(changes, "name_status")
    if not related or new.get("name_status") is None:
        return None
    raw = str(new["name_status"])
    value = {
        "display_phone_number": digits,
        "decision": NAME_DECISIONS.get(raw, raw),
        "requested_verified_name": new.get("verified_name"),
        "rejection_reason": None,
    }
    return Event("phone_number_name_update", value, digits, related)


def legacy_quality_events(
    digits: str, old: Mapping[str, Any], new: Mapping[str, Any], changes: list[dict[str, Any]]
) -> list[Event]:
    """The legacy ``phone_number_quality_update`` events that BSPs still relay: ``FLAGGED`` when the number
    becomes flagged (status ``FLAGGED`` or quality ``RED``), ``UNFLAGGED`` when it stops being so,
    ``UPGRADE``/``DOWNGRADE`` when ``messaging_limit_tier`` (else the portfolio limit) rises or drops, with
    ``old_limit``.  Each carries ``current_limit`` (``messaging_limit_tier``) and
    ``max_daily_conversations_per_business`` (the portfolio limit) when set."""
    changed = {c["field"] for c in changes}
    tier, portfolio = new.get("messaging_limit_tier"), new.get("whatsapp_business_manager_messaging_limit")

    def quality_value(event: str, old_limit: Any = None) -> dict[str, Any]:
        value: dict[str, Any] = {"display_phone_number": digits, "event": event}
        if old_limit is not None:
            value["old_limit"] = old_limit
        if tier is not None:
            value["current_limit"] = tier
        if portfolio is not None:
            value["max_daily_conversations_per_business"] = portfolio
        return value

    events: list[Event] = []
    if is_flagged(old) != is_flagged(new):
        events.append(
            Event(
                "phone_number_quality_update",
                quality_value("FLAGGED" if is_flagged(new) else "UNFLAGGED"),
                digits,
                _related(changes, "status", "quality_rating"),
            )
        )
    for key in ("messaging_limit_tier", "whatsapp_business_manager_messaging_limit"):
        if key not in changed:
            continue
        before, after = tier_rank(old.get(key)), tier_rank(new.get(key))
        if before is None or after is None or before == after:
            continue
        events.append(
            Event(
                "phone_number_quality_update",
                quality_value("UPGRADE" if after > before else "DOWNGRADE", old.get(key)),
                digits,
                _related(changes, "messaging_limit_tier", "whatsapp_business_manager_messaging_limit"),
            )
        )
        break
    return events


def meta_number_events(
    digits: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    changes: list[dict[str, Any]],
    *,
    legacy: bool = False,
    deprecated_fields: bool = True,
) -> list[Event]:
    """Meta's number-level events since the October 2025 change (see :mod:`emulators.meta`):

    * ``phone_number_quality_update`` ``ONBOARDING`` when the number appears (``present`` false -> true)
      or its status becomes ``PENDING``, and ``THROUGHPUT_UPGRADE`` when its ``throughput_level`` rises
      (:data:`THROUGHPUT_RANK`).  Both carry ``max_daily_conversations_per_business``, the portfolio
      limit the number reports (``whatsapp_business_manager_messaging_limit``, a ``TIER_*`` string), and,
      with ``deprecated_fields``, the same value as ``current_limit``.  A quality change alone sends
      nothing (the event never carried the rating).
    * with ``legacy``, also the legacy forms BSP relays still send (:func:`legacy_quality_events`);
    * ``phone_number_name_update`` (:func:`name_update_event`).
    """
    if new.get("present") is False:
        return []
    changed = {c["field"] for c in changes}
    portfolio = new.get("whatsapp_business_manager_messaging_limit")

    def value(event: str) -> dict[str, Any]:
        out: dict[str, Any] = {"display_phone_number": digits, "event": event}
        if portfolio is not None:
            if deprecated_fields:
                out["current_limit"] = portfolio
            out["max_daily_conversations_per_business"] = portfolio
        return out

    events: list[Event] = []
    appeared = "present" in changed and old.get("present") is False
    if appeared or ("status" in changed and new.get("status") == "PENDING"):
        events.append(
            Event("phone_number_quality_update", value("ONBOARDING"), digits, _related(changes, "present", "status"))
        )
    if "throughput_level" in changed and not appeared:
        before = THROUGHPUT_RANK.get(old.get("throughput_level"))
        after = THROUGHPUT_RANK.get(new.get("throughput_level"))
        if before is not None and after is not None and after > before:
            events.append(
                Event(
                    "phone_number_quality_update",
                    value("THROUGHPUT_UPGRADE"),
                    digits,
                    _related(changes, "throughput_level"),
                )
            )
    if legacy:
        events.extend(legacy_quality_events(digits, old, new, changes))
    name = name_update_event(digits, new, changes)
    if name is not None:
        events.append(name)
    return events


def _account_update(
    old: Mapping[str, Any], new: Mapping[str, Any], changed: set[str], wall: float
) -> dict[str, Any] | None:
    old_status, new_status = old.get("status"), new.get("status")
    if "status" in changed and new_status == "BANNED":
        return {
            "event": "DISABLED_UPDATE",
            "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": ban_date_text(wall)},
        }
    if "status" in changed and old_status == "BANNED":
        return {
            "event": "DISABLED_UPDATE",
            "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": ban_date_text(wall)},
        }
    health_key = "health" if "health" in new or "health" in old else "can_send_message"
    if health_key in changed:
        after, before = new.get(health_key), old.get(health_key)
        if after == "BLOCKED":
            return {"event": "ACCOUNT_VIOLATION"}
        if after == "LIMITED":
            return {
                "event": "ACCOUNT_RESTRICTION",
                "restriction_info": [{"restriction_type": RESTRICTION_TYPE, "expiration": int(wall) + 86_400}],
            }
        if after == "AVAILABLE" and before == "BLOCKED":
            return {
                "event": "DISABLED_UPDATE",
                "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": ban_date_text(wall)},
            }
        if after == "AVAILABLE":
            return {"event": "ACCOUNT_RESTRICTION", "restriction_info": []}
        return None
    if "status" in changed and "RESTRICTED" in (old_status, new_status):
        restricted = new_status == "RESTRICTED"
        info = [{"restriction_type": RESTRICTION_TYPE, "expiration": int(wall) + 86_400}] if restricted else []
        return {"event": "ACCOUNT_RESTRICTION", "restriction_info": info}
    return None
