"""Exporter CPU per poll cycle, per 1,000 numbers, with the exporter as a black box.

The exporter (``python -m exporter``, its own process) polls a fleet emulator
(its own process) of ``--numbers`` numbers (spaces of 100) as one CAMS
account (1,000 QPS, QueryChatappPhoneNumbers' own limit raised to it, 16
spaces at once; no WABA polls, no health sweeps), every ``--interval``
seconds.  After each poll the emulator changes ``--change`` of the numbers
(status and quality rating), so every poll re-renders some numbers.  The bench
watches for each published poll with one gzip scrape every 0.5 s (as a
Prometheus would, decompressed only when the exposition changed) and reads
the exporter's user + system CPU time from ``/proc/<pid>/stat`` when it sees
a poll's end, over ``--cycles`` polls.

*Idle* is the same exporter and fleet with a poll interval of an hour: after
its first poll, its CPU over ``--idle`` seconds under the same watching
scrapes.  CPU per cycle = (CPU over the cycles - idle CPU per second x their
duration) / cycles, then divided by the thousands of numbers.  Target: the new
runtime within 1.2x of the old one.

With ``--baseline REF`` the same measurement runs first against git REF
(checked out into a temporary worktree under /tmp, removed afterwards), and
the two columns are printed side by side.

Usage:  python -m bench.poll_cpu [--numbers 10000] [--interval 5] [--cycles 10] [--change 0.01] [--idle 20]
                                [--state-sets active|all] [--baseline REF] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench._blackbox import Exporter, Fleet, PollWatcher, Tree, add_run_options, cams_config, compare

PER_SPACE = 100
ACCOUNT = "bench-0"


def idle_rate(tree: Tree, fleet: Fleet, args: argparse.Namespace, workdir: Path) -> float:
    """CPU seconds per second of the exporter between polls, under the watching scrapes."""
    config = cams_config(fleet, poll_interval=3600, qps=1000, concurrency=16, state_sets=args.state_sets, unpaced=True)
    with Exporter(tree, config, workdir) as exp:
        watch = PollWatcher(exp, ACCOUNT)
        watch.next_poll(timeout=300)
        time.sleep(2)  # the first poll's aftermath (compression of its exposition, collection)
        cpu0, t0 = exp.cpu_seconds(), time.monotonic()
        while time.monotonic() - t0 < args.idle:
            watch._check()
            time.sleep(watch.every)
        return (exp.cpu_seconds() - cpu0) / (time.monotonic() - t0)


def measure(tree: Tree, fleet: Fleet, args: argparse.Namespace, workdir: Path) -> dict:
    idle = idle_rate(tree, fleet, args, workdir / "idle")
    config = cams_config(
        fleet, poll_interval=args.interval, qps=1000, concurrency=16, state_sets=args.state_sets, unpaced=True
    )
    durations = []
    with Exporter(tree, config, workdir / "polling") as exp:
        watch = PollWatcher(exp, ACCOUNT)
        watch.next_poll(timeout=300)  # the first poll renders everything: not a cycle
        if args.change > 0:
            fleet.wave(args.change)
        watch.next_poll(timeout=args.interval * 3 + 60)
        cpu0, t0 = exp.cpu_seconds(), time.monotonic()
        for _ in range(args.cycles):
            if args.change > 0:
                fleet.wave(args.change)
            durations.append(watch.next_poll(timeout=args.interval * 3 + 60)[1])
        cpu, elapsed = exp.cpu_seconds() - cpu0, time.monotonic() - t0
        rss = exp.rss_mib()
    per_cycle = (cpu - idle * elapsed) / args.cycles
    return {
        "idle": idle,
        "cpu": cpu,
        "elapsed": elapsed,
        "raw": cpu / args.cycles,
        "per_cycle": per_cycle,
        "per_1000": per_cycle / (fleet.spaces * PER_SPACE / 1000),
        "durations": durations,
        "rss": rss,
        "scrapes": watch.scrapes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.poll_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=5, help="poll interval in seconds (default 5)")
    parser.add_argument("--cycles", type=int, default=10, help="poll cycles measured (default 10)")
    parser.add_argument(
        "--change",
        type=float,
        default=0.01,
        help="share of the numbers changed after each poll (default 0.01; 0: none)",
    )
    parser.add_argument("--idle", type=float, default=20, help="seconds of the idle measurement (default 20)")
    add_run_options(parser, state_sets=True)
    args = parser.parse_args(argv)
    fleet = Fleet(max(1, args.numbers // PER_SPACE), PER_SPACE)
    comparison = compare("poll_cpu", fleet, args, measure)
    row = comparison.table(
        f"numbers={fleet.numbers:,} (one account, {fleet.spaces} spaces); poll_interval {args.interval:g} s; "
        f"{args.cycles} cycles; {args.change:.0%} of the numbers changed after each poll; "
        f"state_sets {args.state_sets or 'default'}; idle measured over {args.idle:g} s"
    )

    row("idle CPU (ms per second)", lambda r: f"{r['idle'] * 1e3:.1f}")
    row("CPU over the cycles (s) / their duration (s)", lambda r: f"{r['cpu']:.2f} / {r['elapsed']:.1f}")
    row("CPU per cycle, before / after subtracting idle (s)", lambda r: f"{r['raw']:.3f} / {r['per_cycle']:.3f}")
    row("**CPU per cycle per 1,000 numbers (s)**", lambda r: f"**{r['per_1000']:.4f}**")
    row("poll duration p50 / max (s)", lambda r: f"{statistics.median(r['durations']):.2f} / {max(r['durations']):.2f}")
    row("RSS at the end (MiB)", lambda r: f"{r['rss']:.0f}")
    if len(comparison.results) == 2:
        base, cand = (r["per_1000"] for _, r in comparison.results)
        print(f"\ncandidate / baseline: {cand / base:.2f}x (target <= 1.20)")


if __name__ == "__main__":
    main()
