"""Configuration loading: phone-number lists of growing length, and hostile files.

1. A Kaleyra account whose WABA lists N phone numbers (the longest list a
   configuration holds), validated by ``parse_config``: the time should grow
   linearly with N.  With ``--baseline REV`` the same files are also validated
   by the hand-written ``exporter/config.py`` of git revision REV (the last one
   before the pydantic models is the default), side by side in the same run.
2. ``--check-config`` on ``/dev/zero``, on a FIFO nobody writes to, and on a
   100 MB file, each in a fresh process: wall time and exit code.

Usage:  python -m bench.config [N ...] [--baseline REV | --no-baseline]
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exporter.config import parse_config

REPO = Path(__file__).resolve().parent.parent
#: the last revision whose exporter/config.py validated the file by hand (quadratic phone lists)
DEFAULT_BASELINE = "08a8b71"
ENV = {"KEY": "bench-api-key-value"}


def config_with_numbers(n: int) -> str:
    numbers = ", ".join(f'"+91{9000000000 + i}"' for i in range(n))
    return (
        "accounts:\n  - name: bench\n    provider: kaleyra\n    pod: IN\n"
        '    credentials: {sid: bench, api_key: "${KEY}"}\n'
        f'    wabas:\n      - waba_id: "1029"\n        phone_numbers: [{numbers}]\n'
    )


def baseline_parser(rev: str):
    """``parse_config`` of exporter/config.py at *rev*, or None when git cannot show it."""
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:exporter/config.py"], cwd=REPO, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(tempfile.mkdtemp()) / "baseline_config.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("baseline_config", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.parse_config


def timed(parse, text: str) -> float:
    start = time.perf_counter()
    config = parse(text, env=ENV)
    elapsed = time.perf_counter() - start
    assert (
        len(
            config.accounts[0].units[0].phone_numbers
            if hasattr(config.accounts[0], "units")
            else config.accounts[0].spaces[0].phone_numbers
        )
        > 0
    )
    return elapsed


def hostile(workdir: Path) -> list[tuple[str, float, int]]:
    fifo = workdir / "fifo"
    os.mkfifo(fifo)
    huge = workdir / "huge.yaml"
    with open(huge, "wb") as fh:
        fh.write(b"accounts:\n" + b"#" * (100 * 1024 * 1024 - 10))  # a real 100 MB file, not a sparse one
    rows = []
    for name, path in (("/dev/zero", "/dev/zero"), ("a FIFO", str(fifo)), ("a 100 MB file", str(huge))):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "--check-config", "--config.file", path],
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        rows.append((name, time.perf_counter() - start, result.returncode))
    return rows


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv if a.isdigit()] or [10_000, 20_000, 40_000]
    rev = (
        None
        if "--no-baseline" in argv
        else (argv[argv.index("--baseline") + 1] if "--baseline" in argv else DEFAULT_BASELINE)
    )
    old = baseline_parser(rev) if rev else None
    print(
        f"{'numbers':>8}  {'pydantic models':>16}  {'per number':>11}  " + (f"{'baseline ' + rev:>18}" if old else "")
    )
    for n in sizes:
        text = config_with_numbers(n)
        new = min(timed(parse_config, text) for _ in range(3))
        line = f"{n:>8}  {new * 1000:>13.0f} ms  {new / n * 1e6:>8.1f} µs"
        if old:
            line += f"  {timed(old, text) * 1000:>15.0f} ms"
        print(line, flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        print("\n--check-config on a hostile file (a fresh process each; includes Python's start-up)")
        for name, seconds, code in hostile(Path(workdir)):
            print(f"  {name:<14} exit {code} in {seconds:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
