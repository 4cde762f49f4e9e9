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
from dataclasses import dataclass, field
from typing import Mapping

log = logging.getLogger(__name__)

UNKNOWN = "UNKNOWN"
OTHER = "OTHER"


class Vocabulary:
    """A closed set of states plus the aliases providers use for them."""

    def __init__(self, field_name: str, states: tuple[str, ...], aliases: Mapping[str, str] | None = None):
        self.field = field_name
        if UNKNOWN not in states:
            states = states + (UNKNOWN,)
        self.states: tuple[str, ...] = states + (OTHER,)
        # Case-insensitive lookup; "-" and " " are folded into "_".
        self._lookup: dict[str, str] = {self._fold(s): s for s in states}
        for alias, state in (aliases or {}).items():
            assert state in self.states, (alias, state)
            self._lookup[self._fold(alias)] = state
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _fold(value: str) -> str:
        return value.strip().upper().replace("-", "_").replace(" ", "_")

    def normalize(self, raw: object, provider: str = "") -> str:
        """Map a raw wire value to a state; never raises."""
        if raw is None:
            return UNKNOWN
        if not isinstance(raw, str):
            raw = str(raw)
        if not raw.strip():
            return UNKNOWN
        state = self._lookup.get(self._fold(raw))
        if state is not None:
            return state
        key = (provider, raw)
        with self._lock:
            first = key not in self._reported
            if first:
                self._reported.add(key)
        if first:
            log.warning(
                "unrecognised value, exported as OTHER",
                extra={"field": self.field, "value": raw[:64], "provider": provider},
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

# Meta's health_status.can_send_message, for a number and for each entity above it.
CAN_SEND_MESSAGE = Vocabulary("can_send_message", ("AVAILABLE", "LIMITED", "BLOCKED", UNKNOWN))

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
class PhoneNumber:
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

    @property
    def messaging_limit(self) -> float | None:
        return TIER_LIMITS.get(self.messaging_limit_tier)


@dataclass(frozen=True)
class Waba:
    waba_id: str
    name: str = ""
    account_review_status: str = UNKNOWN
    space_id: str = ""
    currency: str = ""


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
    def first_seen(cls, at: float) -> "ChangeTimes":
        return cls(at, at, at)

    def advanced(self, old: PhoneNumber, new: PhoneNumber, at: float) -> "ChangeTimes":
        return ChangeTimes(
            at if old.status != new.status else self.status,
            at if old.quality_rating != new.quality_rating else self.quality_rating,
            at if old.messaging_limit_tier != new.messaging_limit_tier else self.messaging_limit_tier,
        )


@dataclass(frozen=True)
class TrackedNumber:
    number: PhoneNumber
    changes: ChangeTimes = field(compare=False)
