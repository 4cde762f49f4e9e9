"""Infobip senders/quality parser: the documented sample, every enum value in its history, both error formats."""

import json
from pathlib import Path

import pytest

from exporter.providers.errors import ProviderError
from exporter.providers.infobip import parse
from tests.helpers import HIGH_MEDIUM_LOW_QUALITY, assert_fields

FIXTURES = Path(__file__).parents[1] / "fixtures" / "infobip"


def test_documented_sample():
    body = parse.check_response(json.loads((FIXTURES / "senders_quality_doc.json").read_text()), 200)
    numbers = {n.phone_number: n for n in parse.parse_results(body, "acme")}
    a, b = numbers["+441134960000"], numbers["+441134960001"]
    assert_fields(a, status="CONNECTED", quality_rating="YELLOW", messaging_limit_tier="TIER_100K", space_id="acme")
    assert (b.status, b.quality_rating, b.messaging_limit_tier) == ("BANNED", "RED", "TIER_UNLIMITED")
    assert parse.last_updated(body)["+441134960000"] == pytest.approx(1645171946.422)


@pytest.mark.parametrize(
    "raw",
    [
        "CONNECTED",
        "FLAGGED",
        "RESTRICTED",
        "RATE_LIMITED",
        "BANNED",
        "DISCONNECTED",
        "DELETED",
        "MIGRATED",
        "PENDING",
        "UNVERIFIED",
        "UNKNOWN",
    ],
)
def test_status_is_metas_one_to_one(raw):
    assert parse.map_status(raw) == raw


@pytest.mark.parametrize("raw,state", [("OFFLINE", "OFFLINE"), ("BRAND_NEW", "OTHER"), (None, "UNKNOWN")])
def test_status_outside_metas(raw, state):
    assert parse.map_status(raw) == ("OTHER" if raw == "OFFLINE" else state)


@pytest.mark.parametrize("raw,state", [*HIGH_MEDIUM_LOW_QUALITY, ("SUPERB", "OTHER")])
def test_quality(raw, state):
    assert parse.map_quality(raw) == state


@pytest.mark.parametrize(
    "raw,tier",
    [
        ("LIMIT_250", "TIER_250"),
        ("LIMIT_2K", "TIER_2K"),
        ("LIMIT_10K", "TIER_10K"),
        ("LIMIT_100K", "TIER_100K"),
        ("UNLIMITED", "TIER_UNLIMITED"),
        ("LIMIT_1K", "TIER_1K"),
        ("LIMIT_50", "TIER_50"),
        ("LIMIT_NA", "TIER_NOT_SET"),
        ("LIMIT_5K", "OTHER"),
        (None, "UNKNOWN"),
        ("", "UNKNOWN"),
    ],
)
def test_current_limit(raw, tier):
    assert parse.map_limit(raw) == tier


def test_odd_results():
    body = {
        "results": [
            {"sender": "+44 7796 344125", "status": "CONNECTED"},
            {"sender": None},
            "junk",
            {"sender": "447796344125", "status": "BANNED"},
            {"sender": 447796344126},
        ]
    }
    numbers = parse.parse_results(body)
    assert [n.phone_number for n in numbers] == ["+447796344125", "+447796344126"]
    assert numbers[0].status == "CONNECTED" and numbers[0].quality_rating == "UNKNOWN"
    assert parse.parse_results({"results": []}) == [] and parse.parse_results({}) == []
    with pytest.raises(ProviderError):
        parse.parse_results({"results": {}})


@pytest.mark.parametrize("raw", [None, "", "yesterday", "2022-02-18T08:12:26"])
def test_unreadable_timestamps(raw):
    assert parse.parse_timestamp(raw) is None


def service_exception(message_id: str, text: str, **more) -> dict:
    """An error in the older envelope: ``{"requestError": {"serviceException": {...}}}``."""
    return {"requestError": {"serviceException": {"messageId": message_id, "text": text, **more}}}


def problem(code: str, description: str, **more) -> dict:
    """An error in the newer envelope: ``{"errorCode": ..., "description": ..., ...}``."""
    return {"errorCode": code, "description": description, **more}


SIZE = "size must be between 1 and 100"


@pytest.mark.parametrize(
    "status,body,reason,code",
    [
        (401, service_exception("UNAUTHORIZED", "Invalid login details"), "auth", "E401"),
        (429, service_exception("TOO_MANY_REQUESTS", "Too many requests"), "throttled", "E429"),
        (400, service_exception("BAD_REQUEST", "Bad request", validationErrors={"senders": [SIZE]}), "request", "E400"),
        (403, service_exception("FORBIDDEN", "Forbidden"), "permission", "E403"),
        (500, service_exception("GENERAL_ERROR", "Error"), "upstream", "E500"),
        (
            429,
            problem("E429", "Too many requests", action="Slow down", violations=[], resources=[]),
            "throttled",
            "E429",
        ),
        (
            400,
            problem("E400", "Bad request", violations=[{"property": "senders", "violation": SIZE}]),
            "request",
            "E400",
        ),
        (401, problem("E401", "Unauthorized"), "auth", "E401"),
        (502, None, "upstream", ""),
    ],
)
def test_errors_both_formats(status, body, reason, code):
    with pytest.raises(ProviderError) as e:
        parse.check_response(body, status)
    assert (e.value.reason, e.value.code) == (reason, code)
    if status == 400:
        assert "size must be between 1 and 100" in e.value.message


def test_batches_dedupe_and_cap():
    senders = (*(str(447700000000 + i) for i in range(250)), "447700000000")
    out = parse.batches(senders)
    assert [len(b) for b in out] == [100, 100, 50]
    assert len({s for b in out for s in b}) == 250


def test_sender_digits():
    assert parse.sender_digits("+44 7796-344125") == "447796344125"
    assert parse.sender_digits("abc") == ""
