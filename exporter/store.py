"""The exporter's state: one immutable snapshot per account, and the exposition built from them.

Pollers hand a complete new :class:`AccountSnapshot` to the store; it
re-renders what changed (:mod:`exporter.exposition.accounts`: only the blocks
of numbers that changed) and swaps the next :class:`Exposition` in with a
single attribute assignment.  Scrapes read whatever :attr:`Store.exposition`
holds at that instant: a whole old one or a whole new one, never a mix.

Building the next exposition does not walk every account:

* The accounts, in name order, are grouped in *buckets* of about the square
  root of their count.  A bucket keeps, per family, its accounts' parts in one
  list; a change re-builds only its account's bucket.
* A generation is, per family, the header and every bucket's list: about
  families x buckets steps, however many accounts or numbers there are.
* On the event loop, :meth:`Store.publish` renders the account at once and
  publishes once per loop turn, for every account rendered during that turn:
  a thousand accounts whose polls end together make one generation, not a
  thousand.  Each caller is answered once the generation holding its snapshot
  is served.  :meth:`Store.publish_sliced` renders a large account in slices
  between scrapes instead, and serves its generation once compressed.
  :meth:`Store.update` (other threads, tests, reloads) publishes at once.

The gzip body is compressed once per generation (:mod:`exporter.exposition.body`).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from exporter import exposition as ex
from exporter import lane, model
from exporter.exposition.accounts import BLOCK_SIZE, FAMILIES, RenderedAccount, render_account, render_account_steps
from exporter.exposition.body import EXECUTOR, GZIP_LEVEL, Exposition, GzipBody

__all__ = [
    "BLOCK_SIZE",
    "EXECUTOR",
    "GZIP_LEVEL",
    "AccountSnapshot",
    "Exposition",
    "GzipBody",
    "PollResult",
    "Store",
]

#: accounts per bucket at least (a quarter of the square root of the account count above 1,024 accounts)
MIN_BUCKET = 8


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


class _Bucket:
    """Accounts next to each other in name order, and their parts per family, concatenated."""

    __slots__ = ("dirty", "families", "names", "sizes")

    def __init__(self, names: list[str]):
        self.names = names
        self.dirty = True  # to be built again: one of its accounts changed
        self.families: list[list[bytes]] = []
        self.sizes: list[int] = []  # bytes per family

    def build(self, rendered: Mapping[str, RenderedAccount]) -> None:
        families: list[list[bytes]] = [[] for _ in FAMILIES]
        sizes = [0] * len(FAMILIES)
        for name in self.names:
            account = rendered[name]
            parts, bounds = account.parts, account.bounds
            for i, into in enumerate(families):
                if bounds[i] != bounds[i + 1]:
                    into += parts[bounds[i] : bounds[i + 1]]
                    sizes[i] += account.sizes[i]
        self.families = families
        self.sizes = sizes
        self.dirty = False


#: what :meth:`Store._render` hands to :meth:`Store._install`: the snapshot, the rendering it started from, the
#: result, and the options it was rendered with
_Render = tuple[AccountSnapshot, RenderedAccount | None, RenderedAccount, ex.RenderOptions]


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
        self._rendered: dict[str, RenderedAccount] = {}
        self._unpolled: set[str] = set()  # accounts whose first poll has not finished
        self._buckets: list[_Bucket] = []
        self._bucket_of: dict[str, _Bucket] = {}
        self._regroup = False  # accounts came or went: the buckets are drawn again
        self._stale = False  # something changed since the served generation was built
        self._options = options
        self._headers = [f.header().encode() for f in FAMILIES]
        self._build_info = ex.build_info().encode()
        self._gzip_level = gzip_level
        self._reload_ok = True
        self._reload_at: float | None = None  # the CLI records the initial load
        self._shard = (0, 1)
        self._sections: dict[str, bytes] = {}
        self._changed = threading.Condition(self._lock)
        self._generation = 0
        #: builds of a generation (a test can count them: one per loop turn, not one per account)
        self.builds = 0
        self._landed: asyncio.Future[None] | None = None  # the next loop turn's publish (see publish)
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
        """Store and render ``snapshots``, then publish the next exposition before returning.

        ``compress_first`` (callers off the event loop, large publishes): the new
        exposition's gzip body is compressed before it replaces the served one,
        outside the lock.  Scrapes keep getting the previous generation, already
        compressed, instead of the first of them waiting for the compression.
        A newer generation published meanwhile wins: it holds these snapshots too.
        """
        rendered = self._render(snapshots)  # outside the lock: another thread's render never holds up the loop
        with self._lock:
            self._install(rendered, remove)
            built = self._publish(swap=not compress_first)
            if not compress_first:
                self._changed.notify_all()
                return
        built.gzip().result()  # in EXECUTOR; still once per generation
        with self._lock:
            if built.generation > self.exposition.generation:
                self.exposition = built
                self._changed.notify_all()

    async def publish(self, snapshot: AccountSnapshot) -> None:
        """On the event loop: render ``snapshot`` now; return once a generation holding it is served.

        The generation is built once per loop turn for every snapshot handed in
        during that turn (coalesced), so N accounts whose polls end together
        cost one build, not N.
        """
        rendered = self._render([snapshot])
        with self._lock:
            self._install(rendered, ())
        loop = asyncio.get_running_loop()
        landed = self._landed
        if landed is None or landed.get_loop() is not loop:
            landed = self._landed = loop.create_future()
            loop.call_soon(self._land, landed)
        await asyncio.shield(landed)  # a cancelled caller leaves the others' wait alone

    async def publish_sliced(self, snapshot: AccountSnapshot) -> None:
        """On the event loop, for a large snapshot: render it in slices between scrapes, then serve it.

        The rendering runs in slices of about a millisecond with a lane turn
        between two (:func:`exporter.lane.sliced`), so scrapes keep being
        answered meanwhile; the new generation's gzip body is compressed (in
        :data:`EXECUTOR`) before it replaces the served one, so no scrape waits
        for that compression either.  A newer generation published meanwhile
        wins: it holds this snapshot too.
        """
        options = self._options
        previous = self._rendered.get(snapshot.name)
        result = await lane.sliced(render_account_steps(snapshot, previous, options))
        with self._lock:
            self._install([(snapshot, previous, result, options)], ())
            built = self._publish(swap=False)
        await asyncio.wrap_future(built.gzip())
        with self._lock:
            if built.generation > self.exposition.generation:
                self.exposition = built
                self._changed.notify_all()

    def _land(self, landed: asyncio.Future[None]) -> None:
        if self._landed is landed:
            self._landed = None
        with self._lock:
            if self._stale:  # not already published by an update() meanwhile
                self._publish()
                self._changed.notify_all()
        if not landed.done():
            landed.set_result(None)

    def set_options(self, options: ex.RenderOptions) -> None:
        """Change the cardinality options: everything is rendered again."""
        with self._lock:
            self._options = options
            self._rendered = {name: render_account(snap, None, options) for name, snap in self._accounts.items()}
            for bucket in self._buckets:
                bucket.dirty = True
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

    # -- rendering and assembly ---------------------------------------------------

    def _render(self, snapshots: list[AccountSnapshot]) -> list[_Render]:
        """Render without the lock (:meth:`_install` renders again what changed underneath meanwhile)."""
        options = self._options
        out = []
        for snap in snapshots:
            previous = self._rendered.get(snap.name)
            out.append((snap, previous, render_account(snap, previous, options), options))
        return out

    def _install(self, rendered: list[_Render], remove: tuple[str, ...]) -> None:
        """Under the lock: take the renderings; their buckets (or, when accounts come or go, all) are built again."""
        for name in remove:
            if self._accounts.pop(name, None) is not None:
                self._rendered.pop(name, None)
                self._unpolled.discard(name)
                self._regroup = True
        for snap, previous, result, options in rendered:
            name = snap.name
            current = self._rendered.get(name)
            if current is not previous or options is not self._options:
                result = render_account(snap, current, self._options)  # options or the account changed meanwhile
            self._accounts[name] = snap
            self._rendered[name] = result
            if snap.poll is None:
                self._unpolled.add(name)
            else:
                self._unpolled.discard(name)
            bucket = self._bucket_of.get(name)
            if bucket is None:
                self._regroup = True
            else:
                bucket.dirty = True
        self._stale = True

    def _publish(self, swap: bool = True) -> Exposition:
        """The next exposition (under the lock), served at once unless ``swap`` is false."""
        if self._regroup:
            names = sorted(self._rendered)
            size = max(MIN_BUCKET, math.isqrt(len(names)) // 4)
            self._buckets = [_Bucket(names[i : i + size]) for i in range(0, len(names), size)]
            self._bucket_of = {name: bucket for bucket in self._buckets for name in bucket.names}
            self._regroup = False
        buckets = self._buckets
        for bucket in buckets:
            if bucket.dirty:
                bucket.build(self._rendered)
        # Family by family, the header and every bucket's run: references to the buckets' lists, no copy of
        # their parts (transposed first, so the steps per family are C loops over the buckets).
        runs: list[Sequence[bytes]] = []
        length = 0
        sizes = map(sum, zip(*[b.sizes for b in buckets], strict=True)) if buckets else itertools.repeat(0)
        columns = zip(*[b.families for b in buckets], strict=True) if buckets else itertools.repeat(())
        for header, size, column in zip(self._headers, sizes, columns, strict=False):
            if size:  # a family with no sample (disabled, or nothing to tell) has no HELP/TYPE either
                runs.append((header,))
                runs += filter(None, column)
                length += len(header) + size
        tail = (self._exporter_state(), self._build_info)
        runs.append(tail)
        length += sum(map(len, tail))
        self._generation += 1  # counts built expositions: one compressed first may be served after a newer one is built
        self.builds += 1
        self._stale = False
        built = Exposition(
            runs, self._generation, self._clock(), ready=not self._unpolled, gzip_level=self._gzip_level, length=length
        )
        if swap:
            self.exposition = built
        return built
