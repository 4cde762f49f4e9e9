"""The one normalized model of a WhatsApp Business number, whatever the provider.

Every provider parser maps its wire vocabulary onto the closed vocabularies
below.  Each vocabulary has two catch-all states:

* ``UNKNOWN``: the provider did not say (field missing, null or empty), or
  said so explicitly (Meta's ``UNKNOWN`` / ``NA``);
* ``OTHER``: the provider sent a value this exporter does not recognise.
  Providers disagree with their own documentation, so an unseen value must
  never crash a poll: it lands in ``OTHER`` and is logged once.

The vocabularies are the public interface of the metrics: each one becomes a
state set (one series per state), so adding a state is fine but renaming one
breaks dashboards and alerts.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

log = logging.getLogger(__name__)

UNKNOWN = "UNKNOWN"
OTHER = "OTHER"
#: wire spellings each vocabulary remembers (see Vocabulary.normalize)
SEEN_SPELLINGS = 256


class Vocabulary:
    """A closed set of states plus the aliases providers use for them."""

    def __init__(self, field_name: str, states: tuple[str, ...], aliases: Mapping[str, str] | None = None):
        self.field = field_name
        if UNKNOWN not in states:
            states = (*states, UNKNOWN)
        self.states: tuple[str, ...] = (*states, OTHER)
        # Case-insensitive lookup; "-" and " " are folded into "_".
        self._lookup: dict[str, str] = {self._fold(s): s for s in states}
        for alias, state in (aliases or {}).items():
            assert state in self.states, (alias, state)
            self._lookup[self._fold(alias)] = state
        #: wire spellings already mapped to a known state: a poll normalizes several fields of every
        #: number, nearly always in the same few spellings (bounded; OTHER is never remembered)
        self._seen: dict[str, str] = {}

    @staticmethod
    def _fold(value: str) -> str:
        return value.strip().upper().replace("-", "_").replace(" ", "_")

    def normalize(self, raw: object, provider: str = "") -> str:
        """Map a raw wire value to a state; never raises."""
        if raw is None:
            return UNKNOWN
        if isinstance(raw, str):
            state = self._seen.get(raw)
            if state is not None:
                return state
        else:
            raw = str(raw)
        state = self._lookup.get(self._fold(raw)) if raw.strip() else UNKNOWN
        if state is None:
            return note_other(self.field, raw, provider)
        if len(self._seen) < SEEN_SPELLINGS:
            self._seen[raw] = state
        return state


_reported: set[tuple[str, str, str]] = set()
_reported_lock = threading.Lock()


def note_other(field_name: str, raw: str, provider: str = "") -> str:
    """OTHER, for a wire value outside its vocabulary: logged once per field, provider and value."""
    key = (field_name, provider, raw)
    with _reported_lock:
        first = key not in _reported
        _reported.add(key)
    if first:
        log.warning(
            "unrecognised value, exported as OTHER",
            extra={"field": field_name, "value": raw[:64], "provider": provider},
        )
    return OTHER


# Status of the number (QueryChatappPhoneNumbers.Status and Meta's phone-number status).
# The API reference lists 11 values; the console overview page adds OFFLINE and PAUSED.
STATUS = Vocabulary(
    "status",
    (
        "CONNECTED",
        "FLAGGED",
        "RATE_LIMITED",
        "PENDING",
        "OFFLINE",
        "PAUSED",
        "DELETED",
        "BANNED",
        "RESTRICTED",
        "DISCONNECTED",
        "MIGRATED",
        "UNVERIFIED",
        UNKNOWN,
    ),
    # Meta's OpenAPI spec lists LINKED/UNLINKED for the phone_numbers edge (its other
    # schemas and every SDK say CONNECTED/DISCONNECTED): the same states, spelt otherwise.
    {"LINKED": "CONNECTED", "UNLINKED": "DISCONNECTED"},
)

# Meta returns NA for numbers that have not been rated yet: that is UNKNOWN.
QUALITY_RATING = Vocabulary(
    "quality_rating",
    ("GREEN", "YELLOW", "RED", UNKNOWN),
    {"NA": UNKNOWN, "N/A": UNKNOWN, "UNKNOW": UNKNOWN},  # UNKNOW: NxCloud's spelling
)

# Meta's messaging-limit tiers, plus the portfolio-era TIER_2K and TIER_NOT_SET.
TIER = Vocabulary(
    "messaging_limit_tier",
    (
        "TIER_50",
        "TIER_250",
        "TIER_1K",
        "TIER_2K",
        "TIER_10K",
        "TIER_100K",
        "TIER_UNLIMITED",
        "TIER_NOT_SET",
        UNKNOWN,
    ),
    {
        # The console overview page's legacy names: unambiguous ones only.
        "TIER_10": "TIER_1K",
        "TIER_1000": "TIER_100K",
        "UNLIMITED": "TIER_UNLIMITED",
    },
)

# Business-initiated conversations per 24 h for each tier.
TIER_LIMITS: dict[str, float] = {
    "TIER_50": 50,
    "TIER_250": 250,
    "TIER_1K": 1_000,
    "TIER_2K": 2_000,
    "TIER_10K": 10_000,
    "TIER_100K": 100_000,
    "TIER_UNLIMITED": math.inf,
}

TIER_VOCABULARIES = ("api_reference", "legacy_console")

#: Meta's integer form of a limit (business_capability_update, -1 = unlimited) -> tier
_TIER_BY_CONVERSATIONS = {
    50: "TIER_50",
    250: "TIER_250",
    1_000: "TIER_1K",
    2_000: "TIER_2K",
    10_000: "TIER_10K",
    100_000: "TIER_100K",
    -1: "TIER_UNLIMITED",
}


def tier_of_limit(raw: object, provider: str = "") -> str:
    """A business-initiated conversation limit in any of Meta's spellings -> a tier.

    Meta documents ``max_daily_conversations_per_business`` as ``TIER_*`` strings
    but labels it an integer, and its own example sends ``2000``; the older
    ``max_daily_conversation_per_phone`` is an integer with -1 for unlimited.
    Integers (or digit strings) of a known level map to their tier; any other
    integer is OTHER; strings go through :data:`TIER`.
    """
    if isinstance(raw, bool):
        return TIER.normalize(str(raw), provider)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        raw = int(raw.strip())
    if isinstance(raw, int):
        return _TIER_BY_CONVERSATIONS.get(raw) or TIER.normalize(f"conversations:{raw}", provider)
    return TIER.normalize(raw, provider)


def normalize_tier(raw: object, vocabulary: str = "api_reference", provider: str = "") -> str:
    """Map a tier string; ``TIER_50`` is the one value whose meaning the sources disagree on.

    ``api_reference`` (default): TIER_50 is 50/day, as in the CAMS API reference,
    the Java SDK and Meta.  ``legacy_console``: TIER_50 is 10K/day, as on the
    console overview page that also lists TIER_10 (1K) and TIER_1000 (100K).
    """
    if vocabulary == "legacy_console" and isinstance(raw, str) and TIER._fold(raw) == "TIER_50":
        return "TIER_10K"
    return TIER.normalize(raw, provider)


# Code verification: the CAMS API reference, the current SDK docstring and Meta disagree; accept all.
CODE_VERIFICATION_STATUS = Vocabulary(
    "code_verification_status",
    (
        "VERIFIED",
        "NOT_VERIFIED",
        "EXPIRED",
        "REJECTED",
        "MORE_INFORMATION_REQUESTED",
        "REVOKED",
        UNKNOWN,
    ),
    {"UNVERIFIED": "NOT_VERIFIED"},
)

# Display-name review: Meta's spelling, with the CAMS console spellings as aliases.
NAME_STATUS = Vocabulary(
    "name_status",
    (
        "APPROVED",
        "PENDING_REVIEW",
        "DECLINED",
        "EXPIRED",
        "AVAILABLE_WITHOUT_REVIEW",
        "NONE",
        UNKNOWN,
    ),
    {
        "Approval": "APPROVED",
        "Approve": "APPROVED",
        "Pending_Review": "PENDING_REVIEW",
        "Pending": "PENDING_REVIEW",
        "Rejected": "DECLINED",
        "Reject": "DECLINED",
    },
)

# Meta's health_status.can_send_message, for a number and for each entity above it
# (Meta Cloud API, Kaleyra, and CAMS through GetWhatsappHealthStatus).
CAN_SEND_MESSAGE = Vocabulary("can_send_message", ("AVAILABLE", "LIMITED", "BLOCKED", UNKNOWN))

#: how bad each can_send_message state is: when several readings of one entity
#: disagree (two numbers name the same WABA), or a number's own state is combined
#: with the entities above it, the worst wins
CAN_SEND_SEVERITY = {"BLOCKED": 4, "LIMITED": 3, OTHER: 2, "AVAILABLE": 1, UNKNOWN: 0}


def worst_can_send(*states: str) -> str:
    """The worst of several can_send_message states (UNKNOWN when none is known)."""
    return max(states, key=lambda s: CAN_SEND_SEVERITY.get(s, 2), default=UNKNOWN)


# The ban state of a WABA, from Meta's account_update DISABLED_UPDATE event.
# NONE is kept for a provider that reports "no ban" explicitly; Meta only sends events.
BAN_STATE = Vocabulary("ban_state", ("NONE", "SCHEDULE_FOR_DISABLE", "DISABLE", "REINSTATE", UNKNOWN))

# Meta's throughput.level: STANDARD is 80 messages/s, HIGH up to 1,000.
THROUGHPUT_LEVEL = Vocabulary("throughput_level", ("STANDARD", "HIGH", "NOT_APPLICABLE", UNKNOWN))

#: Where a number's messaging-limit tier came from: Meta's portfolio-level
#: ``whatsapp_business_manager_messaging_limit`` (since October 2025), a
#: per-number tier (the deprecated ``messaging_limit_tier`` or a provider's own
#: field), or nowhere.
LIMIT_SCOPES = ("business_portfolio", "phone_number", "unknown")


def per_number_scope(tier: str) -> str:
    """The limit scope of a tier read from a per-number field."""
    return "unknown" if tier == UNKNOWN else "phone_number"


ACCOUNT_REVIEW_STATUS = Vocabulary(
    "account_review_status",
    ("APPROVED", "PENDING", "REJECTED", "DISABLED", UNKNOWN),
)


@dataclass(frozen=True)
class EntityHealth:
    """One entity above a number in Meta's health_status (WABA, BUSINESS, APP)."""

    entity_type: str
    entity_id: str
    can_send_message: str = UNKNOWN


@dataclass(frozen=True)
class BlockingError:
    """An error Meta lists in health_status for an entity that is BLOCKED."""

    entity_type: str
    entity_id: str
    error_code: str
    error_description: str = ""


@dataclass(frozen=True)
class Health:
    """A node's sending health as one read of Meta's health_status tells it (directly, or relayed by CAMS)."""

    can_send_message: str = UNKNOWN
    entities: tuple[EntityHealth, ...] = ()
    blocking_errors: tuple[BlockingError, ...] = ()
    #: the BUSINESS entity's id ("" when not named)
    business_id: str = ""


class _TierLimit:
    """What a messaging-limit tier allows: business-initiated conversations per 24 h (None: not a level)."""

    messaging_limit_tier: str

    @property
    def messaging_limit(self) -> float | None:
        return TIER_LIMITS.get(self.messaging_limit_tier)


@dataclass(frozen=True)
class PhoneNumber(_TierLimit):
    """One number as the exporter sees it, identical for every provider."""

    phone_number: str
    status: str = UNKNOWN
    quality_rating: str = UNKNOWN
    messaging_limit_tier: str = UNKNOWN
    code_verification_status: str = UNKNOWN
    name_status: str = UNKNOWN
    new_name_status: str = UNKNOWN
    verified_name: str = ""
    space_id: str = ""
    waba_id: str = ""
    phone_number_id: str = ""  # the provider/Meta id of the number, when known
    limit_scope: str = "unknown"  # one of LIMIT_SCOPES
    # Meta's health_status and throughput (Meta Cloud API, Kaleyra); UNKNOWN elsewhere
    can_send_message: str = UNKNOWN
    throughput_level: str = UNKNOWN
    platform_type: str = ""
    account_mode: str = ""
    entities: tuple[EntityHealth, ...] = ()
    blocking_errors: tuple[BlockingError, ...] = ()
    #: the business portfolio that owns the number (from health_status' BUSINESS entity), when known
    business_id: str = ""

    def with_health(self, health: Health) -> PhoneNumber:
        """This number with the health read for it (its business too, when the read names one)."""
        return replace(
            self,
            can_send_message=health.can_send_message,
            entities=health.entities,
            blocking_errors=health.blocking_errors,
            business_id=health.business_id or self.business_id,
        )

    @property
    def shares_portfolio_limit(self) -> bool:
        """The tier is its business portfolio's (exported once per business, not per number)."""
        return self.limit_scope == "business_portfolio" and bool(self.business_id)


@dataclass(frozen=True)
class Waba:
    waba_id: str
    name: str = ""
    account_review_status: str = UNKNOWN
    space_id: str = ""
    currency: str = ""


@dataclass(frozen=True)
class BusinessLimit(_TierLimit):
    """The messaging limit of a business portfolio (shared by all its numbers since October 2025)."""

    business_id: str
    messaging_limit_tier: str
    #: when the exporter read it (a poll) or was told it (a webhook)
    observed_at: float = 0.0
    source: str = "poll"  # "poll" or "webhook"


@dataclass(frozen=True)
class WabaRestriction:
    """One restriction of a WABA (account_update ACCOUNT_RESTRICTION), active until ``expiration``."""

    waba_id: str
    restriction_type: str
    expiration: float  # Unix time
    remediation: str = ""


@dataclass(frozen=True)
class WabaBan:
    """The last ban decision about a WABA (account_update DISABLED_UPDATE)."""

    waba_id: str
    ban_state: str
    #: Unix time of ``waba_ban_date`` (a free-text date, read as midnight UTC); None when absent or unreadable
    ban_date: float | None = None
    received_at: float = 0.0


@dataclass(frozen=True)
class WabaFacts:
    """What only webhooks tell about an account's WABAs: restrictions, bans and violations.

    Kept in the exporter's state file so that a restart does not forget them.
    """

    restrictions: Mapping[tuple[str, str], WabaRestriction] = field(default_factory=dict)  # (waba, type)
    bans: Mapping[str, WabaBan] = field(default_factory=dict)  # by WABA id
    violations: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (waba, violation type) -> count

    def active(self, now: float) -> WabaFacts:
        """The same facts without the restrictions that expired by ``now``."""
        kept = {k: r for k, r in self.restrictions.items() if r.expiration > now}
        return self if len(kept) == len(self.restrictions) else WabaFacts(kept, self.bans, self.violations)

    def next_expiry(self) -> float | None:
        """When the next restriction expires (None: none with a known expiration)."""
        return min((r.expiration for r in self.restrictions.values() if r.expiration != math.inf), default=None)

    def __bool__(self) -> bool:
        return bool(self.restrictions or self.bans or self.violations)


NO_FACTS = WabaFacts()


@dataclass(frozen=True)
class Verification:
    """Result of a per-number code-verification check."""

    phone_number: str
    code_verification_status: str
    phone_number_id: str = ""


@dataclass
class ChangeTimes:
    """When the exporter saw each tracked field change (or first saw the number)."""

    status: float
    quality_rating: float
    messaging_limit_tier: float

    @classmethod
    def first_seen(cls, at: float) -> ChangeTimes:
        return cls(at, at, at)

    def advanced(self, old: PhoneNumber, new: PhoneNumber, at: float) -> ChangeTimes:
        return ChangeTimes(
            at if old.status != new.status else self.status,
            at if old.quality_rating != new.quality_rating else self.quality_rating,
            at if old.messaging_limit_tier != new.messaging_limit_tier else self.messaging_limit_tier,
        )


@dataclass(frozen=True)
class TrackedNumber:
    number: PhoneNumber
    changes: ChangeTimes = field(compare=False)
