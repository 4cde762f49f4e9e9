"""Scenario model, YAML loading and validation, timelines, fleets, and the built-in demo."""

from __future__ import annotations

import textwrap

import pytest

from emulators.scenario import (
    Fault,
    Scenario,
    ScenarioError,
    Timeline,
    Transition,
    builtin_scenarios,
    generate_fleet,
    load_builtin_scenario,
    load_scenario,
    loads_scenario,
    parse_duration,
    parse_scenario,
)

MINIMAL = {
    "credentials": [{"access_key_id": "ak", "access_key_secret": "sk"}],
    "spaces": [
        {
            "cust_space_id": "cams-1",
            "access_key_id": "ak",
            "numbers": [{"phone_number": "8613800000000", "status": "CONNECTED"}],
        }
    ],
}


def _with(path: list, value, base=None):
    """MINIMAL with one nested key replaced (or deleted when value is ...)."""
    import copy

    data = copy.deepcopy(base or MINIMAL)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def _error(data) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    return info.value


# ---------------------------------------------------------------------------
# durations and timelines


@pytest.mark.parametrize(
    "text,seconds",
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        (" 2m ", 120.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "m5", "-1", -3, True, None, "1x", [1], float("nan")])
def test_parse_duration_rejects(bad):
    with pytest.raises(ScenarioError):
        parse_duration(bad, "x.at")


def test_timeline_evaluation_and_repeat():
    timeline = Timeline((Transition(10, {"q": "YELLOW"}), Transition(20, {"q": "RED", "s": "FLAGGED"})), 30)
    base = {"q": "GREEN", "s": "CONNECTED"}
    assert timeline.evaluate(base, 0) == base
    assert timeline.evaluate(base, 9.99)["q"] == "GREEN"
    assert timeline.evaluate(base, 10)["q"] == "YELLOW"
    assert timeline.evaluate(base, 25) == {"q": "RED", "s": "FLAGGED"}
    assert timeline.evaluate(base, 30) == base  # loops back to the base state
    assert timeline.evaluate(base, 30 * 7 + 12)["q"] == "YELLOW"
    assert base == {"q": "GREEN", "s": "CONNECTED"}  # not mutated
    assert timeline.next_change_after(0) == 10
    assert timeline.next_change_after(20) == 30
    assert timeline.next_change_after(31) == 40
    once = Timeline((Transition(5, {"q": "RED"}),))
    assert once.evaluate(base, 1e9)["q"] == "RED"
    assert once.next_change_after(5) is None


def test_number_state_from_yaml():
    scenario = loads_scenario(
        textwrap.dedent("""
        credentials: [{access_key_id: ak, access_key_secret: sk}]
        spaces:
          - cust_space_id: cams-1
            access_key_id: ak
            numbers:
              - phone_number: "8613800000000"
                quality_rating: GREEN
                messaging_limit_tier: TIER_10K
                timeline:
                  - {at: 2m, set: {messaging_limit_tier: TIER_1K}}
                  - {at: 60s, set: {quality_rating: null}}
                repeat_every: 5m
    """)
    )
    number = scenario.space("cams-1").number("8613800000000")
    assert number.state_at(0)["quality_rating"] == "GREEN"
    assert number.state_at(60)["quality_rating"] is None  # null = omit on the wire
    assert number.state_at(150)["messaging_limit_tier"] == "TIER_1K"
    assert number.state_at(300)["messaging_limit_tier"] == "TIER_10K"
    assert number.state_at(0)["present"] is True and number.state_at(0)["phone_number"] == "8613800000000"


# ---------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "path,value,where,words",
    [
        (["credentials", 0, "access_key_secret"], ..., "credentials[0].access_key_secret", "required"),
        (["credentials", 0, "qps"], 0, "credentials[0].qps", ">= 1"),
        (["credentials", 0, "qps"], "ten", "credentials[0].qps", "integer"),
        (["credentials", 0, "permissions"], "maybe", "credentials[0].permissions", "allowed"),
        (["credentials", 0, "colour"], "red", "credentials[0].colour", "unknown key"),
        (["spaces", 0, "access_key_id"], "ghost", "spaces[0].access_key_id", "not one of the credentials"),
        (["spaces", 0, "cust_space_id"], ..., "spaces[0].cust_space_id", "required"),
        (["spaces", 0, "numbers", 0, "phone_number"], 8613800000000, "spaces[0].numbers[0].phone_number", "quote it"),
        (["spaces", 0, "numbers", 0, "QualityRating"], "GREEN", "spaces[0].numbers[0].QualityRating", "snake_case"),
        (
            ["spaces", 0, "numbers", 0, "timeline"],
            [{"at": "soon", "set": {"status": "X"}}],
            "spaces[0].numbers[0].timeline[0].at",
            "invalid duration",
        ),
        (["spaces", 0, "numbers", 0, "timeline"], [{"at": 5}], "spaces[0].numbers[0].timeline[0].set", "mapping"),
        (
            ["spaces", 0, "numbers", 0, "timeline"],
            [{"at": 5, "set": {"phone_number": "1"}}],
            "spaces[0].numbers[0].timeline[0].set.phone_number",
            "cannot be changed",
        ),
        (
            ["spaces", 0, "numbers", 0, "timeline"],
            [{"at": 5, "when": 3, "set": {"a": 1}}],
            "spaces[0].numbers[0].timeline[0].when",
            "unknown key",
        ),
        (["spaces", 0, "numbers", 0, "repeat_every"], "0s", "spaces[0].numbers[0].repeat_every", "> 0"),
        (["spaces", 0, "numbers", 0, "present"], "yes", "spaces[0].numbers[0].present", "true or false"),
        (["spaces", 0, "waba"], "Demo", "spaces[0].waba", "mapping"),
        (["spaces", 0, "numbers"], {"a": 1}, "spaces[0].numbers", "list"),
        (["faults"], [{"kind": "explode"}], "faults[0].kind", "must be one of"),
        (["faults"], [{"kind": "error"}], "faults[0].code", "required"),
        (["faults"], [{"kind": "delay"}], "faults[0].seconds", "required"),
        (["faults"], [{"kind": "reset", "code": "X"}], "faults[0].code", "only valid"),
        (["faults"], [{"kind": "error", "code": "X", "http_status": 99}], "faults[0].http_status", ">= 100"),
        (["faults"], [{"kind": "error", "code": "X", "count": 0}], "faults[0].count", ">= 1"),
        (["faults"], [{"kind": "error", "code": "X", "from": 10, "until": 5}], "faults[0].until", "later than"),
        (["faults"], [{"kind": "error", "code": "X", "spaceid": "a"}], "faults[0].spaceid", "unknown key"),
        (["extra_top"], 1, "extra_top", "unknown key"),
    ],
)
def test_validation_errors_name_the_key_path(path, value, where, words):
    err = _error(_with(path, value))
    assert err.path == where
    assert words in str(err) and str(err).startswith(where)


def test_repeat_every_must_exceed_every_at():
    number = {"phone_number": "1", "timeline": [{"at": 60, "set": {"status": "FLAGGED"}}], "repeat_every": 60}
    err = _error(_with(["spaces", 0, "numbers"], [number]))
    assert err.path == "spaces[0].numbers[0].timeline[0].at" and "repeat_every" in err.message


def test_duplicates_are_rejected():
    err = _error(_with(["credentials"], MINIMAL["credentials"] * 2))
    assert err.path == "credentials[1].access_key_id"
    err = _error(_with(["spaces"], MINIMAL["spaces"] * 2))
    assert err.path == "spaces[1].cust_space_id"
    err = _error(_with(["spaces", 0, "numbers"], MINIMAL["spaces"][0]["numbers"] * 2))
    assert err.path == "spaces[0].numbers[1].phone_number"
    with pytest.raises(ScenarioError, match="duplicate key"):
        loads_scenario("credentials: []\ncredentials: []\n")


def test_yaml_problems_and_files(tmp_path):
    with pytest.raises(ScenarioError, match="invalid YAML"):
        loads_scenario("spaces: [unclosed")
    with pytest.raises(ScenarioError, match="expected a mapping"):
        loads_scenario("- just\n- a list\n")
    path = tmp_path / "bad.yaml"
    path.write_text("credentials:\n  - {access_key_id: a}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: credentials[0].access_key_secret")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("credentials: [{access_key_id: a, access_key_secret: b, qps: null}]\n")
    assert load_scenario(good).credential("a").qps is None
    assert parse_scenario(None).spaces == []


def test_fault_objects_validate_and_select():
    fault = Fault(kind="error", code="Throttling.User", action="QueryChatappBindWaba", from_="1m", until="2m")
    assert (fault.from_, fault.until) == (60.0, 120.0)
    kwargs = dict(access_key_id="ak", action="QueryChatappBindWaba", space_id="s", phone_number=None)
    assert fault.selects(t=60, **kwargs) and not fault.selects(t=120, **kwargs) and not fault.selects(t=59, **kwargs)
    assert not fault.selects(t=90, **{**kwargs, "action": "QueryChatappPhoneNumbers"})
    with pytest.raises(ScenarioError, match="kind"):
        Fault(kind="boom")
    with pytest.raises(ScenarioError, match="seconds"):
        Fault(kind="delay")
    parsed = parse_scenario(_with(["faults"], [{"kind": "delay", "seconds": "1500ms", "from": "10s", "count": 2}]))
    assert parsed.faults[0].seconds == 1.5 and parsed.faults[0].from_ == 10 and parsed.faults[0].count == 2


def test_credentials_permissions_and_accounts():
    data = _with(
        ["credentials"],
        [
            {
                "access_key_id": "a",
                "access_key_secret": "x",
                "permissions": ["QueryChatappPhoneNumbers"],
                "account": "t",
            },
            {"access_key_id": "b", "access_key_secret": "y", "permissions": "denied", "account": "t"},
            {"access_key_id": "ak", "access_key_secret": "sk"},
        ],
    )
    scenario = parse_scenario(data)
    a, b = scenario.credential("a"), scenario.credential("b")
    assert a.allows("QueryChatappPhoneNumbers") and not a.allows("QueryChatappBindWaba")
    assert not b.allows("QueryChatappPhoneNumbers") and scenario.credential("ak").allows("Anything")
    assert scenario.credential("ak").qps == 10 and a.account_key == b.account_key == "t"
    assert [s.space_id for s in scenario.spaces_of("ak")] == ["cams-1"] and scenario.spaces_of("a") == []
    assert scenario.credential("nobody") is None and scenario.space(None) is None


# ---------------------------------------------------------------------------
# fleets


def test_generate_fleet():
    fleet = generate_fleet(spaces=50, numbers_per_space=5, access_key_id="fleet-ak", secret="s", qps=10, seed=7)
    assert isinstance(fleet, Scenario)
    assert len(fleet.spaces) == 50 and fleet.number_count() == 250
    assert fleet.credential("fleet-ak").access_key_secret == "s" and fleet.credential("fleet-ak").qps == 10
    phones = [n.phone_number for s in fleet.spaces for n in s.numbers]
    assert len(set(phones)) == 250 and all(p.isdigit() for p in phones)
    assert len({s.space_id for s in fleet.spaces}) == 50
    assert all(s.access_key_id == "fleet-ak" and s.waba is not None for s in fleet.spaces)
    statuses = {n.attributes["status"] for s in fleet.spaces for n in s.numbers}
    assert "CONNECTED" in statuses and len(statuses) >= 3
    # deterministic per seed
    again = generate_fleet(spaces=50, numbers_per_space=5, access_key_id="fleet-ak", secret="s", qps=10, seed=7)
    assert [n.attributes for s in again.spaces for n in s.numbers] == [
        n.attributes for s in fleet.spaces for n in s.numbers
    ]
    other = generate_fleet(spaces=50, numbers_per_space=5, access_key_id="fleet-ak", secret="s", qps=10, seed=8)
    assert [n.attributes["status"] for s in other.spaces for n in s.numbers] != [
        n.attributes["status"] for s in fleet.spaces for n in s.numbers
    ]


def test_generate_large_fleet():
    fleet = generate_fleet(spaces=2000, numbers_per_space=1, qps=None, seed=1)
    assert len(fleet.spaces) == 2000 and fleet.space(fleet.spaces[-1].space_id) is fleet.spaces[-1]
    assert fleet.credential("fleet-ak").qps is None


# ---------------------------------------------------------------------------
# the built-in demo


def test_demo_scenario_covers_the_vocabulary():
    assert "demo" in builtin_scenarios()
    demo = load_builtin_scenario("demo")
    assert len(demo.credentials) == 2 and 3 <= len(demo.spaces) <= 5 and 10 <= demo.number_count() <= 14
    states = [n.state_at(0) for s in demo.spaces for n in s.numbers]
    statuses = {st.get("status") for st in states}
    assert {"CONNECTED", "FLAGGED", "RATE_LIMITED", "PENDING"} <= statuses
    assert "TIER_10" in {st.get("messaging_limit_tier") for st in states}
    names = {st.get("name_status") for st in states} | {st.get("new_name_status") for st in states}
    assert {"Approval", "Pending_Review", "Rejected", "APPROVED"} <= names
    assert any(st.get("quality_rating") is None and st.get("messaging_limit_tier") is None for st in states)
    # every space has an owner; the ISV space declares its code
    assert any(s.isv_code for s in demo.spaces)
    for s in demo.spaces:
        assert demo.credential(s.access_key_id) is not None


def _trace(entity, attr, until=600, step=5):
    values, last = [], object()
    for t in range(0, until, step):
        value = entity.state_at(t).get(attr)
        if value != last:
            values.append((t, value))
            last = value
    return values


def test_demo_transitions_loop_and_start_within_a_minute():
    demo = load_builtin_scenario("demo")
    numbers = {n.phone_number: n for s in demo.spaces for n in s.numbers}
    quality = [v for _, v in _trace(numbers["8613800000001"], "quality_rating")]
    assert quality[:4] == ["GREEN", "YELLOW", "RED", "GREEN"] and len(quality) > 4  # loops
    status = [v for _, v in _trace(numbers["8613800000002"], "status")]
    assert status[:3] == ["CONNECTED", "FLAGGED", "CONNECTED"]
    tier = [v for _, v in _trace(numbers["8613800000003"], "messaging_limit_tier")]
    assert tier[:3] == ["TIER_10K", "TIER_1K", "TIER_10K"]
    travel = demo.space("cams-demo-travel").waba
    review = [v for _, v in _trace(travel, "account_review_status")]
    assert review[:3] == ["APPROVED", "PENDING", "APPROVED"]
    first_change = min(t for n in numbers.values() for t in [n.timeline.next_change_after(0)] if t is not None)
    assert first_change <= 60


def test_timeline_set_time():
    timeline = Timeline((Transition(30, {"a": 1}), Transition(60, {"b": 2}), Transition(90, {"a": 3})), 120)
    assert timeline.set_time("a", 10) == 0.0  # the base value, set when the period began
    assert timeline.set_time("a", 45) == 30.0
    assert timeline.set_time("a", 75) == 30.0  # a transition of another attribute does not count
    assert timeline.set_time("a", 100) == 90.0
    assert timeline.set_time("a", 250) == 240.0  # third period (240..360), before its first transition
    assert timeline.set_time("a", 275) == 270.0
    assert Timeline((Transition(30, {"a": 1}),)).set_time("a", 1000) == 30.0


# ---------------------------------------------------------------------------
# Meta scenarios follow Meta since October 2025 (checked when the Meta emulator is built)

META_BASE = """
credentials: [{access_key_id: app, access_key_secret: token}]
spaces:
  - space_id: "102"
    access_key_id: app
    waba:
      id: "102"
      business_id: "524"
WABA_EXTRA
    numbers:
      - phone_number: "15550000001"
        status: CONNECTED
NUMBER_EXTRA
"""


def _meta(waba_extra: str = "", number_extra: str = "", more: str = ""):
    from emulators.meta import MetaEmulator

    text = (
        META_BASE.replace("WABA_EXTRA", textwrap.indent(textwrap.dedent(waba_extra).strip("\n"), " " * 6)).replace(
            "NUMBER_EXTRA", textwrap.indent(textwrap.dedent(number_extra).strip("\n"), " " * 8)
        )
        + more
    )
    return MetaEmulator(loads_scenario(text))


def _meta_error(**kw) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        _meta(**kw)
    return info.value


@pytest.mark.parametrize(
    "number_extra,path",
    [
        ("status: FLAGGED", "spaces[0].numbers[1].status"),
        (
            "timeline: [{at: 90, set: {quality_rating: RED}}, {at: 30, set: {status: FLAGGED}}]",
            "spaces[0].numbers[1].timeline[at=30s].set.status",
        ),
    ],
)
def test_meta_scenarios_cannot_flag_a_number(number_extra, path):
    second = """
quality_rating: GREEN
timeline: [{at: 30, set: {quality_rating: RED}}]
"""
    err = _meta_error(
        number_extra=second,
        more=f"""      - phone_number: "15550000002"
        {number_extra}
""",
    )
    assert err.path == path
    assert "FLAGGED since 7 October 2025" in err.message and "quality_rating RED" in err.message
    # the same scenario is fine for the emulators of the BSPs, whose APIs still report FLAGGED
    from emulators.cams import CamsEmulator

    flagged = META_BASE.replace("WABA_EXTRA", "").replace("NUMBER_EXTRA", "").replace("CONNECTED", "FLAGGED")
    cams = CamsEmulator(loads_scenario(flagged))
    assert cams.number_state(cams.scenario.spaces[0], "15550000001")["status"] == "FLAGGED"


def test_meta_refuses_flagging_at_run_time_too():
    emu = _meta()
    with pytest.raises(ValueError, match="FLAGGED since 7 October 2025"):
        emu.set_number("102", "15550000001", status="FLAGGED")
    with pytest.raises(ValueError, match="WABA-level"):
        emu.set_number("102", "15550000001", ban_state="DISABLE")
    emu.set_number("102", "15550000001", quality_rating="RED", status="RESTRICTED")  # everything else is fine
    with pytest.raises(ScenarioError, match="restriction_type"):
        emu.set_waba("102", restrictions=[{"duration": "1h"}])


@pytest.mark.parametrize(
    "waba_limit,number_limit,at,words",
    [
        (
            "portfolio_messaging_limit: 2000",
            "whatsapp_business_manager_messaging_limit: TIER_2K",
            "",
            "lives on the business portfolio",
        ),
        (
            "timeline: [{at: 10, set: {portfolio_messaging_limit: -1}}]",
            "timeline: [{at: 20, set: {whatsapp_business_manager_messaging_limit: TIER_10K}}]",
            "timeline[at=20s].set.",
            "portfolio",
        ),
    ],
)
def test_meta_portfolio_limit_is_refused_on_a_number_when_its_waba_has_one(waba_limit, number_limit, at, words):
    err = _meta_error(waba_extra=waba_limit, number_extra=number_limit)
    assert err.path == f"spaces[0].numbers[0].{at}whatsapp_business_manager_messaging_limit", err.path
    assert words in err.message, err.message


@pytest.mark.parametrize(
    "waba_extra,number_extra,path,words",
    [
        ("portfolio_messaging_limit: 1000", "", "spaces[0].waba.portfolio_messaging_limit", "TIER_* string"),
        ("portfolio_messaging_limit: true", "", "spaces[0].waba.portfolio_messaging_limit", "UNLIMITED"),
        ("", "ban_state: DISABLE", "spaces[0].numbers[0].ban_state", "WABA-level"),
        ("", "restrictions: []", "spaces[0].numbers[0].restrictions", "WABA-level"),
        ("restrictions: {restriction_type: X}", "", "spaces[0].waba.restrictions", "list"),
        ("restrictions: [{duration: 1h}]", "", "spaces[0].waba.restrictions[0].restriction_type", "required"),
        ("restrictions: [{restriction_type: X}]", "", "spaces[0].waba.restrictions[0].duration", "required"),
        ("restrictions: [{restriction_type: X, duration: 0}]", "", "spaces[0].waba.restrictions[0].duration", "> 0"),
        (
            "restrictions: [{restriction_type: X, duration: soon}]",
            "",
            "spaces[0].waba.restrictions[0].duration",
            "invalid duration",
        ),
        (
            "restrictions: [{restriction_type: X, duration: 1h, until: 5}]",
            "",
            "spaces[0].waba.restrictions[0].until",
            "unknown key",
        ),
        (
            "restrictions: [{restriction_type: X, duration: 1h}, {restriction_type: X, duration: 2h}]",
            "",
            "spaces[0].waba.restrictions[1].restriction_type",
            "duplicate",
        ),
        ("timeline: [{at: 5, set: {ban_state: 3}}]", "", "spaces[0].waba.timeline[at=5s].set.ban_state", "string"),
        ("ban_after: later", "", "spaces[0].waba.ban_after", "invalid duration"),
        ("violation_type: ''", "", "spaces[0].waba.violation_type", "string"),
        ("max_phone_numbers_per_waba: 0", "", "spaces[0].waba.max_phone_numbers_per_waba", "positive integer"),
    ],
)
def test_meta_waba_level_attributes_are_validated(waba_extra, number_extra, path, words):
    err = _meta_error(waba_extra=waba_extra, number_extra=number_extra)
    assert err.path == path and words in err.message, (err.path, err.message)


def test_meta_wabas_of_one_business_share_its_limit():
    second = """  - space_id: "103"
    access_key_id: app
    waba: {id: "103", business_id: "524", portfolio_messaging_limit: LIMIT}
    numbers: []
"""
    _meta(waba_extra="portfolio_messaging_limit: 2000", more=second.replace("LIMIT", "2000"))
    err = _meta_error(waba_extra="portfolio_messaging_limit: 2000", more=second.replace("LIMIT", "10000"))
    assert err.path == "spaces[1].waba.portfolio_messaging_limit" and "business 524" in err.message
    err = _meta_error(waba_extra="portfolio_messaging_limit: 2000", more=second.replace("LIMIT", "TIER_2K"))
    assert "spaces[0].waba" in err.message  # the same level spelled differently is still another value
    from emulators.meta import MetaEmulator

    switched = loads_scenario(META_BASE.replace("WABA_EXTRA", "").replace("NUMBER_EXTRA", ""))
    switched.spaces[0].extra["legacy_quality_events"] = "yes"
    with pytest.raises(ScenarioError, match="legacy_quality_events"):
        MetaEmulator(switched)


def test_unknown_builtin_scenario():
    with pytest.raises(ScenarioError, match="no built-in scenario"):
        load_builtin_scenario("nope")
    with pytest.raises(ScenarioError, match="invalid"):
        load_builtin_scenario("../demo")
