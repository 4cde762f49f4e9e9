"""Locating the real Prometheus binaries the tests run (installed by scripts/install-tools.sh)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools" / "root" / "usr" / "bin"


def binary(name: str) -> str:
    local = TOOLS / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} is not installed: run scripts/install-tools.sh (Debian's prometheus packages)", pytrace=False)


def promtool_check_metrics(exposition: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), "check", "metrics"], input=exposition, capture_output=True, timeout=60)
