"""The Grafana dashboards in dashboards/ and their provisioning files in deploy/grafana/.

Every panel query is checked for real: the queries (template variables
substituted) become recording rules of a generated rules file that the real
`promtool check rules` parses. The end-to-end test (test_e2e_alerting.py) then
runs the same queries against a real Prometheus and requires data from each,
except from queries over the families in NEEDS, which its stack (one CAMS
account, no webhook receiver) cannot produce.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from exporter import exposition, webhooks
from tests.e2e.test_alert_rules import STATE_SETS
from tests.tools import ROOT, binary

DASHBOARDS = ROOT / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED = {
    "whatsapp-fleet-overview.json": {"provider", "account", "phone_number"},
    "whatsapp-number-detail.json": {"provider", "account", "phone_number"},
    "whatsapp-exporter-health.json": {"provider", "account"},
}
# Metric names a query may use: the exporter's families plus what Prometheus itself provides.
KNOWN_METRICS = (
    {f.name for f in exposition.NUMBER_FAMILIES + exposition.WABA_FAMILIES + exposition.ACCOUNT_FAMILIES}
    | {exposition.BUILD_INFO.name, "up", "ALERTS"}
    | {webhooks.EVENTS_FAMILY, webhooks.REJECTED_FAMILY, webhooks.REFRESHES_FAMILY}
)
# Families only some providers or an optional feature produce, with the words every panel that queries one must
# have in its description (so a user of another provider knows why the panel is empty). The end-to-end test runs
# these queries but does not require data from them: its stack cannot produce all of them (health only once a
# number's health was read, and blocking errors only for a blocked number; no NxCloud; Meta's portfolio limit and
# account_update facts only for a Meta account with its webhooks).
_HEALTH = "Meta Cloud API, Kaleyra and CAMS only"  # health_status, or CAMS' GetWhatsappHealthStatus
_META_HEALTH = "Meta Cloud API and Kaleyra only"
_META_API = "Meta Cloud API only"
_PORTFOLIO = "Only where Meta reports the limit per portfolio"
_ACCOUNT_UPDATE = "Only with Meta's account_update webhook"
_CAMS = "Alibaba CAMS only"
_WEBHOOKS = "Only with the webhook receiver"
NEEDS = {
    "whatsapp_phone_number_can_send_message": _HEALTH,
    "whatsapp_phone_number_throughput_level": _META_HEALTH,
    "whatsapp_phone_number_blocking_error_info": _HEALTH,
    "whatsapp_entity_can_send_message": _HEALTH,
    "whatsapp_business_messaging_limit_tier": _PORTFOLIO,
    "whatsapp_business_messaging_limit": _PORTFOLIO,
    "whatsapp_waba_restriction_info": _ACCOUNT_UPDATE,
    "whatsapp_waba_restriction_expiration_timestamp_seconds": _ACCOUNT_UPDATE,
    "whatsapp_waba_ban_state": _ACCOUNT_UPDATE,
    "whatsapp_waba_ban_timestamp_seconds": _ACCOUNT_UPDATE,
    "whatsapp_waba_violations_total": _ACCOUNT_UPDATE,
    "whatsapp_exporter_health_sweep_duration_seconds": _CAMS,
    "whatsapp_exporter_api_usage_ratio": _META_API,
    "whatsapp_exporter_api_regain_access_seconds": _META_API,
    webhooks.EVENTS_FAMILY: _WEBHOOKS,
    webhooks.REJECTED_FAMILY: _WEBHOOKS,
    webhooks.REFRESHES_FAMILY: _WEBHOOKS,
}
BUILTINS = {"__rate_interval": "5m", "__range": "1h", "__interval": "1m"}
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")
_VAR = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
_METRIC = re.compile(r"\b(whatsapp_[a-z_]+|up|ALERTS)\b(?=\s*[{\[)]|\s*$|\s)")


# -- helpers shared with the end-to-end test ----------------------------------


def load_dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def iter_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))  # collapsed rows hold their panels


def iter_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(where, PromQL with template variables) for every panel target and every query variable."""
    for panel in iter_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f'{dashboard["uid"]} panel {panel["id"]} "{panel["title"]}" {target["refId"]}', target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            selector = label_values_selector(var)
            if selector:
                yield f"{dashboard['uid']} variable {var['name']}", selector


def needs(expr: str) -> set[str]:
    """The families of NEEDS that ``expr`` queries: it may return nothing without them."""
    return {m for m in _METRIC.findall(expr) if m in NEEDS}


def label_values_selector(var: dict) -> str | None:
    query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
    match = _LABEL_VALUES.match(query.strip())
    assert match, f"variable {var['name']}: expected label_values(<selector>, <label>), got {query!r}"
    return match.group("selector")


def _promql_regex_literal(value: str) -> str:
    """A literal value as a regex inside a double-quoted PromQL string, escaped as Grafana's Prometheus
    datasource escapes multi-value variables (prometheusSpecialRegexEscape)."""
    regex = re.sub(r"[\\$^*{}\[\]'+?.()|]", lambda m: "\\" + m.group(0), value)
    return regex.replace("\\", "\\\\")


def substitute(expr: str, values: dict[str, str], builtins: dict[str, str] = BUILTINS) -> str:
    """Replace Grafana variables in ``expr``: ``values`` holds the dashboard variables.

    In a regex matcher (``=~"$x"``) a value other than ``.*`` is escaped, as Grafana does for
    multi-value and "All" variables; elsewhere it is inserted as it is.
    """

    def in_regex(match: re.Match) -> str:
        value = _lookup(match.group(2) or match.group(3), values, builtins)
        return f'{match.group(1)}"{value if value == ".*" else _promql_regex_literal(value)}"'

    expr = re.sub(r'(=~|!~)\s*"\$(?:\{(\w+)\}|(\w+))"', in_regex, expr)
    return _VAR.sub(lambda m: _lookup(m.group(1) or m.group(2), values, builtins), expr)


def _lookup(name: str, values: dict[str, str], builtins: dict[str, str]) -> str:
    if name in builtins:
        return builtins[name]
    assert name in values, f"unknown template variable ${name}"
    return values[name]


# -- tests ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboards():
    found = load_dashboards()
    assert set(found) == set(EXPECTED), sorted(found)
    return found


def test_dashboards_are_grafana_json_with_unique_uids(dashboards):
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, d in dashboards.items():
        assert d["schemaVersion"] >= 36, name
        assert d["title"].startswith("WhatsApp / "), name
        assert "whatsapp-number-exporter" in d["tags"], name
        assert d.get("id") is None, f"{name}: provisioned dashboards must not carry a database id"


def test_panel_ids_are_unique_and_panels_fit_the_grid(dashboards):
    for name, d in dashboards.items():
        ids = [p["id"] for p in iter_panels(d["panels"])]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for p in iter_panels(d["panels"]):
            pos = p["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, (name, p["title"], pos)
            assert p.get("title"), (name, p["id"])


def test_every_panel_queries_prometheus_through_the_datasource_variable(dashboards):
    for name, d in dashboards.items():
        for p in iter_panels(d["panels"]):
            if p["type"] == "row":
                continue
            where = f'{name} panel {p["id"]} "{p["title"]}"'
            assert p["datasource"] == DATASOURCE, where
            assert p["targets"], f"{where}: no query"
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), f"{where}: duplicate refIds"
            for t in p["targets"]:
                assert t["datasource"] == DATASOURCE, where
                assert t["expr"].strip(), where


def test_template_variables(dashboards):
    for name, d in dashboards.items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        ds = variables["datasource"]
        assert ds["type"] == "datasource" and ds["query"] == "prometheus", name
        assert EXPECTED[name] <= set(variables), (name, sorted(variables))
        for var in d["templating"]["list"]:
            if var["type"] == "query":
                assert var["datasource"] == DATASOURCE, (name, var["name"])
                label_values_selector(var)
                if var.get("includeAll"):
                    assert var.get("allValue") == ".*", (name, var["name"])
        # every variable a query uses is defined (or a Grafana built-in)
        for where, expr in iter_queries(d):
            for match in _VAR.finditer(expr):
                used = match.group(1) or match.group(2)
                assert used in variables or used in BUILTINS, f"{where}: undefined variable ${used}"
    # one number at a time in the detail dashboard: an exact match, no regex escaping needed
    detail = {v["name"]: v for v in dashboards["whatsapp-number-detail.json"]["templating"]["list"]}
    assert not detail["phone_number"]["multi"] and not detail["phone_number"]["includeAll"]


def test_single_value_variables_are_matched_exactly_and_multi_value_ones_as_regexes(dashboards):
    """Grafana escapes regex characters (the + of E.164) only for multi-value or All variables."""
    for d in dashboards.values():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        for where, expr in iter_queries(d):
            for match in re.finditer(r'(=~|!~|=|!=)\s*"\$(\w+)"', expr):
                var = variables[match.group(2)]
                regex = var.get("multi") or var.get("includeAll")
                assert (match.group(1) in ("=~", "!~")) == bool(regex), f"{where}: {match.group(0)}"


def test_queries_only_use_metrics_the_exporter_exposes(dashboards):
    for d in dashboards.values():
        for where, expr in iter_queries(d):
            for metric in _METRIC.findall(expr):
                assert metric in KNOWN_METRICS, f"{where}: unknown metric {metric}"


def test_panels_over_provider_specific_families_say_which_providers(dashboards):
    """A panel that is empty for some providers (or without the webhook receiver) says so in its description."""
    for name, d in dashboards.items():
        for p in iter_panels(d["panels"]):
            for t in p.get("targets", []):
                for family in needs(t["expr"]):
                    assert NEEDS[family] in p.get("description", ""), (
                        f'{name} panel {p["id"]} "{p["title"]}": queries {family}, so its description must say '
                        f'"{NEEDS[family]}"'
                    )
    # every family listed here exists, and the exemption stays narrow
    assert set(NEEDS) <= KNOWN_METRICS


def test_state_sets_are_only_queried_with_eq_1(dashboards):
    """Panels must show the same with `metrics.state_sets: active` (only the current state's series)."""
    for d in dashboards.values():
        for where, expr in iter_queries(d):
            if " variable " in where:
                continue  # label_values() lists label values; it compares nothing
            for family in STATE_SETS:
                uses = len(re.findall(rf"\b{family}\b", expr))
                as_active = len(re.findall(rf"\b{family}(\{{[^}}]*\}})?(\[[^\]]*\])?\)*\s*==\s*1\b", expr))
                assert uses == as_active, f"{where}: {family} must be compared with == 1"


def test_every_query_is_valid_promql(dashboards, tmp_path):
    """promtool parses each query (variables substituted) as the expression of a recording rule."""
    rules, index = [], {}
    for d in dashboards.values():
        values = {v["name"]: ".*" for v in d["templating"]["list"]}
        for n, (where, expr) in enumerate(iter_queries(d)):
            record = f"dashboard:{d['uid'].replace('-', '_')}:q{n}"
            index[record] = where
            rules.append({"record": record, "expr": substitute(expr, values)})
    assert len(rules) > 30
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    result = subprocess.run(
        [binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout + result.stderr


def test_substitute_escapes_regex_values_like_grafana():
    expr = 'x{provider=~"$provider", phone_number="$phone_number", account=~"${account}"}[$__rate_interval]'
    out = substitute(expr, {"provider": ".*", "phone_number": "+861", "account": "a.b"})
    assert out == 'x{provider=~".*", phone_number="+861", account=~"a\\\\.b"}[5m]'


def test_provisioning_files():
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    prometheus = [s for s in sources["datasources"] if s["type"] == "prometheus"]
    assert len(prometheus) == 1 and prometheus[0]["isDefault"] and prometheus[0]["access"] == "proxy"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "whatsapp-number-exporter.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


# -- what the non-trivial queries return, evaluated by promtool ---------------------------------------------------

_JOB = 'job="whatsapp-number-exporter",instance="exporter:10067"'
_CAN = ("AVAILABLE", "LIMITED", "BLOCKED", "UNKNOWN", "OTHER")
_STATUS = ("CONNECTED", "FLAGGED", "BANNED", "RESTRICTED", "DISCONNECTED", "DELETED")


def _number(phone: str, status: str, can_send: str | None, all_states: bool, errors=()) -> list[dict]:
    """The series of one CAMS number as the exporter exposes it, in one state-set mode."""
    base = f'provider="alibaba_cams",account="shop",phone_number="{phone}",{_JOB}'
    out = [
        {"series": f'whatsapp_phone_number_status{{{base},status="{s}"}}', "values": f"{int(s == status)}x15"}
        for s in (_STATUS if all_states else (status,))
    ]
    if can_send:
        out += [
            {
                "series": f'whatsapp_phone_number_can_send_message{{{base},can_send_message="{c}"}}',
                "values": f"{int(c == can_send)}x15",
            }
            for c in (_CAN if all_states else (can_send,))
        ]
    out += [
        {
            "series": f'whatsapp_phone_number_blocking_error_info{{{base},entity_type="{t}",entity_id="{i}",'
            f'error_code="{code}",error_description="{text}"}}',
            "values": "1x15",
        }
        for t, i, code, text in errors
    ]
    return out


def _panel_query(dashboard: dict, title: str) -> str:
    (expr,) = [e for where, e in iter_queries(dashboard) if f'"{title}" ' in where]
    return substitute(expr, {v["name"]: ".*" for v in dashboard["templating"]["list"]})


def _cannot_send(dashboard: dict, count: int, rows: list[dict]) -> list[dict]:
    """promtool tests at 10 minutes: the "Cannot send" tile shows ``count``; its table, ``rows`` (label sets)."""
    expected = [{"labels": "{" + ",".join(f'{k}="{v}"' for k, v in row.items()) + "}", "value": 1} for row in rows]
    return [
        {
            "expr": _panel_query(dashboard, "Cannot send"),
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": count}],
        },
        {"expr": _panel_query(dashboard, "Numbers that cannot send"), "eval_time": "10m", "exp_samples": expected},
    ]


def _promtool_eval(tmp_path, series: list[dict], tests: list[dict]) -> subprocess.CompletedProcess:
    path = tmp_path / "queries.test.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
            },
            sort_keys=False,
        )
    )
    return subprocess.run([binary("promtool"), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_cannot_send_tile_counts_each_number_once_and_the_table_gives_every_reason(dashboards, tmp_path):
    """Whatever the provider and state-set mode: status, health BLOCKED, a disabled WABA, or several of them (counted
    once), with each blocking error."""
    fleet = dashboards["whatsapp-fleet-overview.json"]
    pay = ("BUSINESS", "39920000", "141006", "Payment method error.")
    own = ("PHONE_NUMBER", "8613800000001", "131031", "Account locked.")
    series = (
        _number("+8613800000001", "BANNED", "BLOCKED", True, [own])  # status and health: one number
        + _number("+8613800000002", "CONNECTED", "BLOCKED", False)  # health only, no error listed
        + _number("+8613800000003", "RESTRICTED", None, False)  # status only, health never read
        + _number("+8613800000004", "CONNECTED", "AVAILABLE", True)  # can send
        + _number("+8613800000005", "CONNECTED", "BLOCKED", False, [pay, (*own[:1], "8613800000005", *own[2:])])
        + _number("+8613800000006", "CONNECTED", "LIMITED", True)  # can send, with limits
        + _number("+15550000007", "CONNECTED", None, False)  # its WABA is disabled (only the active ban state)
        + _number("+15550000008", "CONNECTED", None, True)  # its WABA is only scheduled for disable (every state)
    )
    for phone, waba in (("+15550000007", "1022901"), ("+15550000008", "1022902"), ("+8613800000001", "1022903")):
        series.append(
            {
                "series": f'whatsapp_phone_number_info{{provider="alibaba_cams",account="shop",phone_number="{phone}",'
                f'{_JOB},verified_name="Shop",waba_id="{waba}"}}',
                "values": "1x15",
            }
        )
    wabas = {"1022901": ("DISABLE",), "1022902": ("NONE", "SCHEDULE_FOR_DISABLE", "DISABLE", "REINSTATE")}
    for waba, states in wabas.items():
        current = states[0] if len(states) == 1 else "SCHEDULE_FOR_DISABLE"
        series += [
            {
                "series": f'whatsapp_waba_ban_state{{provider="alibaba_cams",account="shop",{_JOB},waba_id="{waba}",'
                f'ban_state="{s}"}}',
                "values": f"{int(s == current)}x15",
            }
            for s in states
        ]

    def row(phone, **labels):
        return {"account": "shop", "phone_number": phone, "provider": "alibaba_cams", **labels}

    def error(t, i, code, text):
        return dict(can_send_message="BLOCKED", entity_type=t, entity_id=i, error_code=code, error_description=text)

    rows = [
        row("+8613800000001", status="BANNED"),
        row("+8613800000001", **error(*own)),
        row("+8613800000002", can_send_message="BLOCKED"),
        row("+8613800000003", status="RESTRICTED"),
        row("+8613800000005", **error(*pay)),
        row("+8613800000005", **error("PHONE_NUMBER", "8613800000005", "131031", "Account locked.")),
        row("+15550000007", waba_id="1022901", ban_state="DISABLE"),
    ]
    result = _promtool_eval(tmp_path, series, _cannot_send(fleet, 5, rows))
    assert result.returncode == 0, result.stdout + result.stderr


def test_waba_restriction_table_gives_expiry_and_time_left(dashboards, tmp_path):
    fleet = dashboards["whatsapp-fleet-overview.json"]
    restriction = 'restriction_type="RESTRICTED_BIZ_INITIATED_MESSAGING"'
    waba = f'provider="meta",account="brand",{_JOB},waba_id="102290000000001",{restriction}'
    (expiry, left) = [
        substitute(e, {v["name"]: ".*" for v in fleet["templating"]["list"]})
        for where, e in iter_queries(fleet)
        if '"WABA restrictions" ' in where and "restriction_info" not in e
    ]
    labels = f'{{account="brand",provider="meta",{restriction},waba_id="102290000000001"}}'
    result = _promtool_eval(
        tmp_path,
        [
            {"series": f"whatsapp_waba_restriction_info{{{waba}}}", "values": "1x15"},
            {"series": f"whatsapp_waba_restriction_expiration_timestamp_seconds{{{waba}}}", "values": "3600x15"},
        ],
        [
            {"expr": expiry, "eval_time": "10m", "exp_samples": [{"labels": labels, "value": 3_600_000}]},
            {"expr": left, "eval_time": "10m", "exp_samples": [{"labels": labels, "value": 3000}]},
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cannot_send_counts_a_twilio_offline_sender_with_its_reasons(dashboards, tmp_path):
    """Twilio's OFFLINE is a can't-send status (with its offline_reasons as blocking errors); CAMS' OFFLINE is not."""
    fleet = dashboards["whatsapp-fleet-overview.json"]

    def status(provider, phone, value):
        return {
            "series": f'whatsapp_phone_number_status{{provider="{provider}",account="a",phone_number="{phone}",'
            f'{_JOB},status="{value}"}}',
            "values": "1x15",
        }

    reason = {
        "series": f'whatsapp_phone_number_blocking_error_info{{provider="twilio",account="a",phone_number="+1415",'
        f'{_JOB},entity_type="PHONE_NUMBER",entity_id="XE1",error_code="63020",error_description="x"}}',
        "values": "1x15",
    }
    series = [
        status("twilio", "+1415", "OFFLINE"),
        reason,
        status("twilio", "+1416", "OFFLINE"),
        status("alibaba_cams", "+8613", "OFFLINE"),
        status("infobip", "+4478", "CONNECTED"),
    ]

    def row(phone, **labels):
        return {"account": "a", "phone_number": phone, "provider": "twilio", "status": "OFFLINE", **labels}

    reasons = dict(entity_type="PHONE_NUMBER", entity_id="XE1", error_code="63020", error_description="x")
    result = _promtool_eval(tmp_path, series, _cannot_send(fleet, 2, [row("+1415", **reasons), row("+1416")]))
    assert result.returncode == 0, result.stdout + result.stderr
