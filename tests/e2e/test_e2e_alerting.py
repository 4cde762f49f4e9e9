"""End to end: provider emulator -> exporter -> real Prometheus -> real Alertmanager -> a webhook receiver.

A CAMS scenario turns one number GREEN -> YELLOW -> RED (its tier drops with the
RED rating), another CONNECTED -> FLAGGED -> CONNECTED, and a third BLOCKED (its
health, read by GetWhatsappHealthStatus sweeps). The exporter polls it every 5 s
in-process. A Meta account, polled once an hour, gets a WABA restriction that
expires after 30 s and a WABA disabled by Meta, both by Meta's signed
account_update webhooks (since October 2025 Meta numbers are never FLAGGED). A Twilio sender goes OFFLINE
with a reason (it pages through WhatsAppNumberCannotSend, naming the reason) and an Infobip sender's quality
goes LOW (it pages through WhatsAppNumberQualityRed). Debian's `prometheus` scrapes it with the shipped
deploy/prometheus/prometheus.yml and loads the shipped alert rules, with only
their `for:` shortened. Debian's `prometheus-alertmanager` runs the shipped
deploy/alertmanager/alertmanager.yml with the receivers pointed at this test.

The test asserts that the pager receives the RED and FLAGGED pages with the
right labels and annotations, that the FLAGGED page is resolved once the
number recovers, that warnings reach the ticket receiver and never the pager,
and that every dashboard query returns data from that Prometheus (except queries over
families that only other providers or the webhook receiver produce; Prometheus must still accept them).

Every wait is a bounded poll that fails with what it was waiting for and the
tail of the processes' logs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml

from emulators.cams import CamsEmulator
from emulators.infobip import InfobipEmulator
from emulators.meta import MetaEmulator
from emulators.scenario import loads_scenario
from emulators.twilio import TwilioEmulator
from exporter.config import parse_config
from exporter.exposition import RenderOptions
from exporter.poller import Poller
from exporter.store import Store
from exporter.web import App, HttpServer
from exporter.webhooks import WebhookManager
from tests import helpers
from tests.e2e.test_dashboards import iter_queries, load_dashboards, needs, substitute
from tests.helpers import free_port
from tests.tools import ROOT, binary

PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RULE_FILES = sorted((ROOT / "alerts").glob("*.yml"))
JOB = "whatsapp-number-exporter"
ACCOUNT = "e2e-shop"
PROVIDER = "alibaba_cams"
RED_NUMBER = "+8613800000001"
FLAGGED_NUMBER = "+8613800000002"
HEALTHY_NUMBER = "+8613800000003"
CAMS_BLOCKED_NUMBER = "+8613800000004"
SHORT_FOR = "2s"
DEBIAN_TEMPLATES = "/usr/share/prometheus/alertmanager"


def _shop_number(n: int, name: str, tier: str = "TIER_10K", *changes: str) -> str:
    """The shop's number ``n`` (+861380000000n): CONNECTED, GREEN, verified and approved; then its timeline's
    ``changes`` (each ``at: ..., set: {...}``)."""
    timeline = "".join(f"          - {{{change}}}\n" for change in changes)
    return f"""      - phone_number: "861380000000{n}"
        id: "10987654321900{n}"
        verified_name: {name}
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: {tier}
        code_verification_status: VERIFIED
        name_status: APPROVED
        new_name_status: APPROVED
""" + (f"        timeline:\n{timeline}" if changes else "")


HEALTH_ERROR = "{error_code: '141006', error_description: There is an error with the payment method.}"
SCENARIO = (
    """
name: e2e-alerting
credentials:
  - {access_key_id: e2e-ak, access_key_secret: e2e-secret-VALUE, qps: 10}
spaces:
  - cust_space_id: cams-e2e-shop
    access_key_id: e2e-ak
    waba: {id: "102938475619999", name: E2E Shop, account_review_status: APPROVED, currency: USD}
    numbers:
"""
    # GREEN -> YELLOW -> RED, and its tier drops with the RED rating
    + _shop_number(
        1,
        "E2E Shop",
        "TIER_10K",
        "at: 10s, set: {quality_rating: YELLOW}",
        "at: 25s, set: {quality_rating: RED, messaging_limit_tier: TIER_1K}",
    )
    # CONNECTED -> FLAGGED -> CONNECTED
    + _shop_number(
        2, "E2E Shop Support", "TIER_10K", "at: 10s, set: {status: FLAGGED}", "at: 45s, set: {status: CONNECTED}"
    )
    # healthy all along
    + _shop_number(3, "E2E Shop Sales", "TIER_UNLIMITED")
    # CONNECTED all along, but its health turns BLOCKED at 10 s
    + _shop_number(
        4,
        "E2E Shop Billing",
        "TIER_10K",
        f"at: 10s, set: {{can_send_message: BLOCKED, health_errors: [{HEALTH_ERROR}]}}",
    )
)

# Meta, polled once an hour: its alerts can only come from its webhooks.
META_ACCOUNT = "e2e-meta"
META_RESTRICTED_WABA = "1022900077"
META_DISABLED_WABA = "1022900078"
RESTRICTION = "RESTRICTED_BIZ_INITIATED_MESSAGING"
META_SECRETS = {
    "META_TOKEN": "EAAe2eMetaTOKEN0000000001",
    "META_APP_SECRET": "e2e-app-secret-VALUE",
    "META_VERIFY_TOKEN": "e2e-verify-token-VALUE",
}
META_SCENARIO = f"""
name: e2e-meta
credentials: [{{access_key_id: "7001", access_key_secret: {META_SECRETS["META_TOKEN"]}, qps: null}}]
spaces:
  - space_id: "{META_RESTRICTED_WABA}"     # restricted at 15 s for 30 s: account_update ACCOUNT_RESTRICTION
    access_key_id: "7001"
    extra: {{calls_per_hour: 100000}}
    waba:
      id: "{META_RESTRICTED_WABA}"
      name: E2E Meta
      account_review_status: APPROVED
      business_id: "5241000077"
      portfolio_messaging_limit: 10000
      timeline:
        - at: 15s
          set: {{restrictions: [{{restriction_type: {RESTRICTION}, duration: 30s}}]}}
    numbers:
      - {{phone_number: "15550177001", id: "1065400077001", status: CONNECTED, quality_rating: GREEN}}
  - space_id: "{META_DISABLED_WABA}"       # disabled at 15 s: account_update DISABLED_UPDATE
    access_key_id: "7001"
    extra: {{calls_per_hour: 100000}}
    waba:
      id: "{META_DISABLED_WABA}"
      name: E2E Meta Banned
      account_review_status: APPROVED
      business_id: "5241000078"
      portfolio_messaging_limit: 2000
      timeline:
        - at: 15s
          set: {{ban_state: DISABLE, ban_date: "April 17, 2027"}}
    numbers:
      - {{phone_number: "15550177002", id: "1065400077002", status: CONNECTED, quality_rating: GREEN}}
"""

# Twilio and Infobip, polled every 5 s: one sender goes OFFLINE (with a reason), one's quality goes LOW.
TWILIO_ACCOUNT, TWILIO_SID, TWILIO_AC = (
    "e2e-twilio",
    "SKe2e000000000000000000000000000001",
    "ACe2e0000000000000000000000000000001",
)
TWILIO_OFFLINE_NUMBER = "+14155550177"
INFOBIP_ACCOUNT, INFOBIP_LOW_NUMBER = "e2e-infobip", "+447860099177"
TI_SECRETS = {"TWILIO_SECRET": "e2e-twilio-secret-VALUE", "INFOBIP_KEY": "e2e-infobip-key-VALUE"}
TWILIO_SCENARIO = f"""
credentials: [{{access_key_id: {TWILIO_SID}, access_key_secret: {TI_SECRETS["TWILIO_SECRET"]}, account: {TWILIO_AC}}}]
spaces:
  - space_id: {TWILIO_AC}
    access_key_id: {TWILIO_SID}
    numbers:
      - phone_number: "14155550177"
        status: ONLINE
        quality_rating: HIGH
        messaging_limit: 10K Customers/24hr
        timeline:
          - at: 10s
            set: {{status: OFFLINE, offline_reasons: [{{code: "63020", message: Invitation not accepted}}]}}
      - {{phone_number: "14155550178", status: ONLINE, quality_rating: HIGH, messaging_limit: 2K Customers/24hr}}
"""
INFOBIP_SCENARIO = f"""
credentials: [{{access_key_id: e2e-ib, access_key_secret: {TI_SECRETS["INFOBIP_KEY"]}}}]
spaces:
  - space_id: e2e-ib-group
    access_key_id: e2e-ib
    numbers:
      - phone_number: "447860099177"
        status: CONNECTED
        quality_rating: HIGH
        current_limit: LIMIT_10K
        timeline: [{{at: 10s, set: {{quality_rating: LOW}}}}]
      - {{phone_number: "447860099178", status: CONNECTED, quality_rating: MEDIUM, current_limit: LIMIT_2K}}
"""

EXPORTER_CONFIG = """
webhooks:
  listen_address: 127.0.0.1:0
  meta: {{app_secret: "${{META_APP_SECRET}}", verify_token: "${{META_VERIFY_TOKEN}}"}}
accounts:
  - name: e2e-meta
    provider: meta
    endpoint: {meta_endpoint}
    credentials: {{app_id: "7001", access_token: "${{META_TOKEN}}"}}
    poll_interval: 1h
    wabas: [{{waba_id: "1022900077"}}, {{waba_id: "1022900078"}}]
  - name: e2e-shop
    provider: alibaba_cams
    endpoint: {endpoint}
    credentials: {{access_key_id: e2e-ak, access_key_secret: "${{E2E_SECRET}}"}}
    poll_interval: 5s
    poll_jitter: 0.5s
    waba_poll_interval: 5s
    verification_poll_interval: 5s
    health_poll_interval: 10s
    labels: {{team: e2e}}
    spaces:
      - cust_space_id: cams-e2e-shop
  - name: e2e-twilio
    provider: twilio
    endpoint: {twilio_endpoint}
    credentials: {{sid: SKe2e000000000000000000000000000001, secret: "${{TWILIO_SECRET}}"}}
    poll_interval: 5s
    poll_jitter: 0.5s
    twilio_accounts: [{{account_sid: ACe2e0000000000000000000000000000001}}]
  - name: e2e-infobip
    provider: infobip
    endpoint: {infobip_endpoint}
    credentials: {{api_key: "${{INFOBIP_KEY}}"}}
    poll_interval: 5s
    poll_jitter: 0.5s
    sender_groups: [{{group: e2e-ib-group, senders: ["447860099177", "447860099178"]}}]
"""

# Timeline budget (scenario seconds): the RED and FLAGGED pages come by ~35 s, the FLAGGED page
# resolves by ~55 s. The bounds below leave generous slack for a slow machine.
PAGE_TIMEOUT = 90
RESOLVE_TIMEOUT = 120


# -- small infrastructure --------------------------------------------------------------


def wait_for(
    what: str,
    predicate: Callable[[], object],
    timeout: float,
    diagnostics: Callable[[], str] | None = None,
    interval: float = 0.25,
):
    """tests.helpers.wait_for as the e2e tests call it: a service not up yet is "not yet"; its log on failure."""
    return helpers.wait_for(
        predicate, what, timeout, interval, ignore=(httpx.HTTPError, OSError), diagnostics=diagnostics
    )


class Process:
    """A real binary in the background, with its output in a log file."""

    def __init__(self, name: str, args: list[str], log: Path):
        self.name = name
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - the process's stdout for its lifetime, closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} (exit code {self.proc.poll()}) ---\n" + "\n".join(text)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log_file.close()


class Receiver:
    """Collects Alertmanager webhook notifications, by path (/page, /ticket)."""

    def __init__(self):
        self.notifications: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.notifications.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def alerts(self, path: str) -> list[dict]:
        """Every alert notified to ``path``, in arrival order (an alert appears once per notification)."""
        with self._lock:
            return [alert for p, body in self.notifications if p == path for alert in body["alerts"]]

    def find(self, path: str, alertname: str, status: str, **labels: str) -> list[dict]:
        return [
            a
            for a in self.alerts(path)
            if a["status"] == status
            and a["labels"].get("alertname") == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def summary(self) -> str:
        with self._lock:
            lines = [
                f"{p} {a['status']} {a['labels'].get('alertname')} {a['labels'].get('phone_number', '')}"
                for p, body in self.notifications
                for a in body["alerts"]
            ]
        return "--- notifications received ---\n" + ("\n".join(lines) or "(none)")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def alertmanager_command(alertmanager: str, args: list[str]) -> list[str]:
    """The command that runs Debian's Alertmanager binary, unmodified, as unpacked into .tools/.

    Debian's build reads its default notification templates from the fixed path
    /usr/share/prometheus/alertmanager/ (they are not embedded in the binary).
    When the package is not installed system-wide, the binary runs in a private
    mount namespace where the package's own /usr/share (from the same .deb) is
    overlaid on the host's: nothing outside that namespace changes.
    """
    if Path(DEBIAN_TEMPLATES, "default.tmpl").exists():
        return [alertmanager, *args]
    share = Path(alertmanager).resolve().parents[1] / "share"
    if not (share / "prometheus" / "alertmanager" / "default.tmpl").exists():
        pytest.fail(
            f"{DEBIAN_TEMPLATES}/default.tmpl is missing and {share} does not hold it either: "
            "run scripts/install-tools.sh (Debian's prometheus-alertmanager package)",
            pytrace=False,
        )
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail(
            f"Debian's Alertmanager needs {DEBIAN_TEMPLATES}/default.tmpl: install the "
            "prometheus-alertmanager package, or util-linux's unshare to run it from .tools/",
            pytrace=False,
        )
    user_ns = [] if os.geteuid() == 0 else ["--map-root-user"]
    script = 'mount -t overlay overlay -o "lowerdir=$1:/usr/share" /usr/share && shift && exec "$@"'
    return [unshare, "--mount", *user_ns, "sh", "-c", script, "sh", str(share), alertmanager, *args]


# -- configuration derived from the shipped files -----------------------------------------


def write_short_for_rules(rules_dir: Path) -> None:
    """Copy the shipped rules with every `for:` shortened, and prove nothing else changed."""
    for path in RULE_FILES:
        shipped = yaml.safe_load(path.read_text())
        short = copy.deepcopy(shipped)
        for group in short["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = SHORT_FOR
        (rules_dir / path.name).write_text(yaml.safe_dump(short, sort_keys=False))

        def without_for(doc):
            return [{k: v for k, v in rule.items() if k != "for"} for g in doc["groups"] for rule in g["rules"]]

        reloaded = yaml.safe_load((rules_dir / path.name).read_text())
        assert without_for(reloaded) == without_for(shipped)
        assert [g["name"] for g in reloaded["groups"]] == [g["name"] for g in shipped["groups"]]


def prometheus_config(exporter: str, alertmanager: str) -> dict:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [exporter]}]
    (am,) = config["alerting"]["alertmanagers"]
    am["static_configs"] = [{"targets": [alertmanager]}]
    assert config["rule_files"] == ["alerts/*.rules.yml"]
    return config


def alertmanager_config(receiver_url: str) -> dict:
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    routes = [config["route"], *config["route"]["routes"]]
    for route in routes:
        for key, value in (("group_wait", "1s"), ("group_interval", "1s"), ("repeat_interval", "1h")):
            if key in route:
                route[key] = value
    urls = {"whatsapp-pager": f"{receiver_url}/page", "whatsapp-tickets": f"{receiver_url}/ticket"}
    assert {r["name"] for r in config["receivers"]} == set(urls)
    for receiver in config["receivers"]:
        (hook,) = receiver["webhook_configs"]
        assert hook["send_resolved"] is True
        hook["url"] = urls[receiver["name"]]
    return config


# -- the stack ------------------------------------------------------------------------------


@pytest.fixture(params=["all", "active"], ids=["state_sets=all", "state_sets=active"])
def stack(tmp_path, request):
    """The whole chain, once with every state series emitted and once with only the active ones."""
    prometheus_bin, alertmanager_bin = binary("prometheus"), binary("prometheus-alertmanager")
    cleanup: list[Callable[[], None]] = []
    processes: list[Process] = []

    def diagnostics() -> str:
        return "\n".join([receiver.summary(), *(p.tail() for p in processes)])

    try:
        receiver = Receiver()
        cleanup.append(receiver.stop)

        # The exporter's HTTP side first: Prometheus can scrape it before the first poll.
        store = Store(options=RenderOptions(state_sets=request.param))
        server = HttpServer(App(store), "127.0.0.1:0").start()
        cleanup.append(server.stop)

        am_port = free_port()
        am_dir = tmp_path / "alertmanager"
        am_dir.mkdir()
        (am_dir / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(receiver.url), sort_keys=False))
        am = Process(
            "alertmanager",
            alertmanager_command(
                alertmanager_bin,
                [
                    f"--config.file={am_dir / 'alertmanager.yml'}",
                    f"--storage.path={am_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                    "--log.level=debug",
                ],
            ),
            tmp_path / "alertmanager.log",
        )
        processes.append(am)
        cleanup.append(am.stop)

        prom_port = free_port()
        prom_dir = tmp_path / "prometheus"
        (prom_dir / "alerts").mkdir(parents=True)
        write_short_for_rules(prom_dir / "alerts")
        (prom_dir / "prometheus.yml").write_text(
            yaml.safe_dump(prometheus_config(f"127.0.0.1:{server.port}", f"127.0.0.1:{am_port}"), sort_keys=False)
        )
        prom = Process(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={prom_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp_path / "prometheus.log",
        )
        processes.append(prom)
        cleanup.append(prom.stop)

        prom_url, am_url = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
        for name, url, proc in (("Alertmanager", am_url, am), ("Prometheus", prom_url, prom)):
            wait_for(
                f"{name} to be ready at {url}/-/ready",
                lambda url=url, proc=proc: (
                    (proc.alive() or pytest.fail(proc.tail(), pytrace=False))
                    and httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
                ),
                timeout=60,
                diagnostics=diagnostics,
            )
        rules = httpx.get(f"{prom_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert sum(len(g["rules"]) for g in rules) >= 15, rules

        # Only now start the scenario clock and the poller, so the timeline is relative to a ready stack.
        emulator = CamsEmulator(loads_scenario(SCENARIO)).start()
        cleanup.append(emulator.stop)
        meta = MetaEmulator(loads_scenario(META_SCENARIO)).start()
        cleanup.append(meta.stop)
        twilio = TwilioEmulator(loads_scenario(TWILIO_SCENARIO)).start()
        cleanup.append(twilio.stop)
        infobip = InfobipEmulator(loads_scenario(INFOBIP_SCENARIO)).start()
        cleanup.append(infobip.stop)
        config = parse_config(
            EXPORTER_CONFIG.format(
                endpoint=emulator.url, meta_endpoint=meta.url, twilio_endpoint=twilio.url, infobip_endpoint=infobip.url
            ),
            env={"E2E_SECRET": "e2e-secret-VALUE", **META_SECRETS, **TI_SECRETS},
        )
        poller = Poller(config, store)
        webhooks = WebhookManager(poller, store)
        webhooks.apply(config)
        cleanup.append(webhooks.stop)
        meta.set_webhook(f"{webhooks.receiver.url}/webhooks/meta", META_SECRETS["META_APP_SECRET"])
        poller.start()
        cleanup.append(poller.stop)

        yield SimpleNamespace(
            receiver=receiver,
            prometheus=prom_url,
            alertmanager=am_url,
            emulator=emulator,
            meta=meta,
            store=store,
            webhooks=webhooks,
            diagnostics=diagnostics,
        )
    finally:
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):  # keep tearing down the rest
                step()


def query(prometheus: str, expr: str) -> list[dict]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return body["data"]["result"]


def await_alert(stack, path: str, alertname: str, status: str = "firing", *, timeout=PAGE_TIMEOUT, **labels):
    """Wait for the receiver to get ``alertname`` (``status``) at ``path`` with these labels; those alerts."""
    what = f"{alertname} {status} at {path} with {labels}"
    return wait_for(what, lambda: stack.receiver.find(path, alertname, status, **labels), timeout, stack.diagnostics)


def assert_labels(alert: dict, **expected: str) -> None:
    """The ``alert`` carries these labels with these values (others it may carry are not looked at)."""
    assert {k: alert["labels"].get(k) for k in expected} == expected, alert["labels"]


# -- the test ------------------------------------------------------------------------------


def test_red_and_flagged_numbers_page_and_the_recovered_number_resolves(stack):
    receiver = stack.receiver
    number_labels = dict(provider=PROVIDER, account=ACCOUNT, job=JOB, team="e2e")

    # the RED page at the pager receiver
    red = await_alert(stack, "/page", "WhatsAppNumberQualityRed", phone_number=RED_NUMBER)[0]
    assert_labels(red, **number_labels, severity="critical", quality_rating="RED")
    assert red["annotations"]["summary"] == "WhatsApp number quality rating is RED."
    assert f"Number {RED_NUMBER} of account {ACCOUNT} (provider {PROVIDER})" in red["annotations"]["description"]
    assert red["annotations"]["runbook_url"].endswith("/docs/runbooks.md#whatsappnumberqualityred")

    # the FLAGGED page at the pager receiver
    flagged = await_alert(stack, "/page", "WhatsAppNumberFlagged", phone_number=FLAGGED_NUMBER)[0]
    assert_labels(flagged, **number_labels, severity="critical", status="FLAGGED")
    assert (
        f"Number {FLAGGED_NUMBER} of account {ACCOUNT} (provider {PROVIDER})" in flagged["annotations"]["description"]
    )
    assert flagged["annotations"]["runbook_url"].endswith("/docs/runbooks.md#whatsappnumberflagged")

    # the FLAGGED page to be resolved after the number is CONNECTED again
    resolved = await_alert(
        stack, "/page", "WhatsAppNumberFlagged", "resolved", phone_number=FLAGGED_NUMBER, timeout=RESOLVE_TIMEOUT
    )[0]
    assert resolved["labels"] == flagged["labels"]

    # Warnings are tickets, never pages.
    # the YELLOW warning at the ticket receiver
    await_alert(stack, "/ticket", "WhatsAppNumberQualityYellow", phone_number=RED_NUMBER, timeout=10)
    # the tier-drop warning at the ticket receiver
    await_alert(stack, "/ticket", "WhatsAppNumberMessagingLimitDropped", phone_number=RED_NUMBER, timeout=10)
    pages = receiver.alerts("/page")
    assert {a["labels"]["severity"] for a in pages} == {"critical"}, receiver.summary()
    # the CAMS BLOCKED page (GetWhatsappHealthStatus)
    blocked = await_alert(stack, "/page", "WhatsAppNumberBlocked", phone_number=CAMS_BLOCKED_NUMBER)[0]
    assert_labels(blocked, **number_labels, severity="critical")
    assert "141006" in blocked["annotations"]["description"]
    pages = receiver.alerts("/page")
    assert {a["labels"]["alertname"] for a in pages if a["labels"]["provider"] == PROVIDER} == {
        "WhatsAppNumberQualityRed",
        "WhatsAppNumberFlagged",
        "WhatsAppNumberBlocked",
    }, receiver.summary()
    assert not [a for a in pages if a["labels"].get("phone_number") == HEALTHY_NUMBER], receiver.summary()
    assert not [a for a in receiver.alerts("/ticket") if a["labels"]["severity"] == "critical"], receiver.summary()
    # The RED number is still RED: its page has not been resolved.
    assert not receiver.find("/page", "WhatsAppNumberQualityRed", "resolved"), receiver.summary()

    check_meta_alerts_arrive_by_webhook_long_before_the_next_poll(stack)
    check_twilio_offline_and_infobip_low_page(stack)

    # Every dashboard query returns data from this Prometheus, with the scenario's provider and account
    # selected, and the RED number where a dashboard takes one number (the fleet overview shows them all).
    # Queries over families this stack cannot produce (Meta's health and API usage: not reported by CAMS; the
    # webhook receiver: not running) must still be accepted by Prometheus, but may return nothing; their panels
    # say which providers they need (tests/e2e/test_dashboards.py NEEDS).
    builtins = {"__rate_interval": "30s", "__range": "5m", "__interval": "1s"}
    empty = []
    checked = 0
    exempt = 0
    for dashboard in load_dashboards().values():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        values = {
            "datasource": "prometheus",
            "provider": PROVIDER,
            "account": ACCOUNT,
            "phone_number": ".*" if variables.get("phone_number", {}).get("includeAll") else RED_NUMBER,
        }
        for where, expr in iter_queries(dashboard):
            promql = substitute(expr, values, builtins)
            result = query(stack.prometheus, promql)
            if needs(expr):
                exempt += 1
                continue
            checked += 1
            if not result:
                empty.append(f"{where}: {promql}")
    assert checked > 30 and exempt < checked
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def check_twilio_offline_and_infobip_low_page(stack):
    """A Twilio sender OFFLINE pages through the shared can't-send alert, with its reason; an Infobip LOW
    quality through the shared RED alert. Nothing else of theirs pages."""
    receiver = stack.receiver
    # the Twilio OFFLINE page (WhatsAppNumberCannotSend)
    offline = await_alert(stack, "/page", "WhatsAppNumberCannotSend", phone_number=TWILIO_OFFLINE_NUMBER)[0]
    assert_labels(offline, provider="twilio", account=TWILIO_ACCOUNT, job=JOB, severity="critical", status="OFFLINE")
    assert "Reasons: 63020 (Invitation not accepted);" in offline["annotations"]["description"]
    assert offline["annotations"]["runbook_url"].endswith("/docs/runbooks.md#whatsappnumbercannotsend")
    # the Infobip LOW-quality page (WhatsAppNumberQualityRed)
    low = await_alert(stack, "/page", "WhatsAppNumberQualityRed", phone_number=INFOBIP_LOW_NUMBER)[0]
    assert_labels(low, provider="infobip", account=INFOBIP_ACCOUNT, job=JOB, severity="critical", quality_rating="RED")
    pages = receiver.alerts("/page")
    assert {
        (a["labels"]["provider"], a["labels"]["alertname"])
        for a in pages
        if a["labels"]["provider"] in ("twilio", "infobip")
    } == {("twilio", "WhatsAppNumberCannotSend"), ("infobip", "WhatsAppNumberQualityRed")}, receiver.summary()


def check_meta_alerts_arrive_by_webhook_long_before_the_next_poll(stack):
    """The Meta account polls once an hour: a WABA restriction (a ticket that resolves when the restriction
    expires) and a disabled WABA (a page, once, not also for its BLOCKED number) come from Meta's signed
    account_update webhooks."""
    receiver, diagnostics = stack.receiver, stack.diagnostics
    meta_labels = dict(provider="meta", account=META_ACCOUNT, job=JOB)
    # the disabled-WABA page, brought by a webhook
    disabled = await_alert(stack, "/page", "WhatsAppWabaDisabled", waba_id=META_DISABLED_WABA)[0]
    assert_labels(disabled, **meta_labels, severity="critical")
    assert "17 April 2027" in disabled["annotations"]["description"]
    # the restriction ticket, brought by a webhook
    restricted = await_alert(
        stack, "/ticket", "WhatsAppWabaRestricted", waba_id=META_RESTRICTED_WABA, restriction_type=RESTRICTION
    )[0]
    assert_labels(restricted, **meta_labels, severity="warning")
    # the restriction ticket to resolve when the restriction expires
    await_alert(
        stack, "/ticket", "WhatsAppWabaRestricted", "resolved", waba_id=META_RESTRICTED_WABA, timeout=RESOLVE_TIMEOUT
    )
    assert not query(stack.prometheus, "whatsapp_waba_restriction_info")
    # The disabled WABA's number is BLOCKED in its health too (the DISABLED_UPDATE made the exporter read it
    # again at once), but it pages once, for the WABA.
    wait_for(
        "the disabled WABA's number read as BLOCKED",
        lambda: query(
            stack.prometheus,
            f'whatsapp_phone_number_can_send_message{{can_send_message="BLOCKED",account="{META_ACCOUNT}"}} == 1',
        ),
        PAGE_TIMEOUT,
        diagnostics,
    )
    assert {a["labels"]["alertname"] for a in receiver.alerts("/page") if a["labels"]["provider"] == "meta"} == {
        "WhatsAppWabaDisabled"
    }, receiver.summary()
    # Signed events were delivered and acted on, and the account's scheduled poll ran once (at start),
    # an hour before its next one.
    delivered = [h for h in stack.meta.webhooks_sent() if h["status"] == "delivered"]
    assert {h["field"] for h in delivered} >= {"account_update"}, delivered
    counted = sum(
        stack.webhooks.metrics.value(
            "whatsapp_exporter_webhook_events_total", provider="meta", event="account_update", result=result
        )
        for result in ("accepted", "debounced")
    )
    assert counted >= 2
    interval = query(stack.prometheus, f'whatsapp_exporter_poll_interval_seconds{{account="{META_ACCOUNT}"}}')
    assert float(interval[0]["value"][1]) == 3600
