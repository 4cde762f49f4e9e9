"""Bounds: replays, refreshes per account, log lines about unknown numbers."""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


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
    recent: deque[float] = field(default_factory=deque)  # due times within the last hour, oldest first


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

    def plan(
        self, name: str, now: float, debounce: float, min_interval: float, per_hour: int | None
    ) -> tuple[str, float]:
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
