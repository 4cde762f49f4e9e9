"""Kaleyra parsers: the envelope, discovery, and the number details (Meta's phone-number object)."""

import json
from pathlib import Path

import pytest

from exporter.providers.errors import ProviderError
from exporter.providers.kaleyra import parse
from tests.helpers import assert_fields

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kaleyra"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def test_details_meta_shape_prefers_the_portfolio_limit():
    data = parse.check_envelope(load("phone_number_details_meta_shape.json"), 200)
    n = parse.parse_details(data, "waba-1", "16315555555")
    assert n.phone_number == "+16315555555"
    assert_fields(
        n,
        status="CONNECTED",
        quality_rating="GREEN",
        code_verification_status="VERIFIED",
        name_status="APPROVED",
        new_name_status="NONE",
    )
    assert n.messaging_limit_tier == "TIER_2K"  # whatsapp_business_manager_messaging_limit wins
    assert n.phone_number_id == "1906385232743451" and n.waba_id == "waba-1" and n.space_id == "waba-1"
    assert n.verified_name == "Jasper's Market"


def test_deprecated_tier_used_when_the_new_field_is_absent_and_quality_score_fallback():
    n = parse.parse_details(
        {"status": "FLAGGED", "messaging_limit_tier": "TIER_10K", "quality_score": {"score": "RED"}}, "w", "16315555555"
    )
    assert (n.status, n.messaging_limit_tier, n.quality_rating) == ("FLAGGED", "TIER_10K", "RED")


def test_null_tier_and_na_quality():
    n = parse.parse_details({"messaging_limit_tier": None, "quality_rating": "NA"}, "w", "1555")
    assert (n.messaging_limit_tier, n.quality_rating) == ("UNKNOWN", "UNKNOWN")


def test_monitoring_envelope_is_success():
    assert parse.check_envelope(load("monitoring_stats_envelope.json"), 200) == {"stats": {"callback_queue_size": 0}}


@pytest.mark.parametrize(
    "body,status,reason",
    [
        ("error_rbc001.json", 401, "auth"),
        ({"code": "RBC001", "message": "Incorrect SID or API Key"}, 200, "auth"),
        ({"code": "WA401", "message": "Unauthorized"}, 400, "permission"),
        ({"code": "WA400", "message": "Incorrect Payload"}, 400, "request"),
        ({"code": "WA500", "message": "Internal Server Error"}, 500, "upstream"),
        ({"code": "WA429", "message": "Too Many Requests"}, 429, "throttled"),
        (None, 429, "throttled"),
        ("<html>", 503, "upstream"),
        ([], 200, "parse"),
    ],
)
def test_errors(body, status, reason):
    if isinstance(body, str) and body.endswith(".json"):
        body = load(body)
    with pytest.raises(ProviderError) as err:
        parse.check_envelope(body, status)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "data,expected",
    [
        (
            [{"phone_number": "919876543210"}, {"display_phone_number": "+1 631-555-5555"}],
            ["919876543210", "16315555555"],
        ),
        ({"numbers": [{"number": "919876543210"}]}, ["919876543210"]),
        (["919876543210", "919876543210"], ["919876543210"]),
        (None, []),
        ([{"no": "phone"}], []),
    ],
)
def test_discovery_shapes(data, expected):
    assert parse.parse_discovery(data) == expected


def test_discovery_rejects_garbage():
    with pytest.raises(ProviderError):
        parse.parse_discovery("nope")
