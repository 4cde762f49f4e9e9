"""Run a provider emulator standalone until SIGINT or SIGTERM.

    python -m emulators --scenario demo --listen 127.0.0.1:18777
    python -m emulators --provider nxcloud --scenario demo-nxcloud
    python -m emulators --provider kaleyra            # scenario demo-kaleyra
    python -m emulators --provider twilio             # scenario demo-twilio
    python -m emulators --provider infobip            # scenario demo-infobip

``--provider`` picks the emulated API (``cams``, the default, ``nxcloud`` or
``kaleyra``).  ``--scenario`` takes a YAML file or the name of a built-in
scenario; it defaults to the provider's built-in demo (``demo``,
``demo-nxcloud``, ``demo-kaleyra``).  The first line on stdout is
``<Provider> emulator listening on http://HOST:PORT`` (useful with port 0);
afterwards one log line per request goes to stderr.

``--webhook-url URL`` makes the Meta, NxCloud or Kaleyra emulator push its
webhooks there when a number's state changes (see each emulator's docstring).
Meta also needs its app secret, read from ``--webhook-secret-file FILE`` (never
given on the command line; surrounding whitespace is stripped).  A Kaleyra
receiver's token belongs in the URL; NxCloud signs with the scenario's keys.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
from pathlib import Path

from .cams import CamsEmulator
from .infobip import InfobipEmulator
from .kaleyra import KaleyraEmulator
from .meta import MetaEmulator
from .nxcloud import NxCloudEmulator
from .scenario import ScenarioError, builtin_scenarios, load_builtin_scenario, load_scenario
from .twilio import TwilioEmulator

PROVIDERS = {
    "cams": (CamsEmulator, "demo"),
    "nxcloud": (NxCloudEmulator, "demo-nxcloud"),
    "kaleyra": (KaleyraEmulator, "demo-kaleyra"),
    "meta": (MetaEmulator, "demo-meta"),
    "twilio": (TwilioEmulator, "demo-twilio"),
    "infobip": (InfobipEmulator, "demo-infobip"),
}


def _listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:18777")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {port!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {number}")
    return host, number


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators",
        description="Run a provider API emulator (CAMS 2020-06-06, NxCloud "
        "getPhone, Kaleyra v2 number reads, Meta Graph, Twilio WhatsApp Senders or Infobip senders quality) "
        "standalone.",
    )
    parser.add_argument(
        "--scenario",
        default=None,
        help="scenario YAML file, or a built-in scenario name (default: the provider's demo: "
        "demo, demo-nxcloud or demo-kaleyra)",
    )
    parser.add_argument(
        "--listen",
        type=_listen_address,
        default=("127.0.0.1", 18777),
        help="HOST:PORT to listen on; port 0 picks a free port (default: 127.0.0.1:18777)",
    )
    parser.add_argument(
        "--provider", choices=sorted(PROVIDERS), default="cams", help="which provider to emulate (default: cams)"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--webhook-url",
        default=None,
        help="push webhooks (meta, nxcloud, kaleyra) to this URL when a number's state changes",
    )
    parser.add_argument(
        "--webhook-secret-file",
        type=Path,
        default=None,
        help="file holding the app secret that signs Meta's webhooks (required with --webhook-url for meta)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("emulators")
    emulator_class, default_scenario = PROVIDERS[args.provider]
    if args.scenario is None:
        args.scenario = default_scenario

    try:
        path = Path(args.scenario)
        if path.is_file():
            scenario = load_scenario(path)
        elif args.scenario in builtin_scenarios():
            scenario = load_builtin_scenario(args.scenario)
        else:
            parser.error(
                f"no scenario file {args.scenario!r} and no built-in scenario of that name "
                f"(built-in: {', '.join(builtin_scenarios())})"
            )
    except ScenarioError as exc:
        print(f"invalid scenario: {exc}", file=sys.stderr)
        return 2

    host, port = args.listen
    if not _is_loopback(host):
        log.warning("listening on non-loopback address %s: the emulator has no TLS and fixture credentials", host)
    try:
        emulator = emulator_class(scenario, host=host, port=port, log_level=logging.INFO)
    except ScenarioError as exc:
        print(f"invalid scenario for {args.provider}: {exc}", file=sys.stderr)
        return 2
    if args.webhook_url is not None or args.webhook_secret_file is not None:
        if args.webhook_url is None:
            parser.error("--webhook-secret-file needs --webhook-url")
        secret = None
        if args.webhook_secret_file is not None:
            try:
                secret = args.webhook_secret_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                print(f"cannot read --webhook-secret-file: {exc}", file=sys.stderr)
                return 2
        try:
            emulator.set_webhook(args.webhook_url, secret)
        except (NotImplementedError, ValueError) as exc:
            print(f"--webhook-url: {exc}", file=sys.stderr)
            return 2
    try:
        emulator.start()
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    print(f"{emulator.provider_name} emulator listening on {emulator.url}", flush=True)
    if emulator.webhooks_supported and emulator.webhook_url is not None:
        log.info("pushing webhooks to %s", emulator.webhook_url.split("?", 1)[0])
    log.info(
        "scenario %r: %d credential(s) [%s], %d space(s), %d number(s), %d fault(s)",
        scenario.name or args.scenario,
        len(scenario.credentials),
        ", ".join(c.access_key_id for c in scenario.credentials),
        len(scenario.spaces),
        scenario.number_count(),
        len(scenario.faults),
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        log.info("stopped after %d request(s)", len(emulator.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
