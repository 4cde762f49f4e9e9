"""The exporter's state: one immutable snapshot per account, and the exposition built from them.

Pollers hand a complete new :class:`AccountSnapshot` to :meth:`Store.update`;
the store re-renders only that account (reusing the chunks of numbers that did
not change), assembles the full exposition once, gzips it once, and swaps the
result in with a single attribute assignment.  Scrapes read whatever
:attr:`Store.exposition` holds at that instant: a whole old one or a whole new
one, never a mix.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping

from exporter import exposition as ex
from exporter import model
from exporter.providers.errors import REASONS


@dataclass(frozen=True)
class PollResult:
    success: bool
    finished_at: float
    duration: float
    last_success_at: float | None
    space_success: Mapping[str, bool]
    error: str = ""  # short, secret-free description of the last failure


@dataclass(frozen=True)
class AccountSnapshot:
    name: str
    provider: str
    poll_interval: float
    qps: float
    static_labels: Mapping[str, str] = field(default_factory=dict)
    actions: tuple[str, ...] = ()
    numbers: Mapping[str, model.TrackedNumber] = field(default_factory=dict)
    wabas: Mapping[str, model.Waba] = field(default_factory=dict)  # by space id
    poll: PollResult | None = None  # None until the first poll has finished
    requests: Mapping[str, int] = field(default_factory=dict)  # by action
    errors: Mapping[tuple[str, str], int] = field(default_factory=dict)  # by (action, reason)
    #: explicitly configured numbers: phone -> (space id, whether the last poll read it)
    configured: Mapping[str, tuple[str, bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class Exposition:
    body: bytes
    gzipped: bytes
    generation: int
    rendered_at: float


@dataclass
class _RenderedAccount:
    numbers: dict[str, tuple[model.TrackedNumber, tuple[str, ...]]]
    number_families: list[str]  # joined chunks per NUMBER_FAMILIES entry
    waba_families: list[str]
    account_families: list[str]


class Store:
    def __init__(self, clock=time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, AccountSnapshot] = {}
        self._rendered: dict[str, _RenderedAccount] = {}
        self._build_info = ex.build_info()
        self.exposition = Exposition(b"", gzip.compress(b""), 0, clock())
        self._changed = threading.Condition(self._lock)

    # -- reads (lock-free: the dict values are immutable snapshots) -----------

    def accounts(self) -> list[AccountSnapshot]:
        return list(self._accounts.values())

    def account(self, name: str) -> AccountSnapshot | None:
        return self._accounts.get(name)

    def ready(self) -> bool:
        """True once every configured account has finished its first poll."""
        accounts = self.accounts()
        return bool(accounts) and all(a.poll is not None for a in accounts)

    # -- writes --------------------------------------------------------------

    def update(self, snapshot: AccountSnapshot) -> None:
        self.update_many([snapshot])

    def update_many(self, snapshots: list[AccountSnapshot], remove: tuple[str, ...] = ()) -> None:
        with self._lock:
            for name in remove:
                self._accounts.pop(name, None)
                self._rendered.pop(name, None)
            for snap in snapshots:
                self._accounts[snap.name] = snap
                self._rendered[snap.name] = self._render_account(snap, self._rendered.get(snap.name))
            self._publish()
            self._changed.notify_all()

    def wait_for_generation(self, generation: int, timeout: float) -> bool:
        """Block until the exposition is newer than ``generation`` (tests, demos)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.exposition.generation > generation, timeout)

    # -- rendering -----------------------------------------------------------

    def _render_account(self, snap: AccountSnapshot, previous: _RenderedAccount | None) -> _RenderedAccount:
        base = ex.account_base(snap.provider, snap.name)
        suffix = ex.static_suffix(snap.static_labels)
        old = previous.numbers if previous else {}
        numbers: dict[str, tuple[model.TrackedNumber, tuple[str, ...]]] = {}
        for phone, tracked in snap.numbers.items():
            cached = old.get(phone)
            if cached is not None and cached[0] is tracked:
                numbers[phone] = cached
            else:
                numbers[phone] = (tracked, ex.render_number(f'{base},phone_number="{ex.escape(phone)}"', suffix, tracked))
        per_family = [
            "".join(chunks[i] for _, chunks in numbers.values()) for i in range(len(ex.NUMBER_FAMILIES))
        ]
        waba_chunks = [ex.render_waba(base, suffix, w) for w in snap.wabas.values()]
        waba_families = ["".join(c[i] for c in waba_chunks) for i in range(len(ex.WABA_FAMILIES))]
        return _RenderedAccount(numbers, per_family, waba_families, self._render_self(snap, base, suffix))

    @staticmethod
    def _render_self(snap: AccountSnapshot, base: str, suffix: str) -> list[str]:
        b = base + suffix
        out = [""] * len(ex.ACCOUNT_FAMILIES)
        poll = snap.poll
        if poll is not None:
            out[0] = f"{ex.A_POLL_SUCCESS.name}{{{b}}} {int(poll.success)}\n"
            out[1] = "".join(
                f'{ex.A_SPACE_SUCCESS.name}{{{b},space_id="{ex.escape(space)}"}} {int(ok)}\n'
                for space, ok in sorted(poll.space_success.items())
            )
            if poll.last_success_at is not None:
                out[2] = f"{ex.A_LAST_SUCCESS.name}{{{b}}} {ex.fmt(poll.last_success_at)}\n"
            out[3] = f"{ex.A_LAST_POLL.name}{{{b}}} {ex.fmt(poll.finished_at)}\n"
            out[4] = f"{ex.A_DURATION.name}{{{b}}} {ex.fmt(round(poll.duration, 6))}\n"
        out[5] = f"{ex.A_INTERVAL.name}{{{b}}} {ex.fmt(snap.poll_interval)}\n"
        out[6] = f"{ex.A_BUDGET.name}{{{b}}} {ex.fmt(snap.qps)}\n"
        out[7] = f"{ex.A_NUMBERS.name}{{{b}}} {len(snap.numbers)}\n"
        out[8] = "".join(
            f'{ex.A_REQUESTS.name}{{{b},action="{action}"}} {snap.requests.get(action, 0)}\n' for action in snap.actions
        )
        out[9] = "".join(
            f'{ex.A_ERRORS.name}{{{b},action="{action}",reason="{reason}"}} {snap.errors.get((action, reason), 0)}\n'
            for action in snap.actions
            for reason in REASONS
        )
        out[10] = "".join(
            f'{ex.A_NUMBER_SUCCESS.name}{{{b},space_id="{ex.escape(space)}",phone_number="{ex.escape(phone)}"}} {int(ok)}\n'
            for phone, (space, ok) in sorted(snap.configured.items())
        )
        return out

    def _publish(self) -> None:
        rendered = [self._rendered[name] for name in sorted(self._rendered)]
        parts = ex.assemble(ex.NUMBER_FAMILIES, [[r.number_families[i] for r in rendered] for i in range(len(ex.NUMBER_FAMILIES))])
        parts += ex.assemble(ex.WABA_FAMILIES, [[r.waba_families[i] for r in rendered] for i in range(len(ex.WABA_FAMILIES))])
        parts += ex.assemble(ex.ACCOUNT_FAMILIES, [[r.account_families[i] for r in rendered] for i in range(len(ex.ACCOUNT_FAMILIES))])
        parts.append(self._build_info)
        body = "".join(parts).encode()
        self.exposition = Exposition(
            body=body,
            gzipped=gzip.compress(body, compresslevel=6),
            generation=self.exposition.generation + 1,
            rendered_at=self._clock(),
        )
