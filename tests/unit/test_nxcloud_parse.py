"""NxCloud getPhone parser on the documented payloads (both shapes) and every result code."""

import json
from pathlib import Path

import pytest

from exporter.providers.errors import ProviderError
from exporter.providers.nxcloud import parse
from tests.helpers import assert_fields

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nxcloud"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def test_documented_example_keyed_by_number():
    data = parse.check_envelope(load("getphone_documented_example.json"), 200)
    numbers = {n.phone_number: n for n in parse.parse_phones(data, "jh42xxxd434")}
    assert set(numbers) == {"86xxx24", "1xxx99"}  # the docs mask digits: kept as given
    jack = numbers["86xxx24"]
    assert_fields(
        jack, status="CONNECTED", quality_rating="GREEN", name_status="APPROVED", code_verification_status="VERIFIED"
    )
    assert jack.messaging_limit_tier == "UNKNOWN"  # current_limit "" in the example
    assert jack.verified_name == "GLORY JACK" and jack.space_id == "jh42xxxd434"
    assert numbers["1xxx99"].code_verification_status == "NOT_VERIFIED"


def test_field_table_shape_with_unknow_spelling():
    data = parse.check_envelope(load("getphone_field_table_shape.json"), 200)
    [n] = parse.parse_phones(data, "app")
    assert n.phone_number == "+8613800000001"
    assert_fields(
        n, status="FLAGGED", quality_rating="UNKNOWN", messaging_limit_tier="TIER_1K", name_status="PENDING_REVIEW"
    )


def test_real_digits_as_keys_become_e164():
    data = {"8613800000001": [{"status": "CONNECTED", "current_limit": "TIER_2K"}]}
    [n] = parse.parse_phones(data, "app")
    assert n.phone_number == "+8613800000001" and n.messaging_limit_tier == "TIER_2K"


@pytest.mark.parametrize(
    "status",
    [
        "PENDING",
        "DELETED",
        "MIGRATED",
        "BANNED",
        "RESTRICTED",
        "RATE_LIMITED",
        "FLAGGED",
        "CONNECTED",
        "DISCONNECTED",
        "UNKNOWN",
        "UNVERIFIED",
    ],
)
def test_status_vocabulary(status):
    [n] = parse.parse_phones({"8613800000001": [{"status": status}]}, "app")
    assert n.status == status


@pytest.mark.parametrize(
    "name_status", ["APPROVED", "NONE", "AVAILABLE_WITHOUT_REVIEW", "DECLINED", "EXPIRED", "PENDING_REVIEW"]
)
def test_name_statuses(name_status):
    [n] = parse.parse_phones({"8613800000001": [{"name_status": name_status}]}, "app")
    assert n.name_status == name_status


def test_missing_current_limit_and_empty_data():
    [n] = parse.parse_phones({"8613800000001": [{"status": "CONNECTED"}]}, "app")
    assert n.messaging_limit_tier == "UNKNOWN"
    assert parse.parse_phones(None, "app") == []
    assert parse.parse_phones({}, "app") == []


def test_malformed_entries_are_skipped():
    numbers = parse.parse_phones(
        {"8613800000001": [], "8613800000002": ["x"], "8613800000003": [{"status": "FLAGGED"}]}, "app"
    )
    assert [n.phone_number for n in numbers] == ["+8613800000003"]
    with pytest.raises(ProviderError) as err:
        parse.parse_phones(["x"], "app")
    assert err.value.reason == "parse"


def test_documented_failure():
    with pytest.raises(ProviderError) as err:
        parse.check_envelope(load("getphone_failure.json"), 200)
    assert (err.value.reason, err.value.code) == ("upstream", "-1")


@pytest.mark.parametrize(
    "code,reason",
    [
        (1001, "auth"),
        (1002, "auth"),
        (1003, "auth"),
        (1004, "auth"),
        (1005, "permission"),
        (9000, "request"),
        (9001, "upstream"),
        (9002, "request"),
        (9003, "request"),
        (9006, "request"),
        (9008, "permission"),
        (-1, "upstream"),
        (12345, "upstream"),
    ],
)
def test_result_codes(code, reason):
    with pytest.raises(ProviderError) as err:
        parse.check_envelope({"code": code, "message": "m", "data": None}, 200)
    assert err.value.reason == reason and err.value.code == str(code)


@pytest.mark.parametrize(
    "meta_code,reason",
    [
        (4, "throttled"),
        (80007, "throttled"),
        (130429, "throttled"),
        (190, "auth"),
        (200, "permission"),
        (100, "request"),
        (131000, "upstream"),
    ],
)
def test_9099_meta_errors(meta_code, reason):
    body = {
        "code": 9099,
        "message": "WhatsApp error",
        "data": {"error": {"code": meta_code, "message": "x", "type": "OAuthException"}},
    }
    with pytest.raises(ProviderError) as err:
        parse.check_envelope(body, 200)
    assert err.value.reason == reason


def test_http_statuses():
    for status, body, reason in [
        (429, None, "throttled"),
        (502, "<html>", "upstream"),
        (200, [1], "parse"),
        (200, {"message": "no code"}, "parse"),
    ]:
        with pytest.raises(ProviderError) as err:
            parse.check_envelope(body, status)
        assert err.value.reason == reason
    assert parse.check_envelope({"code": "0", "data": {}}, 200) == {}
