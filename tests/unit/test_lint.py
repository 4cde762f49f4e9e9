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
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CLEAN: tuple[str, ...] | None = (
    "bench",
    "emulators",
    "exporter/config",
    "exporter/exposition.py",
    "exporter/logsetup.py",
    "exporter/merge.py",
    "exporter/model.py",
    "exporter/sharding.py",
    "exporter/statusboard.py",
    "exporter/store.py",
    "exporter/wabafacts.py",
    "exporter/web",
    "exporter/webconfig",
    "exporter/webhooks",
    "exporter/yamlfile.py",
    "scripts",
    "tests",
)
#: what mypy checks when run bare: pyproject's ``[tool.mypy] files``
MYPY_FILES: tuple[str, ...] = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"])
#: the paths mypy checks while CLEAN is set: those among CLEAN inside MYPY_FILES (not bench, nor scripts' dashed names)
TYPED = tuple(p for p in CLEAN or () if p.split("/", 1)[0] in MYPY_FILES)


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
