"""Lint, format and type checks, as configured in pyproject.toml (issue 18).

The same commands as the pre-commit hooks (.pre-commit-config.yaml), run bare at
the repository root exactly as a contributor runs them: ``ruff check``,
``ruff format --check`` and ``mypy`` (pyproject's ``[tool.mypy] files``), with the
tools of the environment the tests run in (the ``test`` extra pins their ranges).
The whole tree is held at zero findings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"


def test_ruff_check_finds_nothing() -> None:
    proc = run("ruff", "check", "--no-fix")
    assert proc.returncode == 0, report(proc)


def test_ruff_format_leaves_everything_unchanged() -> None:
    proc = run("ruff", "format", "--check")
    assert proc.returncode == 0, report(proc)


def test_mypy_finds_nothing() -> None:
    proc = run("mypy")
    assert proc.returncode == 0, report(proc)
    assert "Success: no issues found" in proc.stdout, report(proc)
