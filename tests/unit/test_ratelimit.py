"""The per-credential budget (an asyncio primitive), on a fake clock: exact, never a window over budget."""

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.ratelimit import BucketClosed, TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.now += seconds
        await asyncio.sleep(0)


def max_in_window(times, window=1.0):
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def take(bucket, clock, n):
    async def run():
        times = []
        for _ in range(n):
            await bucket.acquire()
            times.append(clock.now)
        return times

    return asyncio.run(run())


def sent_log(bucket, clock, plan):
    """Acquire one token per action of ``plan`` in order; (time, action) of each."""

    async def run():
        sent = []
        for action in plan:
            await bucket.acquire(action=action)
            sent.append((clock.now, action))
        return sent

    return asyncio.run(run())


def test_calls_are_paced_evenly():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep, margin=0.0)
    times = take(bucket, clock, 25)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1] * 24)
    assert max_in_window(times) == 10


def test_the_margin_keeps_closed_windows_within_budget():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    times = take(bucket, clock, 100)
    closed = max(sum(1 for u in times if t <= u <= t + 1.0) for t in times)
    assert closed == 10


@given(
    qps=st.integers(min_value=1, max_value=50),
    n=st.integers(min_value=1, max_value=300),
    gaps=st.lists(st.floats(min_value=0, max_value=0.3), max_size=300),
)
@settings(max_examples=60, deadline=None)
def test_no_one_second_window_exceeds_budget(qps, n, gaps):
    clock = FakeClock()
    bucket = TokenBucket(qps, clock=clock, sleep=clock.sleep)

    async def run():
        times = []
        for i in range(n):
            if i < len(gaps):
                clock.now += gaps[i]
            await bucket.acquire()
            times.append(clock.now)
        return times

    assert max_in_window(asyncio.run(run())) <= qps


def test_fractional_budget_below_one():
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock, sleep=clock.sleep, margin=0.0)
    times = take(bucket, clock, 3)
    assert [t - 1000 for t in times] == pytest.approx([0, 2, 4])


def test_fractional_budget_above_one_rounds_down():
    bucket = TokenBucket(2.7, margin=0.0)
    assert bucket.interval == pytest.approx(0.5)


def test_throughput_is_the_budget():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep, margin=0.0)
    times = take(bucket, clock, 1000)
    # 1000 calls at 10/s: 999 spacings of 0.1 s.
    assert times[-1] - times[0] == pytest.approx(99.9)


def test_hold_pauses_everyone():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)

    async def run():
        await bucket.acquire()
        bucket.hold(5)
        await bucket.acquire()

    asyncio.run(run())
    assert clock.now >= 1005.0


def test_a_cancelled_waiter_takes_no_token_and_leaves_the_queue():
    """Real clock: a waiter cancelled while queued does not delay the one behind it by a spacing."""
    bucket = TokenBucket(2, margin=0.0)

    async def run():
        await bucket.acquire()
        first = asyncio.create_task(bucket.acquire())
        second = asyncio.create_task(bucket.acquire())
        await asyncio.sleep(0.05)
        first.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        return first.cancelled(), second.done() and not second.cancelled()

    assert asyncio.run(run()) == (True, True)
    assert bucket.acquired == 2


def test_waiters_are_served_first_come_first_served():
    """Units of one credential queue fairly: tokens go in the order the callers asked."""
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock, sleep=clock.sleep)
    order = []

    async def unit(name):
        for _ in range(4):
            await bucket.acquire()
            order.append(name)

    async def run():
        await bucket.acquire()  # the next token is due later: every unit has to queue
        await asyncio.gather(*(unit(n) for n in "abc"))

    asyncio.run(run())
    assert order == list("abc" * 4)


def test_a_closed_bucket_refuses():
    bucket = TokenBucket(1)

    async def run():
        await bucket.acquire()
        bucket.close()
        with pytest.raises(BucketClosed):
            await bucket.acquire()

    asyncio.run(run())


def test_tasks_share_one_budget():
    """Real clock, many tasks: the log of acquisitions never exceeds the budget."""
    bucket = TokenBucket(20)
    times = []

    async def worker():
        for _ in range(10):
            await bucket.acquire()
            times.append(bucket._clock())

    async def run():
        await asyncio.gather(*(worker() for _ in range(5)))

    asyncio.run(run())
    assert len(times) == 50
    assert max_in_window(times) <= 20


def test_rejects_non_positive_budget():
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_an_action_limit_inside_the_credential_budget():
    """Health reads at 5/s inside a 10/s credential: neither budget is exceeded in any window, other actions
    fill the credential's remaining budget, and the slow action keeps its own pace."""
    clock = FakeClock()
    bucket = TokenBucket(
        10, action_qps={"GetWhatsappHealthStatus": 5, "QueryChatappPhoneNumbers": 10}, clock=clock, sleep=clock.sleep
    )
    assert bucket.action_qps == {"GetWhatsappHealthStatus": 5}  # a limit equal to the credential's never binds
    calls = sent_log(
        bucket, clock, ["GetWhatsappHealthStatus" if i % 3 else "QueryChatappPhoneNumbers" for i in range(120)]
    )
    health = [t for t, a in calls if a == "GetWhatsappHealthStatus"]
    assert max_in_window(health) == 5
    assert max_in_window([t for t, _ in calls]) <= 10
    gaps = [b - a for a, b in itertools.pairwise(health)]
    assert min(gaps) == pytest.approx(1.025 / 5)


def test_a_call_that_waits_for_the_credential_does_not_crowd_its_action():
    """Both times advance at the instant the call goes: a health call delayed by the credential's pace is
    never followed by the next health call sooner than the action's spacing."""
    clock = FakeClock()
    bucket = TokenBucket(2, action_qps={"health": 1}, clock=clock, sleep=clock.sleep, margin=0.0)
    sent = sent_log(bucket, clock, ["other", "health", "other", "health", "health", "other", "health"])
    health = [t for t, a in sent if a == "health"]
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(health))
    everything = [t for t, _ in sent]
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(everything))


@given(plan=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=200))
@settings(max_examples=60, deadline=None)
def test_no_window_exceeds_either_budget(plan):
    clock = FakeClock()
    bucket = TokenBucket(7, action_qps={"a": 2, "b": 3.5}, clock=clock, sleep=clock.sleep)
    sent = sent_log(bucket, clock, plan)
    assert max_in_window([t for t, _ in sent]) <= 7
    assert max_in_window([t for t, a in sent if a == "a"]) <= 2
    assert max_in_window([t for t, a in sent if a == "b"]) <= 3
