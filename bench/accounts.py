"""Many accounts: 2,000 CAMS accounts with one space each, polled by the exporter as a black box.

The fleet emulator (its own process) serves ``--accounts`` spaces of
``--numbers`` numbers, spread over ``--keys`` AccessKeys (space *i* on key
``i % keys``).  The exporter (``python -m exporter``, its own process) polls
them as ``--accounts`` accounts of one space each, every ``--interval``
seconds with no jitter and no WABA polls, so one poll is one
QueryChatappPhoneNumbers.  Accounts on one key share its budget of ``--qps``
calls per second, so the budgets set a floor under every poll cycle: the N
calls a key makes in a cycle (accounts per key x calls per poll) are at best
``1 / qps`` apart, so from the first to the last of them

    floor = (N - 1) / qps

(the exporter spaces calls ``1.025 / qps`` apart, so about 1.025x the floor
is the best a cycle can be).  The bench scrapes ``/metrics`` (gzip, decompressed)
every second and records every account's polls from the exporter's own
families: the end of each poll (``whatsapp_exporter_last_poll_timestamp_seconds``)
and its duration (``whatsapp_exporter_poll_duration_seconds``), until every
account has polled ``--cycles`` + 1 times.  It reports:

* every account polled every interval: the accounts with fewer polls than
  the cycles that had time to run (starved), and poll success;
* the cycle against the floor: for the n-th poll of every account, the time
  from the first of them starting to the last of them ending, per key (the
  worst key), divided by the floor; target <= 1.05;
* the slowest account: each account's observed intervals (from the start of
  one poll to the start of the next); the largest over all accounts divided
  by the configured interval; target <= 1.1;
* memory: the exporter's RSS after the cycles, per account, and against the
  same exporter with 0 accounts (one account in the configuration, on the
  other shard of ``--total-shards 2``, so nothing is polled).

With ``--baseline REF`` the same measurement runs first against git REF
(checked out into a temporary worktree under /tmp, removed afterwards), and
the two columns are printed side by side.

Usage:  python -m bench.accounts [--accounts 2000] [--keys 50] [--qps 2] [--numbers 3] [--interval 60]
                                [--cycles 3] [--baseline REF] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections import defaultdict
from pathlib import Path

from bench._blackbox import (
    POLL_SUCCESS,
    Exporter,
    Fleet,
    Tree,
    add_run_options,
    by_account,
    cams_config,
    compare,
    family,
    percentile,
    polls,
    raise_open_files,
    threads_of,
)

REQUESTS = "whatsapp_exporter_api_requests_total"


def idle_rss(tree: Tree, fleet: Fleet, workdir: Path) -> tuple[float, int]:
    """(RSS in MiB, threads) of the exporter with 0 accounts: one account configured, on the other shard."""
    config = cams_config(fleet, accounts=fleet.spaces, poll_interval=3600, qps=1000)
    one = config[: config.index("  - name: bench-", config.index("  - name: bench-") + 1)]  # header + first account
    for shard in (0, 1):
        with Exporter(tree, one, workdir / f"zero-{shard}", args=("--shard", str(shard), "--total-shards", "2")) as exp:
            if by_account(exp.metrics(), "whatsapp_exporter_poll_interval_seconds"):
                continue  # this shard polls the account
            time.sleep(5)  # settled, as the loaded run is when it is sampled
            exp.metrics()  # one scrape, as in the loaded run
            return exp.rss_mib(), threads_of(exp.pid) or 0
    raise RuntimeError("neither shard of two left the account out")


def measure(tree: Tree, fleet: Fleet, args: argparse.Namespace, workdir: Path) -> dict:
    result: dict = {}
    result["rss0"], result["threads0"] = idle_rss(tree, fleet, workdir)
    config = cams_config(fleet, accounts=args.accounts, poll_interval=args.interval, qps=args.qps)
    seen: dict[str, dict[float, float]] = defaultdict(dict)  # account -> {end: duration}
    scrape_seconds: list[float] = []
    started = time.time()
    with Exporter(tree, config, workdir / "loaded", ready_timeout=300) as exp:
        cpu0 = exp.cpu_seconds()
        wait = args.interval * (args.cycles + 1) * 1.5 + 120
        if args.baseline_seconds and tree.label.startswith("baseline "):
            wait = min(wait, args.baseline_seconds)  # an old runtime that never keeps up: capped
        deadline = time.monotonic() + wait
        body = b""
        while time.monotonic() < deadline and exp.alive():
            t = time.perf_counter()
            body = exp.metrics()
            scrape_seconds.append(time.perf_counter() - t)
            for account, (end, duration) in polls(body).items():
                seen[account][end] = duration
            if len(seen) == args.accounts and min(len(v) for v in seen.values()) > args.cycles:
                break
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - t)))
        elapsed = time.time() - started
        result["alive"] = exp.alive()
        result["rss"] = exp.rss_mib()
        result["peak"] = exp.peak_rss_mib()
        result["threads"] = threads_of(exp.pid) or 0
        result["cpu"] = exp.cpu_seconds() - cpu0
        result["exit"] = exp.stop()
    names = [f"bench-{a:0{len(str(args.accounts))}d}" for a in range(args.accounts)]
    counts = [len(seen.get(n, {})) for n in names]
    # polls that had time to run: the first at start, then one per interval
    due = min(args.cycles + 1, int(elapsed // args.interval) + 1)
    result["starved"] = sum(1 for c in counts if c < due)
    result["polls_min_max"] = (min(counts), max(counts))
    success = by_account(body, POLL_SUCCESS)
    result["success"] = (sum(1 for v in success.values() if v == 1), len(success))
    requests = sum(v for labels, v in family(body, REQUESTS) if labels.get("action") == "QueryChatappPhoneNumbers")
    result["calls_per_poll"] = requests / max(1, sum(counts))
    per_key = args.accounts // args.keys
    result["floor"] = (per_key * max(1.0, round(result["calls_per_poll"], 2)) - 1) / args.qps
    # the n-th poll of every account: per key, first start to last end
    spans = []
    for n in range(min(counts)):
        worst = 0.0
        for k in range(args.keys):
            members = [sorted(seen[names[a]].items())[n] for a in range(k, args.accounts, args.keys)]
            worst = max(worst, max(e for e, _ in members) - min(e - d for e, d in members))
        spans.append(worst)
    result["spans"] = spans
    intervals = []
    worst_account = ("", 0.0)
    for name in names:
        starts = sorted(end - d for end, d in seen.get(name, {}).items())
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        intervals += gaps
        if gaps and max(gaps) > worst_account[1]:
            worst_account = (name, max(gaps))
    result["intervals"] = intervals
    result["worst_account"] = worst_account
    result["scrape"] = scrape_seconds
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.accounts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=50, help="AccessKeys the accounts are spread over (default 50)")
    parser.add_argument("--qps", type=float, default=2, help="budget of each AccessKey (default 2)")
    parser.add_argument("--numbers", type=int, default=3, help="numbers per account (default 3)")
    parser.add_argument("--interval", type=float, default=60, help="poll interval in seconds (default 60)")
    parser.add_argument("--cycles", type=int, default=3, help="intervals observed after the first poll (default 3)")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        metavar="S",
        help="observe the baseline at most S seconds (an old runtime that never keeps up; default: as the candidate)",
    )
    add_run_options(parser)
    args = parser.parse_args(argv)
    if args.accounts % args.keys or args.accounts // args.keys < 2:
        parser.error("--accounts must be a multiple of --keys, with at least 2 accounts per key")
    floor = (args.accounts // args.keys - 1) / args.qps
    if args.interval < floor * 1.1:
        parser.error(f"--interval must leave room for the floor of a cycle ({floor:g} s): at least {floor * 1.1:g}")
    raise_open_files()  # the exporter and the emulator inherit it: one connection per account
    row = compare("accounts", Fleet(args.accounts, args.numbers, keys=args.keys), args, measure).table(
        f"accounts={args.accounts:,} (one space of {args.numbers} numbers each; "
        f"{args.accounts * args.numbers:,} numbers) "
        f"on {args.keys} AccessKeys of {args.qps:g} QPS; poll_interval {args.interval:g} s, no jitter; "
        f"{args.cycles} intervals after the first poll"
    )

    row("exporter ran throughout; exit code after SIGTERM", lambda r: f"{'yes' if r['alive'] else 'NO'}; {r['exit']}")
    row("polls per account (min / max)", lambda r: "{} / {}".format(*r["polls_min_max"]))
    row("accounts starved (fewer polls than intervals run)", lambda r: f"{r['starved']}")
    row("poll_success = 1 at the end", lambda r: "{} of {}".format(*r["success"]))
    row("calls per poll (QueryChatappPhoneNumbers)", lambda r: f"{r['calls_per_poll']:.2f}")
    row("cycle, worst key, per poll round (s)", lambda r: ", ".join(f"{s:.1f}" for s in r["spans"]))
    row("floor: (accounts per key x calls per poll - 1) / qps (s)", lambda r: f"{r['floor']:.1f}")
    row(
        "**cycle / floor**, worst round (target <= 1.05)",
        lambda r: f"**{max(r['spans']) / r['floor']:.3f}**" if r["spans"] else "n/a",
    )
    row(
        "cycle / floor, rounds after the first",
        lambda r: f"{max(r['spans'][1:]) / r['floor']:.3f}" if len(r["spans"]) > 1 else "n/a",
    )
    row(
        "observed interval p50 / p99 / max (s)",
        lambda r: (
            (
                f"{statistics.median(r['intervals']):.1f} / {percentile(r['intervals'], 99):.1f} / "
                f"{max(r['intervals']):.1f}"
            )
            if r["intervals"]
            else "n/a"
        ),
    )
    row(
        "**slowest account's interval / configured** (target <= 1.1)",
        lambda r: f"**{r['worst_account'][1] / args.interval:.3f}** ({r['worst_account'][0]})",
    )
    row("RSS, 0 accounts (MiB)", lambda r: f"{r['rss0']:.1f}")
    row(
        f"RSS, {args.accounts:,} accounts, after the cycles (peak) (MiB)", lambda r: f"{r['rss']:.1f} ({r['peak']:.1f})"
    )
    row(
        "**RSS per account** (above 0 accounts / total) (KiB)",
        lambda r: f"**{(r['rss'] - r['rss0']) * 1024 / args.accounts:.1f}** / {r['rss'] * 1024 / args.accounts:.1f}",
    )
    row("threads, 0 / loaded", lambda r: f"{r['threads0']} / {r['threads']}")
    row("exporter CPU over the run (s)", lambda r: f"{r['cpu']:.1f}")
    row(
        "bench's scrape (gzip) p50 / max (ms)",
        lambda r: f"{statistics.median(r['scrape']) * 1e3:.0f} / {max(r['scrape']) * 1e3:.0f}",
    )


if __name__ == "__main__":
    main()
