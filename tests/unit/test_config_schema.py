"""The configuration's JSON Schema: generated from the models, committed, and met by every shipped configuration.

``check-jsonschema`` (a test dependency) is the independent validator: it
knows nothing of the exporter's code, only of the committed schema file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.config import config_schema, config_schema_json, parse_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config.schema.json"
MODELINE = "# yaml-language-server: $schema="


def check_jsonschema(*args: str | Path) -> subprocess.CompletedProcess:
    tool = Path(sys.executable).with_name("check-jsonschema")
    if not tool.exists():
        tool = shutil.which("check-jsonschema")
    if not tool:
        pytest.fail("check-jsonschema is missing: install the test extras (pip install -e '.[test]')")
    return subprocess.run([str(tool), *map(str, args)], capture_output=True, text=True, timeout=120)


def validate(*files: Path) -> subprocess.CompletedProcess:
    return check_jsonschema("--schemafile", SCHEMA, *files)


def shipped_configs(tmp_path: Path) -> dict[str, Path]:
    """Every configuration the project ships: the example, the Kubernetes ConfigMap's, the README's."""
    found = {"examples/config.yaml": REPO / "examples" / "config.yaml"}
    for doc in yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "configmap.yaml").read_text()):
        if doc and doc.get("kind") == "ConfigMap" and "config.yaml" in doc.get("data", {}):
            found["deploy/kubernetes/configmap.yaml"] = tmp_path / "configmap-config.yaml"
            found["deploy/kubernetes/configmap.yaml"].write_text(doc["data"]["config.yaml"])
    for name in ("README.md", *(p.relative_to(REPO).as_posix() for p in (REPO / "docs").rglob("*.md"))):
        blocks = re.findall(r"```yaml\n(.*?)```", (REPO / name).read_text(), re.DOTALL)
        for i, block in enumerate(blocks):
            if block.startswith("  - name:"):
                block = "accounts:\n" + block  # an account of the accounts list
            doc = yaml.safe_load(block)
            if not isinstance(doc, dict) or "accounts" not in doc or "# fragment" in block:
                continue  # another file's YAML (web config, Prometheus, ...), or a marked fragment
            found[f"{name} block {i}"] = tmp_path / f"{name.replace('/', '-')}-{i}.yaml"
            found[f"{name} block {i}"].write_text(block)
    return found


def test_committed_schema_is_the_generated_one():
    assert SCHEMA.read_text() == config_schema_json(), "run: python -m exporter --config.schema > config.schema.json"


def test_the_flag_prints_the_schema():
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.schema"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == config_schema()


def test_schema_is_valid_json_schema_and_knows_every_provider():
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"].endswith("/draft/2020-12/schema")
    result = check_jsonschema("--check-metaschema", SCHEMA)
    assert result.returncode == 0, result.stdout + result.stderr
    mapping = schema["properties"]["accounts"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == {"alibaba_cams", "nxcloud", "kaleyra", "meta", "twilio", "infobip"}


def test_example_config_points_editors_at_the_schema():
    first = (REPO / "examples" / "config.yaml").read_text().splitlines()[0]
    assert first.startswith(MODELINE)
    assert (REPO / "examples" / first[len(MODELINE) :]).resolve() == SCHEMA


def test_every_shipped_config_meets_the_schema(tmp_path):
    configs = shipped_configs(tmp_path)
    assert {"examples/config.yaml", "deploy/kubernetes/configmap.yaml"} <= set(configs)
    assert any(name.startswith("README.md") for name in configs)
    result = validate(*configs.values())
    assert result.returncode == 0, result.stdout + result.stderr
    # ... and the exporter itself loads each one, with every variable it names set
    secret_file = tmp_path / "a-secret"
    secret_file.write_text("secret-file-value\n")

    class AnyEnv(dict):
        def get(self, key, default=None):
            return str(secret_file) if key.endswith("_FILE") else f"value-of-{key}-0123456789"

    for name, path in configs.items():
        assert parse_config(path.read_text(), source=str(path), env=AnyEnv()).accounts, name


@pytest.mark.parametrize(
    "change,where",
    [
        (lambda c: c["accounts"][0].update(pol_interval="5s"), "pol_interval"),
        (lambda c: c["accounts"][0].update(provider="gupshup"), "provider"),
        (lambda c: c["accounts"][0].update(qps="fast"), "qps"),
        (lambda c: c["accounts"][0]["credentials"].update(access_key_secret="inline-secret"), "access_key_secret"),
        (lambda c: c["accounts"][0].pop("spaces"), "spaces"),
        (lambda c: c.update(metrics={"state_sets": "some"}), "state_sets"),
    ],
)
def test_the_schema_catches_mistakes(tmp_path, change, where):
    """The schema is not a rubber stamp: an editor would flag each of these."""
    config = yaml.safe_load((REPO / "examples" / "config.yaml").read_text())
    change(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = validate(path)
    assert result.returncode == 1, result.stdout
