"""Shared pieces of the benchmarks: an emulated fleet in another process, and an exporter polling it."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from exporter import exposition as ex
from exporter.config import parse_config
from exporter.poller import Poller
from exporter.store import Store

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def fleet(spaces: int, per_space: int, qps: str = "none", timelines: bool = False, flow_control: bool = True):
    """A CAMS emulator serving ``spaces`` x ``per_space`` numbers, in its own process.

    ``flow_control=False`` switches its throttling off, documented per-action limits included.
    """
    args = [str(spaces), str(per_space), qps, "timelines" if timelines else "-", "flow" if flow_control else "noflow"]
    proc = subprocess.Popen([sys.executable, "-m", "bench._fleet", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the fleet emulator did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


#: glibc malloc tuning the container image sets (see the Dockerfile): large buffers from mmap, so freeing
#: them returns memory; a trim threshold; two arenas instead of eight per core
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "262144", "MALLOC_TRIM_THRESHOLD_": "1048576"}


def with_malloc_env(module: str) -> None:
    """Run ``module`` again with :data:`MALLOC_ENV` unless it is set already, so the bench runs as the image does.

    glibc reads these variables once, at process start, so the process must be started with them.
    """
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    env = {**os.environ, **MALLOC_ENV}
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)


def raise_open_files() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit; returns the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
