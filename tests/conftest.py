from pathlib import Path

import pytest

from emulators.cams import CamsEmulator
from emulators.scenario import loads_scenario

#: the CAMS scenario most tests share, a YAML data file
SCENARIO = (Path(__file__).resolve().parent / "fixtures" / "scenarios" / "cams.yaml").read_text()


@pytest.fixture
def scenario():
    return loads_scenario(SCENARIO)


@pytest.fixture
def emulator(scenario):
    emu = CamsEmulator(scenario).start()
    yield emu
    emu.stop()
