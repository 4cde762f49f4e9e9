import pytest

from emulators.cams import CamsEmulator
from emulators.scenario import loads_scenario
from tests.helpers import scenario_text

#: the CAMS scenario most tests share
SCENARIO = scenario_text("cams")


@pytest.fixture
def scenario():
    return loads_scenario(SCENARIO)


@pytest.fixture
def emulator(scenario):
    emu = CamsEmulator(scenario).start()
    yield emu
    emu.stop()
