"""Large accounts against the CAMS emulator over a real socket: numbers past max_numbers are dropped, counted
and logged; an account past OFFLOAD_NUMBERS is folded and rendered off the loop and still follows changes."""

from __future__ import annotations

from emulators.cams import CamsEmulator
from emulators.scenario import generate_fleet
from exporter.poller import OFFLOAD_NUMBERS, Poller
from exporter.store import Store
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


def test_a_large_account_is_folded_and_rendered_off_the_loop_and_follows_changes():
    """More than OFFLOAD_NUMBERS numbers: the poll is folded and rendered in worker threads; a second poll
    publishes what changed between the two, and the unchanged numbers stay as they were."""
    scenario = generate_fleet(spaces=3, numbers_per_space=200, access_key_id="big-ak", secret="big-sk", seed=5)
    assert scenario.number_count() > OFFLOAD_NUMBERS
    with CamsEmulator(scenario) as emu:
        config = cams_config(emu.url, "big", "big-ak", "big-sk", [s.cust_space_id for s in scenario.spaces])
        store = Store()
        poller = Poller(config, store)
        try:
            poller.poll_account("big")
            first = samples(store.exposition.body.decode())
            space = scenario.spaces[1]
            wire = space.numbers[7].phone_number
            phone = "+" + wire.lstrip("+")  # as the exporter labels it
            before = {
                dict(ls)["status"]
                for (n, ls), v in first.items()
                if n == "whatsapp_phone_number_status" and dict(ls)["phone_number"] == phone and v == 1
            }
            new = "FLAGGED" if before != {"FLAGGED"} else "CONNECTED"
            emu.set_number(space.space_id, wire, status=new)
            poller.poll_account("big")
            second = samples(store.exposition.body.decode())
        finally:
            poller.stop()
    assert value(first, "whatsapp_exporter_numbers", account="big") == scenario.number_count()
    assert value(second, "whatsapp_exporter_numbers", account="big") == scenario.number_count()
    now = {
        dict(ls)["status"]
        for (n, ls), v in second.items()
        if n == "whatsapp_phone_number_status" and dict(ls)["phone_number"] == phone and v == 1
    }
    assert now == {new}
    untouched = "+" + space.numbers[8].phone_number.lstrip("+")
    kept = [(k, v) for k, v in first.items() if dict(k[1]).get("phone_number") == untouched]
    assert kept and kept == [(k, v) for k, v in second.items() if dict(k[1]).get("phone_number") == untouched]
