"""Command line: ``whatsapp-number-exporter`` / ``python -m exporter``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Protocol

from exporter import __version__, logsetup
from exporter.config import Config, ConfigError, load_config

if TYPE_CHECKING:  # imported where used at run time, to keep `--help` and config checks light
    from exporter.poller import Poller
    from exporter.store import Store
    from exporter.webconfig import WebConfig
    from exporter.webhooks import WebhookManager


class DemoFleet(Protocol):
    """What serving needs of ``--demo``'s :class:`exporter.demo.Demo` (imported only then: it brings the emulators)."""

    def connect_webhooks(self, receiver_url: str) -> None: ...

    def stop(self) -> None: ...


DEFAULT_LISTEN = ":10067"
DEFAULT_STORAGE_PATH = "data/"
STATE_FILE_NAME = "state.db"
log = logging.getLogger("exporter")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whatsapp-number-exporter",
        description="Prometheus exporter for the health of WhatsApp Business phone numbers.",
    )
    p.add_argument("--config.file", dest="config_file", metavar="PATH", help="YAML configuration file.")
    p.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN,
        metavar="[HOST]:PORT",
        help=f"Address to listen on for HTTP requests (default {DEFAULT_LISTEN}).",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="Web configuration file (exporter-toolkit format) enabling TLS and/or basic auth.",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="Path under which to expose metrics (default /metrics).",
    )
    p.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="Enable reloading the configuration via HTTP (POST or PUT /-/reload); off by default. "
        "SIGHUP always reloads.",
    )
    p.add_argument(
        "--web.gzip-level",
        dest="gzip_level",
        type=int,
        default=1,
        choices=range(1, 10),
        metavar="1-9",
        help="gzip level of the compressed exposition, compressed once per change (default 1).",
    )
    p.add_argument(
        "--storage.path",
        dest="storage_path",
        default=None,
        metavar="DIR",
        help=f"Directory of the state file ({STATE_FILE_NAME}: WABA restrictions, bans and violations, "
        f"which only webhooks tell; default {DEFAULT_STORAGE_PATH}, none in --demo).",
    )
    for flag, choices, default, what in (
        ("--log.level", logsetup.LEVELS, "info", "Only log messages with the given severity or above"),
        ("--log.format", logsetup.FORMATS, "logfmt", "Output format of log messages"),
    ):
        dest = flag[2:].replace(".", "_")
        p.add_argument(flag, dest=dest, default=default, choices=list(choices), help=f"{what} (default {default}).")
    p.add_argument(
        "--demo",
        action="store_true",
        help="Run against the built-in provider emulator on loopback, with its demo fleet; no credentials needed.",
    )
    p.add_argument(
        "--check-config",
        action="store_true",
        help="Validate the configuration file and exit (0 when valid, 2 with one line per problem), "
        "touching no network.",
    )
    p.add_argument(
        "--config.schema",
        dest="config_schema",
        action="store_true",
        help="Print the JSON Schema of the configuration file (for editors) and exit.",
    )
    p.add_argument(
        "--shard",
        type=int,
        default=0,
        metavar="N",
        help="This replica's shard, 0-based (default 0). Accounts are split by a stable hash of their credential.",
    )
    p.add_argument(
        "--total-shards",
        dest="total_shards",
        type=int,
        default=1,
        metavar="M",
        help="Number of replicas sharing the configuration (default 1: no sharding).",
    )
    p.add_argument("--version", action="version", version=f"whatsapp-number-exporter {__version__}")
    return p


def _fail_config(err: ConfigError, prefix: str = "") -> int:
    for line in err.lines():
        print(f"error: {prefix}{line}", file=sys.stderr)
    return 2


def _load_web_config(args: argparse.Namespace) -> WebConfig | None:
    """The parsed ``--web.config.file``, None without one; raises WebConfigError."""
    if not args.web_config_file:
        return None
    from exporter.webconfig import load_web_config

    return load_web_config(args.web_config_file)


def _fail_web_config(err: ConfigError) -> int:
    return _fail_config(err, "--web.config.file: ")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config_schema:
        from exporter.config import config_schema_json

        sys.stdout.write(config_schema_json())
        return 0
    if not args.telemetry_path.startswith("/") or args.telemetry_path in ("/", "/-/healthy", "/-/ready", "/-/reload"):
        print(
            "error: --web.telemetry-path: must start with / and not clash with /, /-/healthy, /-/ready or /-/reload",
            file=sys.stderr,
        )
        return 2
    if not args.demo and not args.config_file:
        print("error: --config.file is required (or use --demo)", file=sys.stderr)
        return 2
    if args.total_shards < 1 or not 0 <= args.shard < args.total_shards:
        print(
            f"error: --shard: must be between 0 and --total-shards - 1 ({args.total_shards - 1}), got {args.shard}",
            file=sys.stderr,
        )
        return 2

    if args.check_config:
        if not args.config_file:
            print("error: --check-config needs --config.file", file=sys.stderr)
            return 2
        # Both files are checked, so that every problem of both shows in one run.
        from exporter.webconfig import WebConfigError

        config = web_config = None
        failed = 0
        try:
            config = load_config(args.config_file)
        except ConfigError as err:
            failed = _fail_config(err)
        try:
            web_config = _load_web_config(args)
        except WebConfigError as err:
            failed = _fail_web_config(err)
        if failed or config is None:
            return 2
        print(
            f"config OK: {len(config.accounts)} account(s), "
            f"{sum(len(a.units) for a in config.accounts)} unit(s) (spaces, apps or WABAs)"
        )
        if web_config is not None:
            print(f"web config OK: {web_config.describe()}")
        if config.webhooks is not None:
            print(f"webhooks OK: {config.webhooks.describe()}")
        return 0

    from exporter.web import parse_listen_address

    try:
        parse_listen_address(args.listen_address)
    except ValueError as err:
        print(f"error: --web.listen-address: {err}", file=sys.stderr)
        return 2

    from exporter.webconfig import WebConfigError

    try:
        args.web_config = _load_web_config(args)
    except WebConfigError as err:
        return _fail_web_config(err)

    logsetup.setup(args.log_level, args.log_format)
    if args.web_config is not None:
        log.info("web config loaded", extra={"file": args.web_config_file, "summary": args.web_config.describe()})
        for note in args.web_config.notes:
            log.info("web config note", extra={"note": note})
    demo = None
    try:
        if args.demo:
            from exporter.demo import Demo

            demo = Demo().start()
            assert demo.config is not None, "Demo.start() parses the demo's configuration"
            config = demo.config
            log.info(
                "demo mode: polling the built-in emulator",
                extra={"emulator": demo.url, "accounts": len(config.accounts)},
            )
        else:
            config = load_config(args.config_file)
    except ConfigError as err:
        return _fail_config(err)
    from exporter.sharding import select

    config = select(config, args.shard, args.total_shards)
    if args.total_shards > 1:
        log.info(
            "sharding",
            extra={
                "shard": args.shard,
                "total_shards": args.total_shards,
                "accounts": ",".join(a.name for a in config.accounts),
            },
        )
    return run(config, args, demo)


class Reloader:
    """Reload the configuration file on SIGHUP or POST /-/reload, keeping what did not change.

    A configuration that fails validation is refused as a whole: the running
    configuration and all its data stay, the error is logged, and
    ``whatsapp_exporter_config_last_reload_successful`` drops to 0 until a
    reload succeeds.  The web config (``--web.config.file``) is read at start-up only.
    The webhook receiver (``webhooks:``) takes new secrets and routes, and moves
    to a changed ``listen_address``; a new address that cannot be bound refuses the reload.
    """

    def __init__(
        self, args: argparse.Namespace, poller: Poller, store: Store, webhooks: WebhookManager | None = None
    ) -> None:
        self._args = args
        self._poller = poller
        self._store = store
        self._webhooks = webhooks  # exporter.webhooks.WebhookManager, or None
        self._lock = threading.Lock()

    def reload(self) -> tuple[bool, str]:
        from exporter.sharding import select

        with self._lock:
            try:
                config = select(load_config(self._args.config_file), self._args.shard, self._args.total_shards)
            except ConfigError as err:
                log.error("configuration reload failed; the running configuration is kept", extra={"error": str(err)})
                self._store.set_exporter_state(reload_ok=False)
                return False, f"reload failed, the running configuration is kept: {err}"
            webhook_plan = None
            if self._webhooks is not None:
                try:
                    webhook_plan = self._webhooks.prepare(config)  # binds a new listen address first
                except OSError as err:
                    error = _webhook_listen_error(config, err)
                    log.error("configuration reload failed; the running configuration is kept", extra={"error": error})
                    self._store.set_exporter_state(reload_ok=False)
                    return False, f"reload failed, the running configuration is kept: {error}"
            try:
                kept, added, removed = self._poller.reconfigure(config)
            except RuntimeError:  # the exporter is shutting down
                if webhook_plan is not None:
                    webhook_plan.abort()
                return False, "shutting down: the configuration is not reloaded"
            if webhook_plan is not None:
                webhook_plan.commit()
            if config.metrics != self._store.options:
                self._store.set_options(config.metrics)
            self._store.set_exporter_state(reload_ok=True)
            log.info(
                "configuration reloaded",
                extra={"unchanged": len(kept), "added_or_changed": len(added), "removed": len(removed)},
            )
            return True, (
                f"configuration reloaded: {len(kept)} account(s) unchanged, "
                f"{len(added)} added or changed, {len(removed)} removed"
            )


def _webhook_listen_error(config: Config, err: OSError) -> str:
    address = config.webhooks.listen_address if config.webhooks is not None else ""
    return f"webhooks.listen_address: cannot listen on {address}: {err.strerror or type(err).__name__}"


#: the garbage collector's thresholds (Python's default: 700, 10, 10).  The exporter keeps a large heap of
#: long-lived objects (every number's model, rendered parts): with the default, a poll of 10,000 numbers set
#: off about 30 young and 3 middle collections and, every few polls, a full one of about 50 ms that holds the
#: GIL, so the loop and every scrape wait for it (together about 40 ms of CPU per poll).  Most garbage is freed
#: by reference counting; cycles are still collected, only after more allocations.  A middle collection comes
#: every 1,000,000 allocations (2,000 x 500), a full one after 100 of those; the young generation stays small,
#: so a young collection during a poll holds the GIL for at most about 3 ms (with 20,000 young objects it
#: was up to 11 ms, see docs/benchmarks-runtime.md).
GC_THRESHOLDS = (2_000, 500, 100)
#: how long a thread may hold the GIL while another waits for it (Python's default: 5 ms).  A large answer is
#: parsed and a new exposition compressed in worker threads; a scrape on the loop needs the GIL several times
#: (to read the request, to write the answer), and with the default it waited up to 5 ms each time: scrapes
#: took 10-20 ms instead of 2 while a large poll was folded in a worker thread (before it moved onto the loop
#: in slices).  The cost is more switches while a worker thread runs (see docs/benchmarks-runtime.md).
SWITCH_INTERVAL = 0.0005


def run(config: Config, args: argparse.Namespace, demo: DemoFleet | None = None) -> int:
    """Serve until SIGTERM or SIGINT: HTTP on an asyncio event loop in this (the main) thread.

    The poller runs on the same loop (APScheduler's AsyncIOScheduler, one actor
    task per account, httpx.AsyncClient) and publishes into the store; the
    loop's handlers only read what was published.  Blocking work started from
    the loop (a reload, starting or stopping the webhook listener) runs in the
    loop's default executor.  SIGTERM/SIGINT cancel every poll at once, then
    the webhook listener and the HTTP server stop (HTTP last).
    """
    thresholds, switch = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(config, args, demo))
    finally:
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(switch)
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()


async def _serve(config: Config, args: argparse.Namespace, demo: DemoFleet | None = None) -> int:
    from exporter.poller import Poller
    from exporter.store import Store
    from exporter.wabafacts import StateFile
    from exporter.web import App, HttpServer
    from exporter.webhooks import WebhookManager

    loop = asyncio.get_running_loop()
    store = Store(options=config.metrics, gzip_level=getattr(args, "gzip_level", 1))
    store.set_exporter_state(reload_ok=True, shard=(args.shard, args.total_shards))
    storage = args.storage_path if args.storage_path is not None else (None if demo else DEFAULT_STORAGE_PATH)
    state_file = StateFile(os.path.join(storage, STATE_FILE_NAME) if storage else None)
    poller = Poller(config, store, state_file=state_file)
    webhooks = WebhookManager(poller, store, loop=loop)
    try:
        # binds the webhook listener, if configured; it serves after poller.start()
        webhook_plan = webhooks.prepare(config)
    except OSError as err:
        print(f"error: {_webhook_listen_error(config, err)}", file=sys.stderr)
        if demo:
            demo.stop()
        return 1
    reloader = None if demo else Reloader(args, poller, store, webhooks)
    app = App(
        store,
        args.telemetry_path,
        reload=reloader.reload if reloader else None,
        shard=(args.shard, args.total_shards) if args.total_shards > 1 else None,
        lifecycle=getattr(args, "enable_lifecycle", False),
    )
    try:
        server = HttpServer(app, args.listen_address, web_config=getattr(args, "web_config", None), loop=loop)
    except OSError as err:
        print(f"error: --web.listen-address: cannot listen on {args.listen_address}: {err.strerror}", file=sys.stderr)
        webhook_plan.abort()
        if demo:
            demo.stop()
        return 1

    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        app.shutting_down = True  # reloads refused from now on
        poller.begin_shutdown()  # every poll cancelled now: no provider call starts after the signal
        stop.set()

    def reload_on_hup() -> None:  # in an executor thread; Reloader serializes reloads
        if app.shutting_down:
            return
        if reloader is None:
            log.warning("SIGHUP ignored: demo mode has no configuration file to reload")
            return
        try:
            reloader.reload()
        except Exception:  # a bug: logged, and the exporter goes on with the running configuration
            log.error("configuration reload failed", exc_info=True)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, reload_on_hup))

    await server.serve()
    try:
        await poller.astart()
        await loop.run_in_executor(None, webhook_plan.commit)  # starts the listener on this loop, from a thread
        if demo and webhooks.receiver is not None:
            demo.connect_webhooks(webhooks.receiver.url)
        log.info(
            "listening",
            extra={
                "address": args.listen_address,
                "url": server.url + args.telemetry_path,
                "version": __version__,
                "accounts": len(config.accounts),
                "lifecycle": getattr(args, "enable_lifecycle", False),
            },
        )
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        app.shutting_down = True
        poller.begin_shutdown()
        await poller.aclose()
        await loop.run_in_executor(None, webhooks.stop)
        await server.close()  # HTTP last
        if demo:
            await loop.run_in_executor(None, demo.stop)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
