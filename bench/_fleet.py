"""Run a CAMS emulator with a generated fleet in its own process (benchmarks only).

Usage: python -m bench._fleet SPACES NUMBERS_PER_SPACE QPS [timelines|-] [flow|noflow] [KEYS]
Prints the emulator URL on the first line, then serves until killed.

``KEYS`` > 1 spreads the spaces over that many AccessKeys, ``bench-ak-1`` ..
``bench-ak-KEYS`` (space *i* to key ``i % KEYS + 1``), all with the secret
``bench-secret``; with 1 (the default) every space belongs to ``bench-ak``.

Commands on standard input, one a line, each answered by one line:
``wave SHARE SEED`` changes the status and quality rating of that share of the
numbers, drawn with the seed (runtime overrides, as a provider's numbers
change between two polls), and answers ``ok N`` with the count changed.
At the end of standard input the emulator keeps serving until killed.
"""

import random
import sys
import time

from emulators.cams import CamsEmulator
from emulators.scenario import Credential, generate_fleet

#: values a wave moves a number between (CAMS wire values; each maps to a state of its own)
WAVE_STATUS = ("CONNECTED", "FLAGGED", "RATE_LIMITED", "RESTRICTED")
WAVE_QUALITY = ("GREEN", "YELLOW", "RED")


def wave(emu: CamsEmulator, share: float, seed: int) -> int:
    rng = random.Random(seed)
    numbers = [(space, number.phone_number) for space in emu.scenario.spaces for number in space.numbers]
    picked = rng.sample(numbers, min(len(numbers), round(len(numbers) * share)))
    for space, phone in picked:
        state = emu.number_state(space, phone) or {}
        status = [s for s in WAVE_STATUS if s != state.get("status")]
        quality = [q for q in WAVE_QUALITY if q != state.get("quality_rating")]
        emu.set_number(space.space_id, phone, status=rng.choice(status), quality_rating=rng.choice(quality))
    return len(picked)


def main(argv: list[str]) -> None:
    spaces, per_space, qps = int(argv[0]), int(argv[1]), argv[2]
    keys = int(argv[5]) if len(argv) > 5 else 1
    scenario = generate_fleet(
        spaces=spaces,
        numbers_per_space=per_space,
        access_key_id="bench-ak",
        secret="bench-secret",
        qps=None if qps == "none" else int(qps),
        seed=1,
        timelines=len(argv) > 3 and argv[3] == "timelines",
    )
    if keys > 1:
        template = scenario.credentials[0]
        scenario.credentials = [
            Credential(
                access_key_id=f"bench-ak-{k + 1}", access_key_secret=template.access_key_secret, qps=template.qps
            )
            for k in range(keys)
        ]
        for i, space in enumerate(scenario.spaces):
            space.access_key_id = f"bench-ak-{i % keys + 1}"
        scenario.reindex()
    emu = CamsEmulator(scenario, max_records=10_000_000, flow_control=argv[4:5] != ["noflow"]).start()
    print(emu.url, flush=True)
    try:
        for line in sys.stdin:
            command, *args = line.split()
            if command == "wave":
                print(f"ok {wave(emu, float(args[0]), int(args[1]))}", flush=True)
            else:
                print(f"error unknown command {command!r}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
