"""The receiver's counters, rendered to Prometheus text and handed to the store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from exporter.exposition import escape
from exporter.webhooks import vocabulary as vocab

if TYPE_CHECKING:
    from exporter.store import Store

log = logging.getLogger("exporter.webhooks")  # the name of the module this package was split from


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


class WebhookMetrics:
    """The receiver's counters, rendered to Prometheus text and handed to the store.

    A background thread publishes after a change, at most once every
    ``interval`` seconds, so a flood of requests costs at most one re-render
    of the exposition per second.
    """

    def __init__(self, store: Store, interval: float = vocab.PUBLISH_INTERVAL):
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
                events = (*vocab.KALEYRA_EVENTS, vocab.OTHER) if provider == "kaleyra" else vocab.HEALTH_FIELDS
                for event in events:
                    for result in ("accepted", "debounced", "unmatched"):
                        self._events.setdefault((provider, event, result), 0)
                if provider != "kaleyra":
                    self._events.setdefault((provider, vocab.OTHER, "ignored"), 0)
                for result in ("replayed", "refused", "invalid"):
                    self._events.setdefault((provider, vocab.UNKNOWN, result), 0)
                for reason in vocab.PROVIDER_REASONS[provider]:
                    self._rejected.setdefault((provider, reason), 0)
            pairs = {(provider, name) for name, provider in accounts}
            # the counters of accounts still routable survive a reload; those of the others go
            kept = {k: v for k, v in self._refreshes.items() if k[:2] in pairs}
            for provider, name in pairs:
                for result in vocab.REFRESH_RESULTS:
                    if result != "over_budget" or provider in vocab.BUDGETED_PROVIDERS:
                        kept.setdefault((provider, name, result), 0)
            self._refreshes = dict(sorted(kept.items()))
        self._dirty.set()

    def event(self, provider: str, event: str, result: str) -> None:
        self._bump(("_events", (provider, event, result)))

    def rejected(self, provider: str, reason: str) -> None:
        self._bump(("_rejected", (provider, reason)), ("_events", (provider, vocab.UNKNOWN, vocab.REASONS[reason][0])))

    def refreshed(self, provider: str, account: str, result: str) -> None:
        self._bump(("_refreshes", (provider, account, result)))

    def _bump(self, *counts: tuple[str, tuple[str, ...]]) -> None:
        """Add 1 to each (counter attribute, key), all under the lock (``prepare`` may replace a counter), and
        have the change published."""
        with self._lock:
            for name, key in counts:
                counter: dict[tuple[str, ...], int] = getattr(self, name)
                counter[key] = counter.get(key, 0) + 1
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
            return sum(v for (p, a, r), v in self._refreshes.items() if a == labels["account"] and r != "coalesced")

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

        family(
            EVENTS_FAMILY,
            [f'{EVENTS_FAMILY}{{provider="{p}",event="{escape(e)}",result="{r}"}} {v}\n' for (p, e, r), v in events],
        )
        family(REJECTED_FAMILY, [f'{REJECTED_FAMILY}{{provider="{p}",reason="{r}"}} {v}\n' for (p, r), v in rejected])
        family(
            REFRESHES_FAMILY,
            [
                f'{REFRESHES_FAMILY}{{provider="{p}",account="{escape(a)}",result="{r}"}} {v}\n'
                for (p, a, r), v in refreshes
            ],
        )
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
