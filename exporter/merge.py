"""Pure functions that fold new readings into an account's next state.

Nothing here does I/O or keeps state: each function takes what the account
held and what was just read (a poll, a health sweep, a webhook) and returns
what it holds next.

The functions that walk every number of a poll come in two forms:
``fold_poll_steps`` and ``poll_step_steps`` are generators that yield every
:data:`STEP` numbers (their result is the generator's return value), so the
actor can run them on the loop in slices between scrapes
(:func:`exporter.lane.sliced`); ``fold_poll`` and ``poll_step`` run them to
their end at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter import model
from exporter.lane import Steps, at_once

if TYPE_CHECKING:
    from exporter.providers.base import UnitResult
    from exporter.providers.errors import ProviderError

#: numbers handled between two steps of the generator forms (a few tens of microseconds)
STEP = 256


def business_limits_steps(
    numbers: Iterable[model.PhoneNumber], told: Mapping[str, model.BusinessLimit], read_at: float
) -> Steps[dict[str, model.BusinessLimit]]:
    """The messaging limit of every business portfolio the numbers belong to.

    A number whose tier is its portfolio's (:attr:`~model.PhoneNumber.shares_portfolio_limit`)
    reports the portfolio's limit, read at ``read_at``.  ``told`` holds what
    webhooks said (``business_capability_update``): a webhook newer than the
    reading wins, until the next reading.  A business none of the numbers
    belongs to any more is dropped.
    """
    read: dict[str, str] = {}
    for i, number in enumerate(numbers):
        if not i % STEP:
            yield
        if number.shares_portfolio_limit and number.business_id not in read:
            read[number.business_id] = number.messaging_limit_tier
    out = {}
    for business_id, tier in sorted(read.items()):
        webhook = told.get(business_id)
        if webhook is not None and webhook.observed_at > read_at:
            out[business_id] = webhook
        else:
            out[business_id] = model.BusinessLimit(business_id, tier, read_at, "poll")
    return out


business_limits = at_once(business_limits_steps)


def with_health(
    numbers: Mapping[str, model.TrackedNumber], readings: Mapping[str, model.Health]
) -> dict[str, model.PhoneNumber]:
    """The numbers that a health read changed, each as it is now with its new health.

    Health lands on the number as it is *now*, not as it was when the read
    started: a poll that published a newer status meanwhile keeps it.
    """
    out = {}
    for phone, health in readings.items():
        tracked = numbers.get(phone)
        if tracked is None:
            continue  # gone meanwhile
        fresh = tracked.number.with_health(health)
        if fresh != tracked.number:
            out[phone] = fresh
    return out


def _newer_health_steps(
    current: Mapping[str, model.TrackedNumber],
    polled: Mapping[str, model.PhoneNumber],
    health_read_at: Mapping[str, float],
    poll_started: float,
) -> Steps[dict[str, model.PhoneNumber]]:
    """Polled numbers whose health was read (and published) after the poll started: with that newer health.

    A poll enriches its numbers with the health known when it read them; a
    health sweep running meanwhile may have published a newer reading, which
    the poll must not overwrite with the older one.
    """
    out = {}
    for i, (phone, read_at) in enumerate(health_read_at.items()):
        if not i % STEP:
            yield
        if read_at < poll_started or phone not in polled or phone not in current:
            continue
        have = current[phone].number
        out[phone] = polled[phone].with_health(
            model.Health(have.can_send_message, have.entities, have.blocking_errors, have.business_id)
        )
    return out


newer_health = at_once(_newer_health_steps)


def _changed_steps(
    before: Mapping[str, model.TrackedNumber], after: Mapping[str, model.PhoneNumber]
) -> Steps[list[str]]:
    """Numbers whose status or quality rating differs from before (not new ones): their health is read first."""
    changed = []
    for i, (phone, number) in enumerate(after.items()):
        if not i % STEP:
            yield
        old = before.get(phone)
        if old is not None and (
            old.number.status != number.status or old.number.quality_rating != number.quality_rating
        ):
            changed.append(phone)
    changed.sort()
    return changed


changed_numbers = at_once(_changed_steps)


def _track_steps(
    prev: Mapping[str, model.TrackedNumber], found: Mapping[str, model.PhoneNumber], now: float
) -> Steps[dict[str, model.TrackedNumber]]:
    """The tracked numbers after a reading: a number unchanged keeps its very object (the store reuses its
    rendered chunks); a changed one advances its change times."""
    tracked = {}
    for i, (phone, number) in enumerate(found.items()):
        if not i % STEP:
            yield
        old = prev.get(phone)
        if old is None:
            tracked[phone] = model.TrackedNumber(number, model.ChangeTimes.first_seen(now))
        elif old.number == number:
            tracked[phone] = old
        else:
            tracked[phone] = model.TrackedNumber(number, old.changes.advanced(old.number, number, now))
    return tracked


track = at_once(_track_steps)


@dataclass(frozen=True)
class PollFold:
    """What one poll's unit outcomes make of an account's numbers (see :func:`fold_poll`)."""

    found: dict[str, model.PhoneNumber]
    wabas: dict[str, model.Waba]
    configured: dict[str, tuple[str, bool]]
    space_ok: dict[str, bool]
    #: (unit id, error) of every failure, whole units and partial ones
    failures: list[tuple[str, ProviderError]]
    number_last_success: dict[str, float]
    space_last_success: dict[str, float]
    #: numbers listed twice, by unit (the first of each is kept)
    twice: dict[str, list[str]]
    dropped: int
    #: some unit answered at all: the credential itself works
    any_unit_ok: bool


def fold_poll_steps(
    unit_ids: list[str],
    outcomes: Sequence[UnitResult | ProviderError],
    prev_numbers: Mapping[str, model.TrackedNumber],
    prev_wabas: Mapping[str, model.Waba],
    number_last_success: Mapping[str, float],
    space_last_success: Mapping[str, float],
    now: float,
    max_staleness: float,
    max_numbers: int = 0,
) -> Steps[PollFold]:
    """Fold one poll's outcomes (a UnitResult, or the exception that refused the whole unit, per unit).

    A unit that failed keeps its numbers' last good data while they are
    younger than ``max_staleness`` (likewise numbers a unit marked stale); its
    WABA goes once the unit has not answered for ``max_staleness``.  Beyond
    ``max_numbers`` the numbers sorting last are left out.
    """
    found: dict[str, model.PhoneNumber] = {}
    wabas = dict(prev_wabas)
    configured: dict[str, tuple[str, bool]] = {}
    space_ok: dict[str, bool] = {}
    failures: list[tuple[str, ProviderError]] = []
    last_ok = dict(number_last_success)
    space_last = dict(space_last_success)
    twice: dict[str, list[str]] = {}
    yield

    def keep_last_good(phone: str) -> None:
        old = prev_numbers.get(phone)
        if old is not None and phone not in found and now - last_ok.get(phone, now) <= max_staleness:
            found[phone] = old.number

    for sid, result in zip(unit_ids, outcomes, strict=True):
        if isinstance(result, Exception):
            failures.append((sid, result))
            space_ok[sid] = False
            for i, (phone, tracked) in enumerate(prev_numbers.items()):
                if tracked.number.space_id == sid:
                    keep_last_good(phone)
                if not i % STEP:
                    yield
            if now - space_last.get(sid, now) > max_staleness:
                wabas.pop(sid, None)
            continue
        for i, number in enumerate(result.numbers):
            if not i % STEP:
                yield
            if number.phone_number in found:
                twice.setdefault(sid, []).append(number.phone_number)
                continue
            found[number.phone_number] = number
            last_ok[number.phone_number] = now
        for phone in result.stale:
            keep_last_good(phone)
        if isinstance(result.waba, model.Waba):
            wabas[sid] = result.waba
        elif result.waba is None:
            wabas.pop(sid, None)  # UNCHANGED: the WABA was not looked up this time
        failures.extend((sid, err) for err in result.errors)
        for phone, ok in result.configured.items():
            configured[phone] = (sid, ok)
        space_ok[sid] = not result.errors and not result.stale
        if space_ok[sid]:
            space_last[sid] = now
    dropped = 0
    if max_numbers and len(found) > max_numbers:
        keep = sorted(found)[:max_numbers]
        dropped = len(found) - len(keep)
        yield
        found = {phone: found[phone] for phone in keep}
    kept = {}
    for i, (phone, t) in enumerate(last_ok.items()):
        if phone in found:
            kept[phone] = t
        if not i % STEP:
            yield
    return PollFold(
        found,
        wabas,
        configured,
        space_ok,
        failures,
        kept,
        space_last,
        twice,
        dropped,
        any(not isinstance(o, Exception) for o in outcomes),
    )


fold_poll = at_once(fold_poll_steps)


@dataclass(frozen=True)
class PollStep:
    """An account's numbers after one poll (see :func:`poll_step`)."""

    fold: PollFold
    #: the tracked numbers to publish
    numbers: dict[str, model.TrackedNumber]
    #: numbers whose status or quality rating changed (none on the first poll)
    changed: list[str]


def poll_step_steps(
    fold: PollFold,
    prev_numbers: Mapping[str, model.TrackedNumber],
    refreshed_at: Mapping[str, float],
    health_read_at: Mapping[str, float],
    now: float,
    tracked_at: float,
    *,
    first: bool = False,
) -> Steps[PollStep]:
    """A poll's fold (:func:`fold_poll`) made the account's next numbers, keeping what is newer than the poll.

    ``refreshed_at`` holds the numbers a webhook refresh re-read after the poll
    started (``now``): their current reading is newer than the poll's.  Health
    read after the poll started likewise stays (:func:`newer_health`).  The
    numbers are tracked at ``tracked_at``.
    """
    found = dict(fold.found)
    yield
    for phone in refreshed_at:
        if phone in found and phone in prev_numbers:
            found[phone] = prev_numbers[phone].number
    if health_read_at:
        found.update((yield from _newer_health_steps(prev_numbers, found, health_read_at, now)))
    changed = [] if first else (yield from _changed_steps(prev_numbers, found))
    tracked = yield from _track_steps(prev_numbers, found, tracked_at)
    return PollStep(fold, tracked, changed)


poll_step = at_once(poll_step_steps)
