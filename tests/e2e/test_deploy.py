"""Deployment files: the compose demo stack, the Kubernetes manifests, and sharding across replicas.

This machine has no container engine and no cluster, so what cannot run here
is checked statically (every file the compose stack mounts exists and is the
very file tests/e2e/test_e2e_alerting.py runs with a real Prometheus and
Alertmanager; the manifests are consistent with each other, with the image and
with the alert rules) and by running the same steps outside a container (the
compose stack's inline helper scripts, the ConfigMap's configuration through
``--check-config``, and several sharded exporter processes against one
emulator, which together must poll every account exactly once).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from emulators.cams import CamsEmulator
from emulators.scenario import loads_scenario
from exporter.cli import DEFAULT_LISTEN
from exporter.config import parse_config
from exporter.sharding import select, shard_of
from tests.e2e import test_e2e_alerting as e2e
from tests.e2e.test_e2e_alerting import wait_for
from tests.helpers import free_port, load_script, run_script, samples
from tests.tools import ROOT, binary

DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "kubernetes"
JOB = "whatsapp-number-exporter"
EXPORTER_PORT = int(DEFAULT_LISTEN.rsplit(":", 1)[1])


# =====================================================================================
# docker compose
# =====================================================================================


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def bind_mounts(service: dict) -> list[tuple[Path, str, str]]:
    """(host path resolved against deploy/, container path, options) of a service's bind mounts."""
    out = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), f"use the short volume syntax: {volume!r}"
        source, target, *options = volume.split(":")
        if source.startswith((".", "/")):
            out.append(((DEPLOY / source).resolve(), target, options[0] if options else "rw"))
    return out


def named_volumes(service: dict) -> dict[str, str]:
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if not source.startswith((".", "/")):
            out[source] = target
    return out


def mounted(service: dict, target: str) -> Path:
    found = [src for src, tgt, _ in bind_mounts(service) if tgt == target]
    assert len(found) == 1, f"expected one bind mount at {target}: {service.get('volumes')}"
    return found[0]


def entrypoint_script(service: dict) -> str:
    entrypoint = service["entrypoint"]
    assert entrypoint[:2] == ["/opt/whatsapp-number-exporter/bin/python", "-c"], entrypoint
    return entrypoint[2]


def hostnames(compose: dict) -> dict[str, str]:
    """Every name a container resolves on the default network -> its service."""
    names = {}
    for name, service in compose["services"].items():
        names[name] = name
        networks = service.get("networks") or {}
        if isinstance(networks, dict):
            for alias in (networks.get("default") or {}).get("aliases", []):
                names[alias] = name
    return names


def test_compose_has_the_whole_stack(compose):
    services = compose["services"]
    assert {
        "whatsapp-number-exporter",
        "prometheus",
        "alertmanager",
        "grafana",
        "webhook-receiver",
        "demo-rules",
    } <= set(services)
    exporter = services["whatsapp-number-exporter"]
    assert (DEPLOY / exporter["build"]["context"]).resolve() == ROOT
    assert (ROOT / exporter["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert exporter["command"] == ["--demo"]
    assert f"{EXPORTER_PORT}:{EXPORTER_PORT}" in exporter["ports"]
    for name, service in services.items():
        if "image" in service and "build" not in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image version ({image})"
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        assert set(named_volumes(service)) <= declared, f"{name} uses an undeclared volume"


def test_every_file_the_compose_stack_mounts_exists(compose):
    for name, service in compose["services"].items():
        for source, target, _ in bind_mounts(service):
            assert source.exists(), f"{name} mounts {source} at {target}, which does not exist"
            assert ROOT in source.parents, f"{name} mounts {source} from outside the repository"


def test_compose_runs_the_configs_of_the_end_to_end_test(compose):
    services = compose["services"]
    # Prometheus: the shipped prometheus.yml, and the rules next to it where rule_files looks.
    prom = services["prometheus"]
    assert mounted(prom, "/etc/prometheus/prometheus.yml") == e2e.PROMETHEUS_YML.resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    config = yaml.safe_load(e2e.PROMETHEUS_YML.read_text())
    assert config["rule_files"] == ["alerts/*.rules.yml"]
    rules_volume = {v: t for v, t in named_volumes(prom).items()}
    assert rules_volume.get("demo-rules") == "/etc/prometheus/alerts"
    # ... which demo-rules fills from alerts/, the directory of the e2e test's rule files.
    demo_rules = services["demo-rules"]
    source = mounted(demo_rules, demo_rules["environment"]["RULES_SRC"])
    assert source == (ROOT / "alerts").resolve()
    assert sorted(source.glob("*.rules.yml")) == [p.resolve() for p in e2e.RULE_FILES]
    assert named_volumes(demo_rules) == {"demo-rules": demo_rules["environment"]["RULES_DST"]}
    assert prom["depends_on"]["demo-rules"]["condition"] == "service_completed_successfully"
    # Alertmanager: the shipped alertmanager.yml.
    am = services["alertmanager"]
    assert mounted(am, "/etc/alertmanager/alertmanager.yml") == e2e.ALERTMANAGER_YML.resolve()
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    # Grafana: the shipped provisioning, and the dashboards where the provider looks for them.
    grafana = services["grafana"]
    datasources = mounted(grafana, "/etc/grafana/provisioning/datasources")
    providers = mounted(grafana, "/etc/grafana/provisioning/dashboards")
    assert datasources == (DEPLOY / "grafana/provisioning/datasources").resolve()
    assert providers == (DEPLOY / "grafana/provisioning/dashboards").resolve()
    (provider,) = yaml.safe_load(next(providers.glob("*.yml")).read_text())["providers"]
    dashboards = mounted(grafana, provider["options"]["path"])
    assert dashboards == (ROOT / "dashboards").resolve() and len(list(dashboards.glob("*.json"))) == 3
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (dashboards / Path(home).name).exists()


def test_compose_addresses_resolve_to_its_services(compose):
    """Every address in the shipped configs names a service (or alias) of the stack, on the right port."""
    names = hostnames(compose)
    prom = yaml.safe_load(e2e.PROMETHEUS_YML.read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == JOB]
    (target,) = [t for sc in job["static_configs"] for t in sc["targets"]]
    host, port = target.rsplit(":", 1)
    assert names.get(host) == "whatsapp-number-exporter", f"scrape target {target} is not the exporter service"
    assert int(port) == EXPORTER_PORT
    ((am_target,),) = [sc["targets"] for am in prom["alerting"]["alertmanagers"] for sc in am["static_configs"]]
    host, port = am_target.rsplit(":", 1)
    assert names.get(host) == "alertmanager" and port == "9093"
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    url = urlsplit(datasources["datasources"][0]["url"])
    assert names.get(url.hostname) == "prometheus" and url.port == 9090
    am = yaml.safe_load(e2e.ALERTMANAGER_YML.read_text())
    receiver = compose["services"]["webhook-receiver"]
    for r in am["receivers"]:
        for hook in r["webhook_configs"]:
            url = urlsplit(hook["url"])
            assert names.get(url.hostname) == "webhook-receiver", hook["url"]
            assert (url.port or 80) == int(receiver["environment"]["PORT"])


def test_compose_inline_scripts_have_nothing_for_compose_to_interpolate(compose):
    for name in ("demo-rules", "webhook-receiver"):
        assert "$" not in entrypoint_script(compose["services"][name]), f"{name}: compose would interpolate $"


def test_demo_rules_are_the_shipped_rules_with_only_for_shortened(compose, tmp_path):
    """Run demo-rules' script outside a container, on the real alerts/, and check the result with promtool."""
    service = compose["services"]["demo-rules"]
    script = entrypoint_script(service)
    assert service["environment"]["DEMO_ALERT_FOR"] == "${DEMO_ALERT_FOR:-15s}"
    for short in ("15s", "shipped"):
        out = tmp_path / short
        out.mkdir()
        (out / "stale.rules.yml").write_text("groups: []\n")  # left by an earlier run: removed
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "RULES_SRC": str(ROOT / "alerts"), "RULES_DST": str(out), "DEMO_ALERT_FOR": short},
        )
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in out.iterdir()) == [p.name for p in e2e.RULE_FILES]
        for path in e2e.RULE_FILES:
            shipped = yaml.safe_load(path.read_text())
            demo = yaml.safe_load((out / path.name).read_text())
            if short == "shipped":
                assert demo == shipped
                continue
            fors = [r["for"] for g in demo["groups"] for r in g["rules"] if "for" in r]
            assert fors and set(fors) == {short}

            def strip(doc):
                return [{k: v for k, v in r.items() if k != "for"} for g in doc["groups"] for r in g["rules"]]

            assert strip(demo) == strip(shipped)
            assert [g["name"] for g in demo["groups"]] == [g["name"] for g in shipped["groups"]]
        check = subprocess.run(
            [binary("promtool"), "check", "rules", *map(str, sorted(out.iterdir()))],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_webhook_receiver_prints_each_notification(compose):
    """Run webhook-receiver's script outside a container and send it what Alertmanager sends."""
    script = entrypoint_script(compose["services"]["webhook-receiver"])
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PORT": str(port)},
    )
    try:
        wait_for(
            "the webhook receiver",
            lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True,
            20,
            lambda: proc.stderr.read() if proc.poll() is not None else "",
        )
        payload = {
            "version": "4",
            "status": "firing",
            "receiver": "whatsapp-pager",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "WhatsAppNumberQualityRed",
                        "severity": "critical",
                        "account": "shop",
                        "phone_number": "+8613800000001",
                    },
                },
                {"status": "resolved", "labels": {"alertname": "WhatsAppExporterDown", "severity": "warning"}},
            ],
        }
        response = httpx.post(
            f"http://127.0.0.1:{port}/whatsapp/page",
            json=payload,
            headers={"Host": "pager-gateway.example.internal"},
            timeout=5,
        )
        assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=10)
    lines = out.splitlines()
    assert lines[0] == f"webhook-receiver: listening on port {port}"
    assert (
        "pager-gateway.example.internal/whatsapp/page firing WhatsAppNumberQualityRed critical shop +8613800000001"
        in lines
    )
    assert "pager-gateway.example.internal/whatsapp/page resolved WhatsAppExporterDown warning - -" in lines


# =====================================================================================
# Kubernetes
# =====================================================================================


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    """kind -> the one object of that kind in deploy/kubernetes/."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc and doc.get("kind"), f"{path.name}: empty document or no kind"
            assert doc["kind"] not in objects, f"two objects of kind {doc['kind']}"
            doc["__file__"] = path.name
            objects[doc["kind"]] = doc
    return objects


def container(manifests) -> dict:
    (c,) = manifests["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    return c


def test_kustomization_lists_every_manifest_and_nothing_sets_a_namespace(manifests):
    listed = manifests["Kustomization"]["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert {"ConfigMap", "Service", "StatefulSet", "ServiceMonitor", "PrometheusRule"} <= set(manifests)
    for kind, obj in manifests.items():
        assert "namespace" not in obj.get("metadata", {}), f"{kind} sets a namespace"
    assert "namespace" not in manifests["Kustomization"]


def test_statefulset_shards_by_pod_ordinal(manifests):
    sts = manifests["StatefulSet"]
    c = container(manifests)
    replicas = sts["spec"]["replicas"]
    assert replicas >= 2
    assert "--shard=$(POD_INDEX)" in c["args"]
    total = [a for a in c["args"] if a.startswith("--total-shards=")]
    assert total == [f"--total-shards={replicas}"], "--total-shards must equal spec.replicas"
    (pod_index,) = [e for e in c["env"] if e["name"] == "POD_INDEX"]
    assert pod_index["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    # The flags exist and parse as the manifest gives them.
    from exporter.cli import build_parser

    args = build_parser().parse_args([a.replace("$(POD_INDEX)", str(replicas - 1)) for a in c["args"]])
    assert (args.shard, args.total_shards) == (replicas - 1, replicas)


def test_statefulset_probes_resources_and_security(manifests):
    c = container(manifests)
    (port,) = c["ports"]
    assert port["name"] == "http" and port["containerPort"] == EXPORTER_PORT
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}
    resources = c["resources"]
    for key in ("cpu", "memory"):
        value = str(resources["requests"][key])
        assert re.fullmatch(r"\d+(\.\d+)?(m|Mi|Gi)?", value), f"requests.{key} = {value!r}"
    assert re.fullmatch(r"\d+(Mi|Gi)", str(resources["limits"]["memory"]))
    pod = manifests["StatefulSet"]["spec"]["template"]["spec"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"])) == user
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_credentials_come_from_a_secret_and_fill_the_configmap(manifests, tmp_path):
    """Every ${VAR} of the ConfigMap's configuration comes from a Secret, and the configuration is valid."""
    c = container(manifests)
    env = {e["name"]: e for e in c["env"]}
    secret_vars = {name for name, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})}
    assert secret_vars, "no credential comes from a Secret"
    assert not [name for name, e in env.items() if "value" in e], "no literal values in env: secrets come from a Secret"
    for name in secret_vars:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "whatsapp-number-exporter-credentials" and ref["key"] == name
    config_text = manifests["ConfigMap"]["data"]["config.yaml"]
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", config_text))
    assert used == secret_vars, "the ConfigMap's ${VAR}s and the Secret's variables differ"
    # The config is mounted where --config.file points.
    (flag,) = [a for a in c["args"] if a.startswith("--config.file=")]
    path = Path(flag.split("=", 1)[1])
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "config"]
    assert Path(mount["mountPath"]) == path.parent
    (volume,) = [v for v in manifests["StatefulSet"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
    assert path.name in manifests["ConfigMap"]["data"]
    # ... and passes --check-config with the Secret's variables set.
    config_file = tmp_path / path.name
    config_file.write_text(config_text)
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config", "--config.file", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **{name: f"dummy-{name.lower()}" for name in secret_vars}},
    )
    assert result.returncode == 0, result.stderr
    assert "dummy-" not in result.stdout + result.stderr


def test_service_servicemonitor_and_job_name(manifests):
    sts, svc, sm = manifests["StatefulSet"], manifests["Service"], manifests["ServiceMonitor"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    # The Prometheus Operator names the job after the Service: the alert rules and dashboards select it.
    assert svc["metadata"]["name"] == JOB
    assert f'job="{JOB}"' in (ROOT / "alerts" / "whatsapp-number-exporter.rules.yml").read_text()
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == "http" and port["port"] == EXPORTER_PORT
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"


def load_generator():
    return load_script("gen-prometheusrule.py")


def test_prometheusrule_is_generated_from_alerts(manifests):
    gen = load_generator()
    path = K8S / "prometheusrule.yaml"
    assert path.read_text() == gen.generate(), (
        "deploy/kubernetes/prometheusrule.yaml is out of date: run scripts/gen-prometheusrule.py"
    )
    rule = manifests["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    shipped = [g for p in e2e.RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]]
    assert rule["spec"]["groups"] == shipped
    result = run_script("gen-prometheusrule.py", "--check")
    assert result.returncode == 0, result.stderr


def test_prometheusrule_check_notices_drift(tmp_path):
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(load_generator().generate().replace("for: 5m", "for: 6m", 1))
    result = run_script("gen-prometheusrule.py", "--check", "--output", str(stale))
    assert result.returncode == 1 and "gen-prometheusrule.py" in result.stderr


# =====================================================================================
# Sharding
# =====================================================================================

CREDENTIALS = [f"ak-{k}" for k in range(5)]
# 12 accounts over 5 credentials: several accounts share each credential.
ACCOUNTS = [(f"acct-{i:02d}", CREDENTIALS[i % len(CREDENTIALS)]) for i in range(12)]
SHARDS = 3


def sharding_scenario() -> str:
    lines = ["name: sharding", "credentials:"]
    lines += [f"  - {{access_key_id: {k}, access_key_secret: {k}-SECRET-VALUE, qps: 10}}" for k in CREDENTIALS]
    lines.append("spaces:")
    for i, (name, cred) in enumerate(ACCOUNTS):
        lines += [f"  - cust_space_id: cams-{name}", f"    access_key_id: {cred}", "    waba: null", "    numbers:"]
        for j in range(2):
            lines.append(
                f'      - {{phone_number: "86138{i:04d}{j:04d}", status: CONNECTED, quality_rating: GREEN, '
                "messaging_limit_tier: TIER_1K}"
            )
    return "\n".join(lines) + "\n"


def sharding_config(endpoint: str) -> str:
    lines = ["accounts:"]
    for name, cred in ACCOUNTS:
        lines += [
            f"  - name: {name}",
            "    provider: alibaba_cams",
            f"    endpoint: {endpoint}",
            f'    credentials: {{access_key_id: {cred}, access_key_secret: "${{SHARD_SECRET_{cred[3:]}}}"}}',
            "    poll_interval: 30s",
            f"    spaces: [{{cust_space_id: cams-{name}}}]",
        ]
    return "\n".join(lines) + "\n"


SHARD_ENV = {f"SHARD_SECRET_{k[3:]}": f"{k}-SECRET-VALUE" for k in CREDENTIALS}


def test_select_partitions_accounts_and_keeps_credentials_together():
    config = parse_config(sharding_config("http://127.0.0.1:1"), env=SHARD_ENV)
    names = {a.name for a in config.accounts}
    for total in range(1, 9):
        seen: dict[str, int] = {}
        for shard in range(total):
            for account in select(config, shard, total).accounts:
                assert account.name not in seen, f"{account.name} in shards {seen[account.name]} and {shard}"
                seen[account.name] = shard
                assert shard_of(account, total) == shard or total == 1
        assert set(seen) == names, f"total_shards={total}: accounts missing"
        by_credential: dict[str, set[int]] = {}
        for account in config.accounts:
            by_credential.setdefault(account.credentials.access_key_id, set()).add(seen[account.name])
        assert all(len(shards) == 1 for shards in by_credential.values()), by_credential


def test_adding_a_shard_moves_credentials_only_to_the_new_shard():
    """Jump hash: going from M to M+1 shards moves accounts only into the new shard, never between old ones."""
    config = parse_config(sharding_config("http://127.0.0.1:1"), env=SHARD_ENV)
    for total in range(1, 8):
        for account in config.accounts:
            before, after = shard_of(account, total), shard_of(account, total + 1)
            assert after in (before, total)


@pytest.mark.parametrize(
    "args",
    [
        ["--shard", "3", "--total-shards", "3"],
        ["--shard", "-1", "--total-shards", "2"],
        ["--shard", "0", "--total-shards", "0"],
    ],
)
def test_bad_shard_flags_exit_2_with_one_line(args):
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--shard" in result.stderr
    assert "Traceback" not in result.stderr


def test_sharded_processes_poll_every_account_exactly_once(tmp_path):
    """Three real exporter processes, shards 0..2 of one config, against one emulator."""
    emulator = CamsEmulator(loads_scenario(sharding_scenario())).start()
    config_file = tmp_path / "config.yaml"
    config_file.write_text(sharding_config(emulator.url))
    procs = []
    try:
        for shard in range(SHARDS):
            port = free_port()
            log = open(tmp_path / f"shard-{shard}.log", "w+")  # noqa: SIM115 - read by logs(), closed in finally
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "exporter",
                    "--config.file",
                    str(config_file),
                    "--shard",
                    str(shard),
                    "--total-shards",
                    str(SHARDS),
                    "--web.listen-address",
                    f"127.0.0.1:{port}",
                    "--log.format",
                    "json",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, **SHARD_ENV},
            )
            procs.append((shard, port, proc, log))

        def logs() -> str:
            out = []
            for shard, _, proc, log in procs:
                log.seek(0)
                out.append(f"--- shard {shard} (exit code {proc.poll()}) ---\n" + "".join(log.readlines()[-20:]))
            return "\n".join(out)

        polled: dict[int, set[str]] = {}
        for shard, port, proc, _ in procs:
            url = f"http://127.0.0.1:{port}"
            wait_for(
                f"shard {shard} to be ready",
                lambda proc=proc, url=url: (
                    (proc.poll() is None or pytest.fail(logs(), pytrace=False))
                    and httpx.get(url + "/-/ready", timeout=2).status_code == 200
                ),
                60,
                logs,
            )
            s = samples(httpx.get(url + "/metrics", timeout=10).text)
            success = {dict(ls)["account"]: v for (n, ls), v in s.items() if n == "whatsapp_exporter_poll_success"}
            assert set(success.values()) <= {1.0}, f"shard {shard}: a poll failed: {success}\n{logs()}"
            polled[shard] = set(success)
            numbers = {dict(ls)["account"] for (n, ls), v in s.items() if n == "whatsapp_phone_number_info"}
            assert numbers == polled[shard], "every polled account exports its numbers, and no other"
    finally:
        for _, _, proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for _, _, proc, log in procs:
            try:
                codes.append(proc.wait(timeout=30))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
            log.close()
        emulator.stop()
    assert codes == [0] * SHARDS
    # Every space was asked for, with its own credential, and nothing was throttled.
    phone_calls = emulator.calls("QueryChatappPhoneNumbers")
    assert {r.space_id for r in phone_calls} == {f"cams-{name}" for name, _ in ACCOUNTS}
    assert all(r.access_key_id == dict(ACCOUNTS)[r.space_id[5:]] for r in phone_calls)
    assert not [r for r in emulator.requests if r.throttled or not r.authenticated]

    # Every account exactly once, across all the processes.
    everyone = [name for names in polled.values() for name in names]
    assert sorted(everyone) == sorted(name for name, _ in ACCOUNTS)
    assert all(polled.values()), f"with these credentials every shard has accounts: {polled}"
    # Accounts that share a credential are polled by one process.
    shard_of_account = {name: shard for shard, names in polled.items() for name in names}
    for cred in CREDENTIALS:
        shards = {shard_of_account[name] for name, c in ACCOUNTS if c == cred}
        assert len(shards) == 1, f"credential {cred} is polled by shards {shards}"
    # ... the shard the hash says, as each process's log line tells.
    config = parse_config(sharding_config("http://127.0.0.1:1"), env=SHARD_ENV)
    assert shard_of_account == {a.name: shard_of(a, SHARDS) for a in config.accounts}
    for shard in range(SHARDS):
        text = (tmp_path / f"shard-{shard}.log").read_text()
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        (sharding,) = [r for r in records if r["msg"] == "sharding"]
        assert set(filter(None, sharding["accounts"].split(","))) == polled[shard]
        assert "SECRET-VALUE" not in text
