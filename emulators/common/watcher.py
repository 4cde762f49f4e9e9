"""The state watcher and outgoing webhooks of the emulators."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..scenario import WEBHOOK_FAULT_KINDS, Scenario, Space, Timeline
from ..webhooks import Event, OutgoingRequest, WebhookSender, derive_events, redact_url, validate_url
from .records import ActiveFault

#: the changes of one space the watcher found: (phone number or None for the WABA, old observed fields,
#: new observed fields, the :meth:`_WatcherMixin.state_changes` entries)
SpaceChanges = list[tuple[str | None, dict[str, Any], dict[str, Any], list[dict[str, Any]]]]


def _next_due(space: Space, t: float) -> float | None:
    """The earliest scenario time after ``t`` at which a timeline of the space changes something."""
    times = [n.timeline.next_change_after(t) for n in space.numbers if n.timeline.transitions]
    if space.waba is not None and space.waba.timeline.transitions:
        times.append(space.waba.timeline.next_change_after(t))
    return min((x for x in times if x is not None), default=None)


def _last_transition(timeline: Timeline, after: float, until: float) -> float | None:
    """The scenario time of the latest transition point in ``(after, until]`` (None if there is none)."""
    if not timeline.transitions or until <= after:
        return None
    if timeline.repeat_every:
        after = max(after, until - timeline.repeat_every)
    last, t = None, after
    for _ in range(10_000):
        nxt = timeline.next_change_after(t)
        if nxt is None or nxt > until:
            break
        last = t = nxt
    return last


class _WatcherMixin:
    """The state watcher and webhooks of :class:`ProviderEmulator`."""

    # what this mixin uses of the emulator (see the package docstring)
    scenario: Scenario
    provider_name: str
    watch_interval: float
    observed_number_fields: tuple[str, ...]
    observed_waba_fields: tuple[str, ...]
    webhooks_supported: bool
    webhook_secret_required: bool
    _logger: logging.Logger
    _log_level: int
    _clock: Callable[[], float]
    _lock: threading.RLock
    _rng: random.Random
    _scenario_faults: list[ActiveFault]
    _injected: list[ActiveFault]
    _watch_lock: threading.Lock
    _watch_stop: threading.Event
    _watch_wake: threading.Event
    _snapshot: dict[str, dict[str | None, dict[str, Any]]] | None
    _due: dict[str, float | None]
    _dirty: dict[str, float]
    _last_eval: tuple[float, float, float]
    _state_changes: deque[dict[str, Any]]
    _webhook: dict[str, Any] | None
    _webhook_sender: WebhookSender

    if TYPE_CHECKING:

        def scenario_time(self) -> float: ...
        def number_state(self, space: Space, phone_number: str, t: float | None = None) -> dict[str, Any] | None: ...
        def waba_state(self, space: Space, t: float | None = None) -> dict[str, Any] | None: ...

    # -- state watcher and webhooks ------------------------------------------

    def set_webhook(
        self,
        url: str | None,
        secret: str | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        """Push events to ``url`` from now on (``None`` turns webhooks off).

        ``secret`` is Meta's app secret (required there: it keys ``X-Hub-Signature-256``); NxCloud
        signs with the accessKey/accessSecret of each space's owner and Kaleyra signs nothing (its
        token is part of ``url``), so both refuse a ``secret``.  ``timeout`` (default 2 s) bounds each
        attempt, ``retries`` (default 2) and ``backoff`` (default 0.5 s, doubling) shape the retries.
        """
        if not self.webhooks_supported:
            raise NotImplementedError(f"the {self.provider_name} emulator sends no webhooks")
        if url is None:
            self.clear_webhook()
            return
        validate_url(url)
        if self.webhook_secret_required and not secret:
            raise ValueError(f"{self.provider_name} webhooks need a secret (the app secret that signs them)")
        if not self.webhook_secret_required and secret is not None:
            raise ValueError(f"{self.provider_name} webhooks take no secret (see set_webhook's docstring)")
        self._webhook_sender.configure(timeout=timeout, retries=retries, backoff=backoff)
        with self._lock:
            self._webhook = {"url": url, "secret": secret}

    def clear_webhook(self) -> None:
        """Stop pushing events (queued ones are still delivered)."""
        with self._lock:
            self._webhook = None

    @property
    def webhook_url(self) -> str | None:
        with self._lock:
            return None if self._webhook is None else self._webhook["url"]

    def webhooks_sent(self) -> list[dict[str, Any]]:
        """Every event pushed (or dropped by a fault) so far, oldest first, as dicts (copies):

        ``id``, ``provider``, ``field`` (Meta's webhook field), ``event`` (e.g. ``FLAGGED``, or None),
        ``space_id``, ``phone_number`` (None for a WABA-level event), ``changes`` (the
        :meth:`state_changes` entries it reports), ``method``, ``url`` (the configured URL's own query
        values shown as ``***``), ``headers``, ``body`` (text; None for a GET), ``fault``
        (``webhook_bad_signature``/``webhook_drop`` or None), ``status`` (``pending``, ``delivered``,
        ``failed``, ``dropped``, ``cancelled``), ``http_status`` (of the last attempt),
        ``queued_wall``/``queued_monotonic`` (when the watcher produced it), ``sent_wall``/
        ``sent_monotonic`` (first attempt), ``delivered_wall``/``delivered_monotonic`` (the 2xx answer)
        and ``attempts`` (``[{wall, monotonic, status, error}]``).
        """
        return self._webhook_sender.records()

    def webhooks_idle(self) -> bool:
        """True when no webhook is queued, waiting for a retry, or being sent."""
        return self._webhook_sender.idle()

    def state_changes(self) -> list[dict[str, Any]]:
        """Every change of an observable field the watcher saw, oldest first, as dicts (copies):

        ``wall``/``monotonic`` (when the change took effect: the timeline transition's time mapped to
        the clocks, the ``set_number``/``set_waba`` call for overrides, else when it was observed),
        ``scenario_time`` (of the transition, else of the observation), ``observed_wall``/
        ``observed_monotonic``, ``space_id``, ``phone_number`` (None for a WABA field), ``field``,
        ``old``, ``new``.  Recorded whether or not a webhook is configured.
        """
        with self._lock:
            return [dict(change) for change in self._state_changes]

    def clear_state_changes(self) -> None:
        with self._lock:
            self._state_changes.clear()

    def clear_webhooks_sent(self) -> None:
        self._webhook_sender.clear_records()

    def check_states(self) -> list[dict[str, Any]]:
        """Evaluate the scenario now, record and push what changed since the last evaluation, and
        return the new changes (the watcher calls this every :attr:`watch_interval`)."""
        with self._watch_lock:
            s, wall, mono = self.scenario_time(), self._clock(), time.monotonic()
            with self._lock:
                dirty, self._dirty = self._dirty, {}
                target = dict(self._webhook) if self._webhook is not None else None
            if self._snapshot is None:
                self._snapshot = {}
                for space in self.scenario.spaces:
                    self._snapshot[space.space_id] = self._observe_space(space, s)
                    self._due[space.space_id] = self._next_due(space, s)
                self._last_eval = (s, wall, mono)
                return []
            p, p_wall, _ = self._last_eval
            self._last_eval = (s, wall, mono)
            found: list[dict[str, Any]] = []
            for space in self.scenario.spaces:
                sid = space.space_id
                known = sid in self._snapshot
                due = self._due.get(sid)
                if known and sid not in dirty and (due is None or due > s):
                    continue
                old_space = self._snapshot.get(sid, {})
                new_space = self._observe_space(space, s)
                self._snapshot[sid] = new_space
                self._due[sid] = self._next_due(space, s)
                if not known:
                    continue
                space_changes: SpaceChanges = []
                for key in list(new_space) + [k for k in old_space if k not in new_space]:
                    old, new = old_space.get(key, {}), new_space.get(key, {})
                    fields = [f for f in dict.fromkeys(list(new) + list(old)) if old.get(f) != new.get(f)]
                    if not fields:
                        continue
                    timelines = [space.waba.timeline] if space.waba is not None else []
                    number = space.number(key) if key is not None else None
                    if number is not None:
                        timelines.append(number.timeline)
                    eff_s = max(
                        (t for t in (_last_transition(tl, p, s) for tl in timelines) if t is not None), default=None
                    )
                    if eff_s is not None:
                        eff_wall = max(p_wall, wall - (s - eff_s))
                    elif sid in dirty:
                        eff_wall = max(p_wall, min(wall, dirty[sid]))
                    else:
                        eff_wall = wall
                    changes = [
                        {
                            "wall": eff_wall,
                            "monotonic": mono - (wall - eff_wall),
                            "scenario_time": s if eff_s is None else eff_s,
                            "observed_wall": wall,
                            "observed_monotonic": mono,
                            "space_id": sid,
                            "phone_number": key,
                            "field": f,
                            "old": old.get(f),
                            "new": new.get(f),
                        }
                        for f in fields
                    ]
                    space_changes.append((key, old, new, changes))
                    found.extend(changes)
                if not space_changes:
                    continue
                with self._lock:
                    for _, _, _, changes in space_changes:
                        self._state_changes.extend(changes)
                for _, _, _, changes in space_changes:
                    for change in changes:
                        self._logger.log(
                            self._log_level,
                            "%s emulator: %s %s %s: %r -> %r",
                            self.provider_name,
                            sid,
                            change["phone_number"] or "waba",
                            change["field"],
                            change["old"],
                            change["new"],
                        )
                if target is not None:
                    self._push(space, space_changes, target, s, wall)
            return found

    def _watch(self) -> None:
        while not self._watch_stop.is_set():
            self._watch_wake.clear()
            try:
                self.check_states()
            except Exception:  # never let a scenario quirk kill the watcher
                self._logger.exception("%s emulator: state watcher error", self.provider_name)
            self._watch_wake.wait(self.watch_interval)

    def _observe_space(self, space: Space, t: float) -> dict[str | None, dict[str, Any]]:
        """Observable state of every number (keyed by phone number) and of the WABA (key None)."""
        waba = self.waba_state(space, t)
        out: dict[str | None, dict[str, Any]] = {}
        for number in space.numbers:
            state = self.number_state(space, number.phone_number, t) or {"phone_number": number.phone_number}
            out[number.phone_number] = self._observe_number(space, state, waba)
        if space.waba is not None:
            if waba is None:
                out[None] = {"present": False}
            else:
                out[None] = self._observe_waba(space, waba, t)
        return out

    def _observe_number(self, space: Space, state: Mapping[str, Any], waba: Mapping[str, Any] | None) -> dict[str, Any]:
        """The fields of a number the watcher compares (subclasses add derived ones such as ``health``)."""
        return {f: state.get(f, True if f == "present" else None) for f in self.observed_number_fields}

    def _observe_waba(self, space: Space, waba: Mapping[str, Any], t: float) -> dict[str, Any]:
        """The fields of a present WABA the watcher compares (subclasses may derive some)."""
        return {f: (True if f == "present" else waba.get(f)) for f in self.observed_waba_fields}

    def _next_due(self, space: Space, t: float) -> float | None:
        """The earliest scenario time after ``t`` at which the space's observable state may change by
        itself (its timelines; subclasses add e.g. expiries)."""
        return _next_due(space, t)

    def _events(self, space: Space, space_changes: SpaceChanges, t: float, wall: float) -> list[Event]:
        """The webhook events (Meta vocabulary) for one space's changes.  The default is the BSP relays'
        form (:func:`~emulators.webhooks.derive_events`, plus one ``business_capability_update``
        per new per-number portfolio value); the Meta emulator has its own."""
        events: list[Event] = []
        portfolio: dict[Any, list[dict[str, Any]]] = {}
        for key, old, new, changes in space_changes:
            events.extend(derive_events(key, old, new, changes, wall))
            for change in changes:
                if (
                    change["field"] == "whatsapp_business_manager_messaging_limit"
                    and change["new"] is not None
                    and new.get("present", True)
                ):
                    portfolio.setdefault(change["new"], []).append(change)
        for value, changes in portfolio.items():
            events.append(
                Event("business_capability_update", {"max_daily_conversations_per_business": value}, None, changes)
            )
        return events

    def _push(
        self, space: Space, space_changes: SpaceChanges, target: Mapping[str, Any], t: float, wall: float
    ) -> None:
        try:
            events = self._events(space, space_changes, t, wall)
        except Exception:
            self._logger.exception(
                "%s emulator: cannot derive the webhook events of %s", self.provider_name, space.space_id
            )
            return
        for event in events:
            try:
                fault = self._webhook_fault(space, event, t)
                request = self._webhook_request(space, event, target, wall, forged=fault == "webhook_bad_signature")
            except Exception:
                self._logger.exception("%s emulator: cannot build the %s webhook", self.provider_name, event.field)
                continue
            if request is None:
                continue
            record = self._webhook_sender.new_record(
                field=event.field,
                event=event.event,
                space_id=space.space_id,
                phone_number=event.phone_number,
                changes=[dict(c) for c in event.changes],
                method=request.method,
                url=redact_url(request.url, target["url"]),
                headers=dict(request.headers),
                body=request.body.decode("utf-8", "replace") if request.body else None,
                fault=fault,
                status="dropped" if fault == "webhook_drop" else "pending",
            )
            if fault == "webhook_drop":
                self._logger.log(
                    self._log_level,
                    "%s emulator: webhook %s %s dropped (fault)",
                    self.provider_name,
                    event.field,
                    event.event or "",
                )
                continue
            self._webhook_sender.submit(record, request)

    def _webhook_fault(self, space: Space, event: Event, t: float) -> str | None:
        """The webhook fault kind that takes this event, if any (consumes ``count``)."""
        with self._lock:
            for active in self._injected + self._scenario_faults:
                fault = active.fault
                if active.remaining == 0 or fault.kind not in WEBHOOK_FAULT_KINDS:
                    continue
                if not fault.selects(
                    access_key_id=space.access_key_id,
                    action=event.field,
                    space_id=space.space_id,
                    phone_number=event.phone_number,
                    t=t,
                ):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                return fault.kind
        return None

    def _webhook_request(
        self, space: Space, event: Event, target: Mapping[str, Any], wall: float, *, forged: bool
    ) -> OutgoingRequest | None:
        """The provider's HTTP request for one event (None: the provider has no such webhook)."""
        return None
