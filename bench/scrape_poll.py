"""Scrapes during a poll: /metrics latency while a full poll is parsed and published, against idle.

The exporter (``python -m exporter``, its own process) polls a fleet emulator
(its own process) of ``--numbers`` numbers (spaces of 100) as one CAMS
account, every ``--interval`` seconds with no jitter, at a budget high enough
(1,000 QPS, QueryChatappPhoneNumbers' own documented limit of 10 per second
raised to it, 16 spaces at once) that a poll is as fast as the exporter can
parse and publish it: its CPU is concentrated, the worst case for scrapes.
Between two polls the emulator changes ``--change`` of the numbers (status
and quality rating), so every poll publishes a new
exposition with re-rendered numbers.

A scraper in another process (``bench/_scraper.py``: ``http.client``, one
keep-alive connection, gzip as Prometheus asks for it) scrapes every
``--every`` seconds for ``--seconds``.  Each scrape's latency is from sending
the request to having read the whole (compressed) body.  A poll's busy window
runs from its start (the exporter's own ``last_poll_timestamp - duration``)
to the end of the first scrape that returned its new exposition (so it
includes the publication, and the one compression of the new generation,
which the first gzip scrape waits for).  The bench reads each poll's start
and end from ``/metrics`` once a second; the scraper tells a new exposition
by its bytes, not decompressing it.  A scrape is *busy* when it overlaps
a busy window and *idle* when it starts more than 0.5 s away from every one
(and is not the first scrape of an exposition published between polls).
The ratio of the two p99s is the figure of merit (target <= 2).

The emulator and the scraper run on the same machine as the exporter; on a
small machine they compete with it for the cores during a poll (in
production the provider is elsewhere).  The emulator runs at the lowest CPU
priority (nice 19), so that it takes the CPU time the exporter and the
scraper leave and never keeps the scraper (Prometheus' stand-in) waiting
for a CPU: it stands in for a service on other machines.  ``--pin`` (Linux)
keeps the exporter on the first CPU and the emulator and the scraper on the
others, so that the exporter's own share of the busy latency can be told
from that competition.

With ``--baseline REF`` the same measurement runs first against git REF
(checked out into a temporary worktree under /tmp, removed afterwards), and
the two columns are printed side by side.

Usage:  python -m bench.scrape_poll [--numbers 10000] [--interval 10] [--seconds 120] [--every 0.05]
                                   [--change 0.01] [--state-sets active|all] [--pin] [--baseline REF] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._blackbox import (
    ROOT,
    Exporter,
    Fleet,
    Tree,
    add_run_options,
    cams_config,
    compare,
    on_cpus,
    percentile,
    polls,
    wait_for,
)

PER_SPACE = 100
GUARD = 0.5  # seconds around a busy window that count neither as busy nor as idle
EMULATOR_NICE = 19  # the emulator stands in for a remote service: the lowest CPU priority


def classify(scrapes: list[list], poll_list: list[tuple[float, float]]) -> dict:
    """Busy windows (one per poll) and the busy / idle scrapes of one scraper run."""
    firsts = {i for i in range(1, len(scrapes)) if scrapes[i][4] != scrapes[i - 1][4]}  # a new generation
    windows = []  # (start, end, index of the scrape that first saw the poll's exposition or None)
    for end, duration in poll_list:
        start = end - duration
        # the exposition that carries this poll's end: published after it
        seen = next((i for i in sorted(firsts) if scrapes[i][0] + scrapes[i][1] >= end), None)
        if seen is not None and scrapes[seen][0] > end + 10:
            seen = None  # not this poll's exposition
        stop = max(end, scrapes[seen][0] + scrapes[seen][1]) if seen is not None else end
        windows.append((start, stop, seen))
    busy, busy_later, idle, first_latencies, other = [], [], [], [], []
    for i, (wall, latency, status, _size, _crc) in enumerate(scrapes):
        if status != 200:
            continue
        end = wall + latency
        if any(wall < w_end and end > w_start for w_start, w_end, _ in windows):
            busy.append(latency)
            (first_latencies if i in firsts else busy_later).append(latency)
        elif i in firsts:
            other.append(latency)  # a new exposition between polls: not idle
        elif all(wall > w_end + GUARD or end < w_start - GUARD for w_start, w_end, _ in windows):
            idle.append(latency)
    return {
        "windows": windows,
        "busy": busy,
        "busy_later": busy_later,
        "idle": idle,
        "firsts": first_latencies,
        "other": other,
        "failed": sum(1 for s in scrapes if s[2] != 200),
        "scrapes": len(scrapes),
        "body": scrapes[-1][3] if scrapes else 0,
        "generations": len(firsts),
    }


def measure(tree: Tree, fleet: Fleet, args: argparse.Namespace, workdir: Path) -> dict:
    config = cams_config(
        fleet, poll_interval=args.interval, qps=1000, concurrency=16, state_sets=args.state_sets, unpaced=True
    )
    with Exporter(tree, config, workdir, cpus=args.exporter_cpus) as exp:
        first = wait_for(lambda: polls(exp.metrics()), timeout=args.interval * 3 + 60, what="the first poll")
        end, duration = next(iter(first.values()))
        anchor = end - duration  # polls start at anchor + n x interval
        scraper = subprocess.Popen(
            [sys.executable, "-m", "bench._scraper", str(exp.port), str(args.seconds), str(args.every)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=on_cpus(args.other_cpus),
        )
        started = time.time()
        seen: dict[float, float] = {}  # every poll's end -> duration, from the exporter's own families
        changed = 0
        next_wave = anchor + (int((started - anchor) // args.interval) + 0.5) * args.interval
        while time.time() < started + args.seconds:
            # a wave in the middle of each interval, between two polls; the polls so far (each poll's
            # end and duration stay in /metrics for an interval: a few reads per interval see them all)
            if args.change > 0 and time.time() >= next_wave:
                changed = fleet.wave(args.change)
                next_wave += args.interval
            seen.update(polls(exp.metrics()).values())
            time.sleep(args.interval / 5)
        out, _ = scraper.communicate(timeout=args.seconds + 300)
        if scraper.returncode != 0:
            raise RuntimeError(f"the scraper failed ({scraper.returncode})")
        seen.update(polls(exp.metrics()).values())
        alive = exp.alive()
    scrapes = json.loads(out)["scrapes"]
    in_run = [(e, d) for e, d in sorted(seen.items()) if e - d >= scrapes[0][0] and e <= scrapes[-1][0]]
    result = classify(scrapes, in_run)
    result.update(
        alive=alive,
        changed=changed,
        poll_seconds=[d for _, d in in_run],
        window_seconds=[w_end - w_start for w_start, w_end, _ in result["windows"]],
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scrape_poll", description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10, help="poll interval in seconds (default 10)")
    parser.add_argument("--seconds", type=float, default=120, help="how long the scraper runs (default 120)")
    parser.add_argument("--every", type=float, default=0.05, help="seconds between two scrapes (default 0.05)")
    parser.add_argument(
        "--change", type=float, default=0.01, help="share of the numbers changed between two polls (default 0.01)"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the exporter on the first CPU, the emulator and the scraper on the others (Linux, 2+ CPUs)",
    )
    add_run_options(parser, state_sets=True)
    args = parser.parse_args(argv)
    args.exporter_cpus = args.other_cpus = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs at least 2 CPUs")
        args.exporter_cpus, args.other_cpus = {cpus[0]}, set(cpus[1:])
    fleet = Fleet(max(1, args.numbers // PER_SPACE), PER_SPACE, cpus=args.other_cpus, nice=EMULATOR_NICE)
    row = compare("scrape_poll", fleet, args, measure).table(
        f"numbers={fleet.numbers:,} (one account, {fleet.spaces} spaces); poll_interval {args.interval:g} s; "
        f"{args.change:.0%} of the numbers changed between polls; state_sets {args.state_sets or 'default'}; "
        f"gzip scrapes every {args.every:g} s for {args.seconds:g} s; emulator at nice {EMULATOR_NICE}"
        + (
            f"; exporter on CPU {sorted(args.exporter_cpus)}, emulator and scraper on {sorted(args.other_cpus)}"
            if args.pin
            else ""
        )
    )

    def ms(values: list[float]) -> str:
        if not values:
            return "n/a"
        return f"{statistics.median(values) * 1e3:.1f} / {percentile(values, 99) * 1e3:.1f} / {max(values) * 1e3:.1f}"

    row("scrapes (failed); gzip body (bytes)", lambda r: f"{r['scrapes']} ({r['failed']}); {r['body']:,}")
    row(
        "polls in the run; their duration p50 / max (s)",
        lambda r: (
            f"{len(r['windows'])}; "
            + (
                f"{statistics.median(r['poll_seconds']):.2f} / {max(r['poll_seconds']):.2f}"
                if r["poll_seconds"]
                else "n/a"
            )
        ),
    )
    row(
        "busy window (poll start to the end of the first scrape of its exposition) p50 / max (s)",
        lambda r: (
            f"{statistics.median(r['window_seconds']):.2f} / {max(r['window_seconds']):.2f}"
            if r["window_seconds"]
            else "n/a"
        ),
    )
    row("generations seen by the scraper; numbers changed per wave", lambda r: f"{r['generations']}; {r['changed']}")
    row(
        "new expositions between polls: n; their first scrape p50 / max (ms)",
        lambda r: (
            f"{len(r['other'])}; "
            + (f"{statistics.median(r['other']) * 1e3:.1f} / {max(r['other']) * 1e3:.1f}" if r["other"] else "n/a")
        ),
    )
    row("idle scrapes: n; p50 / p99 / max (ms)", lambda r: f"{len(r['idle'])}; {ms(r['idle'])}")
    row("busy scrapes: n; p50 / p99 / max (ms)", lambda r: f"{len(r['busy'])}; {ms(r['busy'])}")
    row("busy, without the first scrape of a generation: p50 / p99 / max (ms)", lambda r: ms(r["busy_later"]))
    row(
        "first scrape of a new generation (waits for its compression): p50 / max (ms)",
        lambda r: (
            f"{statistics.median(r['firsts']) * 1e3:.1f} / {max(r['firsts']) * 1e3:.1f}" if r["firsts"] else "n/a"
        ),
    )
    row(
        "**busy p99 / idle p99** (target <= 2)",
        lambda r: (
            f"**{percentile(r['busy'], 99) / percentile(r['idle'], 99):.1f}×**" if r["busy"] and r["idle"] else "n/a"
        ),
    )
    row("exporter ran throughout", lambda r: "yes" if r["alive"] else "NO")


if __name__ == "__main__":
    main()
