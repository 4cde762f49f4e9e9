"""The exporter as a black box, for benchmarks that compare two runtimes in one run.

Nothing here imports the exporter: the exporter under test runs as
``python -m exporter`` in a process of its own, with ``PYTHONPATH`` (and the
working directory) pointing at the tree under test, and is observed only from
the outside: its ``/metrics`` over HTTP, its ``/proc/<pid>`` files.  So the
same bench measures the current tree and a baseline checked out from git.

* :func:`trees` yields the trees to measure: with ``--baseline REF``, REF
  checked out into a temporary ``git worktree`` under /tmp (removed
  afterwards), then this tree (the candidate).
* :class:`Fleet` is a CAMS emulator with a generated fleet in a process of its
  own (``bench/_fleet.py``), which can change a share of its numbers between
  two polls (:meth:`Fleet.wave`).
* :class:`Exporter` starts the exporter with a generated configuration and
  reads its RSS and CPU time.
* :func:`add_run_options`, :func:`compare` and :meth:`Comparison.table`: the
  options, the measuring loop and the side-by-side table the benches share.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: glibc malloc tuning the container image sets (see the Dockerfile): large buffers from mmap, so freeing
#: them returns memory; a trim threshold; two arenas instead of eight per core
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "262144", "MALLOC_TRIM_THRESHOLD_": "1048576"}

#: the secret of every generated AccessKey (bench/_fleet.py)
FLEET_SECRET = "bench-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# the trees under test


@dataclass(frozen=True)
class Tree:
    label: str
    root: Path


def describe_head(root: Path) -> str:
    out = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %cs"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return out.stdout.strip() + (" +changes" if dirty else "")


@contextmanager
def trees(baseline: str | None) -> Iterator[list[Tree]]:
    """``[baseline, candidate]`` with ``baseline`` (a git ref) checked out under /tmp; ``[candidate]`` without."""
    candidate = Tree(f"candidate ({describe_head(ROOT)})", ROOT)
    if not baseline:
        yield [candidate]
        return
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{baseline}^{{commit}}"], capture_output=True, text=True
    )
    if commit.returncode != 0:
        raise SystemExit(f"error: --baseline: {baseline!r} is not a git commit: {commit.stderr.strip()}")
    path = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    path.rmdir()  # git creates it
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), commit.stdout.strip()], check=True
    )
    try:
        yield [Tree(f"baseline {baseline} ({describe_head(path)})", path), candidate]
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)


# ---------------------------------------------------------------------------
# the emulated fleet


class Fleet:
    """A CAMS emulator serving ``spaces`` x ``per_space`` numbers, in its own process (from this tree).

    ``keys`` > 1 spreads the spaces over AccessKeys ``bench-ak-1`` .. ``bench-ak-KEYS`` (space *i* to key
    ``i % keys + 1``); with 1 they all belong to ``bench-ak``.  ``flow_control=False`` switches the
    emulator's throttling off, documented per-action limits included.
    """

    def __init__(
        self,
        spaces: int,
        per_space: int,
        qps: str = "none",
        timelines: bool = False,
        flow_control: bool = True,
        keys: int = 1,
        cpus: set[int] | None = None,
        nice: int = 0,
    ):
        self.spaces, self.per_space, self.keys = spaces, per_space, keys
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench._fleet",
                str(spaces),
                str(per_space),
                qps,
                "timelines" if timelines else "-",
                "flow" if flow_control else "noflow",
                str(keys),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            preexec_fn=on_cpus(cpus, nice),
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError("the fleet emulator did not start")
        self._waves = 0

    @property
    def numbers(self) -> int:
        return self.spaces * self.per_space

    def space_id(self, s: int) -> str:
        return f"cams-fleet-{s + 1:0{max(4, len(str(self.spaces)))}d}"

    def key_of(self, s: int) -> str:
        return "bench-ak" if self.keys == 1 else f"bench-ak-{s % self.keys + 1}"

    def wave(self, share: float) -> int:
        """Change the status and quality rating of ``share`` of the numbers; returns how many changed."""
        self._waves += 1
        self.proc.stdin.write(f"wave {share} {self._waves}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if answer[:1] != ["ok"]:
            raise RuntimeError(f"the fleet emulator answered {answer!r} to a wave")
        return int(answer[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def cams_config(
    fleet: Fleet,
    *,
    accounts: int = 1,
    poll_interval: float = 60,
    qps: float = 1000,
    concurrency: int = 1,
    timeout: float | None = None,
    state_sets: str | None = None,
    unpaced: bool = False,
) -> str:
    """A configuration polling ``fleet`` as ``accounts`` CAMS accounts (space *s* to account ``s % accounts``).

    Accounts on one AccessKey share its budget (``qps``).  WABA polls and health sweeps are off and the
    jitter is 0, so a
    poll cycle is one QueryChatappPhoneNumbers per space, every ``poll_interval``.  ``unpaced`` raises
    that action's own documented limit (10 per second) to ``qps``, so a poll is as fast as the exporter
    can make its calls and parse the answers.
    """
    timeout = min(10.0, poll_interval / 2) if timeout is None else timeout
    lines = [
        "global:",
        f"  poll_interval: {poll_interval:g}s",
        "  poll_jitter: 0s",
        f"  timeout: {timeout:g}s",
        f"  qps: {qps:g}",
        "  waba_poll_interval: 0",
        "  health_poll_interval: 0",
    ]
    if unpaced:
        lines.append(f"  action_qps: {{QueryChatappPhoneNumbers: {qps:g}}}")
    if state_sets:
        lines += ["metrics:", f"  state_sets: {state_sets}"]
    lines.append("accounts:")
    width = len(str(accounts))
    units: dict[int, list[int]] = {}
    for s in range(fleet.spaces):
        units.setdefault(s % accounts, []).append(s)
    for a in range(accounts):
        spaces = units.get(a, [])
        key = fleet.key_of(spaces[0]) if spaces else "bench-ak"
        if len({fleet.key_of(s) for s in spaces}) > 1:
            raise ValueError("an account's spaces must share one AccessKey: accounts must be a multiple of keys")
        lines += [
            f"  - name: bench-{a:0{width}d}",
            "    provider: alibaba_cams",
            f"    endpoint: {fleet.url}",
            f'    credentials: {{access_key_id: {key}, access_key_secret: "${{BENCH_SECRET}}"}}',
        ]
        if concurrency > 1:
            lines.append(f"    concurrency: {concurrency}")
        lines.append("    spaces:")
        lines += [f"      - cust_space_id: {fleet.space_id(s)}" for s in spaces]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# the exporter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, gz: bool = False, timeout: float = 30, decode: bool = False) -> tuple[int, bytes]:
    """GET on the exporter; with ``decode`` a gzip answer is decompressed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "gzip" if gz else "identity"})
        resp = conn.getresponse()
        body = resp.read()
        if decode and resp.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return resp.status, body
    finally:
        conn.close()


def rss_kib(pid: int) -> int | None:
    return status_field(pid, "VmRSS:")


def threads_of(pid: int) -> int | None:
    return status_field(pid, "Threads:")


def status_field(pid: int, name: str) -> int | None:
    """A numeric field of /proc/<pid>/status (``VmRSS:``, ``VmHWM:``, ``Threads:``), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def on_cpus(cpus: set[int] | None, nice: int = 0) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps a child process on ``cpus`` (Linux) and lowers its priority by ``nice``, or None
    for neither."""
    if not cpus and not nice:
        return None
    chosen = set(cpus or ())

    def setup() -> None:
        if nice:
            os.nice(nice)
        if chosen:
            os.sched_setaffinity(0, chosen)

    return setup


def cpu_seconds_of(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (every thread's)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def exporter_process(
    root: Path,
    config_path: Path,
    port: int,
    log_path: Path,
    env: dict[str, str],
    *args: str,
    log_level: str = "warn",
    cpus: set[int] | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m exporter`` started in ``root`` with ``config_path`` and ``args``, the environment plus ``env``,
    listening on ``127.0.0.1:port``, on ``cpus`` if given; its log (JSON, from ``log_level``) goes to ``log_path``."""
    flags = {
        "--config.file": str(config_path),
        "--log.format": "json",
        "--log.level": log_level,
        "--web.listen-address": f"127.0.0.1:{port}",
    }
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "exporter", *(word for flag in flags.items() for word in flag), *args],
            cwd=root,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=on_cpus(cpus),
        )


class Exporter:
    """``python -m exporter`` from ``tree`` with the configuration ``config``, listening on loopback.

    Secrets come from the environment (``BENCH_SECRET``); the process gets the image's malloc settings.
    Its log (JSON, warnings and above) goes to ``workdir/exporter.log``.
    """

    def __init__(
        self,
        tree: Tree,
        config: str,
        workdir: Path,
        *,
        args: tuple[str, ...] = (),
        ready_timeout: float = 120,
        cpus: set[int] | None = None,
    ):
        self.tree = tree
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(config)
        self.log_path = workdir / "exporter.log"
        self.port = free_port()
        env = {**MALLOC_ENV, "BENCH_SECRET": FLEET_SECRET, "PYTHONPATH": str(tree.root)}
        self.proc = exporter_process(
            tree.root,
            self.config_path,
            self.port,
            self.log_path,
            env,
            "--storage.path",
            str(workdir / "data"),
            *args,
            cpus=cpus,
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if get(self.port, "/metrics", gz=True, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the exporter from {tree.root} did not come up (exit {self.proc.poll()}); "
                    f"see {self.log_path}:\n{self.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.2)

    def metrics(self, timeout: float = 60) -> bytes:
        """The exposition, scraped with gzip as Prometheus does and decompressed."""
        status, body = get(self.port, "/metrics", gz=True, timeout=timeout, decode=True)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body

    def rss_mib(self) -> float:
        return (rss_kib(self.pid) or 0) / 1024

    def peak_rss_mib(self) -> float:
        return (status_field(self.pid, "VmHWM:") or 0) / 1024

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 10) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# reading the exposition


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def series(text: str, names: set[str]) -> list[tuple[str, dict[str, str], str]]:
    """(family, labels, value) of every sample of the given families."""
    out = []
    prefixes = tuple(names)
    for line in text.splitlines():
        if not line.startswith(prefixes):
            continue
        brace = line.find("{")
        if brace < 0:  # no labels
            name, _, value = line.partition(" ")
            if name in names:
                out.append((name, {}, value.split(" ")[0].strip()))
            continue
        name = line[:brace]
        if name not in names:
            continue
        labels_part, _, value = line[brace + 1 :].rpartition("} ")
        out.append((name, dict(_LABEL.findall(labels_part)), value.strip()))
    return out


def family(body: bytes, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of the samples of one family, found without reading the rest of a large exposition.

    Relies on the exposition format's rule that a family's samples follow its ``# TYPE`` line together.
    """
    start = body.find(b"\n# TYPE " + name.encode() + b" ")
    if start < 0:
        start = body.find(b"# TYPE " + name.encode() + b" ")
        if start != 0:
            return []
    end = body.find(b"\n# ", start + 1 + len(name) + 8)
    block = body[start : end if end > 0 else len(body)].decode()
    return [(labels, float(value)) for _, labels, value in series(block, {name})]


def by_account(body: bytes, name: str) -> dict[str, float]:
    """One value per account of an account-level family (``whatsapp_exporter_...{account=...}``)."""
    return {labels["account"]: value for labels, value in family(body, name) if "account" in labels}


LAST_POLL = "whatsapp_exporter_last_poll_timestamp_seconds"
LAST_SUCCESS = "whatsapp_exporter_last_successful_poll_timestamp_seconds"
POLL_DURATION = "whatsapp_exporter_poll_duration_seconds"
POLL_SUCCESS = "whatsapp_exporter_poll_success"


def polls(body: bytes) -> dict[str, tuple[float, float]]:
    """Per account, (end, duration) of its last poll, from the exporter's own families."""
    ends = by_account(body, LAST_POLL)
    durations = by_account(body, POLL_DURATION)
    return {a: (end, durations.get(a, 0.0)) for a, end in ends.items() if end > 0}


class PollWatcher:
    """Tells when the exporter has published a new poll of an account, scraping as Prometheus does.

    Every ``every`` seconds one gzip scrape; the body is decompressed only when it differs from the
    previous one (all but its last 8 KiB, which carry the process metrics), so watching costs the
    exporter one cached scrape per step.
    """

    TAIL = 8192

    def __init__(self, exporter: Exporter, account: str, every: float = 0.5):
        self.exporter, self.account, self.every = exporter, account, every
        self.previous = b""
        self.last: tuple[float, float] | None = None  # (end, duration) of the last poll seen
        self.scrapes = 0

    def _check(self) -> tuple[float, float] | None:
        _status, body = get(self.exporter.port, "/metrics", gz=True, timeout=120)
        self.scrapes += 1
        n = max(0, min(len(body), len(self.previous)) - self.TAIL)
        if n > 0 and body[:n] == self.previous[:n]:  # a small body (no poll yet) is always read
            return None
        self.previous = body
        seen = polls(gzip.decompress(body)).get(self.account)
        if seen is not None and (self.last is None or seen[0] > self.last[0]):
            self.last = seen
            return seen
        return None

    def next_poll(self, timeout: float) -> tuple[float, float]:
        """(end, duration) of the next poll published after the last one seen (the first: any poll)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.exporter.alive():
                raise RuntimeError(
                    f"the exporter exited ({self.exporter.proc.returncode}); see {self.exporter.log_path}"
                )
            started = time.monotonic()
            seen = self._check()
            if seen is not None:
                return seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new poll of {self.account} within {timeout:g} s")
            time.sleep(max(0.0, self.every - (time.monotonic() - started)))


def wait_for(predicate, timeout: float, every: float = 0.5, what: str = "a condition"):
    """Call ``predicate`` every ``every`` seconds until it returns something true; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def raise_open_files() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit (children inherit it); the new limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_note() -> str:
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores shared with other work (load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"at the start); Python {sys.version.split()[0]}"
    )


# ---------------------------------------------------------------------------
# the command line, the measuring loop and the side-by-side table


def add_run_options(parser: argparse.ArgumentParser, *, state_sets: bool = False) -> None:
    """``--baseline`` and ``--workdir`` (and, with ``state_sets``, ``--state-sets``): the options every bench takes."""
    if state_sets:
        parser.add_argument(
            "--state-sets",
            choices=("active", "all"),
            default=None,
            help="the metrics: state_sets setting (default: the exporter's default)",
        )
    parser.add_argument("--baseline", metavar="REF", help="also measure git REF (a temporary worktree), side by side")
    parser.add_argument("--workdir", help="where configs and exporter logs go (default: a new temporary directory)")


@dataclass
class Comparison:
    """The results of one measurement per tree under test (the baseline first), in the order measured."""

    workdir: Path
    note: str
    results: list[tuple[Tree, dict]] = field(default_factory=list)

    def table(self, summary: str) -> Callable[[str, Callable[[dict], str]], None]:
        """Print the summary line, the machine note and the table's head; return ``row(label, fn)``."""
        print()
        print(summary)
        print(f"machine: {self.note}; work directory {self.workdir}")
        print()
        print("| | " + " | ".join(t.label for t, _ in self.results) + " |")
        print("|---|" + "---|" * len(self.results))

        def row(label: str, fn: Callable[[dict], str]) -> None:
            print(f"| {label} | " + " | ".join(fn(r) for _, r in self.results) + " |")

        return row


def compare(name: str, fleet: Fleet, args: argparse.Namespace, measure: Callable[..., dict]) -> Comparison:
    """``measure(tree, fleet, args, workdir)`` for every tree under test (``--baseline`` first), one workdir each;
    the fleet is stopped at the end."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"bench-{name.replace('_', '-')}-"))
    comparison = Comparison(workdir, machine_note())
    with fleet, trees(args.baseline) as under_test:
        for i, tree in enumerate(under_test):
            print(f"[{name}] measuring {tree.label} ...", flush=True)
            comparison.results.append((tree, measure(tree, fleet, args, workdir / f"tree-{i}")))
    return comparison
