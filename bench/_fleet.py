"""Run a CAMS emulator with a generated fleet in its own process (benchmarks only).

Usage: python -m bench._fleet SPACES NUMBERS_PER_SPACE QPS [timelines|-] [flow|noflow]
Prints the emulator URL on the first line, then serves until killed.
"""

import sys
import time

from emulators.cams import CamsEmulator
from emulators.scenario import generate_fleet

spaces, per_space, qps = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
scenario = generate_fleet(
    spaces=spaces,
    numbers_per_space=per_space,
    access_key_id="bench-ak",
    secret="bench-secret",
    qps=None if qps == "none" else int(qps),
    seed=1,
    timelines=len(sys.argv) > 4 and sys.argv[4] == "timelines",
)
emu = CamsEmulator(scenario, max_records=10_000_000, flow_control=sys.argv[5:6] != ["noflow"]).start()
print(emu.url, flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
