"""The emulators' thread-safe request log."""

from __future__ import annotations

import math
import threading
from collections import deque

from .records import RequestRecord


class _RequestLogMixin:
    """The request log of :class:`ProviderEmulator`."""

    # what this mixin uses of the emulator (see the package docstring)
    write_actions: frozenset[str]
    _lock: threading.RLock
    _records: deque[RequestRecord]
    _hanging: int

    # -- statistics --------------------------------------------------------

    def hanging(self) -> int:
        """How many requests a ``hang`` fault holds right now (they get no answer while the emulator runs)."""
        with self._lock:
            return self._hanging

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request recorded so far (oldest first)."""
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    def per_second_counts(
        self, access_key_id: str, accepted_only: bool = False, *, action: str | None = None
    ) -> dict[int, int]:
        """Requests that arrived per calendar second (floor of the arrival time) for one key, optionally
        only those of one ``action`` (e.g. ``GetWhatsappHealthStatus``)."""
        counts: dict[int, int] = {}
        for record in self.requests:
            if record.access_key_id != access_key_id or (accepted_only and not record.accepted):
                continue
            if action is not None and record.action != action:
                continue
            second = math.floor(record.time)
            counts[second] = counts.get(second, 0) + 1
        return counts

    def max_requests_in_any_second(
        self, access_key_id: str, accepted_only: bool = False, *, action: str | None = None
    ) -> int:
        return max(self.per_second_counts(access_key_id, accepted_only, action=action).values(), default=0)

    def calls(self, action: str | None = None, access_key_id: str | None = None) -> list[RequestRecord]:
        """Recorded requests filtered by action and/or key."""
        return [
            r
            for r in self.requests
            if (action is None or r.action == action) and (access_key_id is None or r.access_key_id == access_key_id)
        ]

    def write_action_calls(self) -> list[RequestRecord]:
        """Requests to endpoints with side effects (which the emulator records and refuses)."""
        return [r for r in self.requests if r.action in self.write_actions]
