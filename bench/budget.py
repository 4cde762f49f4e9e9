"""QPS budget accuracy: 2,000 spaces x 5 numbers behind one AccessKey with a 10 QPS budget.

The emulator's own throttling is switched off (so nothing hides a breach) and
it records the arrival time of every request.  We count the requests in every
one-second window, both calendar seconds (as the emulator's limiter counts)
and sliding windows starting at every request, and compare the duration of
the full poll cycle with the floor of calls / budget.  WABA polling is off, so
a cycle is exactly one QueryChatappPhoneNumbers per space; the spaces are
polled concurrently as tasks on one event loop (the account's default
concurrency, 10 for a 10 QPS budget), all queued on the credential's asyncio
TokenBucket.
Usage:  python -m bench.budget [SPACES] [QPS]
"""

from __future__ import annotations

import asyncio
import sys
import time

from bench.common import exporter_for
from emulators.cams import CamsEmulator
from emulators.scenario import generate_fleet


def main(argv: list[str]) -> None:
    spaces = int(argv[0]) if argv else 2000
    qps = int(argv[1]) if len(argv) > 1 else 10
    scenario = generate_fleet(
        spaces=spaces,
        numbers_per_space=5,
        access_key_id="bench-ak",
        secret="bench-secret",
        qps=None,
        seed=1,
        timelines=False,
    )
    # throttling off (the documented per-action limits included), so nothing hides a breach
    with CamsEmulator(scenario, max_records=10_000_000, flow_control=False) as emu:
        _config, store, poller = exporter_for(emu.url, spaces, qps=qps, waba=False)

        async def cycle() -> float:
            """One full poll on this event loop (as the exporter runs it), its duration."""
            try:
                start = time.monotonic()
                await poller.apoll("bench")
                return time.monotonic() - start
            finally:
                await poller.aclose()

        elapsed = asyncio.run(cycle())
        arrivals = sorted(r.time for r in emu.requests)
    snap = store.account("bench")
    calls = snap.requests.get("QueryChatappPhoneNumbers", 0)
    per_second: dict[int, int] = {}
    for t in arrivals:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    sliding, j = 0, 0
    for i, t in enumerate(arrivals):
        while arrivals[j] <= t - 1.0:
            j += 1
        sliding = max(sliding, i - j + 1)
    floor = calls / qps
    print(
        f"spaces={spaces} numbers={len(snap.numbers)} calls={calls} arrivals={len(arrivals)} budget={qps}/s "
        f"success={snap.poll.success}"
    )
    print(
        f"max requests in one calendar second: {max(per_second.values())}; in any sliding 1 s window: {sliding}; "
        f"windows over budget: {sum(1 for v in per_second.values() if v > qps)}"
    )
    print(f"cycle {elapsed:.1f} s; floor (calls / budget) {floor:.1f} s; ratio {elapsed / floor:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
