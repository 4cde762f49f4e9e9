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

import copy
import hashlib
import heapq
import hmac
import http.client
import itertools
import logging
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = [
    "Event",
    "OutgoingRequest",
    "TIER_RANK",
    "WebhookSender",
    "append_query",
    "ban_date_text",
    "derive_events",
    "is_flagged",
    "legacy_quality_events",
    "meta_number_events",
    "meta_signature",
    "name_update_event",
    "review_event",
    "redact_url",
    "tier_rank",
]

logger = logging.getLogger("emulators.webhooks")

#: messaging-limit tiers in increasing order (Meta's per-number and portfolio vocabularies merged)
TIER_RANK = {"TIER_NOT_SET": None, "TIER_10": 10, "TIER_50": 50, "TIER_250": 250, "TIER_1K": 1_000, "TIER_2K": 2_000,
             "TIER_10K": 10_000, "TIER_100K": 100_000, "TIER_UNLIMITED": float("inf")}
#: name_status spellings (Meta's and the BSPs') -> phone_number_name_update ``decision``
NAME_DECISIONS = {"APPROVED": "APPROVED", "Approval": "APPROVED", "AVAILABLE_WITHOUT_REVIEW": "APPROVED",
                  "DECLINED": "REJECTED", "REJECTED": "REJECTED", "Rejected": "REJECTED",
                  "PENDING_REVIEW": "PENDING", "Pending_Review": "PENDING", "PENDING": "PENDING",
                  "DEFERRED": "DEFERRED"}
RESTRICTION_TYPE = "RESTRICTED_BIZ_INITIATED_MESSAGING"
#: a number's throughput levels in increasing order (standard 80 mps, higher 1,000 mps; NOT_APPLICABLE lowest)
THROUGHPUT_RANK = {"NOT_APPLICABLE": 0, "STANDARD": 1, "HIGH": 2}
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

    field: str                          # Meta webhook field, e.g. "phone_number_quality_update"
    value: dict[str, Any]               # Meta-shaped value (display_phone_number as digits)
    phone_number: str | None            # None for WABA-level events
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def event(self) -> str | None:
        event = self.value.get("event")
        return event if isinstance(event, str) else None


def ban_date_text(wall: float) -> str:
    """Meta's ``waba_ban_date`` style, e.g. ``April 17, 2025``."""
    t = time.gmtime(wall)
    return f"{time.strftime('%B', t)} {t.tm_mday}, {t.tm_year}"


def derive_events(phone_number: str | None, old: Mapping[str, Any], new: Mapping[str, Any],
                  changes: list[dict[str, Any]], wall: float) -> list[Event]:
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
        return []       # a number that disappeared says nothing more (a removal is not a health event)
    digits = phone_number
    events = legacy_quality_events(digits, old, new, changes)
    name = name_update_event(digits, new, changes)
    if name is not None:
        events.append(name)
    # bans, restrictions and sending health
    account = _account_update(old, new, changed, wall)
    if account is not None and account["event"] == "ACCOUNT_RESTRICTION" and is_flagged(old) != is_flagged(new) \
            and "RESTRICTED" not in (old.get("status"), new.get("status")):
        account = None      # a number's health going LIMITED because it is flagged is told by FLAGGED alone
    if account is not None:
        account = {"phone_number": digits, **account}
        events.append(Event("account_update", account, digits, _related(changes, "status", "health",
                                                                          "can_send_message")))
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
    value = {"display_phone_number": digits, "decision": NAME_DECISIONS.get(raw, raw),
             "requested_verified_name": new.get("verified_name"), "rejection_reason": None}
    return Event("phone_number_name_update", value, digits, related)


def legacy_quality_events(digits: str, old: Mapping[str, Any], new: Mapping[str, Any],
                          changes: list[dict[str, Any]]) -> list[Event]:
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
        events.append(Event("phone_number_quality_update",
                            quality_value("FLAGGED" if is_flagged(new) else "UNFLAGGED"), digits,
                            _related(changes, "status", "quality_rating")))
    for key in ("messaging_limit_tier", "whatsapp_business_manager_messaging_limit"):
        if key not in changed:
            continue
        before, after = tier_rank(old.get(key)), tier_rank(new.get(key))
        if before is None or after is None or before == after:
            continue
        events.append(Event("phone_number_quality_update",
                            quality_value("UPGRADE" if after > before else "DOWNGRADE", old.get(key)), digits,
                            _related(changes, "messaging_limit_tier", "whatsapp_business_manager_messaging_limit")))
        break
    return events


def meta_number_events(digits: str, old: Mapping[str, Any], new: Mapping[str, Any], changes: list[dict[str, Any]],
                       *, legacy: bool = False, deprecated_fields: bool = True) -> list[Event]:
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
        events.append(Event("phone_number_quality_update", value("ONBOARDING"), digits,
                            _related(changes, "present", "status")))
    if "throughput_level" in changed and not appeared:
        before, after = THROUGHPUT_RANK.get(old.get("throughput_level")), THROUGHPUT_RANK.get(new.get("throughput_level"))
        if before is not None and after is not None and after > before:
            events.append(Event("phone_number_quality_update", value("THROUGHPUT_UPGRADE"), digits,
                                _related(changes, "throughput_level")))
    if legacy:
        events.extend(legacy_quality_events(digits, old, new, changes))
    name = name_update_event(digits, new, changes)
    if name is not None:
        events.append(name)
    return events


def _account_update(old: Mapping[str, Any], new: Mapping[str, Any], changed: set[str],
                    wall: float) -> dict[str, Any] | None:
    old_status, new_status = old.get("status"), new.get("status")
    if "status" in changed and new_status == "BANNED":
        return {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": ban_date_text(wall)}}
    if "status" in changed and old_status == "BANNED":
        return {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": ban_date_text(wall)}}
    health_key = "health" if "health" in new or "health" in old else "can_send_message"
    if health_key in changed:
        after, before = new.get(health_key), old.get(health_key)
        if after == "BLOCKED":
            return {"event": "ACCOUNT_VIOLATION"}
        if after == "LIMITED":
            return {"event": "ACCOUNT_RESTRICTION",
                    "restriction_info": [{"restriction_type": RESTRICTION_TYPE, "expiration": int(wall) + 86_400}]}
        if after == "AVAILABLE" and before == "BLOCKED":
            return {"event": "DISABLED_UPDATE",
                    "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": ban_date_text(wall)}}
        if after == "AVAILABLE":
            return {"event": "ACCOUNT_RESTRICTION", "restriction_info": []}
        return None
    if "status" in changed and "RESTRICTED" in (old_status, new_status):
        restricted = new_status == "RESTRICTED"
        info = [{"restriction_type": RESTRICTION_TYPE, "expiration": int(wall) + 86_400}] if restricted else []
        return {"event": "ACCOUNT_RESTRICTION", "restriction_info": info}
    return None


# ---------------------------------------------------------------------------
# wire helpers


def meta_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` value: ``sha256=`` + hex HMAC-SHA256 of the exact body bytes, keyed by the app secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def append_query(url: str, params: Iterable[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended to its query (``?`` or ``&`` as needed; a fragment stays last)."""
    parts = urlsplit(url)
    extra = urlencode(list(params), quote_via=quote)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redact_url(url: str, configured: str | None = None) -> str:
    """``url`` with the values of the configured URL's own query parameters (tokens) replaced by ``***``."""
    keys = {k for k, _ in parse_qsl(urlsplit(configured or url).query, keep_blank_values=True)}
    if not keys:
        return url
    parts = urlsplit(url)
    pairs = [(k, "***" if k in keys else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs, quote_via=quote, safe="*"),
                       parts.fragment))


def validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL must be an absolute http(s) URL, got {url!r}")
    return url


@dataclass
class OutgoingRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes = b""


# ---------------------------------------------------------------------------
# the sender


class WebhookSender:
    """Delivers webhook requests from worker threads, with retries, and records every event.

    ``timeout`` bounds each attempt (connect and read); a failed attempt is retried ``retries`` times,
    after ``backoff``, ``2 * backoff``, ... seconds.  Workers start on the first :meth:`submit` (or
    :meth:`start`) and stop with :meth:`stop`, which abandons what is still queued (recorded as
    ``cancelled``).
    """

    def __init__(self, provider: str, *, timeout: float = 2.0, retries: int = 2, backoff: float = 0.5,
                 workers: int = 4, max_records: int = 100_000, log: logging.Logger | None = None,
                 clock: Callable[[], float] = time.time):
        self.provider = provider
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.workers = workers
        self._log = log or logger
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, dict[str, Any], OutgoingRequest]] = []
        self._seq = itertools.count(1)
        self._records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._in_flight = 0

    # -- configuration and lifecycle ------------------------------------------

    def configure(self, *, timeout: float | None = None, retries: int | None = None,
                  backoff: float | None = None) -> None:
        with self._cond:
            if timeout is not None:
                if timeout <= 0:
                    raise ValueError("timeout must be > 0")
                self.timeout = float(timeout)
            if retries is not None:
                if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
                    raise ValueError("retries must be an integer >= 0")
                self.retries = retries
            if backoff is not None:
                if backoff < 0:
                    raise ValueError("backoff must be >= 0")
                self.backoff = float(backoff)

    def start(self) -> None:
        with self._cond:
            self._stopping = False
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{self.provider.lower()}-webhooks-{len(self._threads)}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            abandoned = [item[2] for item in self._heap]
            self._heap.clear()
            for record in abandoned:
                record["status"] = "cancelled"
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if abandoned:
            self._log.info("%s webhooks: %d queued event(s) abandoned at stop", self.provider, len(abandoned))

    # -- records -----------------------------------------------------------

    def new_record(self, **fields: Any) -> dict[str, Any]:
        """Create and keep the record of one event (status ``pending``)."""
        record = {"id": next(self._seq), "provider": self.provider, "status": "pending", "http_status": None,
                  "fault": None, "queued_wall": self._clock(), "queued_monotonic": time.monotonic(),
                  "sent_wall": None, "sent_monotonic": None, "delivered_wall": None, "delivered_monotonic": None,
                  "attempts": []}
        record.update(fields)
        with self._cond:
            self._records.append(record)
        return record

    def records(self) -> list[dict[str, Any]]:
        with self._cond:
            return copy.deepcopy(list(self._records))

    def clear_records(self) -> None:
        with self._cond:
            self._records.clear()

    def idle(self) -> bool:
        """True when nothing is queued or being sent."""
        with self._cond:
            return not self._heap and self._in_flight == 0

    # -- delivery ----------------------------------------------------------

    def submit(self, record: dict[str, Any], request: OutgoingRequest) -> None:
        if not self._threads:
            self.start()
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic(), record["id"], record, request))
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, record, request = heapq.heappop(self._heap)
                        self._in_flight += 1
                        break
                    self._cond.wait(None if not self._heap else max(0.001, self._heap[0][0] - now))
            try:
                retry_at = self._attempt(record, request)
            except Exception:  # never let a bug kill a worker
                self._log.exception("%s webhooks: unexpected error delivering event %s", self.provider,
                                    record.get("id"))
                retry_at = None
                record["status"] = "failed"
            with self._cond:
                self._in_flight -= 1
                if retry_at is not None and not self._stopping:
                    heapq.heappush(self._heap, (retry_at, record["id"], record, request))
                    self._cond.notify()
                elif retry_at is not None:
                    record["status"] = "cancelled"

    def _attempt(self, record: dict[str, Any], request: OutgoingRequest) -> float | None:
        """One attempt; returns when to retry (monotonic), or None when done."""
        wall, mono = self._clock(), time.monotonic()
        with self._cond:
            if record["sent_wall"] is None:
                record["sent_wall"], record["sent_monotonic"] = wall, mono
        status, error = self._send(request)
        attempt = {"wall": wall, "monotonic": mono, "status": status, "error": error}
        with self._cond:
            record["attempts"].append(attempt)
            record["http_status"] = status
            if status is not None and 200 <= status < 300:
                record["status"] = "delivered"
                record["delivered_wall"], record["delivered_monotonic"] = self._clock(), time.monotonic()
                return None
            tries = len(record["attempts"])
            if tries > self.retries:
                record["status"] = "failed"
                self._log.warning("%s webhooks: giving up on event %s (%s %s) after %d attempt(s): %s",
                                  self.provider, record["id"], record.get("field"), record.get("event") or "",
                                  tries, error or f"HTTP {status}")
                return None
            delay = self.backoff * (2 ** (tries - 1))
        self._log.info("%s webhooks: event %s attempt %d failed (%s); retrying in %.2fs", self.provider,
                       record["id"], tries, error or f"HTTP {status}", delay)
        return time.monotonic() + delay

    def _send(self, request: OutgoingRequest) -> tuple[int | None, str | None]:
        parts = urlsplit(request.url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        try:
            if parts.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    parts.hostname, parts.port, timeout=self.timeout, context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
            try:
                conn.putrequest(request.method, target, skip_accept_encoding=True)
                for name, value in request.headers:
                    conn.putheader(name, value)
                if request.method != "GET" or request.body:
                    conn.putheader("Content-Length", str(len(request.body)))
                conn.endheaders(request.body or None)
                response = conn.getresponse()
                response.read(RESPONSE_CAP)
                return response.status, None
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
