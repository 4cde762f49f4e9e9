"""The unit tier refuses network sockets and external binaries (tests/unit/conftest.py), and allows Python."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_socket import SocketBlockedError


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_network_sockets_are_refused():
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 9))


def test_external_binaries_are_refused():
    with pytest.raises(RuntimeError, match="no external binaries"):
        subprocess.run(["true"], check=False)
    with pytest.raises(RuntimeError, match="no external binaries"):
        subprocess.run("true", shell=True, check=False)


def test_python_and_an_event_loop_still_work():
    assert subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout == "42\n"
    assert asyncio.run(asyncio.sleep(0, result="ran")) == "ran"


def test_every_test_file_is_in_a_tier():
    """tests/unit, tests/integration or tests/e2e (docs/testing.md says which); shared code stays at tests/."""
    tests = Path(__file__).resolve().parents[1]
    outside = sorted(p.name for p in tests.glob("test_*.py"))
    assert not outside, f"move {outside} into tests/unit, tests/integration or tests/e2e (see docs/testing.md)"
    for tier in ("unit", "integration", "e2e"):
        assert (tests / tier / "__init__.py").is_file() and list((tests / tier).glob("test_*.py")), tier
