#!/usr/bin/env bash
# Installs everything the test suite needs (Python packages into .venv, the
# real promtool/prometheus/alertmanager into .tools) and runs the whole suite:
# every tier (tests/unit, tests/integration, tests/e2e; docs/testing.md has the per-tier commands).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
scripts/install-tools.sh
scripts/install-browser.sh
exec .venv/bin/python -m pytest "$@"
