"""The unit tier refuses network sockets and external binaries (tests/unit/conftest.py), and allows Python."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

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
