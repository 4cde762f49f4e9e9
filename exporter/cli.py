"""Command line: ``whatsapp-number-exporter`` / ``python -m exporter``."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading

from exporter import __version__, logsetup
from exporter.config import Config, ConfigError, load_config

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
    p.add_argument("--web.listen-address", dest="listen_address", default=DEFAULT_LISTEN, metavar="[HOST]:PORT",
                   help=f"Address to listen on for HTTP requests (default {DEFAULT_LISTEN}).")
    p.add_argument("--web.config.file", dest="web_config_file", metavar="PATH",
                   help="Web configuration file (exporter-toolkit format) enabling TLS and/or basic auth.")
    p.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics", metavar="PATH",
                   help="Path under which to expose metrics (default /metrics).")
    p.add_argument("--storage.path", dest="storage_path", default=None, metavar="DIR",
                   help=f"Directory of the state file ({STATE_FILE_NAME}: WABA restrictions, bans and violations, "
                        f"which only webhooks tell; default {DEFAULT_STORAGE_PATH}, none in --demo).")
    p.add_argument("--log.level", dest="log_level", default="info", choices=list(logsetup.LEVELS),
                   help="Only log messages with the given severity or above (default info).")
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=list(logsetup.FORMATS),
                   help="Output format of log messages (default logfmt).")
    p.add_argument("--demo", action="store_true",
                   help="Run against the built-in provider emulator on loopback, with its demo fleet; no credentials needed.")
    p.add_argument("--check-config", action="store_true",
                   help="Validate the configuration file and exit (0 when valid, 2 with one line per problem), "
                        "touching no network.")
    p.add_argument("--config.schema", dest="config_schema", action="store_true",
                   help="Print the JSON Schema of the configuration file (for editors) and exit.")
    p.add_argument("--shard", type=int, default=0, metavar="N",
                   help="This replica's shard, 0-based (default 0). Accounts are split by a stable hash of their credential.")
    p.add_argument("--total-shards", dest="total_shards", type=int, default=1, metavar="M",
                   help="Number of replicas sharing the configuration (default 1: no sharding).")
    p.add_argument("--version", action="version", version=f"whatsapp-number-exporter {__version__}")
    return p


def _fail_config(err: ConfigError, prefix: str = "") -> int:
    for line in err.lines():
        print(f"error: {prefix}{line}", file=sys.stderr)
    return 2


def _load_web_config(args: argparse.Namespace):
    """The parsed ``--web.config.file``, None without one; raises WebConfigError."""
    if not args.web_config_file:
        return None
    from exporter.webconfig import load_web_config

    return load_web_config(args.web_config_file)


def _fail_web_config(err: ConfigError) -> int:
    return _fail_config(err, "--web.config.file: ")


def _keep_large_buffers_returnable() -> None:
    """glibc only: serve large allocations from mmap, so freeing them gives memory back.

    glibc raises its mmap threshold after a large buffer is freed, up to 32 MiB;
    later multi-megabyte response bodies then come from the heap, and the heap
    fragments and keeps growing.  A fixed threshold (which turns the dynamic
    adjustment off) keeps the exporter's RSS flat under big or oversized answers.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        libc.mallopt(m_mmap_threshold, 256 * 1024)
        libc.mallopt(m_trim_threshold, 1024 * 1024)
        # One arena per polling thread (glibc's default, up to 8 per core) multiplies fragmentation.
        libc.mallopt(m_arena_max, 2)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config_schema:
        from exporter.config import config_schema_json

        sys.stdout.write(config_schema_json())
        return 0
    _keep_large_buffers_returnable()
    if not args.telemetry_path.startswith("/") or args.telemetry_path in ("/", "/-/healthy", "/-/ready"):
        print("error: --web.telemetry-path: must start with / and not clash with /, /-/healthy or /-/ready", file=sys.stderr)
        return 2
    if not args.demo and not args.config_file:
        print("error: --config.file is required (or use --demo)", file=sys.stderr)
        return 2
    if args.total_shards < 1 or not 0 <= args.shard < args.total_shards:
        print(f"error: --shard: must be between 0 and --total-shards - 1 ({args.total_shards - 1}), got {args.shard}",
              file=sys.stderr)
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
        print(f"config OK: {len(config.accounts)} account(s), "
              f"{sum(len(a.units) for a in config.accounts)} unit(s) (spaces, apps or WABAs)")
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
            config = demo.config
            log.info("demo mode: polling the built-in emulator", extra={"emulator": demo.url, "accounts": len(config.accounts)})
        else:
            config = load_config(args.config_file)
    except ConfigError as err:
        return _fail_config(err)
    from exporter.sharding import select

    config = select(config, args.shard, args.total_shards)
    if args.total_shards > 1:
        log.info("sharding", extra={"shard": args.shard, "total_shards": args.total_shards,
                                    "accounts": ",".join(a.name for a in config.accounts)})
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

    def __init__(self, args: argparse.Namespace, poller, store, webhooks=None):
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
            kept, added, removed = self._poller.reconfigure(config)
            if webhook_plan is not None:
                webhook_plan.commit()
            if config.metrics != self._store.options:
                self._store.set_options(config.metrics)
            self._store.set_exporter_state(reload_ok=True)
            log.info("configuration reloaded", extra={"unchanged": len(kept), "added_or_changed": len(added),
                                                      "removed": len(removed)})
            return True, (f"configuration reloaded: {len(kept)} account(s) unchanged, "
                          f"{len(added)} added or changed, {len(removed)} removed")


def _webhook_listen_error(config: Config, err: OSError) -> str:
    address = config.webhooks.listen_address if config.webhooks is not None else ""
    return f"webhooks.listen_address: cannot listen on {address}: {err.strerror or type(err).__name__}"


def run(config: Config, args: argparse.Namespace, demo=None) -> int:
    from exporter.poller import Poller
    from exporter.store import Store
    from exporter.web import App, HttpServer
    from exporter.webhooks import WebhookManager

    from exporter.wabafacts import StateFile

    store = Store(options=config.metrics)
    store.set_exporter_state(reload_ok=True, shard=(args.shard, args.total_shards))
    storage = args.storage_path if args.storage_path is not None else (None if demo else DEFAULT_STORAGE_PATH)
    state_file = StateFile(os.path.join(storage, STATE_FILE_NAME) if storage else None)
    poller = Poller(config, store, state_file=state_file)
    webhooks = WebhookManager(poller, store)
    try:
        webhook_plan = webhooks.prepare(config)  # binds the webhook listener, if configured; serves after poller.start()
    except OSError as err:
        print(f"error: {_webhook_listen_error(config, err)}", file=sys.stderr)
        if demo:
            demo.stop()
        return 1
    reloader = None if demo else Reloader(args, poller, store, webhooks)
    try:
        server = HttpServer(App(store, args.telemetry_path, reload=reloader.reload if reloader else None,
                                shard=(args.shard, args.total_shards) if args.total_shards > 1 else None),
                            args.listen_address, web_config=getattr(args, "web_config", None))
    except OSError as err:
        print(f"error: --web.listen-address: cannot listen on {args.listen_address}: {err.strerror}", file=sys.stderr)
        webhook_plan.abort()
        if demo:
            demo.stop()
        return 1

    stop = threading.Event()
    reload_requested = threading.Event()

    def on_signal(signum, frame):
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    def on_hup(signum, frame):
        reload_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)

    server.start()
    poller.start()
    webhook_plan.commit()
    if demo and webhooks.receiver is not None:
        demo.connect_webhooks(webhooks.receiver.url)
    log.info("listening", extra={"address": args.listen_address, "url": server.url + args.telemetry_path,
                                 "version": __version__, "accounts": len(config.accounts)})
    try:
        while not stop.wait(0.2):
            if reload_requested.is_set():
                reload_requested.clear()
                if reloader is None:
                    log.warning("SIGHUP ignored: demo mode has no configuration file to reload")
                else:
                    reloader.reload()
    finally:
        webhooks.stop()
        poller.stop()
        server.stop()
        if demo:
            demo.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
