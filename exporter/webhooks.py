"""The optional webhook receiver: provider events trigger an early, debounced poll.

A provider that pushes an event about a number or a WABA (Meta's
``phone_number_quality_update``, Kaleyra's quality/limit callback, NxCloud's
phone webhook) does not tell the exporter the new state reliably; Meta's
quality event does not even carry the rating.  So an event never sets state:
it asks the poller to poll the accounts concerned once more, ``debounce``
seconds from now (:meth:`exporter.poller.Poller.request_refresh`).  A burst of
events for one account ends in one extra poll; polls never overlap and take
their tokens from the account's usual bucket.

Bounded (docs/webhooks-bounds.md): a signed delivery seen again within
``replay_window`` is answered 200 and counted as ``replayed``, never acted on;
an account gets at most one webhook refresh per ``min_refresh_interval``
(events inside it join one refresh at its end, their numbers added) and, for
Meta accounts, at most ``meta_refreshes_per_hour`` (more are deferred until the
hour allows, never dropped) -- :class:`RefreshGate`; an event about a number no
account knows is logged at most once an hour per number.  All of it in bounded
memory (:class:`ExpiringSet`).

Endpoints, on their own listener (``webhooks.listen_address``)::

    POST /webhooks/meta       X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>
    GET  /webhooks/meta       ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=... (subscription handshake)
    POST /webhooks/nxcloud    headers accessKey, ts (ms), bizType, action, sign (NxCloud's request signature)
    GET  /webhooks/kaleyra    ?token=...&display_phone_number=...&event=...&current_limit=...
    GET  /-/healthy

Requests that are unsigned, wrongly signed, expired or unparseable are
answered 400/401/403/413, counted by reason and never acted on; replays of a
valid delivery are answered 200 (providers retry until they get one) and
counted.  Secrets never
appear in answers, logs or metrics; the query string (which carries the
Kaleyra token and Meta's verify token) is never logged.

The listener is the aiohttp server of :mod:`exporter.web` (limits on the
request line, the header section, its deadline and idle time), without TLS or
basic auth: providers cannot send basic auth, and Meta needs a publicly
trusted certificate, which a reverse proxy or ingress usually terminates.

Counters are rendered here as Prometheus text and handed to the store
(:meth:`exporter.store.Store.set_section`), at most once a second and only
after a change.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qs

from aiohttp import web as aioweb

from exporter import model, web, wabafacts
from exporter.config import Account, Config, WebhooksConfig
from exporter.exposition import escape

log = logging.getLogger(__name__)

__all__ = [
    "EVENTS_FAMILY",
    "REFRESHES_FAMILY",
    "REJECTED_FAMILY",
    "WebhookManager",
    "WebhookPlan",
    "WebhookMetrics",
    "WebhookReceiver",
    "nxcloud_sign",
]

#: request bodies larger than this are refused (413) unread
MAX_BODY_BYTES = 1 << 20
#: NxCloud's own replay window for signed requests
NXCLOUD_MAX_SKEW = 60.0
#: seconds a request body may take to arrive
BODY_TIMEOUT = 10.0
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

EVENTS_FAMILY = "whatsapp_exporter_webhook_events_total"
REJECTED_FAMILY = "whatsapp_exporter_webhook_rejected_requests_total"
REFRESHES_FAMILY = "whatsapp_exporter_webhook_refreshes_total"
_HELP = {
    EVENTS_FAMILY: "Webhook events received, by provider, event type and result (accepted: an extra poll was "
                   "scheduled; debounced: one was already pending; unmatched: no account matched; ignored: not "
                   "about number health; replayed: a signed request seen before within the replay window, not "
                   "acted on; refused, invalid: the request was rejected, see "
                   f"{REJECTED_FAMILY}).",
    REJECTED_FAMILY: "Webhook requests rejected, by provider and reason; none of them was acted on.",
    REFRESHES_FAMILY: "Webhook events routed to an account, by the account's provider and what became of its refresh "
                      "(scheduled: a new extra poll; coalesced: joined the pending one, at most one per "
                      "min_refresh_interval; over_budget: the hourly budget was spent, the poll deferred until it "
                      "allows).",
}
_TEXT = "text/plain; charset=utf-8"
_DIGITS_RE = re.compile(r"\D")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
#: echoed back verbatim, so only harmless characters (Meta sends digits)
_CHALLENGE_RE = re.compile(r"[A-Za-z0-9._~-]{1,%d}" % MAX_CHALLENGE)


def _digits(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    return _DIGITS_RE.sub("", str(value))


def nxcloud_sign(access_key: str, action: str, biz_type: str, ts: str, body: bytes, secret: str,
                 algorithm: str = "md5") -> str:
    """NxCloud's signature (lowercase hex) over the headers, the raw body bytes and the secret.

    ``accessKey=<AK>&action=<ACTION>&bizType=<BIZ>&ts=<TS>[&body=<raw body>]&accessSecret=<secret>``;
    the body part is left out for an empty body, as for requests.
    """
    data = f"accessKey={access_key}&action={action}&bizType={biz_type}&ts={ts}".encode("utf-8")
    if body:
        data += b"&body=" + body
    data += b"&accessSecret=" + secret.encode("utf-8")
    return hashlib.new(algorithm, data).hexdigest()


# --------------------------------------------------------------------------
# Counters
# --------------------------------------------------------------------------


class WebhookMetrics:
    """The receiver's counters, rendered to Prometheus text and handed to the store.

    A background thread publishes after a change, at most once every
    ``interval`` seconds, so a flood of requests costs at most one re-render
    of the exposition per second.
    """

    def __init__(self, store, interval: float = PUBLISH_INTERVAL):
        self._store = store
        self._interval = interval
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str, str], int] = {}
        self._rejected: dict[tuple[str, str], int] = {}
        self._refreshes: dict[tuple[str, str, str], int] = {}  # (provider, account, result)
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- counting ------------------------------------------------------------

    def prepare(self, providers: Iterable[str], accounts: Iterable[tuple[str, str]]) -> None:
        """Pre-initialize the series of the enabled providers and the given (account, provider) pairs to 0."""
        with self._lock:
            for provider in providers:
                events = KALEYRA_EVENTS + (OTHER,) if provider == "kaleyra" else HEALTH_FIELDS
                for event in events:
                    for result in ("accepted", "debounced", "unmatched"):
                        self._events.setdefault((provider, event, result), 0)
                if provider != "kaleyra":
                    self._events.setdefault((provider, OTHER, "ignored"), 0)
                for result in ("replayed", "refused", "invalid"):
                    self._events.setdefault((provider, UNKNOWN, result), 0)
                for reason in PROVIDER_REASONS[provider]:
                    self._rejected.setdefault((provider, reason), 0)
            pairs = {(provider, name) for name, provider in accounts}
            # the counters of accounts still routable survive a reload; those of the others go
            kept = {k: v for k, v in self._refreshes.items() if k[:2] in pairs}
            for provider, name in pairs:
                for result in REFRESH_RESULTS:
                    if result != "over_budget" or provider in BUDGETED_PROVIDERS:
                        kept.setdefault((provider, name, result), 0)
            self._refreshes = dict(sorted(kept.items()))
        self._dirty.set()

    def event(self, provider: str, event: str, result: str) -> None:
        with self._lock:
            key = (provider, event, result)
            self._events[key] = self._events.get(key, 0) + 1
        self._dirty.set()

    def rejected(self, provider: str, reason: str) -> None:
        result = REASONS[reason][0]
        with self._lock:
            self._rejected[(provider, reason)] = self._rejected.get((provider, reason), 0) + 1
            key = (provider, UNKNOWN, result)
            self._events[key] = self._events.get(key, 0) + 1
        self._dirty.set()

    def refreshed(self, provider: str, account: str, result: str) -> None:
        with self._lock:
            key = (provider, account, result)
            self._refreshes[key] = self._refreshes.get(key, 0) + 1
        self._dirty.set()

    def value(self, family: str, **labels: str) -> int:
        """One counter's current value (for tests and debugging)."""
        with self._lock:
            if family == EVENTS_FAMILY:
                return self._events.get((labels["provider"], labels["event"], labels["result"]), 0)
            if family == REJECTED_FAMILY:
                return self._rejected.get((labels["provider"], labels["reason"]), 0)
            if "result" in labels:
                return self._refreshes.get((labels["provider"], labels["account"], labels["result"]), 0)
            # all refreshes of the account that were scheduled (within budget or deferred)
            return sum(v for (p, a, r), v in self._refreshes.items()
                       if a == labels["account"] and r != "coalesced")

    def render(self) -> str:
        with self._lock:
            events = sorted(self._events.items())
            rejected = sorted(self._rejected.items())
            refreshes = sorted(self._refreshes.items())
        out: list[str] = []

        def family(name: str, rows: list[str]) -> None:
            if rows:
                out.append(f"# HELP {name} {_HELP[name]}\n# TYPE {name} counter\n")
                out.extend(rows)

        family(EVENTS_FAMILY, [f'{EVENTS_FAMILY}{{provider="{p}",event="{escape(e)}",result="{r}"}} {v}\n'
                               for (p, e, r), v in events])
        family(REJECTED_FAMILY, [f'{REJECTED_FAMILY}{{provider="{p}",reason="{r}"}} {v}\n' for (p, r), v in rejected])
        family(REFRESHES_FAMILY, [f'{REFRESHES_FAMILY}{{provider="{p}",account="{escape(a)}",result="{r}"}} {v}\n'
                                  for (p, a, r), v in refreshes])
        return "".join(out)

    # -- publishing ----------------------------------------------------------

    def publish(self) -> None:
        """Hand the current text to the store now."""
        self._dirty.clear()
        self._store.set_section("webhooks", self.render())

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self.publish()
        self._thread = threading.Thread(target=self._run, name="webhook-metrics", daemon=True)
        self._thread.start()

    def stop(self, clear: bool = False) -> None:
        """Stop publishing; ``clear`` also takes the families off /metrics (the receiver was turned off)."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        self._dirty.set()
        if thread is not None:
            thread.join(timeout=5)
        if clear:
            self._store.set_section("webhooks", "")
        else:
            self.publish()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            if self._stopping.is_set():
                return
            try:
                self.publish()
            except Exception:  # never let a rendering bug kill the thread silently
                log.error("publishing the webhook counters failed", exc_info=True)
            if self._stopping.wait(self._interval):
                return


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

#: providers whose polling units are WABA ids
_WABA_UNIT_PROVIDERS = frozenset({"meta", "kaleyra"})


@dataclass(frozen=True)
class _State:
    """What one request needs, swapped as a whole on reload."""

    settings: WebhooksConfig
    accounts: Mapping[str, Account]
    #: NxCloud access key -> its accounts
    nx_by_key: Mapping[str, tuple[Account, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: WebhooksConfig, config: Config) -> "_State":
        nx: dict[str, list[Account]] = {}
        for account in config.accounts:
            if account.provider == "nxcloud":
                nx.setdefault(account.credentials.access_key_id, []).append(account)
        return cls(settings, {a.name: a for a in config.accounts}, {k: tuple(v) for k, v in nx.items()})

    def routable(self) -> list[tuple[str, str]]:
        """(name, provider) of the accounts some enabled endpoint can route to (their counters are pre-initialized)."""
        providers = set(self.settings.providers)
        return [(a.name, a.provider) for a in self.accounts.values() if "meta" in providers or a.provider in providers]


class _Index:
    """Numbers and WABA ids of accounts, from the configuration and the store's current data.

    Built lazily and kept per account until its configuration or its snapshot
    changes (snapshots are immutable), so a burst of events does not walk
    every number of every account once per event.
    """

    def __init__(self, store):
        self._store = store
        # (kind, account name) -> (account, weak reference to the snapshot, the ids)
        self._cache: dict[tuple[str, str], tuple[Account, Any, frozenset[str]]] = {}

    def _memo(self, kind: str, account: Account, build: Callable[[Any], set[str]]) -> frozenset[str]:
        snap = self._store.account(account.name)
        hit = self._cache.get((kind, account.name))
        if hit is not None and hit[0] is account and hit[1]() is snap:
            return hit[2]
        found = build(snap)
        found.discard("")
        ids = frozenset(found)
        self._cache[(kind, account.name)] = (account, weakref.ref(snap) if snap is not None else lambda: None, ids)
        return ids

    def numbers(self, account: Account) -> frozenset[str]:
        def build(snap) -> set[str]:
            found = {_digits(p) for unit in account.units for p in unit.phone_numbers}
            if snap is not None:
                found.update(_digits(p) for p in snap.numbers)
                found.update(_digits(p) for p in snap.configured)
            return found

        return self._memo("numbers", account, build)

    def wabas(self, account: Account) -> frozenset[str]:
        def build(snap) -> set[str]:
            found: set[str] = set()
            if account.provider in _WABA_UNIT_PROVIDERS:
                found.update(unit.id for unit in account.units)
            if snap is not None:
                found.update(t.number.waba_id for t in snap.numbers.values())
                found.update(w.waba_id for w in snap.wabas.values())
            return found

        return self._memo("wabas", account, build)


# --------------------------------------------------------------------------
# Bounds: replays, refreshes per account, log lines about unknown numbers
# --------------------------------------------------------------------------


class ExpiringSet:
    """Keys remembered for ``ttl`` seconds, at most ``capacity`` of them (the oldest dropped first).

    Keys are kept in insertion order, which is expiry order while ``ttl`` stays
    the same; after a shorter ``ttl`` (a reload) the older entries simply
    expire a little later.  Memory is bounded by ``capacity`` whatever the
    rate of new keys.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._expires: OrderedDict[Any, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expires)

    def _expire(self, now: float) -> None:
        expires = self._expires
        while expires:
            key, at = next(iter(expires.items()))
            if at > now:
                break
            del expires[key]

    def add(self, key: Any, now: float, ttl: float) -> bool:
        """Remember ``key`` until ``now + ttl``; False (and nothing changed) when it is remembered already."""
        self._expire(now)
        at = self._expires.get(key)
        if at is not None:
            if at > now:
                return False
            del self._expires[key]  # expired behind an entry of a longer ttl (before a reload shortened it)
        self._expires[key] = now + ttl
        while len(self._expires) > self.capacity:
            self._expires.popitem(last=False)
        return True


def replay_key(provider: str, signature: str | bytes, payload: bytes) -> bytes:
    """What identifies one signed delivery: a digest of the provider, the signature and the signed bytes.

    A digest, so neither a body nor a token is kept in memory longer than the request.
    """
    h = hashlib.blake2b(provider.encode(), digest_size=16)  # 128 bits: no accidental collision in practice
    for part in (signature.encode("latin-1", "replace") if isinstance(signature, str) else signature, payload):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


@dataclass
class _Gate:
    """One account's webhook refreshes: when the last one was due, and when the recent ones were (an hour's)."""

    due: float = float("-inf")  # when the last scheduled refresh runs (or ran)
    recent: deque = field(default_factory=deque)  # due times within the last hour, oldest first


class RefreshGate:
    """Decides when a webhook-triggered refresh of an account may run.

    * ``debounce`` after the first event, as before;
    * at most one per ``min_interval``: an event while a refresh is pending
      joins it (the poller adds its numbers); an event after it ran but
      within ``min_interval`` schedules the next one at the end of the
      interval, where the events until then join it;
    * at most ``per_hour`` refreshes in any hour for accounts whose provider
      documents an hourly budget (Meta): past it the refresh is deferred to
      when the oldest of the hour leaves the window, never dropped.

    Pure bookkeeping on a monotonic clock; the timer itself is the poller's
    (``request_refresh(name, delay, phones)``).
    """

    def __init__(self) -> None:
        self._gates: dict[str, _Gate] = {}

    def plan(self, name: str, now: float, debounce: float, min_interval: float,
             per_hour: int | None) -> tuple[str, float]:
        """("coalesced", seconds until the pending refresh) or ("scheduled"|"over_budget", delay of a new one)."""
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = _Gate()
        if now < gate.due:
            return "coalesced", gate.due - now
        at = max(now + debounce, gate.due + min_interval)
        result = "scheduled"
        if per_hour is not None:
            recent = gate.recent
            while recent and recent[0] <= at - 3600.0:
                recent.popleft()
            while len(recent) > per_hour:  # the budget was lowered by a reload
                recent.popleft()
            if len(recent) >= per_hour:
                at = max(at, recent[len(recent) - per_hour] + 3600.0)
                result = "over_budget"
        return result, at - now

    def commit(self, name: str, now: float, delay: float, per_hour: int | None) -> None:
        """The poller took a new refresh, ``delay`` seconds from ``now``."""
        gate = self._gates.setdefault(name, _Gate())
        gate.due = now + delay
        gate.recent.append(gate.due)
        if per_hour is not None:
            while len(gate.recent) > per_hour:
                gate.recent.popleft()
        else:
            gate.recent.clear()

    def keep(self, names: Iterable[str]) -> None:
        """Forget the accounts no longer configured."""
        wanted = set(names)
        for name in [n for n in self._gates if n not in wanted]:
            del self._gates[name]


# --------------------------------------------------------------------------
# The receiver
# --------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes = b"ok\n"
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = _TEXT


class _Rejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class WebhookReceiver:
    """Turns provider events into refresh requests; the HTTP side is :class:`_Handler`.

    ``poller`` needs ``request_refresh(name, delay) -> bool``; ``store`` needs
    ``account(name)`` (routing by the numbers and WABAs it holds).  The
    ``handle_*`` methods take the parts of a request and return a
    :class:`Reply`, so the HTTP handler stays thin.
    """

    def __init__(self, settings: WebhooksConfig, config: Config, poller, store, metrics: WebhookMetrics | None = None,
                 *, clock: Callable[[], float] = time.time, timer: Callable[[], float] = time.monotonic, loop=None):
        self._loop = loop  # the event loop the listeners serve on (None: a loop thread of their own)
        self._poller = poller
        self._store = store
        self._clock = clock  # wall time (NxCloud's timestamps, facts)
        self._timer = timer  # monotonic: replay window, refresh gate, log throttling
        self._bounds_lock = threading.Lock()  # two listeners may serve during a change of address
        self._replays = ExpiringSet(REPLAY_CACHE_SIZE)
        self._gate = RefreshGate()
        self._unknown_logged = ExpiringSet(UNKNOWN_LOG_SIZE)
        self.metrics = metrics if metrics is not None else WebhookMetrics(store)
        self._state = _State.build(settings, config)
        self.metrics.prepare(settings.providers, self._state.routable())
        self._listener: _Listener | None = None
        self._index = _Index(store)
        self._log_limits: dict[tuple[str, str], tuple[float, int]] = {}
        self._log_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------

    @property
    def settings(self) -> WebhooksConfig:
        return self._state.settings

    def bind(self, listen_address: str | None = None) -> "_Listener":
        """A new listener on ``listen_address`` (default: the configured one), bound but not serving; raises OSError."""
        return _Listener(listen_address or self._state.settings.listen_address, self, loop=self._loop)

    def start(self, listener: "_Listener | None" = None) -> "WebhookReceiver":
        """Serve on ``listener`` (or a new one); raises OSError when the address cannot be bound."""
        listener = listener or self.bind()
        old, self._listener = self._listener, listener.start()
        if old is not None:
            old.stop()
        self.metrics.start()
        log.info("webhook receiver listening", extra={"address": self.settings.listen_address,
                                                      "url": listener.url + "/webhooks/",
                                                      "providers": ",".join(self.settings.providers),
                                                      "debounce_seconds": self.settings.debounce})
        return self

    def reconfigure(self, settings: WebhooksConfig, config: Config) -> None:
        """New secrets, debounce, bounds and routes take effect with the next request.

        The replay cache and each remaining account's refresh history carry over.
        """
        self._state = _State.build(settings, config)
        with self._bounds_lock:
            self._gate.keep(self._state.accounts)
        self.metrics.prepare(settings.providers, self._state.routable())

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()

    @property
    def url(self) -> str:
        assert self._listener is not None, "not started"
        return self._listener.url

    @property
    def port(self) -> int:
        assert self._listener is not None, "not started"
        return self._listener.port

    # -- requests ----------------------------------------------------------------

    def enabled(self, provider: str) -> bool:
        return provider in self._state.settings.providers

    def reject(self, provider: str, reason: str) -> Reply:
        """Count a rejected request and build its answer (the body names the reason, never a value)."""
        self.metrics.rejected(provider, reason)
        self._log_rejection(provider, reason)
        status = REASONS[reason][1]
        return Reply(status, f"{HTTPStatus(status).phrase}: {reason.replace('_', ' ')}\n".encode())

    def handle_meta_verify(self, query: str) -> Reply:
        """Meta's subscription handshake: echo hub.challenge when hub.verify_token matches."""
        state = self._state
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
        except ValueError:
            return self.reject("meta", "invalid_body")
        mode, token, challenge = (params.get(k, []) for k in ("hub.mode", "hub.verify_token", "hub.challenge"))
        if len(mode) != 1 or len(challenge) != 1 or len(token) > 1 or mode[0] != "subscribe" \
                or not _CHALLENGE_RE.fullmatch(challenge[0]):
            return self.reject("meta", "invalid_body")
        expected = (state.settings.meta_verify_token or "").encode()
        if not token or not hmac.compare_digest(token[0].encode("utf-8", "surrogateescape"), expected):
            return self.reject("meta", "bad_verify_token")
        log.info("meta webhook subscription verified")
        return Reply(200, challenge[0].encode("ascii"),
                     {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})

    def handle_meta(self, headers: Mapping[str, list[str]], body: bytes) -> Reply:
        state = self._state
        given = headers.get("x-hub-signature-256", [])
        if not given:
            return self.reject("meta", "missing_signature")
        scheme, _, hexdigest = given[0].strip().partition("=")
        expected = hmac.new((state.settings.meta_app_secret or "").encode(), body, hashlib.sha256).hexdigest()
        if len(given) != 1 or scheme.lower() != "sha256" or not _HEX64_RE.fullmatch(hexdigest) \
                or not hmac.compare_digest(hexdigest.lower().encode(), expected.encode()):
            return self.reject("meta", "bad_signature")
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict) or not isinstance(doc.get("entry", []), list):
                raise ValueError("not an envelope")
        except (ValueError, RecursionError):
            return self.reject("meta", "invalid_body")
        if self._replayed("meta", hexdigest.lower(), body):
            return Reply(200)  # Meta retries a delivery until it gets a 200: answer it, act only once
        if doc.get("object") != "whatsapp_business_account":
            self.metrics.event("meta", OTHER, "ignored")
            return Reply(200)
        index = self._index
        for entry in doc.get("entry") or []:
            if not isinstance(entry, dict):
                continue
            waba_id = entry.get("id")
            waba_id = str(waba_id) if isinstance(waba_id, (str, int)) and not isinstance(waba_id, bool) else ""
            changes = entry.get("changes")
            for change in changes if isinstance(changes, list) else []:
                if not isinstance(change, dict):
                    continue
                event = change.get("field")
                if event not in HEALTH_FIELDS:
                    self.metrics.event("meta", OTHER, "ignored")
                    continue
                value = change.get("value") if isinstance(change.get("value"), dict) else {}
                phone = _digits(value.get("display_phone_number"))
                names = self._route_meta(state, index, waba_id, phone)
                self._record_facts(event, waba_id, value, names)
                self._refresh("meta", event, names, {"waba_id": waba_id, "phone_number": phone})
        return Reply(200)

    def handle_nxcloud(self, headers: Mapping[str, list[str]], body: bytes) -> Reply:
        state = self._state
        try:
            access_key, ts, biz_type, action, sign = (self._one(headers, h) for h in
                                                      ("accesskey", "ts", "biztype", "action", "sign"))
        except _Rejected as e:
            return self.reject("nxcloud", e.reason)
        algorithm = headers.get("algorithm", ["md5"])
        algorithm = algorithm[0].strip().lower() if len(algorithm) == 1 else ""
        candidates = state.nx_by_key.get(access_key, ())
        if not candidates:
            return self.reject("nxcloud", "unknown_access_key")
        if algorithm not in ("md5", "sha256"):
            return self.reject("nxcloud", "bad_signature")
        try:
            # Header values arrive decoded as ISO-8859-1: encoding them back gives the bytes as sent.
            raw = [v.encode("latin-1").decode("utf-8") for v in (access_key, action, biz_type, ts)]
        except (UnicodeError, ValueError):
            return self.reject("nxcloud", "bad_signature")
        given = sign.strip().lower().encode("latin-1", "replace")
        matched: list[Account] = []
        for secret in dict.fromkeys(a.credentials.access_key_secret for a in candidates):
            expected = nxcloud_sign(raw[0], raw[1], raw[2], raw[3], body, secret, algorithm).encode()
            if hmac.compare_digest(given, expected):
                matched = [a for a in candidates if a.credentials.access_key_secret == secret]
                break
        if not matched:
            return self.reject("nxcloud", "bad_signature")
        if not ts.isdigit() or abs(self._clock() - int(ts) / 1000.0) > NXCLOUD_MAX_SKEW:
            return self.reject("nxcloud", "expired")
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict) or not isinstance(doc.get("field"), str):
                raise ValueError("not an envelope")
        except (ValueError, RecursionError):
            return self.reject("nxcloud", "invalid_body")
        if self._replayed("nxcloud", given, body):  # the signature covers ts: a re-sent event is signed anew
            return Reply(200)
        event = doc["field"]
        if event not in HEALTH_FIELDS:
            self.metrics.event("nxcloud", OTHER, "ignored")
            return Reply(200)
        value = doc.get("value") if isinstance(doc.get("value"), dict) else {}
        phone = _digits(value.get("business_phone"))
        if phone:
            index = self._index
            narrowed = [a for a in matched if phone in index.numbers(a)]
            matched = narrowed or matched
        self._refresh("nxcloud", event, [a.name for a in matched], {"phone_number": phone})
        return Reply(200)

    def handle_kaleyra(self, query: str) -> Reply:
        state = self._state
        try:
            params = parse_qs(query, keep_blank_values=True, max_num_fields=20)
        except ValueError:
            return self.reject("kaleyra", "invalid_body")
        token = params.get("token", [])
        if not token:
            return self.reject("kaleyra", "missing_token")
        if len(token) != 1 or not hmac.compare_digest(token[0].encode("utf-8", "surrogateescape"),
                                                      (state.settings.kaleyra_token or "").encode()):
            return self.reject("kaleyra", "bad_token")
        raw_event = params.get("event", [""])
        raw_phone = params.get("display_phone_number", [""])
        if len(raw_event) != 1 or len(raw_phone) != 1 or not (raw_event[0].strip() or raw_phone[0].strip()):
            return self.reject("kaleyra", "invalid_body")
        # Unsigned: the query itself (token, number, event, limit) identifies a delivery, in any order
        if self._replayed("kaleyra", b"", "&".join(sorted(query.split("&"))).encode("utf-8", "surrogateescape")):
            return Reply(200)
        folded = raw_event[0].strip().upper()
        event = folded if folded in KALEYRA_EVENTS else OTHER
        phone = _digits(raw_phone[0])
        accounts = [a for a in state.accounts.values() if a.provider == "kaleyra"]
        if phone:
            index = self._index
            accounts = [a for a in accounts if phone in index.numbers(a)] or accounts
        self._refresh("kaleyra", event, [a.name for a in accounts], {"phone_number": phone})
        return Reply(200)

    # -- helpers -----------------------------------------------------------------

    def _record_facts(self, event: str, waba_id: str, value: Mapping[str, Any], names: list[str]) -> None:
        """Facts that only webhooks carry, handed to the accounts as they arrive (a poll follows anyway).

        ``account_update``: a WABA's restrictions, ban state and violations.
        ``business_capability_update`` and ``phone_number_quality_update``:
        the portfolio's limit (``max_daily_conversations_per_business``; the
        older ``max_daily_conversation_per_phone`` carries the same value until
        Meta removes it).
        """
        if event == "account_update":
            update = wabafacts.parse_account_update(waba_id, value, self._clock())
            if update is not None:
                for name in names:
                    self._poller.apply_waba_update(name, update)
            return
        if event not in ("business_capability_update", "phone_number_quality_update"):
            return
        raw = value.get("max_daily_conversations_per_business")
        if raw is None and event == "business_capability_update":
            raw = value.get("max_daily_conversation_per_phone")
        if raw is None or not waba_id:
            return
        tier = model.tier_of_limit(raw, "meta")
        for name in names:
            self._poller.apply_business_limit(name, waba_id, tier)

    @staticmethod
    def _one(headers: Mapping[str, list[str]], name: str) -> str:
        values = headers.get(name, [])
        if not values or not values[0].strip():
            raise _Rejected("missing_signature")
        if len(values) != 1:
            raise _Rejected("bad_signature")
        return values[0].strip()

    @staticmethod
    def _route_meta(state: _State, index: _Index, waba_id: str, phone: str) -> list[str]:
        names = []
        for account in state.accounts.values():
            if (waba_id and waba_id in index.wabas(account)) or (phone and phone in index.numbers(account)):
                names.append(account.name)
        return names

    def _replayed(self, provider: str, signature: str | bytes, payload: bytes) -> bool:
        """True (counted as ``replayed``) when this signed delivery was accepted within the replay window."""
        key = replay_key(provider, signature, payload)
        with self._bounds_lock:
            fresh = self._replays.add(key, self._timer(), self._state.settings.replay_window)
        if fresh:
            return False
        self.metrics.event(provider, UNKNOWN, "replayed")
        log.debug("webhook replay ignored", extra={"provider": provider})
        return True

    def _refresh(self, provider: str, event: str, names: list[str], context: dict[str, str]) -> None:
        """Ask for one extra poll of every account in ``names``, as each one's :class:`RefreshGate` allows;
        count the event once, and each account's share of it (scheduled, coalesced or over_budget).

        An event about one number (a quality or name update naming it, any
        Kaleyra callback) asks to read just that number again; the poller
        widens it to the whole account when the number is new or the provider
        reads whole units only.  Events about a WABA or the business (limits,
        reviews, account updates) ask for the whole account.
        """
        state = self._state
        settings = state.settings
        phone = context.get("phone_number", "")
        phones = ["+" + phone] if phone and (provider == "kaleyra" or event in NUMBER_EVENTS) else None
        scheduled = []
        outcomes = {}
        for name in names:
            account = state.accounts.get(name)
            kind = account.provider if account is not None else provider
            per_hour = settings.meta_refreshes_per_hour if kind in BUDGETED_PROVIDERS else None
            with self._bounds_lock:
                now = self._timer()
                outcome, delay = self._gate.plan(name, now, settings.debounce, settings.min_refresh_interval, per_hour)
                # A pending refresh is joined by asking again: the poller adds the numbers to it.
                if self._poller.request_refresh(name, delay, phones):
                    if outcome == "coalesced":  # the poller ran it early (or lost it): this is a new one
                        outcome = "scheduled"
                    self._gate.commit(name, now, delay, per_hour)
                    scheduled.append(name)
                else:
                    outcome = "coalesced"
            outcomes[name] = outcome
            self.metrics.refreshed(kind, name, outcome)
        if not names:
            result = "unmatched"
        elif scheduled:
            result = "accepted"
        else:
            result = "debounced"
        self.metrics.event(provider, event, result)
        extra = {"provider": provider, "event": event, "result": result, "accounts": ",".join(names)}
        extra.update({k: v for k, v in context.items() if v})
        deferred = [n for n in scheduled if outcomes[n] == "over_budget"]
        if deferred:
            extra["over_budget"] = ",".join(deferred)
        if result == "debounced":
            log.debug("webhook event", extra=extra)
        elif result == "unmatched":
            self._log_unmatched(provider, extra, context)
        else:
            log.info("webhook event", extra=extra)

    def _log_unmatched(self, provider: str, extra: dict, context: Mapping[str, str]) -> None:
        """An event no account matched: logged at most once an hour per number (or WABA), the rest at debug."""
        subject = context.get("phone_number") or ("waba:" + context["waba_id"] if context.get("waba_id") else "")
        key = (provider, subject)
        with self._bounds_lock:
            loud = self._unknown_logged.add(key, self._timer(), UNKNOWN_LOG_INTERVAL)
        if loud:
            log.info("webhook event about a number no account knows (logged once an hour per number)", extra=extra)
        else:
            log.debug("webhook event", extra=extra)

    def _log_rejection(self, provider: str, reason: str) -> None:
        """A warning per provider and reason at most once a minute; the rest at debug level."""
        now = time.monotonic()
        key = (provider, reason)
        with self._log_lock:
            last, suppressed = self._log_limits.get(key, (float("-inf"), 0))
            if now - last < 60:
                self._log_limits[key] = (last, suppressed + 1)
                loud = False
            else:
                self._log_limits[key] = (now, 0)
                loud = True
        extra = {"provider": provider, "reason": reason}
        if loud:
            if suppressed:
                extra["suppressed_since_last"] = suppressed
            log.warning("webhook request rejected", extra=extra)
        else:
            log.debug("webhook request rejected", extra=extra)


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

_POST_PATHS = {"/webhooks/meta": "meta", "/webhooks/nxcloud": "nxcloud"}
_GET_PATHS = {"/webhooks/meta": "meta", "/webhooks/kaleyra": "kaleyra"}


class _BodyError(Exception):
    def __init__(self, reason: str, status: int, message: str):
        super().__init__(message)
        self.reason, self.status, self.message = reason, status, message


def _answer(status: int, body: bytes = b"", content_type: str = _TEXT,
            headers: Mapping[str, str] | None = None) -> aioweb.Response:
    return aioweb.Response(status=status, body=body, headers={"Content-Type": content_type, **(headers or {})})


class _Routes:
    """The receiver's HTTP side: one catch-all aiohttp route, since which endpoints exist changes on reload."""

    def __init__(self, receiver: WebhookReceiver):
        self.receiver = receiver

    def routes(self, server: web.HttpServer) -> list:
        return [aioweb.route("*", "/{path:.*}", self.dispatch)]

    async def dispatch(self, request: aioweb.Request) -> aioweb.StreamResponse:
        app, path, method = self.receiver, request.path, request.method
        if method == "HEAD":  # a HEAD never acts on an event
            if path == "/-/healthy":
                return _answer(200, b"Healthy\n")
            if path in _GET_PATHS or path in _POST_PATHS:
                allow = ", ".join(m for m, paths in (("GET", _GET_PATHS), ("POST", _POST_PATHS)) if path in paths)
                return _answer(405, headers={"Allow": allow})
            return _answer(404)
        if method == "GET":
            if path == "/-/healthy":
                return _answer(200, b"Healthy\n")
            if path in _GET_PATHS and app.enabled(_GET_PATHS[path]):
                query = request.query_string
                if _GET_PATHS[path] == "meta":
                    return self._reply(request, lambda: app.handle_meta_verify(query))
                return self._reply(request, lambda: app.handle_kaleyra(query))
            if path in _POST_PATHS and app.enabled(_POST_PATHS[path]):
                return _answer(405, b"Method Not Allowed\n", headers={"Allow": "POST"})
            return _answer(404, b"Not found\n")
        if method == "POST":
            provider = _POST_PATHS.get(path)
            if provider is None or not app.enabled(provider):
                if path in _GET_PATHS and app.enabled(_GET_PATHS[path]):
                    return _answer(405, b"Method Not Allowed\n", headers={"Allow": "GET"})
                return _answer(404, b"Not found\n")
            try:
                body = await self._read_body(request)
            except _BodyError as e:
                app.reject(provider, e.reason)
                resp = _answer(e.status, (e.message + "\n").encode())
                resp.force_close()  # the client may still be sending what was refused
                return resp
            headers = _header_lists(request)
            if provider == "meta":
                return self._reply(request, lambda: app.handle_meta(headers, body))
            return self._reply(request, lambda: app.handle_nxcloud(headers, body))
        return _answer(405, b"Method Not Allowed\n", headers={"Allow": "GET, POST"})

    @staticmethod
    def _reply(request: aioweb.Request, fn: Callable[[], Reply]) -> aioweb.StreamResponse:
        try:
            reply = fn()
        except Exception:
            log.error("webhook request failed", extra={"path": request.path[:200]}, exc_info=True)
            return _answer(500, b"Internal Server Error\n")
        return _answer(reply.status, reply.body, reply.content_type, reply.headers)

    @staticmethod
    async def _read_body(request: aioweb.Request) -> bytes:
        """The request body, at most MAX_BODY_BYTES, by Content-Length or chunked (aiohttp decodes both)."""
        if request.content_length is None and "Transfer-Encoding" not in request.headers:
            raise _BodyError("invalid_body", 411, "Length Required")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise _BodyError("too_large", 413, f"Payload Too Large: at most {MAX_BODY_BYTES} bytes")
        try:
            # aiohttp stops at client_max_size (MAX_BODY_BYTES); a client that stops sending is cut off
            return await asyncio.wait_for(request.read(), BODY_TIMEOUT)
        except aioweb.HTTPRequestEntityTooLarge:
            raise _BodyError("too_large", 413, f"Payload Too Large: at most {MAX_BODY_BYTES} bytes") from None
        except asyncio.TimeoutError:
            raise _BodyError("invalid_body", 408, "Request Timeout: the body did not arrive in time") from None
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # a malformed chunked body
            raise _BodyError("invalid_body", 400, "Bad Request: malformed body") from None


def _header_lists(request: aioweb.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


class _Listener(web.HttpServer):
    """One bound listening socket of the receiver: the exporter's aiohttp server with the webhook routes.

    No TLS, no basic auth: providers cannot send basic auth, and Meta needs a
    publicly trusted certificate, which a reverse proxy or ingress usually
    terminates.  The hardening of :mod:`exporter.web` applies (header deadline,
    header limits, idle timeout); bodies are capped at :data:`MAX_BODY_BYTES`.
    """

    thread_name = "webhooks-http"

    def __init__(self, listen_address: str, receiver: WebhookReceiver, *, loop=None,
                 header_timeout: float = web.HEADER_TIMEOUT):
        super().__init__(_Routes(receiver), listen_address, None, header_timeout=header_timeout,
                         max_body=MAX_BODY_BYTES, refuse_large_bodies=False, loop=loop)


# --------------------------------------------------------------------------
# Lifecycle across reloads
# --------------------------------------------------------------------------


@dataclass
class WebhookPlan:
    """A prepared change of the receiver: :meth:`commit` it, or :meth:`abort` it (closes a new socket)."""

    _commit: Callable[[], None]
    listener: "_Listener | None" = None

    def commit(self) -> None:
        self._commit()

    def abort(self) -> None:
        if self.listener is not None:
            self.listener.stop()


class WebhookManager:
    """Starts, reconfigures and stops the receiver as the configuration says (``config.webhooks``).

    A change is made in two steps so that a reload is refused as a whole when
    it cannot be applied: :meth:`prepare` binds a new listening socket when the
    receiver is turned on or its ``listen_address`` changed (and raises
    OSError, changing nothing, when that fails).  The returned
    :class:`WebhookPlan` commits the change (serves on the new socket, closes
    the old one, swaps secrets and routes) or aborts it (closes the new
    socket).  On a reload, commit after the poller has taken the new accounts,
    so that no event is routed to an account the poller does not know yet.
    """

    def __init__(self, poller, store, *, clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.monotonic, loop=None):
        self._loop = loop  # the event loop the listeners serve on (None: a loop thread of their own)
        self._poller = poller
        self._store = store
        self._clock = clock
        self._timer = timer
        self._lock = threading.Lock()
        self.metrics = WebhookMetrics(store)
        self.receiver: WebhookReceiver | None = None

    def prepare(self, config: Config) -> "WebhookPlan":
        settings = config.webhooks
        with self._lock:
            current = self.receiver
            if settings is None:
                return WebhookPlan(self._commit_off)
            if current is None:
                receiver = WebhookReceiver(settings, config, self._poller, self._store, self.metrics, clock=self._clock,
                                           timer=self._timer, loop=self._loop)
                listener = receiver.bind()  # may raise OSError: nothing has changed
                return WebhookPlan(lambda: self._commit_new(receiver, listener), listener)
            listener = None
            if settings.listen_address != current.settings.listen_address:
                listener = current.bind(settings.listen_address)  # may raise OSError
            return WebhookPlan(lambda: self._commit_change(settings, config, listener), listener)

    def apply(self, config: Config) -> None:
        """prepare() and commit at once."""
        self.prepare(config).commit()

    def stop(self) -> None:
        with self._lock:
            receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.stop()
            self.metrics.stop()

    # -- the commits -------------------------------------------------------------

    def _commit_off(self) -> None:
        with self._lock:
            receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.stop()
            self.metrics.stop(clear=True)
            log.info("webhook receiver stopped: the configuration has no webhooks section")

    def _commit_new(self, receiver: WebhookReceiver, listener: _Listener) -> None:
        with self._lock:
            self.receiver = receiver.start(listener)

    def _commit_change(self, settings: WebhooksConfig, config: Config, listener: _Listener | None) -> None:
        with self._lock:
            receiver = self.receiver
            if receiver is None:  # stopped meanwhile
                if listener is not None:
                    listener.stop()
                return
            receiver.reconfigure(settings, config)
            if listener is not None:
                receiver.start(listener)
