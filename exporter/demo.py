"""``--demo``: the real exporter polling the built-in provider emulators on loopback.

One emulator per provider (CAMS, NxCloud, Kaleyra, Meta, Twilio, Infobip) serves its built-in demo
scenario, whose numbers change quality, status and tier every few minutes.
The configuration is generated from the scenarios and goes through the same
validation as a user's file; the emulators' fixture secrets reach it through
an environment mapping, never inline.  The webhook receiver is on, on an
ephemeral loopback port, and the Meta, NxCloud and Kaleyra emulators push
their signed events to it whenever a timeline changes a number.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from emulators.cams import CamsEmulator
from emulators.common import ProviderEmulator
from emulators.infobip import InfobipEmulator
from emulators.kaleyra import KaleyraEmulator
from emulators.meta import MetaEmulator
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import Scenario, load_builtin_scenario
from emulators.twilio import TwilioEmulator
from exporter.config import PROVIDERS, Config, parse_config

DEMO_POLL_INTERVAL = 15
#: CAMS health sweeps in the demo: often enough that a number that gets blocked shows up within a minute
DEMO_HEALTH_POLL_INTERVAL = 30


@dataclass
class Fleet:
    provider: str
    scenario: Scenario
    emulator: ProviderEmulator


#: provider -> (its demo scenario, its emulator, the prefix of its demo accounts)
EMULATORS: dict[str, tuple[str, type[ProviderEmulator], str]] = {
    "alibaba_cams": ("demo", CamsEmulator, "cams"),
    "nxcloud": ("demo-nxcloud", NxCloudEmulator, "nxcloud"),
    "kaleyra": ("demo-kaleyra", KaleyraEmulator, "kaleyra"),
    "meta": ("demo-meta", MetaEmulator, "meta"),
    "twilio": ("demo-twilio", TwilioEmulator, "twilio"),
    "infobip": ("demo-infobip", InfobipEmulator, "infobip"),
}


def account_lines(
    provider: str,
    scenario: Scenario,
    endpoint: str,
    env: dict[str, str],
    *,
    poll_interval: float = DEMO_POLL_INTERVAL,
    name_prefix: str = "",
) -> list[str]:
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
                f"    health_poll_interval: {DEMO_HEALTH_POLL_INTERVAL}",
            ]
        if provider == "twilio":
            lines.append("    page_size: 2")  # the demo's few senders still take three pages
        lines.append(f"    {spec.units_key}:")
        for unit in units:
            lines.append(f"      - {spec.unit_id_key}: '{unit.cust_space_id}'")
            if unit.isv_code and "isv_code" in spec.unit_keys:
                lines.append(f"        isv_code: {unit.isv_code}")
            if provider == "infobip":
                # Infobip lists no senders: the account configures them
                senders = [n.phone_number for n in unit.numbers]
                lines.append("        senders: [" + ", ".join(f"'{p}'" for p in senders) + "]")
    return lines


class Demo:
    def __init__(self, host: str = "127.0.0.1"):
        self.fleets: list[Fleet] = []
        for provider, (scenario_name, emulator_cls, _) in EMULATORS.items():
            scenario = load_builtin_scenario(scenario_name)
            self.fleets.append(Fleet(provider, scenario, emulator_cls(scenario, host=host, port=0)))
        self.config: Config | None = None
        # Fresh webhook secrets per run: the emulators sign with them, the receiver checks them.
        self._hook_secrets = {
            "DEMO_META_APP_SECRET": secrets.token_hex(16),
            "DEMO_META_VERIFY_TOKEN": secrets.token_hex(16),
            "DEMO_KALEYRA_HOOK_TOKEN": secrets.token_hex(16),
        }

    @property
    def url(self) -> str:
        return " ".join(f.emulator.url for f in self.fleets)

    def start(self) -> Demo:
        env: dict[str, str] = dict(self._hook_secrets)
        lines = [
            "webhooks:",  # on an ephemeral loopback port; connect_webhooks() points the emulators at it
            "  listen_address: 127.0.0.1:0",
            '  meta: {app_secret: "${DEMO_META_APP_SECRET}", verify_token: "${DEMO_META_VERIFY_TOKEN}"}',
            '  kaleyra: {token: "${DEMO_KALEYRA_HOOK_TOKEN}"}',
            "  nxcloud: {}",
            "accounts:",
        ]
        for fleet in self.fleets:
            fleet.emulator.start()
            prefix = EMULATORS[fleet.provider][2] + "-"
            lines += account_lines(fleet.provider, fleet.scenario, fleet.emulator.url, env, name_prefix=prefix)
        self.config = parse_config("\n".join(lines) + "\n", source="<demo>", env=env)
        return self

    def connect_webhooks(self, receiver_url: str) -> None:
        """Have the Meta, NxCloud and Kaleyra emulators push their signed events to the receiver."""
        for fleet in self.fleets:
            emulator = fleet.emulator
            if fleet.provider == "meta":
                emulator.set_webhook(f"{receiver_url}/webhooks/meta", self._hook_secrets["DEMO_META_APP_SECRET"])
            elif fleet.provider == "nxcloud":
                emulator.set_webhook(f"{receiver_url}/webhooks/nxcloud")
            elif fleet.provider == "kaleyra":
                emulator.set_webhook(
                    f"{receiver_url}/webhooks/kaleyra?token={self._hook_secrets['DEMO_KALEYRA_HOOK_TOKEN']}"
                )

    def stop(self) -> None:
        for fleet in self.fleets:
            fleet.emulator.stop()
