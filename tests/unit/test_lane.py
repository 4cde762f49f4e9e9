"""The lane: one waiting task let go per pass of the event loop, in order, cancellable, one lane per loop;
none while HTTP requests are answered (nor a cyclic collection), for at most max_pause; computations cut into
steps, run at once or in slices."""

import asyncio
import gc
import itertools
import sys

import pytest

from exporter.lane import ANSWERING_SWITCH_INTERVAL, Lane, Steps, finish, lane, sliced, turn


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


def test_a_step_let_go_just_before_a_request_arrived_waits_until_it_is_answered():
    """A waiter is let go in one pass and runs in the next; a request whose header section arrives in between
    goes first: the step waits again, first in line, instead of running before the request's handler."""

    async def run() -> list[str]:
        gate, order = Lane(), []
        gate.max_pause = 60.0

        async def step(i: int) -> None:
            await gate.turn()
            order.append(f"step {i}")

        tasks = [asyncio.ensure_future(step(i)) for i in range(2)]
        await asyncio.sleep(0)  # the tasks ask for their turns; the pump is scheduled
        await asyncio.sleep(0)  # the pump has let step 0 go: its task runs in the next pass
        assert order == [] and len(gate) == 1
        gate.request_started()  # ... but a request arrives first
        for _ in range(20):
            await asyncio.sleep(0)
        order.append("answered")
        gate.request_done()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(run()) == ["answered", "step 0", "step 1"]


def test_no_cyclic_collection_while_a_request_is_answered_until_max_pause():
    async def run() -> list[bool]:
        gate = Lane()
        seen = [gc.isenabled()]
        gate.request_started()
        gate.request_started()
        seen.append(gc.isenabled())
        gate.request_done()
        seen.append(gc.isenabled())  # one request still answered
        gate.request_done()
        seen.append(gc.isenabled())
        # a pause that reaches max_pause lets one step go, and the collector too
        gate.max_pause = 0.01
        gate.request_started()
        seen.append(gc.isenabled())
        await asyncio.wait_for(gate.turn(), timeout=10)
        seen.append(gc.isenabled())
        gate.request_done()
        seen.append(gc.isenabled())
        return seen

    assert gc.isenabled()
    assert asyncio.run(run()) == [True, False, False, True, False, True, True]
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled():
    async def run() -> bool:
        gate = Lane()
        gate.request_started()
        gate.request_done()
        return gc.isenabled()

    gc.disable()
    try:
        assert asyncio.run(run()) is False
    finally:
        gc.enable()


def counting(n: int, log: list[int]) -> Steps[int]:
    """A computation of ``n`` steps that records each step and returns their sum."""
    total = 0
    for i in range(n):
        log.append(i)
        total += i
        yield
    return total


def test_finish_runs_every_step_at_once_and_returns_the_result():
    log: list[int] = []
    assert finish(counting(5, log)) == 10
    assert log == [0, 1, 2, 3, 4]


def test_sliced_runs_each_slice_in_a_turn_of_its_own_and_lets_callbacks_run_between():
    """With a budget of 0, every step is a slice: a callback scheduled by a step (an arriving scrape) runs
    before the next step, and no two slices share a pass of the loop."""

    async def run() -> tuple[int, list[object], list[int]]:
        passes, order, at = Passes(), [], []
        passes.start()

        def steps() -> Steps[int]:
            for i in range(4):
                order.append(i)
                at.append(passes.count)
                asyncio.get_running_loop().call_soon(order.append, f"callback {i}")
                yield
            return 42

        result = await sliced(steps(), budget=0.0)
        passes.running = False
        return result, order, at

    result, order, at = asyncio.run(run())
    assert result == 42
    assert order == [0, "callback 0", 1, "callback 1", 2, "callback 2", 3, "callback 3"]
    assert all(later > earlier for earlier, later in itertools.pairwise(at)), at


def test_sliced_with_a_long_budget_runs_several_steps_per_slice():
    async def run() -> tuple[int, int]:
        passes, log = Passes(), []
        passes.start()
        first = passes.count
        result = await sliced(counting(1000, log), budget=60.0)
        passes.running = False
        return result, passes.count - first

    result, passes_taken = asyncio.run(run())
    assert result == sum(range(1000))
    assert passes_taken < 10  # one slice (and its turn), not a thousand


def test_a_cancelled_sliced_computation_is_closed_and_never_resumes():
    async def run() -> tuple[list[str], int]:
        events: list[str] = []

        def steps() -> Steps[None]:
            try:
                for _ in range(10_000):
                    events.append("step")
                    yield
            finally:
                events.append("closed")

        task = asyncio.ensure_future(sliced(steps(), budget=0.0))
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        done = len(events)
        for _ in range(5):
            await asyncio.sleep(0)
        return events, done

    events, done = asyncio.run(run())
    assert events[-1] == "closed" and len(events) == done
    assert 1 <= events.count("step") < 10_000
