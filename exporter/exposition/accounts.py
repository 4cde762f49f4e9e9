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
from exporter.providers.errors import REASONS

if TYPE_CHECKING:
    from exporter.store import AccountSnapshot

BLOCK_SIZE = 8  # numbers per block at most on average (between 4 and 8)
#: every family in the order of the exposition: an account's parts come in this order
FAMILIES: tuple[ex.Family, ...] = ex.NUMBER_FAMILIES + ex.WABA_FAMILIES + ex.ACCOUNT_FAMILIES


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


@dataclass
class RenderedAccount:
    phones: frozenset[str]
    layout: dict[int, list[str]]  # block index -> its phone numbers, sorted
    blocks: list[Rendered]  # in layout order
    wabas: Rendered
    self_metrics: Rendered
    #: the non-empty byte strings of every family (:data:`FAMILIES` order), blocks in layout order
    parts: list[bytes]
    #: family i's parts are ``parts[bounds[i]:bounds[i + 1]]``
    bounds: tuple[int, ...]

    def family(self, i: int) -> list[bytes]:
        return self.parts[self.bounds[i] : self.bounds[i + 1]]


def render_account(snap: AccountSnapshot, previous: RenderedAccount | None, opts: ex.RenderOptions) -> RenderedAccount:
    """``snap`` rendered; with ``previous`` (the same account's last rendering), only its changed blocks."""
    base = ex.account_base(snap.provider, snap.name)
    suffix = ex.static_suffix(snap.static_labels)
    phones = frozenset(snap.numbers)
    families = range(len(ex.NUMBER_FAMILIES))
    dirty: Iterable[int]
    if previous is not None and previous.phones == phones:
        # Same numbers, same blocks: re-render only the blocks holding a changed number.
        layout = previous.layout
        current = list(map(snap.numbers.__getitem__, (p for block in layout.values() for p in block)))
        blocks = list(previous.blocks)
        before = [t for b in previous.blocks for t in b.key]
        changed = itertools.compress(range(len(current)), map(operator.is_not, before, current))
        owner = [position for position, block in enumerate(layout.values()) for _ in block]
        dirty = sorted(set(map(owner.__getitem__, changed)))
    else:
        layout = _layout(phones)
        blocks = []
        dirty = range(len(layout))
    block_phones = list(layout.values())
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
    wabas = [ex.render_waba(base, suffix, w, opts) for _, w in sorted(snap.wabas.items())]
    waba_group = render_group(
        (),
        [
            "".join(w[0] for w in wabas),
            "".join(w[1] for w in wabas),
            ex.render_entities(base, suffix, _entities(snap), opts),
            *ex.render_waba_facts(base, suffix, snap.waba_facts, opts),
            *ex.render_businesses(base, suffix, snap.businesses.values(), opts),
        ],
    )
    self_group = render_group((), _render_self(snap, base, suffix))
    # family by family: the blocks' bytes of that family (a transposition), then the WABAs' and the account's
    parts: list[bytes] = []
    bounds = [0]
    columns: Iterable[Iterable[bytes]] = (
        zip(*(b.plain for b in blocks), strict=True) if blocks else [()] * len(families)
    )
    for column in itertools.chain(columns, ([p] for p in waba_group.plain), ([p] for p in self_group.plain)):
        parts.extend(filter(None, column))  # disabled or empty families leave b""
        bounds.append(len(parts))
    return RenderedAccount(phones, layout, blocks, waba_group, self_group, parts, tuple(bounds))


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
