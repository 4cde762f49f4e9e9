"""What the exporter costs the Prometheus that scrapes it, per 1,000 numbers, in each state-set mode.

What runs, for each number count and each ``metrics.state_sets`` mode:

* a CAMS emulator serving the fleet, in its own process (``bench._fleet``;
  its flow control off, so that the first health sweep over every number
  ends in seconds instead of ``numbers / 5`` seconds: the exposition then has
  its steady-state shape, can-send series included);
* the exporter as a real process (``python -m exporter``) polling it, with
  the configuration a user would write apart from ``state_sets`` and the
  per-action budget of the health reads;
* the real Prometheus the test suite installs (``scripts/install-tools.sh``),
  scraping the exporter every ``--scrape-interval`` for ``--minutes``, with
  its TSDB in a fresh directory.

And once, for the baseline: the same Prometheus with no target at all, for the
same time.

Reported, from Prometheus' own metrics and API and from /proc:

* head series (``prometheus_tsdb_head_series``);
* RSS above the empty Prometheus (the peak and the last sample, sampled every
  5 s from ``/proc/<pid>/status``);
* scrape duration p50 and max (``scrape_duration_seconds`` of the job over the
  run, from Prometheus' API);
* samples per scrape (``scrape_samples_scraped``);
* TSDB bytes (the size of the storage directory at the end: the WAL, mostly,
  since a run is shorter than a head block).

Usage:  python -m bench.prometheus_cost [--numbers 1000 10000] [--modes all active] [--minutes 4]
                                        [--scrape-interval 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.common import ROOT, fleet, percentile

JOB = "whatsapp-number-exporter"
PER_SPACE = 50
SECRET = "bench-secret"
TOOLS = ROOT / ".tools" / "root" / "usr" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prometheus_binary() -> str:
    local = TOOLS / "prometheus"
    if local.exists():
        return str(local)
    found = shutil.which("prometheus")
    if not found:
        sys.exit("prometheus is not installed: run scripts/install-tools.sh (Debian's prometheus package)")
    return found


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def wait(what: str, predicate, timeout: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        try:
            got = predicate()
            if got:
                return got
        except (httpx.HTTPError, OSError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def exporter_config(url: str, spaces: int, mode: str) -> str:
    units = "\n".join(f"      - cust_space_id: cams-fleet-{s + 1:0{max(4, len(str(spaces)))}d}" for s in range(spaces))
    return f"""
metrics:
  state_sets: {mode}
accounts:
  - name: bench
    provider: alibaba_cams
    endpoint: {url}
    credentials: {{access_key_id: bench-ak, access_key_secret: "${{BENCH_SECRET}}"}}
    qps: 200
    poll_interval: 60s
    health_poll_interval: 10m
    action_qps: {{GetWhatsappHealthStatus: 200}}
    spaces:
{units}
"""


class Prometheus:
    """A real Prometheus process with a fresh TSDB, scraping ``target`` (or nothing)."""

    def __init__(self, workdir: Path, target: str | None, scrape_interval: int):
        self.dir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        config = {
            "global": {"scrape_interval": f"{scrape_interval}s", "evaluation_interval": f"{scrape_interval}s"},
            "scrape_configs": [],
        }
        if target:
            config["scrape_configs"].append(
                {
                    "job_name": JOB,
                    "scrape_timeout": f"{min(10, scrape_interval)}s",
                    "static_configs": [{"targets": [target]}],
                }
            )
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - the server's log, open while it runs
        self.proc = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait(
            "Prometheus to be ready",
            lambda: httpx.get(self.url + "/-/ready", timeout=2).status_code == 200,
            60,
            self.proc,
        )

    def query(self, expr: str) -> list[dict]:
        body = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=30).json()
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body}")
        return body["data"]["result"]

    def own_metric(self, name: str) -> float:
        for line in httpx.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def sample_rss(prom: Prometheus, seconds: float) -> list[float]:
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(rss_mib(prom.proc.pid))
        time.sleep(5)
    samples.append(rss_mib(prom.proc.pid))
    return samples


def baseline(minutes: float, scrape_interval: int, workdir: Path) -> float:
    """RSS of a Prometheus with no target, after the same time (MiB)."""
    path = workdir / "empty"
    path.mkdir()
    prom = Prometheus(path, None, scrape_interval)
    try:
        return sample_rss(prom, minutes * 60)[-1]
    finally:
        prom.stop()


def measure(numbers: int, mode: str, minutes: float, scrape_interval: int, workdir: Path) -> dict:
    spaces = max(1, numbers // PER_SPACE)
    path = workdir / f"{numbers}-{mode}"
    path.mkdir()
    with fleet(spaces, PER_SPACE, "none", flow_control=False) as url:
        config = path / "config.yml"
        config.write_text(exporter_config(url, spaces, mode))
        port = free_port()
        log = open(path / "exporter.log", "wb")  # noqa: SIM115 - the exporter's log, open while it runs
        exporter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.path={path / 'state'}",
            ],
            cwd=ROOT,
            env={**os.environ, "BENCH_SECRET": SECRET},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait(
                "the exporter's first poll",
                lambda: httpx.get(base + "/-/ready", timeout=5).status_code == 200,
                600,
                exporter,
            )
            wait(
                "the first health sweep",
                lambda: (
                    "whatsapp_exporter_health_sweep_duration_seconds{" in httpx.get(base + "/metrics", timeout=60).text
                ),
                900,
                exporter,
            )
            prom = Prometheus(path, f"127.0.0.1:{port}", scrape_interval)
            try:
                rss = sample_rss(prom, minutes * 60)
                window = f"{int(minutes * 60)}s"
                durations = [
                    float(v) for _, v in prom.query(f'scrape_duration_seconds{{job="{JOB}"}}[{window}]')[0]["values"]
                ]
                samples = float(prom.query(f'scrape_samples_scraped{{job="{JOB}"}}')[0]["value"][1])
                up = [float(v) for _, v in prom.query(f'up{{job="{JOB}"}}[{window}]')[0]["values"]]
                head = prom.own_metric("prometheus_tsdb_head_series")
            finally:
                prom.stop()
            tsdb = dir_bytes(prom.data)
        finally:
            exporter.send_signal(signal.SIGTERM)
            exporter.wait(timeout=120)
            log.close()
    return {
        "numbers": numbers,
        "mode": mode,
        "head_series": head,
        "rss_peak": max(rss),
        "rss_last": rss[-1],
        "scrape_p50": percentile(durations, 50),
        "scrape_max": max(durations),
        "scrapes": len(durations),
        "failed_scrapes": sum(1 for v in up if v != 1),
        "samples": samples,
        "tsdb_bytes": tsdb,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prometheus_cost")
    parser.add_argument("--numbers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--modes", nargs="+", choices=("all", "active"), default=["all", "active"])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--scrape-interval", type=int, default=15)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-cost-"))
    print(
        f"{os.cpu_count()} cores; {args.minutes:g} min per run, scrape every {args.scrape_interval} s; "
        f"workdir {workdir}",
        flush=True,
    )
    empty = baseline(args.minutes, args.scrape_interval, workdir)
    print(f"empty Prometheus: {empty:.0f} MiB RSS", flush=True)
    rows = []
    for numbers in args.numbers:
        for mode in args.modes:
            r = measure(numbers, mode, args.minutes, args.scrape_interval, workdir)
            rows.append(r)
            print(
                f"  {numbers} numbers, {mode}: {r['head_series']:.0f} head series, RSS peak {r['rss_peak']:.0f} MiB, "
                f"scrape p50 {r['scrape_p50'] * 1000:.0f} ms (max {r['scrape_max'] * 1000:.0f} ms, "
                f"{r['failed_scrapes']} of {r['scrapes']} failed), {r['samples']:.0f} samples, "
                f"TSDB {r['tsdb_bytes'] / 2**20:.1f} MiB",
                flush=True,
            )
    print(
        "\n| numbers | state_sets | head series | RSS above empty (peak) | scrape p50 (max) | samples per scrape "
        "| TSDB | per 1,000 numbers: series, MiB RSS, ms p50 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        k = r["numbers"] / 1000
        above = r["rss_peak"] - empty
        print(
            f"| {r['numbers']:,} | {r['mode']} | {r['head_series']:,.0f} | {above:,.0f} MiB | "
            f"{r['scrape_p50'] * 1000:,.0f} ms ({r['scrape_max'] * 1000:,.0f} ms) | {r['samples']:,.0f} | "
            f"{r['tsdb_bytes'] / 2**20:,.1f} MiB | {r['head_series'] / k:,.0f}, {above / k:,.1f}, "
            f"{r['scrape_p50'] * 1000 / k:,.1f} |"
        )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
