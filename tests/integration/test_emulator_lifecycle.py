"""The emulators' lifecycle over a real socket: start, scenario time, overrides, faults, stop (emulators.common)."""

from __future__ import annotations

import socket

import pytest

from emulators.scenario import Fault, loads_scenario
from tests.helpers import FakeClock
from tests.unit.test_emulator_common import EMULATORS, SCENARIO


@pytest.mark.parametrize("cls", EMULATORS, ids=lambda c: c.__name__)
def test_lifecycle_time_faults_and_overrides(cls):
    clock = FakeClock(1_800_000_000.0)
    emu = cls(loads_scenario(SCENARIO), clock=clock)
    assert not emu.running and emu.scenario_time() == 0
    with emu:
        port = emu.port
        assert emu.running and emu.url == f"http://127.0.0.1:{port}"
        clock.t += 4
        assert emu.advance(6) == 10
        space = emu.scenario.space("s1")
        assert emu.number_state(space, "8613800000001")["status"] == "FLAGGED"
        emu.set_number("s1", "8613800000001", status="BANNED")
        assert emu.number_state(space, "8613800000001")["status"] == "BANNED"
        emu.set_waba("s1", name="Renamed")
        assert emu.waba_state(space)["name"] == "Renamed"
        emu.clear_overrides()
        assert emu.number_state(space, "8613800000001")["status"] == "FLAGGED"
        with pytest.raises(ValueError):
            emu.advance(-1)
        with pytest.raises(TypeError):
            emu.inject("not a fault")
        emu.inject(Fault(kind="reset"))
        emu.clear_faults(include_scenario=True)
        assert emu._injected == [] and emu._scenario_faults == []
        # a raw garbage request is answered and recorded like any other
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
            assert b" 400 " in sock.recv(65536).split(b"\r\n")[0]
        assert [r.http_status for r in emu.requests] == [400]
        emu.clear_requests()
        assert emu.requests == []
    emu.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
