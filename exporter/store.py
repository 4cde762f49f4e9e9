"""The exporter's state: one immutable snapshot per account, and the exposition built from them.

Pollers hand a complete new :class:`AccountSnapshot` to :meth:`Store.update`;
the store re-renders what changed, and swaps the result in with a single
attribute assignment.  Scrapes read whatever :attr:`Store.exposition` holds at
that instant: a whole old one or a whole new one, never a mix.

How a change stays cheap (the kube-state-metrics metrics store, plus gzip):

* The numbers of an account are spread over *blocks* of about
  :data:`BLOCK_SIZE` numbers by a stable hash of the phone number.  A block is
  rendered into one byte string per metric family, and that string is also
  compressed on its own into a raw deflate segment (ended with a sync flush,
  so segments can be concatenated).
* A block whose numbers are the very same objects as last time (the poller
  reuses the object of a number that did not change) keeps its bytes and its
  compressed segment.  A poll that changes 1 % of the numbers re-renders and
  re-compresses only the blocks holding them.
* The plain exposition is the list of those byte strings in family order; the
  gzip exposition is a gzip header, the concatenated segments, an empty final
  block and the CRC-32 of the plain bytes.  Neither is ever built by
  re-rendering or re-compressing the whole fleet.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Mapping

from exporter import exposition as ex
from exporter import model
from exporter.providers.errors import REASONS

BLOCK_SIZE = 8  # numbers per block at most on average (between 4 and 8)
GZIP_LEVEL = 6
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, unknown OS
DEFLATE_FINAL = b"\x03\x00"  # an empty final block with fixed Huffman codes


def deflate_segment(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """Raw deflate of ``data`` that ends on a byte boundary and refers to nothing before it."""
    if not data:
        return b""
    # A 4 KiB window and a small hash table: segments are a few KiB of lines that
    # repeat within a few hundred bytes, and setting up a full-size deflate
    # state would cost more than compressing them.  Any inflater can read it.
    c = zlib.compressobj(level, zlib.DEFLATED, -12, 4)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


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
    #: numbers left out because the account's max_numbers cap was reached
    dropped: int = 0


class Exposition:
    """One immutable rendering of every account: plain parts and their gzip twin."""

    def __init__(self, parts: list[bytes], segments: list[bytes], generation: int, rendered_at: float):
        self.parts = parts
        self.length = sum(len(p) for p in parts)
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
        self.crc = crc
        self._gzip_prefix = GZIP_HEADER + b"".join(segments)
        self.generation = generation
        self.rendered_at = rendered_at

    def gzip_with(self, tail: bytes = b"", level: int = 1) -> bytes:
        """The gzip stream of the exposition followed by ``tail`` (one gzip member)."""
        crc = zlib.crc32(tail, self.crc)
        size = self.length + len(tail)
        return self._gzip_prefix + deflate_segment(tail, level) + DEFLATE_FINAL + struct.pack("<II", crc, size & 0xFFFFFFFF)

    @cached_property
    def body(self) -> bytes:
        return b"".join(self.parts)

    @cached_property
    def gzipped(self) -> bytes:
        return self.gzip_with(b"")


@dataclass
class _Rendered:
    """Bytes of one group (a block of numbers, the WABAs or the self-metrics) per family."""

    key: tuple
    plain: list[bytes]
    segments: list[bytes]


def _render_group(key: tuple, chunks_by_family: Iterable[str]) -> _Rendered:
    plain = [c.encode() for c in chunks_by_family]
    return _Rendered(key, plain, [deflate_segment(p) for p in plain])


@dataclass
class _RenderedAccount:
    phones: frozenset[str]
    layout: dict[int, list[str]]  # block index -> its phone numbers, sorted
    blocks: dict[int, _Rendered]
    wabas: _Rendered
    self_metrics: _Rendered


class Store:
    def __init__(self, clock=time.time, options: ex.RenderOptions = ex.DEFAULT_OPTIONS):
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, AccountSnapshot] = {}
        self._rendered: dict[str, _RenderedAccount] = {}
        self._options = options
        self._headers = {
            f.name: (f.header().encode(), deflate_segment(f.header().encode()))
            for f in ex.NUMBER_FAMILIES + ex.WABA_FAMILIES + ex.ACCOUNT_FAMILIES
        }
        build = ex.build_info().encode()
        self._build_info = (build, deflate_segment(build))
        self._changed = threading.Condition(self._lock)
        self.exposition = Exposition([], [], 0, clock())

    # -- reads (lock-free: the dict values are immutable snapshots) -----------

    @property
    def options(self) -> ex.RenderOptions:
        return self._options

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

    def set_options(self, options: ex.RenderOptions) -> None:
        """Change the cardinality options: everything is rendered again."""
        with self._lock:
            self._options = options
            self._rendered = {name: self._render_account(snap, None) for name, snap in self._accounts.items()}
            self._publish()
            self._changed.notify_all()

    def wait_for_generation(self, generation: int, timeout: float) -> bool:
        """Block until the exposition is newer than ``generation`` (tests, demos)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.exposition.generation > generation, timeout)

    # -- rendering -----------------------------------------------------------

    def _render_account(self, snap: AccountSnapshot, previous: _RenderedAccount | None) -> _RenderedAccount:
        opts = self._options
        base = ex.account_base(snap.provider, snap.name)
        suffix = ex.static_suffix(snap.static_labels)
        # A power of two, so that the layout (and every block) changes only when
        # the fleet doubles or halves, not whenever a number is added.
        phones = frozenset(snap.numbers)
        if previous is not None and previous.phones == phones:
            layout, old_blocks = previous.layout, previous.blocks  # same numbers: same blocks
        else:
            layout = self._layout(phones)
            same = previous is not None and len(previous.layout) == len(layout)
            old_blocks = previous.blocks if same else {}
        blocks: dict[int, _Rendered] = {}
        for index, block_phones in layout.items():
            numbers = [snap.numbers[p] for p in block_phones]
            old = old_blocks.get(index)
            if old is not None and len(old.key) == len(numbers) and all(a is b for a, b in zip(old.key, numbers)):
                blocks[index] = old
                continue
            rendered = [
                ex.render_number(f'{base},phone_number="{ex.escape(t.number.phone_number)}"', suffix, t, opts)
                for t in numbers
            ]
            blocks[index] = _render_group(
                tuple(numbers), ("".join(r[i] for r in rendered) for i in range(len(ex.NUMBER_FAMILIES)))
            )
        wabas = [ex.render_waba(base, suffix, w, opts) for _, w in sorted(snap.wabas.items())]
        waba_group = _render_group((), ("".join(w[i] for w in wabas) for i in range(len(ex.WABA_FAMILIES))))
        return _RenderedAccount(phones, layout, blocks, waba_group, _render_group((), self._render_self(snap, base, suffix)))

    @staticmethod
    def _layout(phones: frozenset[str]) -> dict[int, list[str]]:
        """Spread the numbers over blocks by a stable hash.

        The block count is a power of two, so the layout changes only when the
        fleet doubles or halves; adding or removing a number otherwise touches
        just its own block.
        """
        needed = max(1, -(-len(phones) // BLOCK_SIZE))
        nblocks = 1 << (needed - 1).bit_length()
        layout: dict[int, list[str]] = {}
        for phone in sorted(phones):
            layout.setdefault(zlib.crc32(phone.encode()) % nblocks, []).append(phone)
        return dict(sorted(layout.items()))

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
        out[11] = f"{ex.A_DROPPED.name}{{{b}}} {snap.dropped}\n"
        return out

    def _publish(self) -> None:
        rendered = [self._rendered[name] for name in sorted(self._rendered)]
        parts: list[bytes] = []
        segments: list[bytes] = []

        def add_family(family: ex.Family, groups: list[_Rendered], index: int) -> None:
            chunks = [(g.plain[index], g.segments[index]) for g in groups if g.plain[index]]
            if not chunks:
                return
            header, header_segment = self._headers[family.name]
            parts.append(header)
            segments.append(header_segment)
            for plain, segment in chunks:
                parts.append(plain)
                segments.append(segment)

        blocks = [b for r in rendered for b in r.blocks.values()]
        for i, family in enumerate(ex.NUMBER_FAMILIES):
            add_family(family, blocks, i)
        for i, family in enumerate(ex.WABA_FAMILIES):
            add_family(family, [r.wabas for r in rendered], i)
        for i, family in enumerate(ex.ACCOUNT_FAMILIES):
            add_family(family, [r.self_metrics for r in rendered], i)
        parts.append(self._build_info[0])
        segments.append(self._build_info[1])
        self.exposition = Exposition(parts, segments, self.exposition.generation + 1, self._clock())
