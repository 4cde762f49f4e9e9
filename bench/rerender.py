"""Re-render cost: a poll that changes 1% of 10k numbers, against a full re-render.

"Ready" means the new exposition is published (Store.update returned).  Its
gzip body is compressed later, once, by the first gzip scrape (in a worker
thread; bench.scrape reports that cost per generation).  The full re-render is
the same snapshot handed to a fresh Store (every block rendered), i.e. what a
design without the block cache would do after every poll.
Usage:  python -m bench.rerender [NUMBERS] [--active]
"""

from __future__ import annotations

import dataclasses
import gc
import gzip
import random
import statistics
import sys
import time

from exporter import exposition as ex
from exporter import model
from exporter.store import AccountSnapshot, PollResult, Store


def fleet(n: int, rng: random.Random) -> dict[str, model.TrackedNumber]:
    numbers = {}
    for i in range(n):
        phone = f"+86139{i:08d}"
        number = model.PhoneNumber(
            phone,
            status=rng.choice(("CONNECTED",) * 8 + ("FLAGGED", "PENDING")),
            quality_rating=rng.choice(("GREEN", "YELLOW", "RED")),
            messaging_limit_tier=rng.choice(("TIER_1K", "TIER_10K", "TIER_250")),
            code_verification_status="VERIFIED",
            name_status="APPROVED",
            new_name_status="NONE",
            verified_name=f"Fleet Shop {i // 5}",
            space_id=f"cams-fleet-{i // 5:05d}",
            waba_id=f"2001{i // 5:011d}",
        )
        numbers[phone] = model.TrackedNumber(number, model.ChangeTimes.first_seen(1_700_000_000.0))
    return numbers


def snapshot(numbers) -> AccountSnapshot:
    return AccountSnapshot(
        name="bench",
        provider="alibaba_cams",
        poll_interval=60,
        qps=10,
        numbers=numbers,
        actions=("QueryChatappPhoneNumbers", "QueryChatappBindWaba"),
        poll=PollResult(True, 1.7e9, 1.0, 1.7e9, {}),
    )


def main(argv: list[str]) -> None:
    n = next((int(a) for a in argv if a.isdigit()), 10_000)
    options = ex.RenderOptions(state_sets="active") if "--active" in argv else ex.DEFAULT_OPTIONS
    rng = random.Random(7)
    numbers = fleet(n, rng)
    store = Store(options=options)
    store.update(snapshot(numbers))
    full, incremental = [], []
    for round_ in range(7):
        changed = dict(numbers)
        for phone in rng.sample(list(numbers), n // 100):
            old = changed[phone]
            new = dataclasses.replace(
                old.number, quality_rating=rng.choice(("GREEN", "YELLOW", "RED")), status="FLAGGED"
            )
            changed[phone] = model.TrackedNumber(new, old.changes.advanced(old.number, new, 1.7e9 + round_))
        snap = snapshot(changed)
        gc.collect()  # both timings start from a clean heap, so a collection triggered by the benchmark's
        start = time.perf_counter()  # own garbage is not charged to either side
        store.update(snap)
        incremental.append(time.perf_counter() - start)
        fresh = Store(options=options)
        gc.collect()
        start = time.perf_counter()
        fresh.update(snap)
        full.append(time.perf_counter() - start)
        assert fresh.exposition.body == store.exposition.body
        assert gzip.decompress(store.exposition.gzipped) == store.exposition.body
        del fresh
        numbers = changed
    f, i = statistics.median(full), statistics.median(incremental)
    print(f"numbers={n} state_sets={options.state_sets} changed=1% rounds={len(full)}")
    print(
        f"full re-render median {f * 1e3:.0f} ms; incremental (1% changed) median {i * 1e3:.0f} ms; ratio {i / f:.1%}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
