"""The exporter's state: one immutable snapshot per account, and the exposition built from them.

Pollers hand a complete new :class:`AccountSnapshot` to :meth:`Store.update`;
the store re-renders what changed, and swaps the result in with a single
attribute assignment.  Scrapes read whatever :attr:`Store.exposition` holds at
that instant: a whole old one or a whole new one, never a mix.

How a change stays cheap (the kube-state-metrics metrics store):

* The numbers of an account are spread over *blocks* of about
  :data:`BLOCK_SIZE` numbers by a stable hash of the phone number.  A block is
  rendered into one byte string per metric family.
* A block whose numbers are the very same objects as last time (the poller
  reuses the object of a number that did not change) keeps its bytes.  A poll
  that changes 1 % of the numbers re-renders only the blocks holding them.
* The plain exposition is the list of those byte strings in family order.

What a scrape is served comes from an :class:`Exposition`: the gzip body is
compressed once per generation, on the first gzip scrape after a change, in a
worker thread (:data:`EXECUTOR`), never on the HTTP server's event loop, and
kept; an uncompressed scrape writes the rendered pieces joined 128 KiB at a
time, so the body is never held twice in memory.  The gzip body is one ordinary zlib stream (level :data:`GZIP_LEVEL`
by default) stopped with a sync flush; a scrape appends the per-scrape process
metrics by continuing a copy of that compressor, so zlib writes the gzip
header, trailer and CRC, and the answer is a single gzip member.  Concurrent
scrapers of a new generation share the one compression in flight.
"""

from __future__ import annotations

import itertools
import operator
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from exporter import exposition as ex
from exporter import model
from exporter.providers.errors import REASONS

BLOCK_SIZE = 8  # numbers per block at most on average (between 4 and 8)
GZIP_LEVEL = 1  # the whole exposition is compressed once per generation: speed wins (gzip -1 ratio)
#: the plain body is served (and fed to zlib) in pieces of about this size: joined on demand, and below
#: glibc's mmap threshold (the image sets 256 KiB), so a piece reuses heap memory instead of faulting in
#: fresh pages (1 MiB pieces cost three times the CPU of the sending)
PIECE_BYTES = 128 << 10

#: where bodies are joined and compressed: off the event loop, two at most at once
EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="exposition")


def _pieces(parts: list[bytes], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """``parts`` concatenated and cut again into pieces of about ``size`` bytes (each join is short)."""
    batch: list[bytes] = []
    held = 0
    for part in parts:
        batch.append(part)
        held += len(part)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)


class GzipBody:
    """The gzip stream of one exposition, compressed once; :meth:`finish` ends it after a per-scrape tail."""

    def __init__(self, pieces: Iterable[bytes], level: int):
        started = time.perf_counter()
        c = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: a gzip header and trailer
        out = [c.compress(piece) for piece in pieces]
        out.append(c.flush(zlib.Z_SYNC_FLUSH))  # byte-aligned, the stream still open
        self.prefix = b"".join(out)
        self._open = c
        #: CPU-bound seconds this compression took (reported by bench.scrape)
        self.seconds = time.perf_counter() - started

    def finish(self, tail: bytes = b"") -> bytes:
        """The rest of the stream: ``tail`` compressed, then the gzip trailer (CRC-32 and size of everything)."""
        c = self._open.copy()  # the cached state is never advanced: every scrape continues its own copy
        return c.compress(tail) + c.flush(zlib.Z_FINISH)


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
    """One immutable rendering of every account, and the bodies served from it (built once, on demand)."""

    def __init__(
        self,
        parts: list[bytes],
        generation: int,
        rendered_at: float,
        *,
        ready: bool = False,
        gzip_level: int = GZIP_LEVEL,
    ):
        self.parts = parts
        self.length = sum(map(len, parts))
        self.generation = generation
        self.rendered_at = rendered_at
        #: every account had finished its first poll when this was rendered (``/-/ready``)
        self.ready = ready
        self.gzip_level = gzip_level
        self._lock = threading.Lock()
        self._gzip: Future[GzipBody] | None = None
        self._plain: Future[bytes] | None = None

    def pieces(self) -> Iterator[bytes]:
        """The plain body in pieces of about 128 KiB, each joined when it is asked for (never held twice)."""
        return _pieces(self.parts)

    def plain(self) -> Future[bytes]:
        """The plain body joined once per generation, on the first uncompressed scrape (in :data:`EXECUTOR`).

        Like the gzip body it is built lazily and shared by every uncompressed
        scrape of this generation, so such a scrape costs what serving static
        bytes costs.  Prometheus asks for gzip, so a fleet scraped only by
        Prometheus never pays the memory of this second copy of the body; a
        tool that scrapes uncompressed does, until the next change.
        """
        with self._lock:
            if self._plain is None:
                self._plain = EXECUTOR.submit(b"".join, self.parts)
            return self._plain

    def gzip(self) -> Future[GzipBody]:
        """The gzip body, compressed at most once per generation (in :data:`EXECUTOR`); callers share it."""
        with self._lock:
            if self._gzip is None:
                self._gzip = EXECUTOR.submit(lambda: GzipBody(_pieces(self.parts), self.gzip_level))
            return self._gzip

    # -- synchronous forms (tests, tools) ---------------------------------------

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)

    @property
    def gzipped(self) -> bytes:
        return self.gzip_with(b"")

    def gzip_with(self, tail: bytes = b"") -> bytes:
        """One gzip member holding the exposition followed by ``tail``."""
        gz = self.gzip().result()
        return gz.prefix + gz.finish(tail)


@dataclass
class _Rendered:
    """Bytes of one group (a block of numbers, the WABAs or the self-metrics) per family."""

    key: tuple[object, ...]  # the tracked numbers rendered, compared by identity
    plain: list[bytes]


def _render_group(
    key: tuple[object, ...], chunks_by_family: Iterable[str], previous: _Rendered | None = None
) -> _Rendered:
    """Encode a group's chunks; a family whose bytes did not change keeps its previous object.

    Keeping the previous object, not an equal copy, matters: the exposition's
    per-family lists still point at it, and holding both would double the
    memory of every block that was ever re-rendered.
    """
    plain = [c.encode() for c in chunks_by_family]
    if previous is not None:
        for i, p in enumerate(plain):
            if previous.plain[i] == p:
                plain[i] = previous.plain[i]
    return _Rendered(key, plain)


@dataclass
class _RenderedAccount:
    phones: frozenset[str]
    layout: dict[int, list[str]]  # block index -> its phone numbers, sorted
    blocks: list[_Rendered]  # in layout order
    plain_by_family: list[list[bytes]]  # [family][block position]
    wabas: _Rendered
    self_metrics: _Rendered


class Store:
    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        options: ex.RenderOptions = ex.DEFAULT_OPTIONS,
        *,
        gzip_level: int = GZIP_LEVEL,
    ):
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, AccountSnapshot] = {}
        self._rendered: dict[str, _RenderedAccount] = {}
        self._options = options
        self._headers = {
            f.name: f.header().encode() for f in ex.NUMBER_FAMILIES + ex.WABA_FAMILIES + ex.ACCOUNT_FAMILIES
        }
        self._build_info = ex.build_info().encode()
        self._gzip_level = gzip_level
        self._reload_ok = True
        self._reload_at: float | None = None  # the CLI records the initial load
        self._shard = (0, 1)
        self._sections: dict[str, bytes] = {}
        self._changed = threading.Condition(self._lock)
        self._generation = 0
        self.exposition = Exposition([], 0, clock(), ready=True, gzip_level=gzip_level)

    # -- reads (lock-free: the dict values are immutable snapshots) -----------

    @property
    def options(self) -> ex.RenderOptions:
        return self._options

    def accounts(self) -> list[AccountSnapshot]:
        return list(self._accounts.values())

    def account(self, name: str) -> AccountSnapshot | None:
        return self._accounts.get(name)

    def ready(self) -> bool:
        """True once the exposition holds the first poll of every configured account (at once for a shard with none).

        Read from the published exposition, not from the snapshots handed in:
        those are stored before their numbers are rendered, and a replica must
        not turn ready while its numbers are still missing from /metrics.
        """
        return self.exposition.ready

    # -- writes --------------------------------------------------------------

    def update(self, snapshot: AccountSnapshot, *, compress_first: bool = False) -> None:
        self.update_many([snapshot], compress_first=compress_first)

    def update_many(
        self, snapshots: list[AccountSnapshot], remove: tuple[str, ...] = (), *, compress_first: bool = False
    ) -> None:
        """Store and render ``snapshots``, then publish the next exposition.

        ``compress_first`` (callers off the event loop, large publishes): the new
        exposition's gzip body is compressed before it replaces the served one,
        outside the lock.  Scrapes keep getting the previous generation, already
        compressed, instead of the first of them waiting for the compression.
        A newer generation published meanwhile wins: it holds these snapshots too.
        """
        with self._lock:
            for name in remove:
                self._accounts.pop(name, None)
                self._rendered.pop(name, None)
            for snap in snapshots:
                self._accounts[snap.name] = snap
                self._rendered[snap.name] = self._render_account(snap, self._rendered.get(snap.name))
            built = self._publish(swap=not compress_first)
            if not compress_first:
                self._changed.notify_all()
                return
        built.gzip().result()  # in EXECUTOR; still once per generation
        with self._lock:
            if built.generation > self.exposition.generation:
                self.exposition = built
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
            ex.SHARD.header(),
            f"{ex.SHARD.name} {self._shard[0]}\n",
            ex.TOTAL_SHARDS.header(),
            f"{ex.TOTAL_SHARDS.name} {self._shard[1]}\n",
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
        current = (
            list(
                map(
                    snap.numbers.__getitem__,
                    (p for block in (previous.layout.values() if previous else ()) for p in block),
                )
            )
            if previous is not None and previous.phones == phones
            else None
        )
        dirty: Iterable[int]
        if current is not None and previous is not None:
            # Same numbers, same blocks: re-render only the blocks holding a changed number.
            layout = previous.layout
            blocks = list(previous.blocks)
            plain = [list(f) for f in previous.plain_by_family]
            before = [t for b in previous.blocks for t in b.key]
            changed = itertools.compress(range(len(current)), map(operator.is_not, before, current))
            dirty = sorted({previous_owner for previous_owner in map(self._owner(previous).__getitem__, changed)})
        else:
            layout = self._layout(phones)
            blocks, plain = [], [[] for _ in families]
            dirty = range(len(layout))
        block_phones = list(layout.values())
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
            else:
                blocks.append(group)
                for i in families:
                    plain[i].append(group.plain[i])
        wabas = [ex.render_waba(base, suffix, w, opts) for _, w in sorted(snap.wabas.items())]
        waba_group = _render_group(
            (),
            [
                "".join(w[0] for w in wabas),
                "".join(w[1] for w in wabas),
                ex.render_entities(base, suffix, _entities(snap), opts),
                *ex.render_waba_facts(base, suffix, snap.waba_facts, opts),
                *ex.render_businesses(base, suffix, snap.businesses.values(), opts),
            ],
        )
        return _RenderedAccount(
            phones, layout, blocks, plain, waba_group, _render_group((), self._render_self(snap, base, suffix))
        )

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
            f'{ex.A_NUMBER_SUCCESS.name}{{{b},space_id="{ex.escape(space)}",'
            f'phone_number="{ex.escape(phone)}"}} {int(ok)}\n'
            for phone, (space, ok) in sorted(snap.configured.items())
        )
        out[11] = f"{ex.A_DROPPED.name}{{{b}}} {snap.dropped}\n"
        out[12] = "".join(
            f'{ex.A_USAGE.name}{{{b},header="{ex.escape(header)}",business_id="{ex.escape(business)}",'
            f'type="{ex.escape(kind)}"}} '
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

    def _publish(self, swap: bool = True) -> Exposition:
        """The next exposition (under the lock), served at once unless ``swap`` is false."""
        rendered = [self._rendered[name] for name in sorted(self._rendered)]
        parts: list[bytes] = []

        def add_family(name: str, plain_lists: list[list[bytes]]) -> None:
            if not any(any(chunks) for chunks in plain_lists):
                return
            parts.append(self._headers[name])
            for chunks in plain_lists:
                parts.extend(filter(None, chunks))  # disabled or empty families leave b""

        for i, family in enumerate(ex.NUMBER_FAMILIES):
            add_family(family.name, [r.plain_by_family[i] for r in rendered])
        for groups, families in (
            ([r.wabas for r in rendered], ex.WABA_FAMILIES),
            ([r.self_metrics for r in rendered], ex.ACCOUNT_FAMILIES),
        ):
            for i, family in enumerate(families):
                add_family(family.name, [[group.plain[i]] for group in groups])
        parts += [self._exporter_state(), self._build_info]
        ready = all(a.poll is not None for a in self._accounts.values())
        self._generation += 1  # counts built expositions: one compressed first may be served after a newer one is built
        built = Exposition(parts, self._generation, self._clock(), ready=ready, gzip_level=self._gzip_level)
        if swap:
            self.exposition = built
        return built
