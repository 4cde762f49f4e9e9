"""Lint, format and type checks, as configured in pyproject.toml (issue 18).

The same commands as the pre-commit hooks (.pre-commit-config.yaml), with the
tools of the environment the tests run in (the ``test`` extra pins their ranges).

``CLEAN`` lists the paths already brought to zero findings while the rest of the
tree is being cleaned up; set it to ``None`` to check the whole project exactly
as ``ruff check``, ``ruff format --check`` and ``mypy`` (pyproject's
``[tool.mypy] files``) do when run bare at the repository root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CLEAN: tuple[str, ...] | None = (
    "bench",
    "exporter/config",
    "exporter/exposition.py",
    "exporter/logsetup.py",
    "exporter/merge.py",
    "exporter/model.py",
    "exporter/sharding.py",
    "exporter/statusboard.py",
    "exporter/store.py",
    "exporter/wabafacts.py",
    "exporter/web.py",
    "exporter/webconfig.py",
    "exporter/yamlfile.py",
    "scripts",
    "tests/unit/test_lint.py",
)
#: the paths mypy checks while CLEAN is set: the Python packages among CLEAN (mypy skips scripts' dashed names)
TYPED = tuple(p for p in CLEAN or () if p.startswith("exporter"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"


def test_ruff_check_finds_nothing() -> None:
    proc = run("ruff", "check", "--no-fix", *(CLEAN or ()))
    assert proc.returncode == 0, report(proc)


def test_ruff_format_leaves_everything_unchanged() -> None:
    proc = run("ruff", "format", "--check", *(CLEAN or ()))
    assert proc.returncode == 0, report(proc)


def test_mypy_finds_nothing() -> None:
    # while restricted, imported modules outside CLEAN are analysed for their types but their errors not reported
    restrict = ("--follow-imports=silent", *TYPED) if CLEAN is not None else ()
    proc = run("mypy", *restrict)
    assert proc.returncode == 0, report(proc)
    assert "Success: no issues found" in proc.stdout, report(proc)
