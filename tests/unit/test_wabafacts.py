"""account_update events (restrictions, bans, violations) and the SQLite state file that keeps them."""

import logging
import math
import os
import sqlite3

import pytest

from exporter import model, wabafacts
from exporter.wabafacts import StateFile, WabaUpdate, apply, parse_account_update, parse_ban_date

NOW = 1_700_000_000.0
WABA = "102290129340398"
BIZ = "RESTRICTED_BIZ_INITIATED_MESSAGING"
ADD = "RESTRICTED_ADD_PHONE_NUMBER_ACTION"


# -- the documented payloads (meta-health-2025 §5.3) -------------------------------------------------------------


def test_restriction_with_two_types():
    value = {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [
            {"restriction_type": BIZ, "expiration": 1641330498},
            {"restriction_type": ADD, "expiration": 1641330498},
        ],
    }
    update = parse_account_update(WABA, value, NOW)
    assert update == WabaUpdate(
        WABA,
        "ACCOUNT_RESTRICTION",
        restrictions=(model.WabaRestriction(WABA, BIZ, 1641330498.0), model.WabaRestriction(WABA, ADD, 1641330498.0)),
    )


def test_ban_with_a_free_text_date():
    value = {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": "April 17, 2025"}}
    update = parse_account_update(WABA, value, NOW)
    assert update.ban == model.WabaBan(WABA, "DISABLE", 1744848000.0, NOW)  # 2025-04-17T00:00:00Z


def test_violation():
    value = {"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "ADULT"}}
    assert parse_account_update(WABA, value, NOW) == WabaUpdate(WABA, "ACCOUNT_VIOLATION", violation_type="ADULT")


@pytest.mark.parametrize(
    "value",
    [
        {"event": "PARTNER_REMOVED", "waba_info": {"waba_id": "1", "owner_business_id": "2"}},
        {"event": "ACCOUNT_DELETED"},
        {"event": None},
        "not a mapping",
        None,
    ],
)
def test_events_without_such_facts_are_none(value):
    assert parse_account_update(WABA, value, NOW) is None


@pytest.mark.parametrize(
    "value, expected",
    [
        # odd values land in UNKNOWN/OTHER, never an exception
        ({"event": "DISABLED_UPDATE"}, model.WabaBan(WABA, "UNKNOWN", None, NOW)),
        (
            {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "SUSPEND_FOREVER", "waba_ban_date": "soon"}},
            model.WabaBan(WABA, "OTHER", None, NOW),
        ),
        (
            {
                "event": "disabled_update",
                "ban_info": {"waba_ban_state": "schedule_for_disable", "waba_ban_date": "2026-12-24"},
            },
            model.WabaBan(WABA, "SCHEDULE_FOR_DISABLE", 1798070400.0, NOW),
        ),
    ],
)
def test_odd_ban_values(value, expected):
    assert parse_account_update(WABA, value, NOW).ban == expected


def test_odd_restrictions():
    value = {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [
            {"restriction_type": BIZ, "expiration": "1641330498000"},  # milliseconds, as a string
            {"expiration": "never"},  # no type, no readable expiration
            "junk",
        ],
    }
    update = parse_account_update(WABA, value, NOW)
    assert update.restrictions == (
        model.WabaRestriction(WABA, BIZ, 1641330498.0),
        model.WabaRestriction(WABA, "UNKNOWN", math.inf),
    )


def test_violation_without_a_type():
    assert parse_account_update(WABA, {"event": "ACCOUNT_VIOLATION"}, NOW).violation_type == "UNKNOWN"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("April 17, 2025", 1744848000.0),
        ("Apr 17, 2025", 1744848000.0),
        ("17 April 2025", 1744848000.0),
        ("2025-04-17", 1744848000.0),
        (1744848000, 1744848000.0),
        ("", None),
        ("tomorrow", None),
        (None, None),
        (True, None),
    ],
)
def test_ban_dates(text, expected):
    assert parse_ban_date(text) == expected


# -- merging -------------------------------------------------------------------------------------------------------


def restriction(kind, expiration, waba=WABA):
    return WabaUpdate(waba, "ACCOUNT_RESTRICTION", restrictions=(model.WabaRestriction(waba, kind, expiration),))


def test_restrictions_accumulate_expire_and_an_empty_list_lifts_them():
    facts = apply(model.NO_FACTS, restriction(BIZ, NOW + 100), NOW)
    facts = apply(facts, restriction(ADD, NOW + 50), NOW)
    facts = apply(facts, restriction(BIZ, NOW + 200, waba="other"), NOW)
    assert sorted(facts.restrictions) == [(WABA, ADD), (WABA, BIZ), ("other", BIZ)]
    assert facts.next_expiry() == NOW + 50
    assert sorted(facts.active(NOW + 60).restrictions) == [(WABA, BIZ), ("other", BIZ)]
    facts = apply(facts, WabaUpdate(WABA, "ACCOUNT_RESTRICTION"), NOW)
    assert sorted(facts.restrictions) == [("other", BIZ)]
    assert apply(facts, restriction(BIZ, NOW - 1), NOW).restrictions.keys() == {("other", BIZ)}  # expired on arrival


def test_bans_replace_and_violations_count():
    facts = apply(
        model.NO_FACTS, WabaUpdate(WABA, "DISABLED_UPDATE", ban=model.WabaBan(WABA, "SCHEDULE_FOR_DISABLE")), NOW
    )
    facts = apply(facts, WabaUpdate(WABA, "DISABLED_UPDATE", ban=model.WabaBan(WABA, "REINSTATE")), NOW)
    for _ in range(3):
        facts = apply(facts, WabaUpdate(WABA, "ACCOUNT_VIOLATION", violation_type="ADULT"), NOW)
    assert facts.bans[WABA].ban_state == "REINSTATE"
    assert facts.violations == {(WABA, "ADULT"): 3}


# -- the state file ------------------------------------------------------------------------------------------------


FACTS = model.WabaFacts(
    restrictions={
        (WABA, BIZ): model.WabaRestriction(WABA, BIZ, NOW + 600, "Appeal in Business Support Home"),
        (WABA, ADD): model.WabaRestriction(WABA, ADD, math.inf),
        (WABA, "GONE"): model.WabaRestriction(WABA, "GONE", NOW - 1),
    },
    bans={WABA: model.WabaBan(WABA, "SCHEDULE_FOR_DISABLE", 1744848000.0, NOW)},
    violations={(WABA, "ADULT"): 2},
)


def test_state_survives_a_restart_without_what_expired(tmp_path):
    path = tmp_path / "data" / "state.db"  # the directory is created
    first = StateFile(str(path))
    first.save("shop", FACTS)
    first.save("other", model.WabaFacts(violations={("w2", "SCAM"): 1}))
    first.close()
    restored = StateFile(str(path)).load(NOW)
    assert set(restored) == {"shop", "other"}
    assert restored["shop"] == model.WabaFacts(
        {k: v for k, v in FACTS.restrictions.items() if k[1] != "GONE"}, FACTS.bans, FACTS.violations
    )
    assert wabafacts.restored(restored, "shop", NOW + 601).restrictions.keys() == {(WABA, ADD)}
    assert wabafacts.restored(restored, "unknown", NOW) == model.NO_FACTS


def test_save_replaces_an_accounts_facts(tmp_path):
    state = StateFile(str(tmp_path / "state.db"))
    state.save("shop", FACTS)
    state.save("shop", model.NO_FACTS)
    assert state.load(NOW) == {}


def test_a_corrupt_file_is_one_log_line_and_memory_goes_on(tmp_path, caplog):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.ERROR, logger="exporter"):
        state = StateFile(str(path))
        assert state.failed and state.load(NOW) == {}
        state.save("shop", FACTS)  # nothing raises, nothing more is logged
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "kept in memory only" in errors[0].getMessage()


def test_an_unwritable_directory_is_one_log_line(tmp_path, caplog):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        path = blocker / "state.db"  # a directory that cannot exist, root or not
    else:
        directory = tmp_path / "ro"
        directory.mkdir(mode=0o500)
        path = directory / "state.db"
    with caplog.at_level(logging.ERROR, logger="exporter"):
        state = StateFile(str(path))
    assert state.failed
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_a_file_that_breaks_later_keeps_the_exporter_going(tmp_path, caplog):
    path = tmp_path / "state.db"
    state = StateFile(str(path))
    state.save("shop", FACTS)
    db = sqlite3.connect(str(path))
    db.execute("DROP TABLE ban")
    db.commit()
    db.close()
    with caplog.at_level(logging.ERROR, logger="exporter"):
        state.save("shop", FACTS)
        state.save("shop", FACTS)
    assert state.failed
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_no_path_is_memory_only():
    state = StateFile(None)
    state.save("shop", FACTS)
    assert state.load(NOW) == {} and not state.failed
