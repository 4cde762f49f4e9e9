"""The rendered exposition: shape, state sets, escaping, caching and promtool's verdict."""

import gzip
import math
import re

import pytest

from exporter import exposition as ex
from exporter import model
from exporter.store import AccountSnapshot, PollResult, Store

ALL = ex.RenderOptions(state_sets="all")


def tracked(phone, **kw):
    return model.TrackedNumber(model.PhoneNumber(phone, **kw), model.ChangeTimes.first_seen(1700000000.0))


def snapshot(
    name="acct",
    numbers=(),
    wabas=(),
    poll=True,
    labels=None,
    configured=None,
    usage=None,
    regain=None,
    businesses=(),
    facts=model.NO_FACTS,
    sweep=None,
):
    return AccountSnapshot(
        businesses={b.business_id: b for b in businesses},
        waba_facts=facts,
        health_sweep_duration=sweep,
        usage=usage or {},
        regain=regain or {},
        name=name,
        provider="alibaba_cams",
        poll_interval=60,
        qps=10,
        static_labels=labels or {},
        actions=("QueryChatappPhoneNumbers", "QueryChatappBindWaba"),
        numbers={t.number.phone_number: t for t in numbers},
        wabas={w.space_id: w for w in wabas},
        poll=PollResult(True, 1700000100.0, 0.25, 1700000100.0, {"cams-1": True}) if poll else None,
        requests={"QueryChatappPhoneNumbers": 3},
        errors={("QueryChatappPhoneNumbers", "throttled"): 1},
        configured=configured or {},
    )


def samples(body: bytes, name: str) -> dict[str, float]:
    out = {}
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_state_sets_have_exactly_one_active_state_per_number():
    store = Store(options=ALL)  # every state of each state set (the default is active only, issue 17)
    store.update(
        snapshot(
            numbers=[
                tracked("+1", status="FLAGGED", quality_rating="RED", messaging_limit_tier="TIER_1K"),
                tracked("+2", status="OTHER"),
            ]
        )
    )
    body = store.exposition.body
    for family, vocab in [
        ("whatsapp_phone_number_status", model.STATUS),
        ("whatsapp_phone_number_quality_rating", model.QUALITY_RATING),
        ("whatsapp_phone_number_messaging_limit_tier", model.TIER),
        ("whatsapp_phone_number_code_verification_status", model.CODE_VERIFICATION_STATUS),
        ("whatsapp_phone_number_name_status", model.NAME_STATUS),
        ("whatsapp_phone_number_new_name_status", model.NAME_STATUS),
    ]:
        s = samples(body, family)
        for phone in ("+1", "+2"):
            mine = {k: v for k, v in s.items() if f'phone_number="{phone}"' in k}
            assert len(mine) == len(vocab.states)
            assert sum(mine.values()) == 1
    assert (
        samples(body, "whatsapp_phone_number_status")[
            'whatsapp_phone_number_status{provider="alibaba_cams",account="acct",phone_number="+1",status="FLAGGED"}'
        ]
        == 1
    )


def test_messaging_limit_values():
    store = Store()
    store.update(
        snapshot(
            numbers=[
                tracked("+1", messaging_limit_tier="TIER_UNLIMITED"),
                tracked("+2", messaging_limit_tier="TIER_2K"),
                tracked("+3", messaging_limit_tier="TIER_NOT_SET"),
            ]
        )
    )
    s = {
        k.split('phone_number="')[1].split('"')[0]: v
        for k, v in samples(store.exposition.body, "whatsapp_phone_number_messaging_limit").items()
    }
    assert s["+1"] == math.inf and s["+2"] == 2000 and "+3" not in s


def escaped_body() -> bytes:
    """Label values with quotes, backslashes, newlines and non-ASCII (promtool checks it in tests/e2e)."""
    store = Store()
    weird = 'Quote " back\\slash\nnewline 名字'
    store.update(
        snapshot(
            numbers=[
                tracked("+1", verified_name=weird, space_id="cams-1", waba_id="w1"),
                tracked("+2", status="OTHER"),
            ],
            wabas=[model.Waba("w1", weird, "APPROVED", "cams-1", "USD")],
            labels={"team": "growth"},
        )
    )
    store.update(snapshot(name="second", numbers=[tracked("+3")], poll=False))
    return store.exposition.body


def test_label_values_are_escaped():
    assert 'verified_name="Quote \\" back\\\\slash\\nnewline 名字"' in escaped_body().decode()


META_HEALTH = dict(
    can_send_message="BLOCKED",
    throughput_level="STANDARD",
    limit_scope="business_portfolio",
    messaging_limit_tier="TIER_2K",
    entities=(model.EntityHealth("WABA", "w1", "LIMITED"), model.EntityHealth("BUSINESS", "b1", "AVAILABLE")),
    blocking_errors=(model.BlockingError("PHONE_NUMBER", "pn1", "141006", 'Payment "method" missing'),),
)


FACTS = model.WabaFacts(
    restrictions={
        ("w1", "RESTRICTED_BIZ_INITIATED_MESSAGING"): model.WabaRestriction(
            "w1", "RESTRICTED_BIZ_INITIATED_MESSAGING", 1700086400.0
        )
    },
    bans={"w1": model.WabaBan("w1", "SCHEDULE_FOR_DISABLE", 1744848000.0, 1700000000.0)},
    violations={("w1", "ADULT"): 2},
)


def test_every_family_has_help_and_type_once():
    store = Store()
    store.update(
        snapshot(
            numbers=[tracked("+1", messaging_limit_tier="TIER_1K"), tracked("+2"), tracked("+3", **META_HEALTH)],
            wabas=[model.Waba("w", space_id="cams-1")],
            configured={"+1": ("cams-1", True), "+9": ("cams-1", False)},
            usage={("business_use_case", "b1", "call_count"): 0.42},
            regain={"b1": 0.0},
            businesses=[model.BusinessLimit("b1", "TIER_10K")],
            facts=FACTS,
            sweep=12.5,
        )
    )
    text = store.exposition.body.decode()
    names = re.findall(r"^# TYPE (\S+) ", text, re.M)
    assert len(names) == len(set(names))
    assert set(re.findall(r"^# HELP (\S+) ", text, re.M)) == set(names)
    for family in ex.NUMBER_FAMILIES + ex.WABA_FAMILIES + ex.ACCOUNT_FAMILIES:
        assert family.name in names, family.name


def test_static_labels_on_every_account_series():
    store = Store()
    store.update(snapshot(numbers=[tracked("+1")], labels={"team": "growth"}))
    for line in store.exposition.body.decode().splitlines():
        if 'account="acct"' in line:
            assert 'team="growth"' in line, line


def test_unchanged_numbers_reuse_rendered_blocks():
    store = Store()
    numbers = [tracked(f"+{i}") for i in range(100)]
    store.update(snapshot(numbers=numbers))
    before = list(store._rendered["acct"].blocks)
    changed = model.TrackedNumber(model.PhoneNumber("+7", status="FLAGGED"), numbers[7].changes)
    store.update(snapshot(numbers=[*numbers[:7], changed, *numbers[8:]]))
    after = store._rendered["acct"].blocks
    reused = [i for i, block in enumerate(after) if block is before[i]]
    assert len(after) == len(before) and len(reused) == len(after) - 1  # only the block holding +7 was rendered again
    assert 'phone_number="+7",status="FLAGGED"} 1' in store.exposition.body.decode()


def test_gzip_twin_and_generation():
    store = Store()
    g = store.exposition.generation
    store.update(snapshot(numbers=[tracked("+1")]))
    assert store.exposition.generation == g + 1
    assert gzip.decompress(store.exposition.gzipped) == store.exposition.body


def test_removed_numbers_disappear():
    store = Store()
    store.update(snapshot(numbers=[tracked("+1"), tracked("+2")]))
    store.update(snapshot(numbers=[tracked("+1")]))
    assert 'phone_number="+2"' not in store.exposition.body.decode()


def test_account_without_poll_has_no_poll_success_yet():
    store = Store()
    store.update(snapshot(poll=False))
    text = store.exposition.body.decode()
    assert "whatsapp_exporter_poll_success{" not in text
    assert (
        'whatsapp_exporter_api_request_errors_total{provider="alibaba_cams",account="acct",'
        'action="QueryChatappBindWaba",reason="auth"} 0' in text
    )
    assert not store.ready()


@pytest.mark.parametrize(
    "value,text", [(1.0, "1"), (0, "0"), (math.inf, "+Inf"), (1700000000.5, "1700000000.5"), (0.25, "0.25")]
)
def test_fmt(value, text):
    assert ex.fmt(value) == text


def meta_health_body() -> bytes:
    store = Store(options=ALL)  # every state of each state set (the default is active only, issue 17)
    other = dict(
        META_HEALTH,
        can_send_message="AVAILABLE",
        blocking_errors=(),
        entities=(model.EntityHealth("WABA", "w1", "BLOCKED"), model.EntityHealth("APP", "a1", "AVAILABLE")),
    )
    store.update(
        snapshot(
            numbers=[
                tracked("+1", messaging_limit_tier="TIER_1K", limit_scope="phone_number"),
                tracked("+3", **META_HEALTH),
                tracked("+4", **other),
            ]
        )
    )
    return store.exposition.body


def test_meta_health_families():
    """can-send and throughput only where the provider reported them; errors as info; entities once, worst state."""
    body = meta_health_body()
    can_send = samples(body, "whatsapp_phone_number_can_send_message")
    assert (
        can_send[
            'whatsapp_phone_number_can_send_message{provider="alibaba_cams",account="acct",phone_number="+3",'
            'can_send_message="BLOCKED"}'
        ]
        == 1
    )
    assert not any('phone_number="+1"' in k for k in can_send)  # not reported: not emitted
    assert len(can_send) == 2 * len(model.CAN_SEND_MESSAGE.states)
    assert len(samples(body, "whatsapp_phone_number_throughput_level")) == 2 * len(model.THROUGHPUT_LEVEL.states)
    errors = samples(body, "whatsapp_phone_number_blocking_error_info")
    assert errors == {
        'whatsapp_phone_number_blocking_error_info{provider="alibaba_cams",account="acct",phone_number="+3",'
        'entity_type="PHONE_NUMBER",entity_id="pn1",error_code="141006",'
        'error_description="Payment \\"method\\" missing"}': 1
    }
    entities = {k: v for k, v in samples(body, "whatsapp_entity_can_send_message").items() if v == 1}
    assert entities == {
        'whatsapp_entity_can_send_message{provider="alibaba_cams",account="acct",entity_type="APP",entity_id="a1",'
        'can_send_message="AVAILABLE"}': 1,
        'whatsapp_entity_can_send_message{provider="alibaba_cams",account="acct",entity_type="BUSINESS",entity_id="b1",'
        'can_send_message="AVAILABLE"}': 1,
        'whatsapp_entity_can_send_message{provider="alibaba_cams",account="acct",entity_type="WABA",entity_id="w1",'
        'can_send_message="BLOCKED"}': 1,  # +3 says LIMITED, +4 says BLOCKED: the worst wins
    }
    tiers = {k: v for k, v in samples(body, "whatsapp_phone_number_messaging_limit_tier").items() if v == 1}
    assert (
        'whatsapp_phone_number_messaging_limit_tier{provider="alibaba_cams",account="acct",phone_number="+3",'
        'limit_scope="business_portfolio",tier="TIER_2K"}' in tiers
    )
    assert (
        'whatsapp_phone_number_messaging_limit_tier{provider="alibaba_cams",account="acct",phone_number="+1",'
        'limit_scope="phone_number",tier="TIER_1K"}' in tiers
    )


def test_usage_and_regain_rendered_per_business():
    store = Store()
    store.update(
        snapshot(
            usage={("business_use_case", "b1", "call_count"): 0.95, ("app", "", "total_time"): 0.1},
            regain={"b1": 300.0},
        )
    )
    body = store.exposition.body
    assert samples(body, "whatsapp_exporter_api_usage_ratio") == {
        'whatsapp_exporter_api_usage_ratio{provider="alibaba_cams",account="acct",header="app",business_id="",'
        'type="total_time"}': 0.1,
        'whatsapp_exporter_api_usage_ratio{provider="alibaba_cams",account="acct",header="business_use_case",business_id="b1",'
        'type="call_count"}': 0.95,
    }
    assert samples(body, "whatsapp_exporter_api_regain_access_seconds") == {
        'whatsapp_exporter_api_regain_access_seconds{provider="alibaba_cams",account="acct",business_id="b1"}': 300
    }


def test_sections_are_appended_and_removed():
    store = Store()
    store.update(snapshot())
    generation = store.exposition.generation
    text = "# HELP x_total X.\n# TYPE x_total counter\nx_total 3\n"
    store.set_section("webhooks", text)
    assert text.encode() in store.exposition.body
    assert gzip.decompress(store.exposition.gzipped) == store.exposition.body
    store.set_section("webhooks", text)  # unchanged: not re-rendered
    assert store.exposition.generation == generation + 1
    store.set_section("webhooks", "")
    assert b"x_total" not in store.exposition.body


def test_rerender_keeps_one_copy_of_unchanged_family_bytes():
    """A block re-rendered for a quality change shares its other families' bytes with the exposition (no copies)."""
    store = Store()
    numbers = [tracked(f"+{i}", quality_rating="GREEN", status="CONNECTED") for i in range(100)]
    store.update(snapshot(numbers=numbers))
    numbers[7] = tracked("+7", quality_rating="RED", status="CONNECTED")
    store.update(snapshot(numbers=numbers))
    served = {id(part) for part in store.exposition.parts}
    for position, block in enumerate(store._rendered["acct"].blocks):
        for i, chunk in enumerate(block.plain):
            if chunk:  # the very object the block holds is served, not an equal copy
                assert id(chunk) in served, (position, ex.NUMBER_FAMILIES[i].name)
            # (issue 13: blocks no longer carry deflate segments; the gzip body is compressed once per generation)


def test_portfolio_limit_is_exported_once_per_business_not_per_number():
    store = Store(options=ALL)  # every state of each state set (the default is active only, issue 17)
    portfolio = dict(limit_scope="business_portfolio", messaging_limit_tier="TIER_10K", business_id="b1")
    store.update(
        snapshot(
            numbers=[
                tracked("+1", **portfolio),
                tracked("+2", **portfolio),
                tracked("+3", messaging_limit_tier="TIER_1K", limit_scope="phone_number"),
            ],
            businesses=[model.BusinessLimit("b1", "TIER_10K"), model.BusinessLimit("b2", "TIER_UNLIMITED")],
        )
    )
    body = store.exposition.body
    per_number = samples(body, "whatsapp_phone_number_messaging_limit")
    assert list(per_number) == [
        'whatsapp_phone_number_messaging_limit{provider="alibaba_cams",account="acct",phone_number="+3"}'
    ]
    tiers = samples(body, "whatsapp_phone_number_messaging_limit_tier")
    assert {k.split('phone_number="')[1].split('"')[0] for k in tiers} == {"+3"}
    assert samples(body, "whatsapp_business_messaging_limit") == {
        'whatsapp_business_messaging_limit{provider="alibaba_cams",account="acct",business_id="b1"}': 10_000,
        'whatsapp_business_messaging_limit{provider="alibaba_cams",account="acct",business_id="b2"}': math.inf,
    }
    business_tiers = samples(body, "whatsapp_business_messaging_limit_tier")
    assert len(business_tiers) == 2 * len(model.TIER.states)
    assert (
        business_tiers[
            'whatsapp_business_messaging_limit_tier{provider="alibaba_cams",account="acct",'
            'business_id="b1",tier="TIER_10K"}'
        ]
        == 1
    )


def waba_facts_body() -> bytes:
    store = Store(options=ALL)  # every state of each state set (the default is active only, issue 17)
    store.update(snapshot(facts=FACTS, labels={"team": "growth"}))
    return store.exposition.body


def test_waba_facts_render_restrictions_bans_and_violations():
    body = waba_facts_body()
    base = 'provider="alibaba_cams",account="acct",waba_id="w1",team="growth"'
    kind = 'restriction_type="RESTRICTED_BIZ_INITIATED_MESSAGING"'
    assert samples(body, "whatsapp_waba_restriction_info") == {f"whatsapp_waba_restriction_info{{{base},{kind}}}": 1}
    assert samples(body, "whatsapp_waba_restriction_expiration_timestamp_seconds") == {
        f"whatsapp_waba_restriction_expiration_timestamp_seconds{{{base},{kind}}}": 1700086400
    }
    bans = samples(body, "whatsapp_waba_ban_state")
    assert len(bans) == len(model.BAN_STATE.states)
    assert bans[f'whatsapp_waba_ban_state{{{base},ban_state="SCHEDULE_FOR_DISABLE"}}'] == 1
    assert sum(bans.values()) == 1
    assert samples(body, "whatsapp_waba_ban_timestamp_seconds") == {
        f"whatsapp_waba_ban_timestamp_seconds{{{base}}}": 1744848000
    }
    assert samples(body, "whatsapp_waba_violations_total") == {
        f'whatsapp_waba_violations_total{{{base},violation_type="ADULT"}}': 2
    }


def test_health_sweep_duration_only_once_a_sweep_finished():
    store = Store()
    store.update(snapshot(name="a"))
    store.update(snapshot(name="b", sweep=42.0))
    assert samples(store.exposition.body, "whatsapp_exporter_health_sweep_duration_seconds") == {
        'whatsapp_exporter_health_sweep_duration_seconds{provider="alibaba_cams",account="b"}': 42
    }


def test_gzip_body_is_compressed_once_per_generation_and_shared():
    """Concurrent gzip scrapes of one generation share one compression; a change makes a new one, lazily."""
    store = Store()
    store.update(snapshot(numbers=[tracked(f"+{i}") for i in range(300)]))
    exposition = store.exposition
    futures = [exposition.gzip() for _ in range(20)]
    assert all(f is futures[0] for f in futures)
    body = futures[0].result()
    assert gzip.decompress(body.prefix + body.finish(b"tail\n")) == exposition.body + b"tail\n"
    assert body.finish(b"x\n") == body.finish(b"x\n")  # finishing never advances the cached stream
    store.update(snapshot(numbers=[tracked(f"+{i}", quality_rating="RED") for i in range(300)]))
    fresh = store.exposition
    assert fresh is not exposition and fresh._gzip is None  # nothing compressed until a gzip scrape asks
    assert fresh.gzip() is not futures[0]


def test_gzip_body_is_as_small_as_one_gzip_stream():
    """Issue 13: one zlib stream over the whole text, not per-block segments (6.3 MB vs 2.4 MB at 10,000 numbers)."""
    store = Store()
    store.update(snapshot(numbers=[tracked(f"+{i}", verified_name=f"Shop {i}") for i in range(2000)]))
    ours = len(store.exposition.gzipped)
    reference = len(gzip.compress(store.exposition.body, compresslevel=1))
    assert ours <= 1.1 * reference, (ours, reference)
    level9 = Store(gzip_level=9)
    level9.update(snapshot(numbers=[tracked(f"+{i}", verified_name=f"Shop {i}") for i in range(2000)]))
    assert gzip.decompress(level9.exposition.gzipped) == store.exposition.body
    assert len(level9.exposition.gzipped) < ours


def test_ready_only_once_the_first_poll_is_in_the_exposition():
    store = Store()
    assert store.ready()  # nothing configured (a shard without accounts)
    store.update(snapshot(numbers=[], poll=False))
    assert store.account("acct").poll is None and not store.ready()
    store.update(snapshot(numbers=[tracked("+1")]))
    assert store.ready() and b'phone_number="+1"' in store.exposition.body


def test_compress_first_serves_the_previous_generation_until_the_new_one_is_compressed():
    """Issue 14: a large publish off the loop is compressed before it is served, so no gzip scrape waits for it."""
    import threading

    from exporter.store import EXECUTOR

    store = Store()
    store.update(snapshot(numbers=[tracked(f"+{i}") for i in range(300)]))
    before = store.exposition
    gate = threading.Event()
    held = [EXECUTOR.submit(gate.wait) for _ in range(EXECUTOR._max_workers)]  # the compressors are busy
    worker = threading.Thread(
        target=store.update,
        args=(snapshot(numbers=[tracked(f"+{i}", quality_rating="RED") for i in range(300)]),),
        kwargs={"compress_first": True},
    )
    worker.start()
    try:
        assert not store.wait_for_generation(before.generation, timeout=0.3)  # built, not yet compressed
        assert store.exposition is before and b'quality_rating="RED"' not in store.exposition.body
    finally:
        gate.set()
    worker.join(10)
    for f in held:
        f.result(10)
    served = store.exposition
    assert served.generation == before.generation + 1
    assert served.gzip().done()  # compressed before it was served: the first scrape does not wait
    assert gzip.decompress(served.gzipped) == served.body and b'quality_rating="RED"' in served.body


def test_a_newer_generation_is_not_replaced_by_an_older_one_compressed_first():
    import threading

    from exporter.store import EXECUTOR

    store = Store()
    store.update(snapshot(name="big", numbers=[tracked(f"+{i}") for i in range(300)]))
    gate = threading.Event()
    held = [EXECUTOR.submit(gate.wait) for _ in range(EXECUTOR._max_workers)]
    worker = threading.Thread(
        target=store.update,
        args=(snapshot(name="big", numbers=[tracked(f"+{i}", quality_rating="RED") for i in range(300)]),),
        kwargs={"compress_first": True},
    )
    worker.start()
    try:
        assert not store.wait_for_generation(store.exposition.generation, timeout=0.3)
        store.update(snapshot(name="small", numbers=[tracked("+9999")]))  # on the loop: served at once
        newer = store.exposition
    finally:
        gate.set()
    worker.join(10)
    for f in held:
        f.result(10)
    assert store.exposition is newer  # the older build, compressed later, does not replace it
    assert b'quality_rating="RED"' in newer.body and b'phone_number="+9999"' in newer.body


def test_a_large_render_is_cut_into_many_steps_and_gives_what_one_render_at_once_gives():
    """Issue 14: the steps of a rendering (run in slices between scrapes) make the same bytes as a render at
    once, on a first render and on an incremental one."""
    from exporter.exposition.accounts import render_account, render_account_steps

    numbers = [tracked(f"+{i}", status="CONNECTED") for i in range(2000)]
    first = snapshot(numbers=numbers)
    steps = render_account_steps(first, None, ex.DEFAULT_OPTIONS)
    count = 0
    try:
        while True:
            next(steps)
            count += 1
    except StopIteration as stop:
        stepped = stop.value
    assert count > 50  # 2,000 numbers in steps of a few blocks
    whole = render_account(first, None, ex.DEFAULT_OPTIONS)
    assert stepped.parts == whole.parts and stepped.bounds == whole.bounds and stepped.sizes == whole.sizes
    assert stepped.sizes == tuple(sum(map(len, whole.family(i))) for i in range(len(whole.sizes)))
    changed = [*numbers[:5], tracked("+5", status="FLAGGED"), *numbers[6:]]
    again = render_account(snapshot(numbers=changed), stepped, ex.DEFAULT_OPTIONS)
    fresh = render_account(snapshot(numbers=changed), None, ex.DEFAULT_OPTIONS)
    assert again.parts == fresh.parts and again.sizes == fresh.sizes
    assert sum(1 for a, b in zip(again.blocks, stepped.blocks, strict=True) if a is not b) == 1


def test_publish_sliced_renders_between_other_callbacks_and_serves_once_compressed():
    """Issue 14: a large account is rendered on the loop in slices (other callbacks, a scrape, run between
    them) and its generation is served only once its gzip body is ready."""
    import asyncio

    async def run() -> tuple[int, bool, bool]:
        store = Store()
        store.update(snapshot(numbers=[tracked(f"+{i}") for i in range(3000)]))
        before = store.exposition
        ticks = 0
        running = True

        def tick() -> None:
            nonlocal ticks
            ticks += 1
            if running:
                asyncio.get_running_loop().call_soon(tick)

        asyncio.get_running_loop().call_soon(tick)
        await store.publish_sliced(snapshot(numbers=[tracked(f"+{i}", quality_rating="RED") for i in range(3000)]))
        running = False
        served = store.exposition
        return ticks, served.generation > before.generation, served.gzip().done()

    ticks, newer, compressed = asyncio.run(run())
    assert ticks > 10  # the loop ran other callbacks while the 3,000 numbers were rendered
    assert newer and compressed


def test_the_threads_that_compress_run_at_the_lowest_cpu_priority():
    """Issue 14: a compression never keeps the loop's thread from a CPU when a scrape is to be answered."""
    import os
    import sys
    import threading

    from exporter.exposition.body import BACKGROUND_NICE, EXECUTOR

    if not sys.platform.startswith("linux"):
        pytest.fail("this test runs on Linux, where a thread has a nice value of its own")
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    theirs = EXECUTOR.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result(10)
    assert theirs == BACKGROUND_NICE == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller's is left alone
