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

import itertools
import operator
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Mapping

from exporter import crc
from exporter import exposition as ex
from exporter import model
from exporter.crc import CrcTree
from exporter.providers.errors import REASONS

BLOCK_SIZE = 8  # numbers per block at most on average (between 4 and 8)
GZIP_LEVEL = 6  # the per-scrape tail and one-off segments
SEGMENT_LEVEL = 1  # block segments: re-compressed on every change, so speed wins
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, unknown OS
DEFLATE_FINAL = b"\x03\x00"  # an empty final block with fixed Huffman codes


def _load_malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc


_malloc_trim = _load_malloc_trim()
TRIM_INTERVAL = 10.0  # seconds between two heap trims


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
    #: provider-reported rate-limit usage: (header, business id, type) -> ratio 0..1
    usage: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    #: provider-advertised seconds until calls are allowed again, by business id
    regain: Mapping[str, float] = field(default_factory=dict)
    #: messaging limits of the business portfolios that own the account's numbers
    businesses: Mapping[str, model.BusinessLimit] = field(default_factory=dict)
    #: restrictions, bans and violations of the account's WABAs (webhooks only; kept in the state file)
    waba_facts: model.WabaFacts = model.NO_FACTS
    #: seconds the last complete health sweep took (None: none finished yet, or no sweeps)
    health_sweep_duration: float | None = None
    #: WABA/BUSINESS/APP health read from the WABA nodes themselves (CAMS), besides what the numbers name
    node_entities: tuple[model.EntityHealth, ...] = ()


def _entities(snap: AccountSnapshot) -> list[model.EntityHealth]:
    """The WABA/BUSINESS/APP entities named by the account's numbers, each once (the worst reading wins)."""
    seen: dict[tuple[str, str], model.EntityHealth] = {}
    severity = model.CAN_SEND_SEVERITY
    for e in itertools.chain(snap.node_entities, (e for t in snap.numbers.values() for e in t.number.entities)):
        key = (e.entity_type, e.entity_id)
        old = seen.get(key)
        if old is None or severity.get(e.can_send_message, 2) > severity.get(old.can_send_message, 2):
            seen[key] = e
    return list(seen.values())


class Exposition:
    """One immutable rendering of every account: plain parts and their gzip twin."""

    def __init__(self, parts: list[bytes], segments: list[bytes], generation: int, rendered_at: float,
                 crc: int | None = None):
        self.parts = parts
        self.offsets = list(itertools.accumulate(map(len, parts)))  # where each part ends
        self.length = self.offsets[-1] if parts else 0
        if crc is None:  # not maintained incrementally: hash everything
            crc = 0
            for part in parts:
                crc = zlib.crc32(part, crc)
        self.crc = crc
        self._gzip_prefix = GZIP_HEADER + b"".join(segments)
        self.generation = generation
        self.rendered_at = rendered_at

    def gzip_parts(self, tail: bytes = b"", level: int = 1) -> list[bytes]:
        """The gzip stream of the exposition followed by ``tail`` (one gzip member), in two pieces."""
        crc = zlib.crc32(tail, self.crc)
        size = self.length + len(tail)
        return [self._gzip_prefix, deflate_segment(tail, level) + DEFLATE_FINAL + struct.pack("<II", crc, size & 0xFFFFFFFF)]

    def gzip_with(self, tail: bytes = b"", level: int = 1) -> bytes:
        return b"".join(self.gzip_parts(tail, level))

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


def _render_group(key: tuple, chunks_by_family: Iterable[str], previous: _Rendered | None = None) -> _Rendered:
    """Encode a group's chunks and compress each into its own segment.

    One deflate state serves the whole group: a full flush after each family
    byte-aligns the output and forgets the history, so every segment stands on
    its own and can be placed anywhere in a deflate stream.  A family whose
    bytes did not change (a quality change leaves the tier's series alone)
    keeps its previous segment.
    """
    plain = [c.encode() for c in chunks_by_family]
    segments: list[bytes] = []
    c = None
    for i, p in enumerate(plain):
        if previous is not None and previous.plain[i] == p:
            # Keep the previous object, not an equal copy: the exposition's
            # per-family lists still point at it, and holding both would double
            # the memory of every block that was ever re-rendered.
            plain[i] = previous.plain[i]
            segments.append(previous.segments[i])
        elif not p:
            segments.append(b"")
        else:
            c = c or zlib.compressobj(SEGMENT_LEVEL, zlib.DEFLATED, -12, 4)
            segments.append(c.compress(p) + c.flush(zlib.Z_FULL_FLUSH))
    return _Rendered(key, plain, segments)


@dataclass
class _RenderedAccount:
    phones: frozenset[str]
    layout: dict[int, list[str]]  # block index -> its phone numbers, sorted
    blocks: list[_Rendered]  # in layout order
    plain_by_family: list[list[bytes]]  # [family][block position]
    segments_by_family: list[list[bytes]]
    crc_by_family: list[CrcTree] | None  # CRC-32 of each family's blocks (None without libz)
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
            f.name: (f.header().encode(), deflate_segment(f.header().encode()), zlib.crc32(f.header().encode()))
            for f in ex.NUMBER_FAMILIES + ex.WABA_FAMILIES + ex.ACCOUNT_FAMILIES
        }
        build = ex.build_info().encode()
        self._build_info = (build, deflate_segment(build))
        self._reload_ok, self._reload_at = True, None  # the CLI records the initial load
        self._shard = (0, 1)
        self._sections: dict[str, bytes] = {}
        self._last_trim = float("-inf")
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
        """True once every configured account has finished its first poll (at once for a shard with none)."""
        return all(a.poll is not None for a in self.accounts())

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

    def set_exporter_state(self, *, reload_ok: bool | None = None, shard: tuple[int, int] | None = None) -> None:
        """Record a configuration (re)load result and the replica's shard; re-publishes."""
        with self._lock:
            if reload_ok is not None:
                self._reload_ok = reload_ok
                if reload_ok:
                    self._reload_at = self._clock()
            if shard is not None:
                self._shard = shard
            self._publish()
            self._changed.notify_all()

    def set_section(self, name: str, text: str) -> None:
        """Serve ``text`` (complete families with HELP/TYPE lines) after the accounts; "" removes it.

        Parts of the exporter that are not accounts (the webhook receiver) use
        this to publish their own counters; the exposition is re-rendered once.
        """
        with self._lock:
            data = text.encode()
            if self._sections.get(name, b"") == data:
                return
            if data:
                self._sections[name] = data
            else:
                self._sections.pop(name, None)
            self._publish()
            self._changed.notify_all()

    def _exporter_state(self) -> bytes:
        lines = [ex.RELOAD_OK.header(), f"{ex.RELOAD_OK.name} {int(self._reload_ok)}\n"]
        if self._reload_at is not None:
            lines += [ex.RELOAD_TS.header(), f"{ex.RELOAD_TS.name} {ex.fmt(self._reload_at)}\n"]
        lines += [
            ex.SHARD.header(), f"{ex.SHARD.name} {self._shard[0]}\n",
            ex.TOTAL_SHARDS.header(), f"{ex.TOTAL_SHARDS.name} {self._shard[1]}\n",
        ]
        return "".join(lines).encode() + b"".join(data for _, data in sorted(self._sections.items()))

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
        families = range(len(ex.NUMBER_FAMILIES))
        current = list(map(snap.numbers.__getitem__, (p for block in (previous.layout.values() if previous else ()) for p in block))) \
            if previous is not None and previous.phones == phones else None
        if current is not None:
            # Same numbers, same blocks: re-render only the blocks holding a changed number.
            layout = previous.layout
            blocks = list(previous.blocks)
            plain = [list(f) for f in previous.plain_by_family]
            segments = [list(f) for f in previous.segments_by_family]
            trees = previous.crc_by_family
            before = [t for b in previous.blocks for t in b.key]
            changed = itertools.compress(range(len(current)), map(operator.is_not, before, current))
            dirty = sorted({previous_owner for previous_owner in map(self._owner(previous).__getitem__, changed)})
        else:
            layout = self._layout(phones)
            blocks, plain, segments = [], [[] for _ in families], [[] for _ in families]
            trees = None
            dirty = range(len(layout))
        block_phones = list(layout.values())
        crc_changes: list[dict[int, bytes]] = [{} for _ in families]
        for position in dirty:
            numbers = [snap.numbers[p] for p in block_phones[position]]
            rendered = [
                ex.render_number(f'{base},phone_number="{ex.escape(t.number.phone_number)}"', suffix, t, opts)
                for t in numbers
            ]
            old = blocks[position] if position < len(blocks) else None
            group = _render_group(tuple(numbers), ("".join(r[i] for r in rendered) for i in families), old)
            if old is not None:
                blocks[position] = group
                for i in families:
                    if group.plain[i] is not old.plain[i] and group.plain[i] != old.plain[i]:
                        plain[i][position] = group.plain[i]
                        segments[i][position] = group.segments[i]
                        crc_changes[i][position] = group.plain[i]
            else:
                blocks.append(group)
                for i in families:
                    plain[i].append(group.plain[i])
                    segments[i].append(group.segments[i])
        if not crc.AVAILABLE:
            trees = None
        elif trees is None:
            trees = [CrcTree(plain[i]) for i in families]
        else:
            for i in families:
                if crc_changes[i]:
                    trees[i].update(crc_changes[i])
        wabas = [ex.render_waba(base, suffix, w, opts) for _, w in sorted(snap.wabas.items())]
        waba_group = _render_group((), ["".join(w[0] for w in wabas), "".join(w[1] for w in wabas),
                                        ex.render_entities(base, suffix, _entities(snap), opts),
                                        *ex.render_waba_facts(base, suffix, snap.waba_facts, opts),
                                        *ex.render_businesses(base, suffix, snap.businesses.values(), opts)])
        return _RenderedAccount(phones, layout, blocks, plain, segments, trees, waba_group,
                                _render_group((), self._render_self(snap, base, suffix)))

    @staticmethod
    def _owner(rendered: _RenderedAccount) -> list[int]:
        """Block position of each number, in layout order."""
        return [position for position, block in enumerate(rendered.layout.values()) for _ in block]

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
        out[12] = "".join(
            f'{ex.A_USAGE.name}{{{b},header="{ex.escape(header)}",business_id="{ex.escape(business)}",type="{ex.escape(kind)}"}} '
            f"{ex.fmt(value)}\n"
            for (header, business, kind), value in sorted(snap.usage.items())
        )
        out[13] = "".join(
            f'{ex.A_REGAIN.name}{{{b},business_id="{ex.escape(business)}"}} {ex.fmt(value)}\n'
            for business, value in sorted(snap.regain.items())
        )
        if snap.health_sweep_duration is not None:
            out[14] = f"{ex.A_HEALTH_SWEEP.name}{{{b}}} {ex.fmt(round(snap.health_sweep_duration, 3))}\n"
        return out

    def _publish(self) -> None:
        rendered = [self._rendered[name] for name in sorted(self._rendered)]
        parts: list[bytes] = []
        segments: list[bytes] = []
        # (crc, length) of the parts in order, when every account has CRC trees
        pieces: list[tuple[int, int]] | None = [] if all(r.crc_by_family is not None for r in rendered) else None

        def add_family(name: str, plain_lists: list[list[bytes]], segment_lists: list[list[bytes]], trees=None) -> None:
            if not any(any(chunks) for chunks in plain_lists):
                return
            header, header_segment, header_crc = self._headers[name]
            parts.append(header)
            segments.append(header_segment)
            if pieces is not None:
                pieces.append((header_crc, len(header)))
            for k, chunks in enumerate(plain_lists):
                parts.extend(filter(None, chunks))  # disabled or empty families leave b""
                if pieces is not None:
                    if trees is not None:
                        pieces.append((trees[k].crc, trees[k].length))
                    else:
                        pieces.extend((zlib.crc32(c), len(c)) for c in chunks)
            for chunks in segment_lists:
                segments.extend(filter(None, chunks))

        for i, family in enumerate(ex.NUMBER_FAMILIES):
            add_family(family.name, [r.plain_by_family[i] for r in rendered], [r.segments_by_family[i] for r in rendered],
                       [r.crc_by_family[i] for r in rendered] if pieces is not None else None)
        for group_of, families in ((lambda r: r.wabas, ex.WABA_FAMILIES), (lambda r: r.self_metrics, ex.ACCOUNT_FAMILIES)):
            for i, family in enumerate(families):
                add_family(family.name, [[group_of(r).plain[i]] for r in rendered], [[group_of(r).segments[i]] for r in rendered])
        state = self._exporter_state()
        parts += [state, self._build_info[0]]
        segments += [deflate_segment(state), self._build_info[1]]
        checksum = None
        if pieces is not None:
            pieces.append((zlib.crc32(state), len(state)))
            pieces.append((zlib.crc32(self._build_info[0]), len(self._build_info[0])))
            total = 0
            for piece_crc, piece_len in pieces:
                total = crc.combine(total, piece_crc, piece_len)
            checksum = total
        self.exposition = Exposition(parts, segments, self.exposition.generation + 1, self._clock(), crc=checksum)
        self._trim_heap()

    def _trim_heap(self) -> None:
        """Give the pages freed by re-rendering back to the OS (glibc).

        Re-rendered blocks are byte strings of a few KiB; the old ones are freed
        when the previous exposition goes.  Those holes are reused, but glibc
        keeps the pages, so RSS would creep up with every burst of changes
        although the live data does not grow.  malloc_trim releases them.
        """
        now = time.monotonic()
        if _malloc_trim is not None and now - self._last_trim >= TRIM_INTERVAL:
            self._last_trim = now
            _malloc_trim(0)
