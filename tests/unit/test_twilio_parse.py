"""Twilio WhatsApp Senders parser: the documented examples and every odd value of the reference."""

import json
from pathlib import Path

import pytest

from exporter.providers.errors import ProviderError
from exporter.providers.twilio import parse
from tests.helpers import HIGH_MEDIUM_LOW_QUALITY, assert_fields

FIXTURES = Path(__file__).parents[1] / "fixtures" / "twilio"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def sender(**kw):
    base = {
        "sid": "XE" + "0" * 32,
        "sender_id": "whatsapp:+15017122661",
        "status": "ONLINE",
        "properties": {"quality_rating": "HIGH", "messaging_limit": "10K Customers/24hr"},
    }
    base.update(kw)
    return base


def test_documented_offline_example():
    n = parse.parse_sender(load("fetch_offline_reasons.json"), "AC1")
    assert n.phone_number == "+15017122661"
    assert_fields(
        n, status="OFFLINE", quality_rating="GREEN", messaging_limit_tier="TIER_10K", limit_scope="phone_number"
    )
    assert n.waba_id == "1234567XXX" and n.space_id == "AC1" and n.verified_name == "Twilio"
    assert n.phone_number_id == "XEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    [err] = n.blocking_errors
    assert_fields(
        err,
        entity_type="PHONE_NUMBER",
        entity_id="XEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        error_code="30008",
        error_description="No delivery",
    )
    assert n.can_send_message == "UNKNOWN"  # Twilio has no health_status: not guessed


def test_documented_empty_page():
    page = parse.parse_page(parse.check_response(load("list_empty.json"), 200))
    assert page.senders == [] and page.next_page_url is None


def test_page_follows_meta_key_and_next_url():
    body = {"items": [sender()], "meta": {"key": "items", "next_page_url": "https://x/v2?PageToken=PT1"}}
    page = parse.parse_page(body)
    assert len(page.senders) == 1 and page.next_page_url == "https://x/v2?PageToken=PT1"
    with pytest.raises(ProviderError) as e:
        parse.parse_page({"senders": []})
    assert e.value.reason == "parse"
    with pytest.raises(ProviderError):
        parse.parse_page({"senders": {}, "meta": {"key": "senders"}})


@pytest.mark.parametrize(
    "raw,state",
    [
        ("ONLINE", "CONNECTED"),
        ("ONLINE:UPDATING", "CONNECTED"),
        ("OFFLINE", "OFFLINE"),
        ("CREATING", "PENDING"),
        ("PENDING_VERIFICATION", "PENDING"),
        ("VERIFYING", "PENDING"),
        ("TWILIO_REVIEW", "PENDING"),
        ("DRAFT", "PENDING"),
        ("STUBBED", "OTHER"),
        ("SOMETHING_NEW", "OTHER"),
        (None, "UNKNOWN"),
        ("", "UNKNOWN"),
        ("online", "CONNECTED"),
    ],
)
def test_status(raw, state):
    assert parse.parse_sender(sender(status=raw)).status == state


@pytest.mark.parametrize("raw,state", [*HIGH_MEDIUM_LOW_QUALITY, ("low", "RED"), ("EXCELLENT", "OTHER")])
def test_quality(raw, state):
    assert parse.parse_sender(sender(properties={"quality_rating": raw})).quality_rating == state


@pytest.mark.parametrize(
    "raw,tier",
    [
        ("250 Customers/24hr", "TIER_250"),
        ("1K Customers/24hr", "TIER_1K"),
        ("2K Customers/24hr", "TIER_2K"),
        ("10K Customers/24hr", "TIER_10K"),
        ("100K customers/24hr", "TIER_100K"),
        ("Unlimited", "TIER_UNLIMITED"),
        ("Unavailable", "TIER_NOT_SET"),
        (None, "UNKNOWN"),
        ("5K Customers/24hr", "OTHER"),
        ("lots", "OTHER"),
    ],
)
def test_messaging_limit(raw, tier):
    n = parse.parse_sender(sender(properties={"messaging_limit": raw}))
    assert n.messaging_limit_tier == tier
    assert n.limit_scope == ("unknown" if tier == "UNKNOWN" else "phone_number")


def test_properties_null_and_odd_shapes():
    n = parse.parse_sender(sender(properties=None, configuration=None, profile=None, offline_reasons=None))
    assert (n.quality_rating, n.messaging_limit_tier, n.waba_id, n.verified_name) == ("UNKNOWN", "UNKNOWN", "", "")
    assert parse.parse_sender(sender(sender_id="rcs:brand_agent")) is None
    assert parse.parse_sender(sender(sender_id=None)) is None
    assert parse.parse_sender("junk") is None


def test_offline_reasons_only_when_offline_and_deduplicated():
    reasons = [
        {"code": "63020", "message": "Invitation not accepted"},
        {"code": 63020, "message": "Invitation not accepted"},
        "junk",
        {},
    ]
    n = parse.parse_sender(sender(status="OFFLINE", offline_reasons=reasons))
    assert [e.error_code for e in n.blocking_errors] == ["63020"]
    assert parse.parse_sender(sender(status="ONLINE", offline_reasons=reasons)).blocking_errors == ()


def test_duplicate_senders_first_wins():
    numbers = parse.parse_senders([sender(), sender(status="OFFLINE"), {"x": 1}], "AC1")
    assert len(numbers) == 1 and numbers[0].status == "CONNECTED"


@pytest.mark.parametrize(
    "status,body,reason,code",
    [
        (
            401,
            {
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401,
            },
            "auth",
            "20003",
        ),
        (403, {"code": 20403, "message": "Forbidden", "more_info": "", "status": 403}, "permission", "20403"),
        (404, {"code": 20404, "message": "Not found", "more_info": "", "status": 404}, "request", "20404"),
        (400, {"code": 20001, "message": "Bad request", "more_info": "", "status": 400}, "request", "20001"),
        (
            429,
            {
                "code": 20429,
                "message": "Too Many Requests",
                "more_info": "https://www.twilio.com/docs/errors/20429",
                "status": 429,
            },
            "throttled",
            "20429",
        ),
        (503, {"code": 20500, "message": "Service unavailable", "more_info": "", "status": 503}, "upstream", "20500"),
        # RFC 9457 problem details
        (
            429,
            {
                "type": "https://www.twilio.com/docs/errors/20429",
                "title": "Too Many Requests",
                "status": 429,
                "detail": "Concurrency limit reached",
            },
            "throttled",
            "20429",
        ),
        (
            401,
            {"type": "https://www.twilio.com/docs/errors/20003", "title": "Unauthorized", "status": 401},
            "auth",
            "20003",
        ),
        (500, None, "upstream", ""),
        (400, "garbage", "request", ""),
    ],
)
def test_errors_both_formats(status, body, reason, code):
    with pytest.raises(ProviderError) as e:
        parse.check_response(body, status, retry_after=2.0)
    assert (e.value.reason, e.value.code, e.value.http_status) == (reason, code, status)
    assert e.value.retry_after == 2.0


def test_success_must_be_an_object():
    with pytest.raises(ProviderError) as e:
        parse.check_response([], 200)
    assert e.value.reason == "parse"


def test_sid_pattern():
    assert (
        parse.is_sender_sid("XE" + "a" * 32) and not parse.is_sender_sid("XE123") and not parse.is_sender_sid("+1555")
    )
