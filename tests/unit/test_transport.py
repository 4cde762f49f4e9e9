"""The shared caller: bounded retries, jittered backoff, the budget taken for every attempt."""

import asyncio

import pytest

from exporter.providers.errors import ProviderError
from exporter.providers.transport import BudgetedClient, backoff
from exporter.ratelimit import TokenBucket


def test_backoff_is_jittered_exponential_and_capped():
    err = ProviderError("upstream", "x")
    for attempt in range(8):
        values = {round(backoff(attempt, err), 6) for _ in range(50)}
        assert len(values) > 40  # jitter
        assert all(0.25 <= v <= min(30.0, 0.5 * 2**attempt) for v in values)
    throttled = ProviderError("throttled", "x")
    assert all(0.5 <= backoff(0, throttled) <= 1.0 for _ in range(50))


def test_retry_after_wins_but_is_bounded():
    assert 7.0 <= backoff(0, ProviderError("throttled", "x", retry_after=7)) <= 7.5
    assert backoff(0, ProviderError("throttled", "x", retry_after=3600)) <= 60.5


class Clock:
    now = 0.0

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize(
    "reason,attempts",
    [("upstream", 4), ("timeout", 4), ("throttled", 4), ("auth", 1), ("permission", 1), ("request", 1), ("parse", 1)],
)
def test_only_transient_reasons_are_retried_and_each_attempt_is_budgeted(reason, attempts):
    clock = Clock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    seen = []
    client = BudgetedClient(bucket=bucket, on_request=lambda action, r: seen.append(r), sleep=clock.sleep)

    async def attempt():
        raise ProviderError(reason, "nope")

    async def run():
        try:
            with pytest.raises(ProviderError) as err:
                await client.call("Action", attempt)
            return err
        finally:
            await client.aclose()

    err = asyncio.run(run())
    assert err.value.action == "Action"
    assert seen == [reason] * attempts
    assert bucket.acquired == attempts


def test_a_retry_that_succeeds_reports_both_attempts():
    clock = Clock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    seen = []
    client = BudgetedClient(bucket=bucket, on_request=lambda action, r: seen.append(r), sleep=clock.sleep)
    answers = iter([ProviderError("timeout", "slow"), "ok"])

    async def attempt():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def run():
        try:
            return await client.call("Action", attempt)
        finally:
            await client.aclose()

    assert asyncio.run(run()) == "ok"
    assert seen == ["timeout", None]
