"""The pure functions that fold a poll into an account's next numbers (exporter/merge.py)."""

from __future__ import annotations

from exporter import merge, model
from exporter.providers.base import UnitResult
from exporter.providers.errors import ProviderError

HOUR = 3600.0


def number(phone: str, space: str = "s1", **fields: str) -> model.PhoneNumber:
    return model.PhoneNumber(phone_number=phone, space_id=space, status=fields.pop("status", "CONNECTED"), **fields)


def tracked(*numbers: model.PhoneNumber, at: float = 0.0) -> dict[str, model.TrackedNumber]:
    return merge.track({}, {n.phone_number: n for n in numbers}, at)


def step(
    outcomes: list[UnitResult | ProviderError],
    prev: dict[str, model.TrackedNumber],
    *,
    number_last_success: dict[str, float] | None = None,
    refreshed_at: dict[str, float] | None = None,
    health_read_at: dict[str, float] | None = None,
    max_numbers: int = 0,
    first: bool = False,
) -> merge.PollStep:
    """One poll at t=100 (tracked at t=101) folded over ``prev``: fold_poll, then poll_step, as the actor does."""
    fold = merge.fold_poll(
        ["s1", "s2"][: len(outcomes)],
        outcomes,
        prev,
        {},
        {p: 0.0 for p in prev} if number_last_success is None else number_last_success,
        {},
        100.0,
        HOUR,
        max_numbers,
    )
    return merge.poll_step(fold, prev, refreshed_at or {}, health_read_at or {}, 100.0, 101.0, first=first)


def test_an_unchanged_number_keeps_its_object_and_a_changed_one_advances():
    prev = tracked(number("+1"), number("+2"))
    out = step([UnitResult([number("+1"), number("+2", status="FLAGGED")])], prev)
    assert out.numbers["+1"] is prev["+1"]  # the store reuses its rendered chunks
    assert out.numbers["+2"].number.status == "FLAGGED"
    assert out.numbers["+2"].changes.status == 101.0  # tracked at tracked_at, not at the poll's start
    assert out.numbers["+2"].changes.quality_rating == 0.0
    assert out.changed == ["+2"]


def test_the_first_poll_reports_no_changes_and_new_numbers_are_not_changes():
    prev = tracked(number("+1"))
    assert step([UnitResult([number("+1", status="FLAGGED")])], prev, first=True).changed == []
    assert step([UnitResult([number("+1"), number("+9", status="BANNED")])], prev).changed == []


def test_a_failed_unit_keeps_its_numbers_until_max_staleness():
    prev = tracked(number("+1"), number("+2", space="s2"))
    refused = ProviderError("throttled", "slow down")
    out = step([UnitResult([number("+1")]), refused], prev)
    assert set(out.numbers) == {"+1", "+2"}
    assert out.fold.space_ok == {"s1": True, "s2": False}
    assert out.fold.failures == [("s2", refused)]
    stale = step([UnitResult([number("+1")]), refused], prev, number_last_success={"+1": 0.0, "+2": 100.0 - HOUR - 1})
    assert set(stale.numbers) == {"+1"}


def test_a_number_refreshed_after_the_poll_started_keeps_its_newer_reading():
    prev = tracked(number("+1", status="FLAGGED"), number("+2"))
    polled = UnitResult([number("+1"), number("+2", status="RESTRICTED")])
    out = step([polled], prev, refreshed_at={"+1": 100.5})
    assert out.numbers["+1"].number.status == "FLAGGED"  # the webhook refresh's reading, not the poll's older one
    assert out.numbers["+2"].number.status == "RESTRICTED"
    assert out.changed == ["+2"]


def test_health_read_after_the_poll_started_is_not_overwritten():
    have = number("+1").with_health(model.Health(can_send_message="BLOCKED", business_id="b1"))
    prev = tracked(have)
    polled = UnitResult([number("+1", quality_rating="RED")])
    out = step([polled], prev, health_read_at={"+1": 100.5})
    assert out.numbers["+1"].number.can_send_message == "BLOCKED"
    assert out.numbers["+1"].number.quality_rating == "RED"
    older = step([polled], prev, health_read_at={"+1": 99.0})  # read before the poll: the poll's reading stands
    assert older.numbers["+1"].number.can_send_message == model.UNKNOWN


def test_max_numbers_leaves_out_the_numbers_sorting_last():
    out = step([UnitResult([number("+3"), number("+1"), number("+2")])], {}, max_numbers=2)
    assert sorted(out.numbers) == ["+1", "+2"]
    assert out.fold.dropped == 1
    assert sorted(out.fold.number_last_success) == ["+1", "+2"]


def test_a_number_listed_twice_is_kept_once_and_reported():
    out = step([UnitResult([number("+1", status="FLAGGED"), number("+1")])], {})
    assert out.numbers["+1"].number.status == "FLAGGED"
    assert out.fold.twice == {"s1": ["+1"]}
