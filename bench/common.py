"""Shared pieces of the benchmarks: an emulated fleet in another process, and an exporter polling it."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from bench._blackbox import MALLOC_ENV, Fleet, percentile, raise_open_files  # noqa: F401 (used by other benches)
from exporter import exposition as ex
from exporter.config import parse_config
from exporter.poller import Poller
from exporter.store import Store

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def fleet(spaces: int, per_space: int, qps: str = "none", timelines: bool = False, flow_control: bool = True):
    """A CAMS emulator serving ``spaces`` x ``per_space`` numbers, in its own process; yields its URL.

    ``flow_control=False`` switches its throttling off, documented per-action limits included.
    (:class:`bench._blackbox.Fleet` is the same emulator with more options.)
    """
    with Fleet(spaces, per_space, qps, timelines=timelines, flow_control=flow_control) as emulator:
        yield emulator.url


def exporter_for(
    url: str,
    spaces: int,
    *,
    qps: float = 1000,
    options: ex.RenderOptions = ex.DEFAULT_OPTIONS,
    waba: bool = True,
    concurrency: int | None = None,
):
    """Store + Poller for the fleet (not started: the caller drives polls)."""
    space_lines = "\n".join(
        f"      - cust_space_id: cams-fleet-{s + 1:0{max(4, len(str(spaces)))}d}" for s in range(spaces)
    )
    extra = f"    concurrency: {concurrency}\n" if concurrency else ""
    config = parse_config(
        f"""
accounts:
  - name: bench
    provider: alibaba_cams
    endpoint: {url}
    credentials: {{access_key_id: bench-ak, access_key_secret: "${{BENCH_SECRET}}"}}
    qps: {qps}
    poll_interval: 1h
    waba_poll_interval: {"1h" if waba else 0}
{extra}    spaces:
{space_lines}
""",
        env={"BENCH_SECRET": "bench-secret"},
    )
    store = Store(options=options)
    return config, store, Poller(config, store)


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB, from /proc."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def with_malloc_env(module: str) -> None:
    """Run ``module`` again with :data:`MALLOC_ENV` unless it is set already, so the bench runs as the image does.

    glibc reads these variables once, at process start, so the process must be started with them.
    """
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    env = {**os.environ, **MALLOC_ENV}
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)
