"""The machinery shared by the three emulators (emulators.common)."""

from __future__ import annotations

import pytest

from emulators import cams, common
from emulators.cams import CamsEmulator
from emulators.common import ProviderEmulator, display_number, wire_fields, worst_health
from emulators.kaleyra import KaleyraEmulator
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import Fault, loads_scenario

EMULATORS = [CamsEmulator, NxCloudEmulator, KaleyraEmulator]
SCENARIO = """
credentials: [{access_key_id: ak, access_key_secret: sk}]
spaces:
  - space_id: s1
    access_key_id: ak
    waba: {id: "1", name: W}
    numbers: [{phone_number: "8613800000001", status: CONNECTED, timeline: [{at: 10, set: {status: FLAGGED}}]}]
faults:
  - {kind: error, code: 9099, count: 1}
"""


@pytest.mark.parametrize(
    "digits,shown",
    [
        ("8613800000001", "+86 13800000001"),
        ("12025550100", "+1 2025550100"),
        ("79161234567", "+7 9161234567"),
        ("971501234567", "+971 501234567"),
        ("447700900001", "+44 7700900001"),
        ("1", "+1"),
        ("+86", "+86"),
    ],
)
def test_display_number(digits, shown):
    assert display_number(digits) == shown


def test_worst_health_and_wire_fields():
    assert worst_health([]) == "AVAILABLE"
    assert worst_health(["AVAILABLE", "LIMITED"]) == "LIMITED"
    assert worst_health(["LIMITED", "BLOCKED", "AVAILABLE"]) == "BLOCKED"
    assert worst_health(["AVAILABLE", "SOMETHING_NEW"]) == "SOMETHING_NEW"  # unknown ranks as LIMITED
    state = {"a": 1, "b": None, "wire_extra": {"X": 2, "A": None}}
    assert wire_fields(state, [("a", "A"), ("b", "B")]) == {"X": 2}
    assert wire_fields(state, [("a", "A"), ("b", "B")], extra=False) == {"A": 1}


def test_integer_fault_codes_are_accepted_by_the_scenario_model():
    scenario = loads_scenario(SCENARIO)
    assert scenario.faults[0].code == "9099"
    assert Fault(kind="error", code=1003).code == "1003"


def test_cams_is_built_on_the_shared_machinery():
    assert cams.RequestRecord is common.RequestRecord
    assert all(issubclass(cls, ProviderEmulator) for cls in EMULATORS)
    shared = (
        "start",
        "stop",
        "advance",
        "scenario_time",
        "inject",
        "clear_faults",
        "set_number",
        "set_waba",
        "per_second_counts",
        "max_requests_in_any_second",
        "calls",
        "write_action_calls",
        "number_state",
    )
    for cls in EMULATORS:
        for name in shared:
            assert getattr(cls, name) is getattr(ProviderEmulator, name), (cls, name)


def test_admit_counts_per_second_and_refusals_do_not_consume_quota():
    emu = NxCloudEmulator(loads_scenario(SCENARIO))
    assert [emu._admit(100.2, [(("k",), 2)]) for _ in range(3)] == [True, True, False]
    assert emu._admit(100.9, [(("other",), 2)])
    assert emu._admit(101.0, [(("k",), 2)])
    # a request refused by one bucket is not counted in the others
    assert not emu._admit(101.5, [(("k", "x"), 5), (("k",), 1)])
    assert emu._admit(101.5, [(("k", "x"), 1)])
    assert emu._admit(101.5, [(("k",), None)] * 3)
