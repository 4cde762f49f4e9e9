"""Memory: peak and steady-state RSS of the exporter at 10k and 50k numbers over 10 poll cycles, with change waves.

The exporter runs as ``python -m exporter`` in a process of its own (a black
box: only its ``/metrics`` and ``/proc/<pid>/status`` are read), against the
fleet emulator in another process (spaces of 100 numbers, 10 % of them on
looping timelines), as one CAMS account polled every ``--interval`` seconds
(by default 5 s per 25,000 numbers, at least 5 s) at 1,000 QPS with 16 spaces
at once, no WABA polls or health sweeps.  Each cycle is one poll, seen
published by a gzip scrape as Prometheus scrapes (with ``--plain``, an
uncompressed scrape too: the plain body is then joined once per generation
and kept until the next change, one more copy of the body); then the
exporter's RSS is read.  After every cycle a change wave makes the emulator
change ``--change`` of the numbers (status and quality rating), so each
following poll re-renders that many numbers: a leak on the re-render path
shows as growth.  Target: RSS within 5 % from cycle 2 to the last.

With ``--baseline REF`` the same measurement runs first against git REF
(checked out into a temporary worktree under /tmp, removed afterwards), and
both are printed, one row each.

Usage:  python -m bench.memory [SIZES...] [--active|--all] [--plain] [--cycles N] [--change SHARE] [--interval S]
                              [--baseline REF] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench._blackbox import Exporter, Fleet, PollWatcher, Tree, cams_config, get, machine_note, trees

PER_SPACE = 100
ACCOUNT = "bench-0"


def run(tree: Tree, fleet: Fleet, args: argparse.Namespace, interval: float, workdir: Path) -> dict:
    config = cams_config(
        fleet, poll_interval=interval, qps=1000, concurrency=16, state_sets=args.state_sets, unpaced=True
    )
    rss, changed = [], 0
    with Exporter(tree, config, workdir) as exp:
        watch = PollWatcher(exp, ACCOUNT)
        for cycle in range(args.cycles):
            watch.next_poll(timeout=interval * 3 + 300)  # its exposition, scraped with gzip
            if args.plain:
                get(exp.port, "/metrics", gz=False, timeout=120)
            rss.append(exp.rss_mib())
            if args.change > 0 and cycle < args.cycles - 1:
                changed = fleet.wave(args.change)
        peak = exp.peak_rss_mib()
    return {"rss": rss, "peak": peak, "changed": changed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[10_000, 50_000], help="numbers (default 10000 50000)")
    parser.add_argument(
        "--active",
        dest="state_sets",
        action="store_const",
        const="active",
        help="state_sets: active (the exporter's default since issue 17)",
    )
    parser.add_argument("--all", dest="state_sets", action="store_const", const="all", help="state_sets: all")
    parser.add_argument("--plain", action="store_true", help="an uncompressed scrape after each poll too")
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument(
        "--change",
        type=float,
        default=0.05,
        help="share of the numbers changed after each cycle (default 0.05; 0: none)",
    )
    parser.add_argument("--interval", type=float, default=None, help="poll interval in seconds (default by size)")
    parser.add_argument("--baseline", metavar="REF", help="also measure git REF (a temporary worktree), side by side")
    parser.add_argument("--workdir", help="where configs and exporter logs go (default: a new temporary directory)")
    args = parser.parse_args(argv)
    if args.cycles < 3:
        parser.error("--cycles must be at least 3")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-memory-"))
    print(f"machine: {machine_note()}; work directory {workdir}", flush=True)
    mode = args.state_sets or "default"
    print()
    print(
        f"| numbers | state_sets | tree | peak RSS | RSS after each of {args.cycles} cycles (MiB) | "
        f"cycle 2 -> {args.cycles} | max - min over cycles 2-{args.cycles} |"
    )
    print("|---|---|---|---|---|---|---|")
    with trees(args.baseline) as under_test:
        for size in args.sizes:
            interval = args.interval or max(5.0, 5.0 * size / 25_000)
            with Fleet(max(1, size // PER_SPACE), PER_SPACE, timelines=True) as fleet:
                for i, tree in enumerate(under_test):
                    r = run(tree, fleet, args, interval, workdir / f"{size}-tree-{i}")
                    rss = r["rss"]
                    steady = rss[1:]
                    print(
                        f"| {size:,} | {mode}{' (plain scrapes too)' if args.plain else ''} | {tree.label} | "
                        f"{r['peak']:.0f} MiB | {', '.join(f'{v:.0f}' for v in rss)} | "
                        f"{(rss[-1] - rss[1]) / rss[1]:+.1%} | {(max(steady) - min(steady)) / min(steady):.1%} |",
                        flush=True,
                    )
    print(f"\nchange waves: {args.change:.0%} of the numbers (status and quality rating) after each cycle")


if __name__ == "__main__":
    main()
