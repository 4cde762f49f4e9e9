"""Pure functions that fold new readings into an account's next state.

Nothing here does I/O or keeps state: each function takes what the account
held and what was just read (a poll, a health sweep, a webhook) and returns
what it holds next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exporter import model


def business_limits(
    numbers: Iterable[model.PhoneNumber], told: Mapping[str, model.BusinessLimit], read_at: float
) -> dict[str, model.BusinessLimit]:
    """The messaging limit of every business portfolio the numbers belong to.

    A number whose tier is its portfolio's (:attr:`~model.PhoneNumber.shares_portfolio_limit`)
    reports the portfolio's limit, read at ``read_at``.  ``told`` holds what
    webhooks said (``business_capability_update``): a webhook newer than the
    reading wins, until the next reading.  A business none of the numbers
    belongs to any more is dropped.
    """
    read: dict[str, str] = {}
    for number in numbers:
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


def newer_health(
    current: Mapping[str, model.TrackedNumber],
    polled: Mapping[str, model.PhoneNumber],
    health_read_at: Mapping[str, float],
    poll_started: float,
) -> dict[str, model.PhoneNumber]:
    """Polled numbers whose health was read (and published) after the poll started: with that newer health.

    A poll enriches its numbers with the health known when it read them; a
    health sweep running meanwhile may have published a newer reading, which
    the poll must not overwrite with the older one.
    """
    out = {}
    for phone, read_at in health_read_at.items():
        if read_at < poll_started or phone not in polled or phone not in current:
            continue
        have = current[phone].number
        out[phone] = polled[phone].with_health(
            model.Health(have.can_send_message, have.entities, have.blocking_errors, have.business_id)
        )
    return out


def changed_numbers(before: Mapping[str, model.TrackedNumber], after: Mapping[str, model.PhoneNumber]) -> list[str]:
    """Numbers whose status or quality rating differs from before (not new ones): their health is read first."""
    return sorted(
        phone
        for phone, number in after.items()
        if phone in before
        and (
            before[phone].number.status != number.status or before[phone].number.quality_rating != number.quality_rating
        )
    )
