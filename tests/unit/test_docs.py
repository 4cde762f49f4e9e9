"""The documentation: the mkdocs site builds strictly, the README stays short and
gives the two commands, every provider is named everywhere, the version has one
source, and the generated configuration reference is up to date."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

import exporter
from tests.helpers import load_script, run_script
from tests.tools import ROOT

# How the docs name a provider, where it is not its configuration key capitalized.
NAMES = {"alibaba_cams": "CAMS", "nxcloud": "NxCloud"}
PAGES = {"alibaba_cams": "cams"}
DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/whatsapp-number-exporter --demo"
TEST_COMMAND = "./scripts/test.sh"


def mkdocs_yml() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may carry !!python/name tags (pymdownx options); they are not needed here
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)


def nav_files(nav) -> list[str]:
    found = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        found += nav_files(value) if isinstance(value, list) else [value]
    return found


def mkdocs_build(cwd: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mkdocs_build_strict_has_no_warnings(tmp_path):
    result = mkdocs_build(ROOT, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    # mkdocs' own warnings are "WARNING -  ..." lines (mkdocs-material's banner about its successor is not one)
    assert not re.search(r"^WARNING\s+-", output, re.M), output[-5000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "runbooks" / "index.html").exists()


def test_mkdocs_strict_catches_a_broken_link(tmp_path):
    """The strict build is not a rubber stamp: a link to a missing anchor fails it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[broken](#no-such-anchor)\n")
    (tmp_path / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text().split("\nnav:")[0] + "\nnav: [index.md]\n")
    result = mkdocs_build(tmp_path, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-anchor" in result.stdout + result.stderr


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    listed = nav_files(mkdocs_yml()["nav"])
    for name in listed:
        assert (ROOT / "docs" / name).is_file(), f"nav names docs/{name}, which does not exist"
    assert "runbooks.md" in listed, "alerts' runbook_url annotations point at docs/runbooks.md"


def test_readme_is_short_and_gives_the_two_commands_on_the_first_screen():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"
    first_screen = "\n".join(lines[:60])
    assert DEMO_COMMAND in first_screen
    assert TEST_COMMAND in first_screen
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(), "CI runs the README's test command"


def test_readme_links_into_the_docs_resolve():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#\s]+)", text)
    assert links, "the README links into docs/"
    for link in links:
        assert (ROOT / link).exists(), link


def test_every_provider_is_named_everywhere():
    from exporter.config import PROVIDERS

    assert {"alibaba_cams", "nxcloud", "kaleyra", "meta"} <= set(PROVIDERS)
    dockerfile = (ROOT / "Dockerfile").read_text()
    description = re.search(r'org\.opencontainers\.image\.description="([^"]+)"', dockerfile).group(1)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    readme = (ROOT / "README.md").read_text()
    index = (ROOT / "docs" / "providers" / "index.md").read_text()
    listed = nav_files(mkdocs_yml()["nav"])
    for key in PROVIDERS:  # every configured provider, so a new one must be documented too
        name = NAMES.get(key, key.capitalize())
        for where, text in (
            ("Dockerfile description", description),
            ("pyproject description", pyproject),
            ("README", readme),
            ("docs/providers/index.md", index),
        ):
            assert name in text, f"{where} does not name {name}"
        assert f"`{key}`" in index, f"docs/providers/index.md does not give provider: {key}"
        page = PAGES.get(key, key)
        assert f"providers/{page}.md" in listed, f"docs/providers/{page}.md is not in the nav of mkdocs.yml"


def test_version_is_single_sourced_and_the_changelog_names_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "exporter.__version__"}
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases and releases[0] == exporter.__version__, (releases, exporter.__version__)
    assert re.search(r"^ARG VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1) == exporter.__version__


def test_wheel_long_description_is_the_short_readme():
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert readme == {"file": "README.md", "content-type": "text/markdown"}


def test_configuration_reference_is_generated_from_the_schema():
    result = run_script("gen-config-reference.py", "--check")
    assert result.returncode == 0, result.stderr
    page = (ROOT / "docs" / "configuration-reference.md").read_text()
    for key in ("poll_interval", "state_sets", "listen_address", "graph_api_version", "appkey", "waba_id"):
        assert f"`{key}`" in page


def test_configuration_reference_check_detects_a_stale_page(tmp_path, monkeypatch):
    module = load_script("gen-config-reference.py")
    stale = tmp_path / "configuration-reference.md"
    current = (ROOT / "docs" / "configuration-reference.md").read_text()
    stale.write_text(current.replace("poll_interval", "pol_interval"))
    monkeypatch.setattr(module, "PAGE", stale)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0 and module.main(["--check"]) == 0


def test_license_contributing_changelog():
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for needle in ("pytest tests/unit", TEST_COMMAND, "bench.", "emulators/", "tests/fixtures", "docs/providers/"):
        assert needle in contributing, needle
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and "keepachangelog.com" in changelog


def test_contradictions_are_gone():
    everything = "\n".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
    assert "built-in CAMS emulator" not in everything
    assert "three demo emulators" not in everything
