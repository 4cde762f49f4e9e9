"""CAMS parsers on the documented example payloads and on every documented vocabulary."""

import json
import logging
from pathlib import Path

import pytest

from exporter import model
from exporter.providers.cams import parse
from exporter.providers.errors import ProviderError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cams"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def test_api_reference_example():
    body = parse.check_envelope(load("query_phone_numbers_api_reference.json"), 200)
    [n] = parse.parse_phone_numbers(body, "cams-abc123")
    assert n == model.PhoneNumber(
        phone_number="+8613800000000",
        status="CONNECTED",
        quality_rating="GREEN",
        messaging_limit_tier="TIER_1K",
        limit_scope="phone_number",
        code_verification_status="VERIFIED",
        name_status="APPROVED",
        new_name_status="APPROVED",
        verified_name="Alibaba",
        space_id="cams-abc123",
    )
    assert n.messaging_limit == 1000


def test_console_seed_example_with_legacy_tier():
    body = parse.check_envelope(load("query_phone_numbers_console_seed.json"), 200)
    [n] = parse.parse_phone_numbers(body, "cams-x")
    assert n.phone_number == "+8613800000"
    assert n.messaging_limit_tier == "TIER_1K"  # legacy TIER_10 is 1K/day


#: documented tiers, the same in both vocabularies
DOCUMENTED_TIERS = ["TIER_250", "TIER_1K", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED", "TIER_NOT_SET"]
#: other values both vocabularies read alike: legacy names, other spellings, nothing, something new
READ_ALIKE = {"TIER_10": "TIER_1K", "TIER_1000": "TIER_100K", "UNLIMITED": "TIER_UNLIMITED", "tier_1k": "TIER_1K"}
READ_ALIKE |= {"": "UNKNOWN", None: "UNKNOWN", "TIER_5M": "OTHER"}


@pytest.mark.parametrize(
    "raw,api_reference,legacy_console",
    [
        ("TIER_50", "TIER_50", "TIER_10K"),  # the one value the vocabularies disagree on
        *((tier, tier, tier) for tier in DOCUMENTED_TIERS),
        *((raw, tier, tier) for raw, tier in READ_ALIKE.items()),
    ],
)
def test_tier_vocabularies(raw, api_reference, legacy_console):
    assert model.normalize_tier(raw, "api_reference") == api_reference
    assert model.normalize_tier(raw, "legacy_console") == legacy_console


def test_messaging_limits():
    assert model.PhoneNumber("+1", messaging_limit_tier="TIER_UNLIMITED").messaging_limit == float("inf")
    assert model.PhoneNumber("+1", messaging_limit_tier="TIER_50").messaging_limit == 50
    assert model.PhoneNumber("+1", messaging_limit_tier="TIER_NOT_SET").messaging_limit is None
    assert model.PhoneNumber("+1", messaging_limit_tier="OTHER").messaging_limit is None


#: the model's status vocabulary is CAMS' (the API reference's 11 values and the console's OFFLINE and PAUSED)
STATUSES = [s for s in model.STATUS.states if s != model.OTHER]


@pytest.mark.parametrize("status", STATUSES)
def test_every_documented_status(status):
    body = {"Code": "OK", "PhoneNumbers": [{"PhoneNumber": "8613800000001", "Status": status}]}
    [n] = parse.parse_phone_numbers(body, "s")
    assert n.status == status


#: code verification statuses in the API reference (the SDK's docstring adds NOT_VERIFIED and EXPIRED)
API_REFERENCE_VERIFICATION = ["VERIFIED", "REJECTED", "MORE_INFORMATION_REQUESTED", "REVOKED"]
#: documented values each field keeps as they are
KEPT = {
    "QualityRating": ["GREEN", "YELLOW", "RED", "UNKNOWN"],
    "CodeVerificationStatus": [*API_REFERENCE_VERIFICATION, "NOT_VERIFIED", "EXPIRED"],
    "NameStatus": ["APPROVED", "PENDING_REVIEW", "DECLINED", "EXPIRED", "AVAILABLE_WITHOUT_REVIEW", "NONE"],
}
#: values each field reads as another: the console's spellings, other cases, unknown and new values
MAPPED = {
    "QualityRating": {"NA": "UNKNOWN", "PURPLE": "OTHER"},
    "NameStatus": {"Approval": "APPROVED", "Pending_Review": "PENDING_REVIEW", "Rejected": "DECLINED"},
    "NewNameStatus": {"Pending_Review": "PENDING_REVIEW"},
    "Status": {"flagged": "FLAGGED", "SOMETHING_NEW": "OTHER"},
}


@pytest.mark.parametrize(
    "field,raw,expected",
    [
        *((field, value, value) for field, values in KEPT.items() for value in values),
        *((field, raw, value) for field, mapping in MAPPED.items() for raw, value in mapping.items()),
    ],
)
def test_vocabularies(field, raw, expected):
    body = {"Code": "OK", "PhoneNumbers": [{"PhoneNumber": "8613800000001", field: raw}]}
    [n] = parse.parse_phone_numbers(body, "s")
    attr = {
        "QualityRating": "quality_rating",
        "CodeVerificationStatus": "code_verification_status",
        "NameStatus": "name_status",
        "NewNameStatus": "new_name_status",
        "Status": "status",
    }[field]
    assert getattr(n, attr) == expected


def test_missing_and_null_fields_are_unknown():
    body = {"Code": "OK", "PhoneNumbers": [{"PhoneNumber": "8613800000001", "Status": None}]}
    [n] = parse.parse_phone_numbers(body, "s")
    assert (n.status, n.quality_rating, n.messaging_limit_tier, n.code_verification_status, n.name_status) == (
        "UNKNOWN",
    ) * 5
    assert n.verified_name == ""


def test_unknown_values_are_logged_once(caplog):
    # a value no other test uses: "logged once" is per process, and other tests run emulators' unknown values
    body = {
        "Code": "OK",
        "PhoneNumbers": [{"PhoneNumber": f"86138000000{i:02d}", "Status": "UNSEEN_CAMS_STATE"} for i in range(5)],
    }
    with caplog.at_level(logging.WARNING):
        numbers = parse.parse_phone_numbers(body, "s")
        parse.parse_phone_numbers(body, "s")
    assert {n.status for n in numbers} == {"OTHER"}
    assert sum(getattr(r, "value", None) == "UNSEEN_CAMS_STATE" for r in caplog.records) == 1


def test_a_vocabulary_maps_a_spelling_the_same_way_every_time_and_still_logs_each_provider_once(caplog):
    """Spellings are remembered after their first lookup (a parse speed-up): no answer may change."""
    vocabulary = model.Vocabulary("test_field", ("GOOD", "BAD_STATE"), {"FINE": "GOOD"})
    expected: dict[object, str] = {"GOOD": "GOOD", " good ": "GOOD", "fine": "GOOD", "bad-state": "BAD_STATE"}
    expected |= {
        "bad state": "BAD_STATE",
        "": "UNKNOWN",
        "   ": "UNKNOWN",
        None: "UNKNOWN",
        "WHAT": "OTHER",
        7: "OTHER",
    }
    # more distinct spellings than a vocabulary remembers
    expected |= {" " * i + "good": "GOOD" for i in range(model.SEEN_SPELLINGS + 8)}
    with caplog.at_level(logging.WARNING):
        first = {raw: vocabulary.normalize(raw, "p1") for raw in expected}
        again = {raw: vocabulary.normalize(raw, "p1") for raw in expected}
        assert vocabulary.normalize("WHAT", "p2") == "OTHER"  # an unknown value, now from another provider
    assert first == again == expected
    logged = [(r.value, r.provider) for r in caplog.records if getattr(r, "field", None) == "test_field"]
    assert logged == [("WHAT", "p1"), ("7", "p1"), ("WHAT", "p2")]


def test_malformed_entries_and_duplicates_are_skipped():
    body = {
        "Code": "OK",
        "PhoneNumbers": [
            "junk",
            {"Status": "CONNECTED"},
            {"PhoneNumber": "1"},
            {"PhoneNumber": "1", "Status": "FLAGGED"},
            {"PhoneNumber": 5},
        ],
    }
    numbers = parse.parse_phone_numbers(body, "s")
    assert [(n.phone_number, n.status) for n in numbers] == [("+1", "UNKNOWN")]


def test_missing_phone_numbers_is_empty_space_but_wrong_type_is_parse_error():
    assert parse.parse_phone_numbers({"Code": "OK"}, "s") == []
    with pytest.raises(ProviderError) as err:
        parse.parse_phone_numbers({"Code": "OK", "PhoneNumbers": {"a": 1}}, "s")
    assert err.value.reason == "parse"


@pytest.mark.parametrize("fixture", ["query_bind_waba_api_reference.json", "query_bind_waba_console_seed.json"])
def test_bind_waba_examples(fixture):
    body = parse.check_envelope(load(fixture), 200)
    assert parse.parse_bind_waba(body, "cams-1") == model.Waba(
        waba_id="20393988393993***", name="Alibaba", account_review_status="APPROVED", space_id="cams-1", currency="USD"
    )


@pytest.mark.parametrize("status", ["PENDING", "APPROVED", "REJECTED", "DISABLED"])
def test_account_review_statuses(status):
    waba = parse.parse_bind_waba({"Code": "OK", "Data": {"Id": "1", "AccountReviewStatus": status}}, "s")
    assert waba.account_review_status == status


def test_no_waba_bound():
    assert parse.parse_bind_waba({"Code": "OK"}, "s") is None
    assert parse.parse_bind_waba({"Code": "OK", "Data": {}}, "s") is None


def test_verification_status_example():
    body = parse.check_envelope(load("get_verification_status_seed.json"), 200)
    v = parse.parse_verification_status(body)
    assert v == model.Verification("861390000****", "VERIFIED", "222434****")


@pytest.mark.parametrize(
    "code,http_status,reason",
    [
        ("Throttling.User", 400, "throttled"),
        ("Throttling.Api", 400, "throttled"),
        ("Throttling", 429, "throttled"),
        ("System.LimitControl", 400, "throttled"),
        ("System.LimitControl", 200, "throttled"),
        ("SignatureDoesNotMatch", 400, "auth"),
        ("InvalidAccessKeyId.NotFound", 404, "auth"),
        ("InvalidAccessKeyId.Inactive", 400, "auth"),
        ("InvalidTimeStamp.Expired", 400, "auth"),
        ("SignatureNonceUsed", 400, "auth"),
        ("IncompleteSignature", 400, "auth"),
        ("InvalidSecurityToken.Expired", 400, "auth"),
        ("Ram.PermissionDeny", 400, "permission"),
        ("Forbidden.RAM", 403, "permission"),
        ("Product.Unsubscript", 400, "permission"),
        ("Unknown.ResourceOwnerId", 400, "permission"),
        ("Authentication.NoAuth", 200, "permission"),
        ("InvalidParameter.PhoneNumberError", 400, "request"),
        ("MissingCustSpaceId", 400, "request"),
        ("InvalidApi.NotFound", 404, "request"),
        ("InternalError", 500, "upstream"),
        ("ServiceUnavailable", 503, "upstream"),
        ("SomethingOdd", 200, "upstream"),
        ("SomethingOdd", 400, "request"),
    ],
)
def test_error_classification(code, http_status, reason):
    with pytest.raises(ProviderError) as err:
        parse.check_envelope({"RequestId": "R", "Code": code, "Message": "m"}, http_status)
    assert err.value.reason == reason
    assert err.value.code == code
    assert err.value.request_id == "R"


def test_documented_gateway_error_envelope():
    with pytest.raises(ProviderError) as err:
        parse.check_envelope(load("error_signature_mismatch.json"), 400)
    assert (err.value.reason, err.value.http_status) == ("auth", 400)
    assert "A57FBFD7" in str(err.value)


@pytest.mark.parametrize(
    "body,status,reason",
    [
        (["x"], 200, "parse"),
        ("<html>", 502, "upstream"),
        ({}, 200, "parse"),
        ({}, 503, "upstream"),
        ({}, 404, "upstream"),
    ],
)
def test_envelopes_without_code(body, status, reason):
    with pytest.raises(ProviderError) as err:
        parse.check_envelope(body, status)
    assert err.value.reason == reason


def test_phone_number_normalization():
    assert parse.normalize_phone_number("8613800000000") == "+8613800000000"
    assert parse.normalize_phone_number("+86 138-0000-0000") == "+8613800000000"
    assert parse.normalize_phone_number("008613800000000") == "+8613800000000"
    assert parse.normalize_phone_number("86138****") == "86138****"


# -- GetWhatsappHealthStatus ------------------------------------------------------------------------------------


def test_health_status_blocked_by_the_business_payment_method():
    """The reference's consistent example: the BUSINESS entity is BLOCKED by error 141006 (a string in CAMS)."""
    health = parse.parse_health_status(parse.check_envelope(load("get_whatsapp_health_status_blocked.json"), 200))
    assert health == model.Health(
        can_send_message="BLOCKED",
        entities=(
            model.EntityHealth("WABA", "39939000", "AVAILABLE"),
            model.EntityHealth("BUSINESS", "39920000", "BLOCKED"),
        ),
        blocking_errors=(
            model.BlockingError("BUSINESS", "39920000", "141006", "There is an error with the payment method."),
        ),
        business_id="39920000",
    )


def test_health_status_worst_entity_wins_over_the_overall_value():
    """The CAMS doc example says AVAILABLE overall with a LIMITED business: the number is LIMITED, as Meta
    computes it (the worst of the entities)."""
    health = parse.parse_health_status(load("get_whatsapp_health_status_doc.json"))
    assert health.can_send_message == "LIMITED"
    assert [e.entity_type for e in health.entities] == ["WABA", "BUSINESS"]
    assert health.blocking_errors[0].error_code == "141006"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({}, "UNKNOWN"),
        ({"CanSendMessage": None, "Entities": None}, "UNKNOWN"),
        ({"CanSendMessage": "SOMETHING_NEW"}, "OTHER"),
        (
            {"CanSendMessage": "AVAILABLE", "Entities": ["junk", 7, {"EntityType": 5}, {"CanSendMessage": "BLOCKED"}]},
            "AVAILABLE",
        ),
        ({"Entities": [{"EntityType": "APP", "CanSendMessage": "BLOCKED"}]}, "BLOCKED"),
        (
            {
                "CanSendMessage": "AVAILABLE",
                "Entities": [{"EntityType": "MESSAGE_TEMPLATE", "CanSendMessage": "BLOCKED"}],
            },
            "AVAILABLE",
        ),
    ],
)
def test_health_status_tolerates_odd_answers(data, expected):
    health = parse.parse_health_status({"Code": "OK", "Data": data})
    assert health.can_send_message == expected


def test_health_status_error_codes_numbers_or_strings_and_an_app_without_id():
    health = parse.parse_health_status(
        {
            "Data": {
                "CanSendMessage": "BLOCKED",
                "Entities": [
                    {
                        "EntityType": "APP",
                        "CanSendMessage": "BLOCKED",
                        "Errors": [{"ErrorCode": 138025, "ErrorDescription": "x"}, {"ErrorCode": None}, "junk"],
                    }
                ],
            }
        }
    )
    assert health.entities == (model.EntityHealth("APP", "", "BLOCKED"),)
    assert health.blocking_errors == (model.BlockingError("APP", "", "138025", "x"),)


def test_health_status_without_data_is_a_parse_error():
    with pytest.raises(ProviderError) as err:
        parse.parse_health_status({"Code": "OK"})
    assert err.value.reason == "parse"


def test_a_page_is_parsed_in_steps_with_duplicates_across_steps_still_skipped(caplog):
    """Issue 14: the client parses an answer in steps of parse.STEP entries between scrapes; the result is the
    same, and a duplicate in a later step than its first spelling is still skipped (and logged once)."""
    entries = [{"PhoneNumber": f"86138{i:06d}", "Status": "CONNECTED"} for i in range(3 * parse.STEP)]
    entries.append({"PhoneNumber": "86138000001", "Status": "FLAGGED"})  # a duplicate of the second entry
    steps = parse.parse_phone_numbers_steps({"Code": "OK", "PhoneNumbers": entries}, "s")
    count = 0
    with caplog.at_level(logging.WARNING):
        try:
            while True:
                next(steps)
                count += 1
        except StopIteration as stop:
            numbers = stop.value
    assert count == 3  # a step after every STEP entries
    assert len(numbers) == 3 * parse.STEP
    assert [n.status for n in numbers if n.phone_number == "+86138000001"] == ["CONNECTED"]
    assert [r.duplicates for r in caplog.records if hasattr(r, "duplicates")] == [1]
