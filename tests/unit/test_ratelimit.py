"""The per-credential budget, on a fake clock: exact, never a window over budget."""

import threading

import pytest
from hypothesis import given, settings, strategies as st

from exporter.ratelimit import TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def max_in_window(times, window=1.0):
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def take(bucket, clock, n):
    times = []
    for _ in range(n):
        assert bucket.acquire()
        times.append(clock.now)
    return times


def test_calls_are_paced_evenly():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep, margin=0.0)
    times = take(bucket, clock, 25)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps == pytest.approx([0.1] * 24)
    assert max_in_window(times) == 10


def test_the_margin_keeps_closed_windows_within_budget():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    times = take(bucket, clock, 100)
    closed = max(sum(1 for u in times if t <= u <= t + 1.0) for t in times)
    assert closed == 10


@given(qps=st.integers(min_value=1, max_value=50), n=st.integers(min_value=1, max_value=300),
       gaps=st.lists(st.floats(min_value=0, max_value=0.3), max_size=300))
@settings(max_examples=60, deadline=None)
def test_no_one_second_window_exceeds_budget(qps, n, gaps):
    clock = FakeClock()
    bucket = TokenBucket(qps, clock=clock, sleep=clock.sleep)
    times = []
    for i in range(n):
        if i < len(gaps):
            clock.sleep(gaps[i])
        bucket.acquire()
        times.append(clock.now)
    assert max_in_window(times) <= qps


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
    bucket.acquire()
    bucket.hold(5)
    bucket.acquire()
    assert clock.now >= 1005.0


def test_timeout_and_cancellation():
    clock = FakeClock()
    bucket = TokenBucket(1, clock=clock, sleep=clock.sleep, margin=0.0)
    assert bucket.acquire()
    assert not bucket.acquire(timeout=0.5)
    assert not bucket.acquire(cancelled=lambda: True)
    assert bucket.acquire(timeout=5)


def test_threads_share_one_budget():
    """Real clock, real threads: the log of acquisitions never exceeds the budget."""
    bucket = TokenBucket(20)
    times, lock = [], threading.Lock()

    def worker():
        for _ in range(10):
            bucket.acquire()
            with lock:
                times.append(bucket._clock())

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(times) == 50
    assert max_in_window(times) <= 20


def test_rejects_non_positive_budget():
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_an_action_limit_inside_the_credential_budget():
    """Health reads at 5/s inside a 10/s credential: neither budget is exceeded in any window, other actions
    fill the credential's remaining budget, and the slow action keeps its own pace."""
    clock = FakeClock()
    bucket = TokenBucket(10, action_qps={"GetWhatsappHealthStatus": 5, "QueryChatappPhoneNumbers": 10},
                         clock=clock, sleep=clock.sleep)
    assert bucket.action_qps == {"GetWhatsappHealthStatus": 5}  # a limit equal to the credential's never binds
    calls = []
    for i in range(120):
        action = "GetWhatsappHealthStatus" if i % 3 else "QueryChatappPhoneNumbers"
        assert bucket.acquire(action=action)
        calls.append((clock.now, action))
    health = [t for t, a in calls if a == "GetWhatsappHealthStatus"]
    assert max_in_window(health) == 5
    assert max_in_window([t for t, _ in calls]) <= 10
    gaps = [b - a for a, b in zip(health, health[1:])]
    assert min(gaps) == pytest.approx(1.025 / 5)


def test_a_call_that_waits_for_the_credential_does_not_crowd_its_action():
    """Both times advance at the instant the call goes: a health call delayed by the credential's pace is
    never followed by the next health call sooner than the action's spacing."""
    clock = FakeClock()
    bucket = TokenBucket(2, action_qps={"health": 1}, clock=clock, sleep=clock.sleep, margin=0.0)
    sent = []
    for action in ["other", "health", "other", "health", "health", "other", "health"]:
        assert bucket.acquire(action=action)
        sent.append((clock.now, action))
    health = [t for t, a in sent if a == "health"]
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(health, health[1:]))
    everything = [t for t, _ in sent]
    assert all(b - a >= 0.5 - 1e-9 for a, b in zip(everything, everything[1:]))


@given(plan=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=200))
@settings(max_examples=60, deadline=None)
def test_no_window_exceeds_either_budget(plan):
    clock = FakeClock()
    bucket = TokenBucket(7, action_qps={"a": 2, "b": 3.5}, clock=clock, sleep=clock.sleep)
    sent = []
    for action in plan:
        assert bucket.acquire(action=action)
        sent.append((clock.now, action))
    assert max_in_window([t for t, _ in sent]) <= 7
    assert max_in_window([t for t, a in sent if a == "a"]) <= 2
    assert max_in_window([t for t, a in sent if a == "b"]) <= 3
