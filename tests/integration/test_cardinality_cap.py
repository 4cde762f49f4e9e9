"""max_numbers against the CAMS emulator over a real socket: numbers past the cap are dropped, counted and logged."""

from __future__ import annotations

from emulators.cams import CamsEmulator
from emulators.scenario import generate_fleet
from tests.helpers import cams_config, poll_once, samples, value


def test_max_numbers_cap_drops_with_a_warning(caplog):
    scenario = generate_fleet(spaces=4, numbers_per_space=5, access_key_id="cap-ak", secret="cap-sk", qps=10, seed=3)
    with CamsEmulator(scenario) as emu:
        config = cams_config(
            emu.url, "capped", "cap-ak", "cap-sk", [s.cust_space_id for s in scenario.spaces], max_numbers=7
        )
        with caplog.at_level("WARNING"):
            store = poll_once(config, "capped")
    s = samples(store.exposition.body.decode())
    assert value(s, "whatsapp_exporter_numbers", account="capped") == 7
    assert value(s, "whatsapp_exporter_numbers_dropped", account="capped") == scenario.number_count() - 7
    assert len({dict(ls)["phone_number"] for (n, ls) in s if n == "whatsapp_phone_number_info"}) == 7
    assert any("max_numbers reached" in r.getMessage() for r in caplog.records)
