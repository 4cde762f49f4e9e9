"""``--demo``: the real exporter polling the built-in provider emulator on loopback.

The emulator serves the built-in demo scenario (numbers whose quality, status
and tier change every few minutes).  The configuration is generated from the
scenario and goes through the same validation as a user's file; the emulator's
fixture secrets reach it through an environment mapping, never inline.
"""

from __future__ import annotations

import re

from exporter.config import Config, parse_config
from exporter.emulator.cams import CamsEmulator
from exporter.emulator.scenario import Scenario, load_builtin_scenario

DEMO_POLL_INTERVAL = 15


def config_for(scenario: Scenario, endpoint: str, *, poll_interval: float = DEMO_POLL_INTERVAL,
               waba_poll_interval: float = 60, verification_poll_interval: float = 120) -> Config:
    """One account per emulated credential, with every space that credential owns."""
    env: dict[str, str] = {}
    lines = ["accounts:"]
    for index, cred in enumerate(scenario.credentials):
        spaces = [s for s in scenario.spaces if s.access_key_id == cred.access_key_id]
        if not spaces:
            continue
        var = f"DEMO_SECRET_{index}"
        env[var] = cred.access_key_secret
        name = re.sub(r"[^A-Za-z0-9_.:-]", "-", cred.account or cred.access_key_id)
        lines += [
            f"  - name: {name}",
            "    provider: alibaba_cams",
            f"    endpoint: {endpoint}",
            "    credentials:",
            f"      access_key_id: {cred.access_key_id}",
            f"      access_key_secret: ${{{var}}}",
            f"    poll_interval: {poll_interval}",
            f"    poll_jitter: {min(2, poll_interval / 10)}",
            f"    waba_poll_interval: {max(waba_poll_interval, poll_interval)}",
            f"    verification_poll_interval: {max(verification_poll_interval, poll_interval) if verification_poll_interval else 0}",
            f"    qps: {cred.qps or 10}",
            "    spaces:",
        ]
        for space in spaces:
            lines.append(f"      - cust_space_id: {space.cust_space_id}")
            if space.isv_code:
                lines.append(f"        isv_code: {space.isv_code}")
    return parse_config("\n".join(lines) + "\n", source="<demo>", env=env)


class Demo:
    def __init__(self, scenario: Scenario | None = None, host: str = "127.0.0.1", port: int = 0):
        self.scenario = scenario or load_builtin_scenario("demo")
        self.emulator = CamsEmulator(self.scenario, host=host, port=port)
        self.config: Config | None = None

    @property
    def url(self) -> str:
        return self.emulator.url

    def start(self) -> "Demo":
        self.emulator.start()
        self.config = config_for(self.scenario, self.emulator.url)
        return self

    def stop(self) -> None:
        self.emulator.stop()
