"""One account rendered into byte strings per metric family, re-rendering only what changed.

How a change stays cheap (the kube-state-metrics metrics store):

* The numbers of an account are spread over *blocks* of about
  :data:`BLOCK_SIZE` numbers by a stable hash of the phone number.  A block is
  rendered into one byte string per metric family.
* A block whose numbers are the very same objects as last time (the poller
  reuses the object of a number that did not change) keeps its bytes.  A poll
  that changes 1 % of the numbers re-renders only the blocks holding them.
* :attr:`RenderedAccount.parts` lists the account's non-empty byte strings in
  family order (numbers, WABAs, the account's own), :attr:`RenderedAccount.bounds`
  where each family's run starts: :mod:`exporter.store` assembles the
  exposition from these runs without looking at single numbers.
"""

from __future__ import annotations

import itertools
import operator
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter import exposition as ex
from exporter import model
from exporter.lane import Steps, at_once
from exporter.providers.errors import REASONS

if TYPE_CHECKING:
    from exporter.store import AccountSnapshot

BLOCK_SIZE = 8  # numbers per block at most on average (between 4 and 8)
#: numbers re-rendered between two steps of :func:`render_account_steps` (about half a millisecond)
STEP_NUMBERS = 24
#: numbers looked at (not rendered) between two steps
STEP_SCAN = 512
#: every family in the order of the exposition: an account's parts come in this order
FAMILIES: tuple[ex.Family, ...] = ex.NUMBER_FAMILIES + ex.WABA_FAMILIES + ex.ACCOUNT_FAMILIES


def _entities_steps(snap: AccountSnapshot) -> Steps[list[model.EntityHealth]]:
    """The WABA/BUSINESS/APP entities named by the account's numbers, each once (the worst reading wins)."""
    seen: dict[tuple[str, str], model.EntityHealth] = {}
    severity = model.CAN_SEND_SEVERITY

    def see(entities: Iterable[model.EntityHealth]) -> None:
        for e in entities:
            key = (e.entity_type, e.entity_id)
            old = seen.get(key)
            if old is None or severity.get(e.can_send_message, 2) > severity.get(old.can_send_message, 2):
                seen[key] = e

    see(snap.node_entities)
    for i, tracked in enumerate(snap.numbers.values()):
        if tracked.number.entities:
            see(tracked.number.entities)
        if not i % STEP_SCAN:
            yield
    return list(seen.values())


@dataclass
class Rendered:
    """Bytes of one group (a block of numbers, the WABAs or the self-metrics) per family."""

    key: tuple[object, ...]  # the tracked numbers rendered, compared by identity
    plain: list[bytes]


def render_group(
    key: tuple[object, ...], chunks_by_family: Iterable[str], previous: Rendered | None = None
) -> Rendered:
    """Encode a group's chunks; a family whose bytes did not change keeps its previous object.

    Keeping the previous object, not an equal copy, matters: the exposition
    still points at it, and holding both would double the memory of every
    block that was ever re-rendered.
    """
    plain = [c.encode() for c in chunks_by_family]
    if previous is not None:
        for i, p in enumerate(plain):
            if previous.plain[i] == p:
                plain[i] = previous.plain[i]
    return Rendered(key, plain)


@dataclass(frozen=True)
class Layout:
    """Where an account's numbers are: blocks of phone numbers, and the same flattened (kept while the
    account's set of numbers does not change)."""

    phones: frozenset[str]
    blocks: dict[int, list[str]]  # block index -> its phone numbers, sorted
    #: every phone number, block after block
    order: list[str]
    #: the position (in layout order) of the block of each number of :attr:`order`
    owner: list[int]


@dataclass
class RenderedAccount:
    layout: Layout
    blocks: list[Rendered]  # in layout order
    #: the tracked numbers rendered, in :attr:`Layout.order` (compared by identity with the next snapshot's)
    tracked: list[model.TrackedNumber]
    wabas: Rendered
    self_metrics: Rendered
    #: the non-empty byte strings of every family (:data:`FAMILIES` order), blocks in layout order
    parts: list[bytes]
    #: family i's parts are ``parts[bounds[i]:bounds[i + 1]]``
    bounds: tuple[int, ...]
    #: bytes of every family
    sizes: tuple[int, ...]

    def family(self, i: int) -> list[bytes]:
        return self.parts[self.bounds[i] : self.bounds[i + 1]]


def render_account_steps(
    snap: AccountSnapshot, previous: RenderedAccount | None, opts: ex.RenderOptions
) -> Steps[RenderedAccount]:
    """``snap`` rendered; with ``previous`` (the same account's last rendering), only its changed blocks."""
    base = ex.account_base(snap.provider, snap.name)
    suffix = ex.static_suffix(snap.static_labels)
    families = range(len(ex.NUMBER_FAMILIES))
    dirty: Iterable[int]
    same = previous is not None and len(previous.layout.order) == len(snap.numbers)
    if same:
        yield
        same = previous.layout.phones == snap.numbers.keys()  # type: ignore[union-attr]
    yield
    if previous is not None and same:
        # Same numbers, same blocks: re-render only the blocks holding a changed number.
        layout = previous.layout
        current = list(map(snap.numbers.__getitem__, layout.order))
        yield
        blocks = list(previous.blocks)
        changed = list(itertools.compress(range(len(current)), map(operator.is_not, previous.tracked, current)))
        yield
        dirty = sorted(set(map(layout.owner.__getitem__, changed)))
    else:
        layout = yield from _layout_steps(frozenset(snap.numbers))
        current = list(map(snap.numbers.__getitem__, layout.order))
        yield
        blocks = []
        dirty = range(len(layout.blocks))
    block_phones = list(layout.blocks.values())
    done = 0
    for position in dirty:
        numbers = [snap.numbers[p] for p in block_phones[position]]
        rendered = [
            ex.render_number(f'{base},phone_number="{ex.escape(t.number.phone_number)}"', suffix, t, opts)
            for t in numbers
        ]
        old = blocks[position] if position < len(blocks) else None
        group = render_group(tuple(numbers), ("".join(r[i] for r in rendered) for i in families), old)
        if old is not None:
            blocks[position] = group
        else:
            blocks.append(group)
        done += len(numbers)
        if done >= STEP_NUMBERS:
            done = 0
            yield
    entities = yield from _entities_steps(snap)
    wabas = [ex.render_waba(base, suffix, w, opts) for _, w in sorted(snap.wabas.items())]
    waba_group = render_group(
        (),
        [
            "".join(w[0] for w in wabas),
            "".join(w[1] for w in wabas),
            ex.render_entities(base, suffix, entities, opts),
            *ex.render_waba_facts(base, suffix, snap.waba_facts, opts),
            *ex.render_businesses(base, suffix, snap.businesses.values(), opts),
        ],
    )
    self_group = render_group((), _render_self(snap, base, suffix))
    yield
    # family by family: the blocks' bytes of that family (a transposition), then the WABAs' and the account's
    parts: list[bytes] = []
    bounds = [0]
    sizes = []
    plains = list(map(operator.attrgetter("plain"), blocks))
    for i in families:
        column = list(filter(None, map(operator.itemgetter(i), plains)))  # disabled or empty families leave b""
        parts += column
        bounds.append(len(parts))
        sizes.append(sum(map(len, column)))
        yield
    for part in itertools.chain(waba_group.plain, self_group.plain):
        if part:
            parts.append(part)
        bounds.append(len(parts))
        sizes.append(len(part))
    return RenderedAccount(layout, blocks, current, waba_group, self_group, parts, tuple(bounds), tuple(sizes))


render_account = at_once(render_account_steps)


def _layout_steps(phones: frozenset[str]) -> Steps[Layout]:
    """Spread the numbers over blocks by a stable hash.

    The block count is a power of two, so the layout changes only when the
    fleet doubles or halves; adding or removing a number otherwise touches
    just its own block.
    """
    needed = max(1, -(-len(phones) // BLOCK_SIZE))
    nblocks = 1 << (needed - 1).bit_length()
    blocks: dict[int, list[str]] = {}
    for i, phone in enumerate(sorted(phones)):
        blocks.setdefault(zlib.crc32(phone.encode()) % nblocks, []).append(phone)
        if not i % STEP_SCAN:
            yield
    blocks = dict(sorted(blocks.items()))
    yield
    order = list(itertools.chain.from_iterable(blocks.values()))
    owner = [position for position, block in enumerate(blocks.values()) for _ in block]
    return Layout(phones, blocks, order, owner)


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
