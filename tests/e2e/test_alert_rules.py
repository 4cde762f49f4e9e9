"""The alert rules in alerts/, their promtool unit tests, the runbooks, and the deploy examples.

promtool (Debian's `prometheus` package, installed by scripts/install-tools.sh)
checks and unit-tests the rules for real; the rest checks the conventions
every alert must follow.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from exporter import exposition, webhooks
from tests.tools import ROOT, binary

ALERTS_DIR = ROOT / "alerts"
RULE_FILES = sorted(ALERTS_DIR.glob("*.yml"))
TEST_FILES = sorted((ALERTS_DIR / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/whatsapp-number-exporter/whatsapp-number-exporter/blob/main/docs/runbooks.md"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
JOB = "whatsapp-number-exporter"

STATE_SETS = {
    "whatsapp_phone_number_status",
    "whatsapp_phone_number_quality_rating",
    "whatsapp_phone_number_messaging_limit_tier",
    "whatsapp_phone_number_code_verification_status",
    "whatsapp_phone_number_name_status",
    "whatsapp_phone_number_new_name_status",
    "whatsapp_waba_account_review_status",
    "whatsapp_phone_number_can_send_message",
    "whatsapp_phone_number_throughput_level",
    "whatsapp_entity_can_send_message",
    "whatsapp_waba_ban_state",
    "whatsapp_business_messaging_limit_tier",
}
KNOWN_METRICS = (
    {f.name for f in exposition.NUMBER_FAMILIES + exposition.WABA_FAMILIES + exposition.ACCOUNT_FAMILIES}
    | {exposition.BUILD_INFO.name, "up"}
    | {webhooks.EVENTS_FAMILY, webhooks.REJECTED_FAMILY, webhooks.REFRESHES_FAMILY}
)
CRITICAL = {
    "WhatsAppNumberQualityRed",
    "WhatsAppNumberFlagged",
    "WhatsAppNumberCannotSend",
    "WhatsAppNumberDeleted",
    "WhatsAppNumberBlocked",
    "WhatsAppBusinessEntityBlocked",
    "WhatsAppWabaDisabled",
    "WhatsAppWabaScheduledForDisable",
}


def load_rules(path: Path) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict]:
    found = {}
    for path in RULE_FILES:
        for rule in load_rules(path):
            assert "alert" in rule, f"{path.name}: only alerting rules are expected here: {rule}"
            assert rule["alert"] not in found, f"duplicate alert {rule['alert']}"
            found[rule["alert"]] = rule
    return found


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """anchor -> text of the section, for every `## ` heading of docs/runbooks.md."""
    sections, current = {}, None
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("## "):
            current = github_anchor(line[3:])
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


# -- promtool, for real -----------------------------------------------------------


def test_files_exist():
    assert [p.name for p in RULE_FILES] == ["whatsapp-number-exporter.rules.yml"]
    assert TEST_FILES


def test_promtool_check_rules():
    result = run(binary("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_test_rules():
    result = run(binary("promtool"), "test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "FAILED" not in result.stdout


# -- conventions --------------------------------------------------------------------


def test_names_severities_and_durations():
    found = alerts()
    assert len(found) >= 15
    for name, rule in found.items():
        assert re.fullmatch(r"WhatsApp(Number|Waba|Business|Exporter)[A-Z][A-Za-z0-9]*", name), name
        assert set(rule["labels"]) == {"severity"}, name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        # `for:` of at least 5 minutes: several polls at the default 60 s interval
        assert seconds(rule["for"]) >= 300, name
    assert {n for n, r in found.items() if r["labels"]["severity"] == "critical"} == CRITICAL


def test_every_for_duration_is_justified_in_the_rule_file():
    text = "\n".join(p.read_text() for p in RULE_FILES)
    blocks = re.split(r"\n\s*- alert: ", text)[1:]
    found = alerts()
    assert len(blocks) == len(found)
    for block in blocks:
        name = block.split()[0]
        rule = found[name]
        assert re.search(rf"#\s*for {re.escape(rule['for'])}:", block), f"{name}: no '# for {rule['for']}:' comment"


def test_annotations():
    for name, rule in alerts().items():
        ann = rule["annotations"]
        assert set(ann) == {"summary", "description", "runbook_url"}, name
        assert re.fullmatch(r"[A-Z][^{}]*\.", ann["summary"]), f"{name}: summary must be a plain sentence"
        assert ann["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}", name
        description = ann["description"]
        if name.startswith("WhatsAppNumber"):
            needed = ("phone_number", "account", "provider")
        elif name.startswith("WhatsAppWaba"):
            needed = ("waba_id", "account", "provider")
        elif name == "WhatsAppBusinessEntityBlocked":
            needed = ("entity_type", "entity_id", "account", "provider")
        elif name.startswith("WhatsAppBusiness"):
            needed = ("business_id", "account", "provider")  # a business portfolio
        elif name == "WhatsAppExporterDown":
            needed = ("instance", "job")  # `up` has no account or provider
        elif name == "WhatsAppExporterWebhooksRefused":
            needed = ("instance", "provider")  # webhook events are not tied to an account
        else:
            needed = ("account", "provider")
        for label in needed:
            assert f"{{{{ $labels.{label} }}}}" in description, f"{name}: description does not name {label}"


def test_every_alert_has_a_runbook_section_and_no_section_is_stale():
    sections = runbook_sections()
    found = alerts()
    for name, rule in found.items():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in sections, f"docs/runbooks.md has no heading for {name}"
        text = sections[anchor]
        for part in ("**Meaning.**", "**Check.**", "**Do.**"):
            assert part in text, f"runbook of {name} lacks {part}"
        assert f"`for: {rule['for']}`" in text, f"runbook of {name} does not justify for: {rule['for']}"
    alert_sections = {a for a in sections if a.startswith("whatsapp")}
    assert alert_sections == {n.lower() for n in found}


def test_metric_names_exist():
    """In the expressions, and in the queries the descriptions run (`query` in their templates)."""
    for name, rule in alerts().items():
        for where in (rule["expr"], *rule["annotations"].values()):
            for metric in re.findall(r"\b(whatsapp_[a-z_]+|up)\b(?=\s*[{\[)]|\s*$|\s)", where):
                assert metric in KNOWN_METRICS, f"{name}: unknown metric {metric}"


def test_state_sets_are_only_queried_with_eq_1():
    """Rules must work when the exporter emits only the active state: never use a state's 0 series.

    The queries of the description templates too: they would name a state that is not the current one.
    """
    for name, rule in alerts().items():
        for expr in (rule["expr"], *rule["annotations"].values()):
            for family in STATE_SETS:
                uses = len(re.findall(rf"\b{family}\b", expr))
                as_active = len(re.findall(rf"\b{family}(\{{[^}}]*\}})?(\[[^\]]*\])?\)*\s*==\s*1\b", expr))
                assert uses == as_active, f"{name}: {family} must be compared with == 1"


def test_every_alert_is_unit_tested_firing_and_not_firing():
    firing, quiet = {}, set()
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case["exp_alerts"]:
                    firing.setdefault(case["alertname"], []).extend(case["exp_alerts"])
                else:
                    quiet.add(case["alertname"])
    for name, rule in alerts().items():
        assert name in firing, f"{name}: no test case where it fires"
        assert name in quiet, f"{name}: no test case where it must not fire"
        for exp in firing[name]:
            assert exp["exp_labels"]["severity"] == rule["labels"]["severity"], name
            assert set(exp["exp_annotations"]) == {"summary", "description", "runbook_url"}, name
            assert exp["exp_annotations"]["runbook_url"] == rule["annotations"]["runbook_url"], name


# -- deploy examples ------------------------------------------------------------------


def test_prometheus_example_is_valid_and_loads_the_rules(tmp_path):
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    assert job["static_configs"][0]["targets"]
    assert f'up{{job="{JOB}"}}' in alerts()["WhatsAppExporterDown"]["expr"]
    # the layout the example documents: prometheus.yml with alerts/ next to it
    shutil.copy(PROMETHEUS_YML, tmp_path / "prometheus.yml")
    (tmp_path / "alerts").mkdir()
    for path in RULE_FILES:
        shutil.copy(path, tmp_path / "alerts" / path.name)
    result = run(binary("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_alertmanager_example_is_valid_and_pages_only_critical():
    result = run(binary("amtool"), "check-config", str(ALERTMANAGER_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    (page,) = config["route"]["routes"]
    assert page["matchers"] == ['severity="critical"']
    assert page["receiver"] != config["route"]["receiver"]
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert hook["send_resolved"] is True, receiver["name"]


@pytest.mark.parametrize(
    "labels,receiver",
    [
        ("alertname=WhatsAppNumberQualityRed severity=critical provider=alibaba_cams account=shop", "whatsapp-pager"),
        (
            "alertname=WhatsAppNumberQualityYellow severity=warning provider=alibaba_cams account=shop",
            "whatsapp-tickets",
        ),
        ("alertname=WhatsAppExporterDown severity=warning", "whatsapp-tickets"),
    ],
)
def test_alertmanager_example_routes(labels, receiver):
    result = run(binary("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels.split())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver
