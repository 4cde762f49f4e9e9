"""promtool check metrics on the expositions the unit tests build in-process (tests/unit keeps no binaries)."""

from __future__ import annotations

import pytest

from tests.tools import promtool_check_metrics
from tests.unit.test_cardinality import active_only_body
from tests.unit.test_exposition import escaped_body, meta_health_body, waba_facts_body


@pytest.mark.parametrize(
    "build", [escaped_body, meta_health_body, waba_facts_body, active_only_body], ids=lambda f: f.__name__
)
def test_promtool_finds_nothing_to_say(build):
    result = promtool_check_metrics(build())
    assert result.returncode == 0 and result.stdout == b"" and result.stderr == b"", result
