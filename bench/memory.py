"""Memory: peak and steady-state RSS of the exporter at 10k and 50k numbers over 10 poll cycles.

The emulated fleet runs in its own process, so only the exporter is measured:
its store, the pre-rendered exposition, the poller and the HTTP server.  Each
cycle is a full poll of every space followed by one gzip scrape over HTTP, as
Prometheus scrapes; with ``--plain``, an uncompressed scrape too (the plain
body is then joined once per generation and kept until the next change: one
more copy of the body).
Usage:  python -m bench.memory [SIZES...] [--active] [--plain] [--cycles N]
"""

from __future__ import annotations

import gc
import subprocess
import sys

from bench.common import ROOT, exporter_for, fleet, rss_mb, with_malloc_env
from exporter import exposition as ex
from exporter.web import App, HttpServer

PER_SPACE = 100


def run(size: int, options: ex.RenderOptions, cycles: int = 10, plain: bool = False) -> list[tuple[float, float]]:
    spaces = size // PER_SPACE
    samples = []
    with fleet(spaces, PER_SPACE, timelines=True) as url:
        _config, store, poller = exporter_for(url, spaces, options=options, concurrency=16)
        server = HttpServer(App(store), "127.0.0.1:0").start()
        for _ in range(cycles):
            poller.poll_account("bench")
            for mode in ("plain", "gzip") if plain else ("gzip",):  # the scraper is another process: not measured
                subprocess.run(
                    [sys.executable, "-m", "bench._client", server.url + "/metrics", "1", mode],
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                )
            gc.collect()
            samples.append(rss_mb())
        server.stop()
        poller.stop()
    return samples


def main(argv: list[str]) -> None:
    with_malloc_env("bench.memory")  # the container image's malloc settings, so the exporter here runs alike
    options = ex.RenderOptions(state_sets="active") if "--active" in argv else ex.DEFAULT_OPTIONS
    cycles = 10
    if "--cycles" in argv:
        i = argv.index("--cycles")
        cycles = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    sizes = [int(a) for a in argv if a.isdigit()] or [10_000, 50_000]
    if len(sizes) > 1:  # one process per size, so one size's peak does not hide the next one's
        for size in sizes:
            subprocess.run(
                [sys.executable, "-m", "bench.memory", str(size), "--cycles", str(cycles)]
                + (["--active"] if options.active_only else [])
                + (["--plain"] if "--plain" in argv else []),
                check=True,
            )
        return
    size = sizes[0]
    samples = run(size, options, cycles, plain="--plain" in argv)
    rss = [round(r) for r, _ in samples]
    peak = max(p for _, p in samples)
    drift = (rss[-1] - rss[1]) / rss[1]
    print(
        f"numbers={size:,} state_sets={options.state_sets}{' (plain scrapes too)' if '--plain' in argv else ''}: "
        f"peak RSS {peak:.0f} MiB; RSS after each of {cycles} cycles (MiB): {rss}; "
        f"cycle 2 -> {cycles}: {drift:+.1%}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
