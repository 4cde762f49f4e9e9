"""What the status board shows, apart from how the page draws it (:mod:`exporter.statusboard`).

How good each state is (``good``, ``warn``, ``bad``, or ``grey`` for unknown), why a number cannot send,
the summary tiles, and the rows of numbers, worst first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.model import PhoneNumber, TrackedNumber
    from exporter.store import AccountSnapshot

GOOD, WARN, BAD, GREY = "good", "warn", "bad", "grey"
_RANK = {BAD: 0, WARN: 1, GREY: 2, GOOD: 3}


def _classed(states: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """state → class, from the states of each class."""
    return {state: cls for cls, members in states.items() for state in members}


STATUS_CLASS = _classed(
    {
        GOOD: ("CONNECTED",),
        BAD: ("FLAGGED", "BANNED", "RESTRICTED", "DISCONNECTED", "DELETED"),
        WARN: ("RATE_LIMITED", "PENDING", "OFFLINE", "PAUSED", "UNVERIFIED"),
    }
)
QUALITY_CLASS = {"GREEN": GOOD, "YELLOW": WARN, "RED": BAD}
CAN_SEND_CLASS = {"AVAILABLE": GOOD, "LIMITED": WARN, "BLOCKED": BAD}
#: the low tiers are a warning, from TIER_1K up all is well
TIER_CLASS = _classed(
    {WARN: ("TIER_50", "TIER_250"), GOOD: ("TIER_1K", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED")}
)
POLL_CLASS = {"ok": GOOD, "failing": BAD, "pending": GREY}
#: a WABA's last ban decision (account_update DISABLED_UPDATE)
BAN_CLASS = {"DISABLE": BAD, "SCHEDULE_FOR_DISABLE": BAD, "REINSTATE": GOOD}

#: statuses in which a number cannot send at all
CANNOT_SEND_STATUSES = ("BANNED", "RESTRICTED", "DISCONNECTED", "DELETED")
#: provider-specific statuses that mean "cannot send": Twilio's OFFLINE ("inactive; read offline_reasons"),
#: which pages through WhatsAppNumberCannotSend (the CAMS console's OFFLINE does not)
CANNOT_SEND_PROVIDER_STATUSES = frozenset({("twilio", "OFFLINE")})


def cannot_send_reason(n: PhoneNumber, disabled_wabas: frozenset[str] = frozenset(), provider: str = "") -> str:
    """Why the number cannot send ("" when nothing says it cannot): its status, Meta's health, or its WABA's ban."""
    if n.status in CANNOT_SEND_STATUSES or (provider, n.status) in CANNOT_SEND_PROVIDER_STATUSES:
        return f"status {n.status}"
    if n.can_send_message == "BLOCKED":
        return "health BLOCKED"
    if n.waba_id and n.waba_id in disabled_wabas:
        return "WABA disabled"
    return ""


# (label, test on a number) of the summary tiles, with the color a non-zero count gets; "Cannot send" comes first
# and is counted with its reasons (see cannot_send_reason).
TILES: tuple[tuple[str, Callable[[PhoneNumber], bool], str], ...] = (
    ("Quality RED", lambda n: n.quality_rating == "RED", BAD),
    ("FLAGGED", lambda n: n.status == "FLAGGED", BAD),
    ("LIMITED", lambda n: n.can_send_message == "LIMITED", WARN),
    ("Quality YELLOW", lambda n: n.quality_rating == "YELLOW", WARN),
    ("RATE_LIMITED", lambda n: n.status == "RATE_LIMITED", WARN),
)


def state_class(field: str, value: str) -> str:
    """``good``, ``warn``, ``bad`` or ``grey`` for a state of ``status``, ``quality_rating``,
    ``messaging_limit_tier`` or ``can_send_message``."""
    table = {
        "status": STATUS_CLASS,
        "quality_rating": QUALITY_CLASS,
        "messaging_limit_tier": TIER_CLASS,
        "can_send_message": CAN_SEND_CLASS,
    }[field]
    return table.get(value, GREY)


def shown_tier(snap: AccountSnapshot, n: PhoneNumber) -> str:
    """The number's tier, or its business portfolio's when the limit is the portfolio's."""
    if n.shares_portfolio_limit:
        business = snap.businesses.get(n.business_id)
        if business is not None:
            return business.messaging_limit_tier
    return n.messaging_limit_tier


def poll_state(snap: AccountSnapshot) -> str:
    """``ok``, ``failing`` or ``pending`` (not polled yet): how the account's last poll went."""
    if snap.poll is None:
        return "pending"
    return "ok" if snap.poll.success else "failing"


@dataclass(frozen=True)
class NumberRow:
    """One number as the board lists it: the account it belongs to, the class of each of its four states
    (status, quality rating, tier, can send), the tier shown and why it cannot send ("" when nothing says so)."""

    rank: int  # the worst class among the states that have a say (0: bad ... 3: good)
    snap: AccountSnapshot
    tracked: TrackedNumber
    classes: tuple[str, str, str, str]
    tier: str
    reason: str

    @property
    def order(self) -> tuple[int, str, str, str]:
        return (self.rank, self.snap.provider, self.snap.name, self.tracked.number.phone_number)


def number_row(snap: AccountSnapshot, tracked: TrackedNumber, disabled_wabas: frozenset[str]) -> NumberRow:
    n = tracked.number
    tier = shown_tier(snap, n)
    reason = cannot_send_reason(n, disabled_wabas, snap.provider)
    classes = (
        state_class("status", n.status),
        state_class("quality_rating", n.quality_rating),
        state_class("messaging_limit_tier", tier),
        BAD if reason else state_class("can_send_message", n.can_send_message),
    )
    ranked = classes if n.can_send_message != "UNKNOWN" or reason else classes[:3]  # not read: no say
    return NumberRow(min(_RANK[c] for c in ranked), snap, tracked, classes, tier, reason)


def number_rows(accounts: Iterable[AccountSnapshot]) -> list[NumberRow]:
    """Every number of the accounts, worst first (then by provider, account and phone number)."""
    rows: list[NumberRow] = []
    for snap in accounts:
        disabled = frozenset(w for w, ban in snap.waba_facts.bans.items() if ban.ban_state == "DISABLE")
        rows.extend(number_row(snap, tracked, disabled) for tracked in snap.numbers.values())
    rows.sort(key=lambda r: r.order)
    return rows
