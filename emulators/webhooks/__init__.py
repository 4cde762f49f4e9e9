"""Outgoing webhooks of the provider emulators: event derivation and an asynchronous sender.

The emulators (Meta, NxCloud, Kaleyra) push an event to a configured URL when a
number's observable state changes in their scenario, as the real providers do.
The state watcher lives in :class:`~emulators.common.ProviderEmulator`;
this module holds what is shared by the three wire formats:

* the events, in Meta's webhook vocabulary (a ``field`` such as
  ``phone_number_quality_update`` plus its Meta-shaped ``value``), derived from
  the changes of one number or WABA (old and new observable state).  Meta sends
  them as they are, NxCloud wraps each in its own envelope, Kaleyra forwards the
  quality/limit ones as query parameters.  Two vocabularies:

  - Meta's own since 7 October 2025 (:func:`meta_number_events`, plus the
    WABA-level events the Meta emulator builds itself; see
    :mod:`emulators.meta`);
  - the BSP relays' form (:func:`derive_events`, used by NxCloud and Kaleyra):
    the legacy ``FLAGGED``/``UNFLAGGED`` events when a number becomes or stops
    being flagged (status ``FLAGGED`` or quality ``RED``), ``UPGRADE``/
    ``DOWNGRADE`` when ``messaging_limit_tier`` (else the per-number portfolio
    limit) rises or drops, with ``old_limit``; each with ``current_limit``
    (``messaging_limit_tier``) and ``max_daily_conversations_per_business``
    when set; ``phone_number_name_update`` when ``name_status`` changes; a
    ``business_capability_update`` per new per-number portfolio limit; and an
    ``account_update`` carrying the number in ``phone_number``, derived from
    its status or health: status to ``BANNED`` -> ``DISABLED_UPDATE``
    ``DISABLE``, from ``BANNED`` -> ``REINSTATE``; health to BLOCKED ->
    ``ACCOUNT_VIOLATION``, to LIMITED -> ``ACCOUNT_RESTRICTION`` (24 h), back to
    AVAILABLE -> ``REINSTATE`` (from BLOCKED) or an empty
    ``ACCOUNT_RESTRICTION`` (from LIMITED).  A health change that only follows
    the number becoming (or ceasing to be) flagged is told by FLAGGED/UNFLAGGED
    alone.  A WABA's ``account_review_status`` change is an
    ``account_review_update`` in both vocabularies.
* :class:`WebhookSender` delivers :class:`OutgoingRequest` objects from a few
  worker threads: a short timeout per attempt, a couple of retries with
  exponential backoff on a connection error, a timeout or any non-2xx answer
  (real providers retry for hours; the emulator scales that down so tests and
  benchmarks finish), failures logged, never raised.  Every event is recorded
  (:meth:`WebhookSender.records`) with its queue, send and delivery times, wall
  clock and monotonic, and the state changes it reports.

Written from the providers' documents (see ``/work/shared/reference``), like the
emulators, and never from the exporter's receiver code.
"""

from __future__ import annotations

from .events import (
    NAME_DECISIONS as NAME_DECISIONS,
)
from .events import (
    RESPONSE_CAP as RESPONSE_CAP,
)
from .events import (
    RESTRICTION_TYPE as RESTRICTION_TYPE,
)
from .events import (
    THROUGHPUT_RANK as THROUGHPUT_RANK,
)
from .events import (
    TIER_RANK,
    Event,
    ban_date_text,
    derive_events,
    is_flagged,
    legacy_quality_events,
    meta_number_events,
    name_update_event,
    review_event,
    tier_rank,
)
from .sender import (
    OutgoingRequest,
    WebhookSender,
    append_query,
    meta_signature,
    redact_url,
)
from .sender import (
    validate_url as validate_url,
)

__all__ = [
    "TIER_RANK",
    "Event",
    "OutgoingRequest",
    "WebhookSender",
    "append_query",
    "ban_date_text",
    "derive_events",
    "is_flagged",
    "legacy_quality_events",
    "meta_number_events",
    "meta_signature",
    "name_update_event",
    "redact_url",
    "review_event",
    "tier_rank",
]
