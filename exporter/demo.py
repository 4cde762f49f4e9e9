"""``--demo``: the real exporter polling the built-in provider emulators on loopback.

One emulator per provider (CAMS, NxCloud, Kaleyra, Meta) serves its built-in demo
scenario, whose numbers change quality, status and tier every few minutes.
The configuration is generated from the scenarios and goes through the same
validation as a user's file; the emulators' fixture secrets reach it through
an environment mapping, never inline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.config import PROVIDERS, Config, parse_config
from exporter.emulator.cams import CamsEmulator
from exporter.emulator.kaleyra import KaleyraEmulator
from exporter.emulator.meta import MetaEmulator
from exporter.emulator.nxcloud import NxCloudEmulator
from exporter.emulator.scenario import Scenario, load_builtin_scenario

DEMO_POLL_INTERVAL = 15


@dataclass
class Fleet:
    provider: str
    scenario: Scenario
    emulator: object


EMULATORS = {
    "alibaba_cams": ("demo", CamsEmulator, "cams"),
    "nxcloud": ("demo-nxcloud", NxCloudEmulator, "nxcloud"),
    "kaleyra": ("demo-kaleyra", KaleyraEmulator, "kaleyra"),
    "meta": ("demo-meta", MetaEmulator, "meta"),
}


def account_lines(provider: str, scenario: Scenario, endpoint: str, env: dict[str, str], *,
                  poll_interval: float = DEMO_POLL_INTERVAL, name_prefix: str = "") -> list[str]:
    """Config lines for one account per emulated credential, with every unit it owns."""
    spec = PROVIDERS[provider]
    lines: list[str] = []
    for cred in scenario.credentials:
        units = [s for s in scenario.spaces if s.access_key_id == cred.access_key_id]
        if not units:
            continue
        var = f"DEMO_SECRET_{len(env)}"
        env[var] = cred.access_key_secret
        name = re.sub(r"[^A-Za-z0-9_.:-]", "-", name_prefix + (cred.account or cred.access_key_id))[:64]
        lines += [
            f"  - name: {name}",
            f"    provider: {provider}",
            f"    endpoint: {endpoint}",
            "    credentials:",
            f"      {spec.id_key}: '{cred.access_key_id}'",  # quoted: Meta's app id is all digits
            f"      {spec.secret_key}: ${{{var}}}",
            f"    poll_interval: {poll_interval}",
            f"    poll_jitter: {min(2, poll_interval / 10)}",
            f"    qps: {cred.qps or 10}",
        ]
        if provider == "alibaba_cams":
            lines += [
                f"    waba_poll_interval: {max(60, poll_interval)}",
                f"    verification_poll_interval: {max(120, poll_interval)}",
            ]
        lines.append(f"    {spec.units_key}:")
        for unit in units:
            lines.append(f"      - {spec.unit_id_key}: '{unit.cust_space_id}'")
            if unit.isv_code and "isv_code" in spec.unit_keys:
                lines.append(f"        isv_code: {unit.isv_code}")
    return lines


class Demo:
    def __init__(self, host: str = "127.0.0.1"):
        self.fleets: list[Fleet] = []
        for provider, (scenario_name, emulator_cls, _) in EMULATORS.items():
            scenario = load_builtin_scenario(scenario_name)
            self.fleets.append(Fleet(provider, scenario, emulator_cls(scenario, host=host, port=0)))
        self.config: Config | None = None

    @property
    def url(self) -> str:
        return " ".join(f.emulator.url for f in self.fleets)

    def start(self) -> "Demo":
        env: dict[str, str] = {}
        lines = ["accounts:"]
        for fleet in self.fleets:
            fleet.emulator.start()
            prefix = EMULATORS[fleet.provider][2] + "-"
            lines += account_lines(fleet.provider, fleet.scenario, fleet.emulator.url, env, name_prefix=prefix)
        self.config = parse_config("\n".join(lines) + "\n", source="<demo>", env=env)
        return self

    def stop(self) -> None:
        for fleet in self.fleets:
            fleet.emulator.stop()
