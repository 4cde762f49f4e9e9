"""The unit tier's guard: no network sockets and no external binaries, so that it runs anywhere in seconds.

Sockets are refused by pytest-socket (AF_UNIX stays allowed: asyncio's event loop wakes itself through a
socket pair). Subprocesses may run only Python itself (the exporter's own command line, ``python -c``) or a
Python entry point installed in the same environment (check-jsonschema from the test extra); anything else
(promtool, openssl, hadolint, a browser) belongs in tests/integration or tests/e2e.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_socket import disable_socket, enable_socket

_PYTHON = Path(sys.executable).resolve()
_real_execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]


def _is_python(program: str) -> bool:
    path = Path(program) if os.sep in program else None
    if path is None:
        return False
    if path.resolve() == _PYTHON:
        return True
    if path.parent != Path(sys.executable).parent or not path.is_file():
        return False
    with path.open("rb") as f:  # a console script written by pip: "#!/path/to/python"
        first = f.readline(200)
    return first.startswith(b"#!") and Path(first[2:].split()[0].decode()).resolve() == _PYTHON


def _guarded_execute_child(self, args, executable, *rest, **kw):
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    program = os.fsdecode(executable or argv[0])
    if not _is_python(program):
        raise RuntimeError(
            f"tests/unit runs no external binaries ({program!r}): move this test to tests/integration or tests/e2e"
        )
    return _real_execute_child(self, args, executable, *rest, **kw)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    disable_socket(allow_unix_socket=True)
    subprocess.Popen._execute_child = _guarded_execute_child  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    subprocess.Popen._execute_child = _real_execute_child  # type: ignore[attr-defined]
    enable_socket()
