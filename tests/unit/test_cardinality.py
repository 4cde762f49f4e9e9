"""Cardinality controls, and the incremental exposition always equal to a fresh full render."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import exposition as ex
from exporter import model
from exporter.store import AccountSnapshot, PollResult, Store
from tests.helpers import samples, value

STATE_SETS = {
    "whatsapp_phone_number_status": "status",
    "whatsapp_phone_number_quality_rating": "quality_rating",
    "whatsapp_phone_number_messaging_limit_tier": "tier",
    "whatsapp_phone_number_code_verification_status": "code_verification_status",
    "whatsapp_phone_number_name_status": "name_status",
    "whatsapp_phone_number_new_name_status": "new_name_status",
}


def tracked(phone, **kw):
    return model.TrackedNumber(model.PhoneNumber(phone, **kw), model.ChangeTimes.first_seen(1_700_000_000.0))


def snap(numbers, name="acct", wabas=(), labels=None):
    return AccountSnapshot(
        name=name,
        provider="alibaba_cams",
        poll_interval=60,
        qps=10,
        static_labels=labels or {},
        actions=("QueryChatappPhoneNumbers",),
        numbers={t.number.phone_number: t for t in numbers},
        wabas={w.space_id: w for w in wabas},
        poll=PollResult(True, 1.7e9, 0.1, 1.7e9, {"s": True}),
    )


def series_per_number(options):
    store = Store(options=options)
    store.update(snap([tracked("+1", status="FLAGGED", messaging_limit_tier="TIER_1K")]))
    return sum(
        1
        for line in store.exposition.body.decode().splitlines()
        if line.startswith("whatsapp_phone_number_") and 'phone_number="+1"' in line
    )


def active_only_body() -> bytes:
    store = Store(options=ex.RenderOptions(state_sets="active"))
    store.update(
        snap(
            [tracked("+1", status="FLAGGED", quality_rating="RED"), tracked("+2")],
            wabas=[model.Waba("w", "n", "REJECTED", "s")],
        )
    )
    return store.exposition.body


def test_active_only_emits_one_series_per_state_set():
    s = samples(active_only_body().decode())
    for family in STATE_SETS:
        for phone in ("+1", "+2"):
            mine = [v for (n, ls), v in s.items() if n == family and dict(ls)["phone_number"] == phone]
            assert mine == [1], (family, phone, mine)
    assert value(s, "whatsapp_phone_number_status", phone_number="+1", status="FLAGGED") == 1
    assert value(s, "whatsapp_waba_account_review_status", account_review_status="REJECTED") == 1
    assert value(s, "whatsapp_waba_account_review_status", account_review_status="APPROVED") is None


def test_series_counts_per_mode():
    full = series_per_number(ex.RenderOptions(state_sets="all"))
    active = series_per_number(ex.RenderOptions(state_sets="active"))
    assert (
        full
        == 1
        + sum(
            len(v.states)
            for v in (
                model.STATUS,
                model.QUALITY_RATING,
                model.TIER,
                model.CODE_VERIFICATION_STATUS,
                model.NAME_STATUS,
                model.NAME_STATUS,
            )
        )
        + 1
        + 3
    )
    assert active == 1 + 6 + 1 + 3
    minimal = series_per_number(
        ex.RenderOptions(
            state_sets="active",
            disabled=frozenset(
                {
                    "whatsapp_phone_number_new_name_status",
                    "whatsapp_phone_number_status_last_change_timestamp_seconds",
                    "whatsapp_phone_number_quality_rating_last_change_timestamp_seconds",
                    "whatsapp_phone_number_messaging_limit_tier_last_change_timestamp_seconds",
                }
            ),
        )
    )
    assert minimal == active - 4


def test_disabled_families_and_info_labels():
    opts = ex.RenderOptions(
        disabled=frozenset({"whatsapp_phone_number_name_status", "whatsapp_waba_info"}), info_labels=("space_id",)
    )
    store = Store(options=opts)
    store.update(
        snap([tracked("+1", verified_name="Secret Shop Name", space_id="s")], wabas=[model.Waba("w", space_id="s")])
    )
    text = store.exposition.body.decode()
    assert "whatsapp_phone_number_name_status" not in text
    assert "whatsapp_waba_info" not in text
    assert "verified_name" not in text and "Secret Shop Name" not in text
    assert 'whatsapp_phone_number_info{provider="alibaba_cams",account="acct",phone_number="+1",space_id="s"} 1' in text


def test_set_options_rerenders_everything():
    store = Store()
    store.update(snap([tracked("+1")]))
    store.set_options(ex.RenderOptions(state_sets="active"))
    assert 'status="FLAGGED"' not in store.exposition.body.decode()


# -- the incremental exposition is exactly a fresh full render ------------------

PHONES = [f"+86138{i:05d}" for i in range(40)]
change = st.tuples(
    st.sampled_from(["set", "remove", "touch"]),
    st.sampled_from(PHONES),
    st.sampled_from(model.STATUS.states),
    st.sampled_from(model.QUALITY_RATING.states),
    st.sampled_from(model.TIER.states),
)


@settings(max_examples=60, deadline=None)
@given(
    initial=st.integers(min_value=0, max_value=40),
    steps=st.lists(st.lists(change, max_size=12), min_size=1, max_size=8),
    active=st.booleans(),
    second_account=st.booleans(),
)
def test_cached_exposition_equals_a_fresh_full_render(initial, steps, active, second_account):
    opts = ex.RenderOptions(state_sets="active" if active else "all")
    store = Store(options=opts)
    numbers = {p: tracked(p, verified_name=f'Shop "{p}"') for p in PHONES[:initial]}
    other = snap([tracked("+4915100000001")], name="other", labels={"team": "x"})
    t = 1_700_000_000.0
    for batch in steps:
        t += 60
        for op, phone, status, quality, tier in batch:
            if op == "remove":
                numbers.pop(phone, None)
            elif op == "touch" and phone in numbers:
                numbers[phone] = model.TrackedNumber(
                    numbers[phone].number, numbers[phone].changes
                )  # new object, same data
            elif op == "set":
                old = numbers.get(phone)
                new = model.PhoneNumber(phone, status=status, quality_rating=quality, messaging_limit_tier=tier)
                changes = old.changes.advanced(old.number, new, t) if old else model.ChangeTimes.first_seen(t)
                numbers[phone] = model.TrackedNumber(new, changes)
        batch_snaps = [snap(list(numbers.values()))] + ([other] if second_account else [])
        store.update_many(batch_snaps)
        fresh = Store(options=opts)
        fresh.update_many(batch_snaps)
        assert store.exposition.body == fresh.exposition.body
        assert gzip.decompress(store.exposition.gzipped) == store.exposition.body
        tail = b"# TYPE process_x gauge\nprocess_x 1\n"
        assert gzip.decompress(store.exposition.gzip_with(tail)) == store.exposition.body + tail


def test_gzip_stream_is_one_member_with_a_valid_trailer():
    store = Store()
    store.update(snap([tracked(p) for p in PHONES]))
    data = store.exposition.gzipped
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert d.decompress(data) == store.exposition.body
    assert d.eof and d.unused_data == b""  # a single gzip member, CRC and size checked by zlib
