"""The receiver's vocabulary: providers, the events and results it counts, rejection reasons, limits."""

from __future__ import annotations

import re
from typing import Any

#: request bodies larger than this are refused (413) unread
MAX_BODY_BYTES = 1 << 20
#: NxCloud's own replay window for signed requests
NXCLOUD_MAX_SKEW = 60.0


#: the longest hub.challenge echoed back (Meta sends a number)
MAX_CHALLENGE = 256
#: minimum seconds between two re-renders of the counters
PUBLISH_INTERVAL = 1.0

PROVIDERS = ("meta", "nxcloud", "kaleyra")

#: Meta / NxCloud fields whose event concerns the one number it names (the rest concern a WABA or business)
NUMBER_EVENTS = frozenset({"phone_number_quality_update", "phone_number_name_update"})

#: Meta / NxCloud change fields that concern a number's or a WABA's health: each triggers a refresh.
#: Any other field (messages, templates, ...) is acknowledged, counted as ``other`` and ignored.
HEALTH_FIELDS = (
    "phone_number_quality_update",
    "account_update",
    "phone_number_name_update",
    "business_capability_update",
    "account_review_update",
    "account_alerts",
)
#: Kaleyra's quality/limit callback events (Meta's legacy and current ones); others count as ``other``.
KALEYRA_EVENTS = ("FLAGGED", "UNFLAGGED", "UPGRADE", "DOWNGRADE", "ONBOARDING", "THROUGHPUT_UPGRADE")
OTHER = "other"
UNKNOWN = "unknown"  # the event of a request that was refused or could not be parsed

RESULTS = ("accepted", "debounced", "unmatched", "ignored", "replayed", "refused", "invalid")
#: the results of one account's share of an event (``whatsapp_exporter_webhook_refreshes_total``)
REFRESH_RESULTS = ("scheduled", "coalesced", "over_budget")
#: providers of accounts whose webhook refreshes have a documented hourly budget (Meta's Graph BUC limits)
BUDGETED_PROVIDERS = frozenset({"meta"})
#: the most signed requests remembered for replay detection (about 200 bytes each, 4 MB in all); the oldest
#: go first, so a sender needs this many fresh signed deliveries within the window to make a replay pass again
REPLAY_CACHE_SIZE = 20_000
#: the most numbers remembered for the once-an-hour log of events about unknown numbers
UNKNOWN_LOG_SIZE = 10_000
#: seconds between two log lines about the same unknown number
UNKNOWN_LOG_INTERVAL = 3600.0
#: rejection reason -> the result it counts as, and the HTTP status of the answer
REASONS: dict[str, tuple[str, int]] = {
    "missing_signature": ("refused", 401),
    "bad_signature": ("refused", 403),
    "unknown_access_key": ("refused", 403),
    "expired": ("refused", 403),
    "missing_token": ("refused", 401),
    "bad_token": ("refused", 403),
    "bad_verify_token": ("refused", 403),
    "invalid_body": ("invalid", 400),
    "too_large": ("invalid", 413),
}
PROVIDER_REASONS = {
    "meta": ("missing_signature", "bad_signature", "bad_verify_token", "invalid_body", "too_large"),
    "nxcloud": ("missing_signature", "unknown_access_key", "bad_signature", "expired", "invalid_body", "too_large"),
    "kaleyra": ("missing_token", "bad_token", "invalid_body"),
}


_TEXT = "text/plain; charset=utf-8"
_DIGITS_RE = re.compile(r"\D")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
#: echoed back verbatim, so only harmless characters (Meta sends digits)
_CHALLENGE_RE = re.compile(rf"[A-Za-z0-9._~-]{{1,{MAX_CHALLENGE}}}")


def _digits(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    return _DIGITS_RE.sub("", str(value))
