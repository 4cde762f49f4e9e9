"""The lane: one waiting task let go per pass of the event loop, in order, cancellable, one lane per loop;
none while HTTP requests are answered, for at most max_pause."""

import asyncio
import itertools
import sys

import pytest

from exporter.lane import ANSWERING_SWITCH_INTERVAL, Lane, lane, turn


class Passes:
    """Counts the event loop's passes: a callback that schedules itself again runs once in every pass."""

    def __init__(self) -> None:
        self.count = 0
        self.running = True

    def start(self) -> None:
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        if self.running:
            asyncio.get_running_loop().call_soon(self._tick)


def test_waiters_go_one_per_pass_of_the_loop_in_the_order_they_asked():
    async def run() -> list[tuple[int, int]]:
        gate, passes, resumed = Lane(), Passes(), []
        passes.start()

        async def step(i: int) -> None:
            await gate.turn()
            resumed.append((i, passes.count))

        await asyncio.gather(*(step(i) for i in range(6)))
        passes.running = False
        return resumed

    resumed = asyncio.run(run())
    assert [i for i, _ in resumed] == list(range(6))
    at = [p for _, p in resumed]
    assert all(later > earlier for earlier, later in itertools.pairwise(at)), at  # never two in the same pass


def test_a_scrape_between_two_steps_is_served_before_the_next_step():
    """A callback that becomes ready while steps wait (an arriving scrape) runs before the next waiter's step."""

    async def run() -> list[str]:
        gate, order = Lane(), []

        async def step(i: int) -> None:
            await gate.turn()
            order.append(f"step {i}")
            if i == 0:
                asyncio.get_running_loop().call_soon(order.append, "scrape")

        await asyncio.gather(*(step(i) for i in range(3)))
        return order

    assert asyncio.run(run()) == ["step 0", "scrape", "step 1", "step 2"]


def test_a_cancelled_waiter_is_skipped_and_the_lane_keeps_going():
    async def run() -> tuple[list[int], bool]:
        gate, done = Lane(), []

        async def step(i: int) -> None:
            await gate.turn()
            done.append(i)

        tasks = [asyncio.ensure_future(step(i)) for i in range(4)]
        await asyncio.sleep(0)  # every task waits for its turn
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return done, isinstance(results[1], asyncio.CancelledError) and len(gate) == 0

    done, cancelled = asyncio.run(run())
    assert done == [0, 2, 3]
    assert cancelled


def test_a_lone_turn_returns_and_each_loop_has_its_own_lane():
    async def run() -> Lane:
        await turn()
        await turn()
        assert lane() is lane()
        return lane()

    first, second = asyncio.run(run()), asyncio.run(run())
    assert first is not second


def test_the_lane_needs_a_running_loop():
    with pytest.raises(RuntimeError):
        lane()


def test_no_waiter_goes_while_a_request_is_answered_and_the_next_goes_once_it_is():
    async def run() -> list[str]:
        gate, order = Lane(), []
        gate.max_pause = 60.0  # longer than the test: only request_done() can end the pause

        async def step(i: int) -> None:
            await gate.turn()
            order.append(f"step {i}")

        gate.request_started()
        tasks = [asyncio.ensure_future(step(i)) for i in range(2)]
        for _ in range(20):  # many passes of the loop: the steps still wait
            await asyncio.sleep(0)
        order.append(f"answered, {len(gate)} waiting")
        gate.request_done()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(run()) == ["answered, 2 waiting", "step 0", "step 1"]


def test_requests_answered_without_end_hold_each_step_for_max_pause_and_no_longer():
    """A slow or endless stream of requests slows a poll to one step per max_pause; it never stops it."""

    async def run() -> list[float]:
        gate = Lane()
        gate.max_pause = 0.02
        loop = asyncio.get_running_loop()
        started = loop.time()
        gate.request_started()  # never done
        went = []

        async def step() -> None:
            await gate.turn()
            went.append(loop.time())

        await asyncio.wait_for(asyncio.gather(*(step() for _ in range(3))), timeout=10)
        return [started, *went]

    at = asyncio.run(run())
    gaps = [later - earlier for earlier, later in itertools.pairwise(at)]
    assert len(gaps) == 3
    assert all(gap >= 0.02 * 0.99 for gap in gaps), gaps  # asyncio's timers may fire a hair early (clock resolution)


def test_the_switch_interval_is_short_while_requests_are_answered_and_restored_after():
    async def run() -> tuple[float, float, float]:
        gate = Lane()
        gate.request_started()
        gate.request_started()  # two at once: restored after the last
        during = sys.getswitchinterval()
        gate.request_done()
        still = sys.getswitchinterval()
        gate.request_done()
        return during, still, sys.getswitchinterval()

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        during, still, after = asyncio.run(run())
    finally:
        sys.setswitchinterval(before)
    assert during == still == pytest.approx(ANSWERING_SWITCH_INTERVAL)
    assert after == pytest.approx(0.0005)


def test_request_done_without_a_started_request_is_a_bug():
    async def run() -> None:
        Lane().request_done()

    with pytest.raises(RuntimeError, match="without request_started"):
        asyncio.run(run())
