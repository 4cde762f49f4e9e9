"""Run a provider emulator standalone until SIGINT or SIGTERM.

    python -m exporter.emulator --scenario demo --listen 127.0.0.1:18777

``--scenario`` takes a YAML file or the name of a built-in scenario.  The first
line on stdout is ``CAMS emulator listening on http://HOST:PORT`` (useful with
port 0); afterwards one log line per request goes to stderr.
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
from .scenario import ScenarioError, builtin_scenarios, load_builtin_scenario, load_scenario


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
    parser = argparse.ArgumentParser(prog="python -m exporter.emulator",
                                     description="Run a provider API emulator (CAMS 2020-06-06) standalone.")
    parser.add_argument("--scenario", default="demo",
                        help="scenario YAML file, or a built-in scenario name (default: demo)")
    parser.add_argument("--listen", type=_listen_address, default=("127.0.0.1", 18777),
                        help="HOST:PORT to listen on; port 0 picks a free port (default: 127.0.0.1:18777)")
    parser.add_argument("--provider", choices=["cams"], default="cams", help="which provider to emulate")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("exporter.emulator")

    try:
        path = Path(args.scenario)
        if path.is_file():
            scenario = load_scenario(path)
        elif args.scenario in builtin_scenarios():
            scenario = load_builtin_scenario(args.scenario)
        else:
            parser.error(f"no scenario file {args.scenario!r} and no built-in scenario of that name "
                         f"(built-in: {', '.join(builtin_scenarios())})")
    except ScenarioError as exc:
        print(f"invalid scenario: {exc}", file=sys.stderr)
        return 2

    host, port = args.listen
    if not _is_loopback(host):
        log.warning("listening on non-loopback address %s: the emulator has no TLS and fixture credentials", host)
    emulator = CamsEmulator(scenario, host=host, port=port, log_level=logging.INFO)
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

    print(f"CAMS emulator listening on {emulator.url}", flush=True)
    log.info("scenario %r: %d credential(s) [%s], %d space(s), %d number(s), %d fault(s)",
             scenario.name or args.scenario, len(scenario.credentials),
             ", ".join(c.access_key_id for c in scenario.credentials), len(scenario.spaces),
             scenario.number_count(), len(scenario.faults))
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        log.info("stopped after %d request(s)", len(emulator.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
