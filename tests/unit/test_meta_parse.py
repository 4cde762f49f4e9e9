"""Meta Graph API parsers, on the example payloads of Meta's reference (and garbage)."""

import pytest

from exporter import model
from exporter.providers.errors import ProviderError
from exporter.providers.meta import parse
from exporter.providers.meta.client import fields_for
from exporter.providers.meta_object import parse_health_status, parse_phone_object

# Meta OpenAPI, getWhatsAppBusinessAccountPhoneNumbers (note LINKED: the list edge's own status vocabulary)
LIST_EXAMPLE = {
    "data": [
        {
            "id": "1906385232743451",
            "display_phone_number": "+1 631-555-5555",
            "verified_name": "Jasper's Market",
            "status": "LINKED",
            "quality_rating": "GREEN",
            "country_code": "US",
            "country_dial_code": "1",
            "code_verification_status": "VERIFIED",
            "unified_cert_status": "APPROVED",
            "account_mode": "LIVE",
            "host_platform": "CLOUD_API",
            "messaging_limit_tier": "TIER_1K",
            "is_official_business_account": True,
            "username": "jaspers_market",
        }
    ],
    "paging": {"cursors": {"after": "MTAxNTExOTQ1MjAwNzI5NDE="}},
}

# Graph reference, health_status of a phone number (the PHONE_NUMBER and a BUSINESS entity BLOCKED)
HEALTH_EXAMPLE = {
    "health_status": {
        "can_send_message": "BLOCKED",
        "entities": [
            {
                "entity_type": "PHONE_NUMBER",
                "id": "106540352242922",
                "can_send_message": "BLOCKED",
                "can_receive_call_sip": "AVAILABLE",
                "errors": [
                    {
                        "error_code": 141006,
                        "error_description": "The phone number is blocked.",
                        "possible_solution": "Contact support.",
                    }
                ],
            },
            {
                "entity_type": "WABA",
                "id": "102290129340398",
                "can_send_message": "LIMITED",
                "additional_info": ["Your WhatsApp Business Account has limited sending."],
            },
            {
                "entity_type": "BUSINESS",
                "id": "524126980791429",
                "can_send_message": "BLOCKED",
                "errors": [{"error_code": 141010, "error_description": "The business is not verified."}],
            },
            {"entity_type": "APP", "id": "1234567890", "can_send_message": "AVAILABLE"},
        ],
    },
    "id": "106540352242922",
    "display_phone_number": "+1 555-0100",
    "whatsapp_business_manager_messaging_limit": "TIER_250",
    "throughput": {"level": "STANDARD"},
    "platform_type": "CLOUD_API",
}

BUC_EXAMPLE = (
    '{"102290129340398":[{"type":"whatsapp_business_management","call_count":95,"total_cputime":20,'
    '"total_time":48,"estimated_time_to_regain_access":0}]}'
)
BUC_THROTTLED = (
    '{"102290129340398":[{"type":"whatsapp_business_management","call_count":100,'
    '"total_cputime":25,"total_time":50,"estimated_time_to_regain_access":7}]}'
)


def test_list_edge_example():
    items, after = parse.parse_list_page(LIST_EXAMPLE)
    assert after == ""  # a cursor but no paging.next: this was the last page
    n = parse.parse_number(items[0], "waba-1")
    assert n.phone_number == "+16315555555" and n.phone_number_id == "1906385232743451"
    # Meta's OpenAPI spec says LINKED for the list edge where its other schemas say CONNECTED (issue 12)
    assert n.status == "CONNECTED"
    assert (n.quality_rating, n.code_verification_status) == ("GREEN", "VERIFIED")
    assert (n.messaging_limit_tier, n.limit_scope) == ("TIER_1K", "phone_number")
    assert (n.account_mode, n.platform_type, n.can_send_message) == ("LIVE", "", model.UNKNOWN)
    assert n.waba_id == "waba-1" and n.space_id == "waba-1" and n.verified_name == "Jasper's Market"


def test_list_paging_cursor_and_next():
    page = dict(LIST_EXAMPLE, paging={"cursors": {"after": "QVFI"}, "next": "https://graph.facebook.com/v24.0/x"})
    assert parse.parse_list_page(page)[1] == "QVFI"
    # no cursors: the after parameter of next
    page = dict(LIST_EXAMPLE, paging={"next": "https://graph.facebook.com/v24.0/1/phone_numbers?limit=100&after=QUJD"})
    assert parse.parse_list_page(page)[1] == "QUJD"
    assert parse.parse_list_page({"data": []}) == ([], "")
    with pytest.raises(ProviderError) as err:
        parse.parse_list_page({"data": {"id": "1"}})
    assert err.value.reason == "parse"


def test_health_status_example():
    n = parse_phone_object(HEALTH_EXAMPLE, "meta", "w")
    assert n.can_send_message == "BLOCKED"
    assert n.entities == (
        model.EntityHealth("WABA", "102290129340398", "LIMITED"),
        model.EntityHealth("BUSINESS", "524126980791429", "BLOCKED"),
        model.EntityHealth("APP", "1234567890", "AVAILABLE"),
    )
    assert n.blocking_errors == (
        model.BlockingError("PHONE_NUMBER", "106540352242922", "141006", "The phone number is blocked."),
        model.BlockingError("BUSINESS", "524126980791429", "141010", "The business is not verified."),
    )
    assert (n.messaging_limit_tier, n.limit_scope) == ("TIER_250", "business_portfolio")
    assert (n.throughput_level, n.platform_type) == ("STANDARD", "CLOUD_API")


def test_portfolio_limit_wins_and_neither_is_unknown():
    both = {
        "display_phone_number": "1555",
        "messaging_limit_tier": "TIER_1K",
        "whatsapp_business_manager_messaging_limit": "TIER_2K",
    }
    n = parse_phone_object(both, "meta", "w")
    assert (n.messaging_limit_tier, n.limit_scope) == ("TIER_2K", "business_portfolio")
    n = parse_phone_object({"display_phone_number": "1555", "messaging_limit_tier": None}, "meta", "w")
    assert (n.messaging_limit_tier, n.limit_scope) == ("UNKNOWN", "unknown")


@pytest.mark.parametrize(
    "health",
    [
        None,
        "BLOCKED",
        [],
        {"can_send_message": 7},
        {"entities": "x"},
        {"entities": [None, 3, {"id": 1}]},
        {
            "can_send_message": "SOMETIMES",
            "entities": [
                {"entity_type": "WABA", "errors": "boom"},
                {"entity_type": {"x": 1}, "id": [1]},
                {"entity_type": "APP", "errors": [None, {}, {"error_code": True}]},
            ],
        },
    ],
)
def test_health_status_garbage_never_raises(health):
    overall, entities, errors = parse_health_status(health, "meta")
    assert overall in model.CAN_SEND_MESSAGE.states
    assert all(e.can_send_message in model.CAN_SEND_MESSAGE.states for e in entities)
    assert errors == ()


def test_unknown_values_are_other():
    n = parse_phone_object(
        {
            "display_phone_number": "1555",
            "throughput": {"level": "TURBO"},
            "health_status": {"can_send_message": "MAYBE"},
        },
        "meta",
        "w",
    )
    assert (n.throughput_level, n.can_send_message) == (model.OTHER, model.OTHER)
    n = parse_phone_object({"display_phone_number": "1555", "throughput": 80}, "meta", "w")
    assert n.throughput_level == model.UNKNOWN


def test_business_use_case_usage_header():
    [(bid, (ratios, regain))] = parse.parse_business_use_case_usage(BUC_EXAMPLE).items()
    assert bid == "102290129340398"
    assert ratios == {"call_count": 0.95, "total_cputime": 0.2, "total_time": 0.48} and regain == 0
    [(_, (ratios, regain))] = parse.parse_business_use_case_usage(BUC_THROTTLED).items()
    assert ratios["call_count"] == 1.0 and regain == 7 * 60
    # several use cases of one business: the highest of each
    two = '{"1":[{"type":"a","call_count":10,"estimated_time_to_regain_access":2},{"type":"b","call_count":40}]}'
    assert parse.parse_business_use_case_usage(two) == {"1": ({"call_count": 0.4}, 120.0)}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "not json",
        "[]",
        '{"1": "x"}',
        '{"1": [null, {"call_count": "lots"}]}',
        '{"1": [{"call_count": NaN}]}',
        "[" * 100000,
    ],
)
def test_usage_headers_garbage(header):
    for ratios, regain in parse.parse_business_use_case_usage(header).values():
        assert all(0 <= v <= 1 for v in ratios.values()) and regain >= 0
    assert all(0 <= v <= 1 for v in parse.parse_app_usage(header).values())


def test_app_usage_header():
    assert parse.parse_app_usage('{"call_count":28,"total_time":25,"total_cputime":25}') == {
        "call_count": 0.28,
        "total_cputime": 0.25,
        "total_time": 0.25,
    }
    assert parse.parse_app_usage('{"call_count":250}') == {"call_count": 1.0}


def envelope(code, subcode=None, transient=False, message="msg", kind="OAuthException"):
    error = {"message": message, "type": kind, "code": code, "is_transient": transient, "fbtrace_id": "AbCdEf"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@pytest.mark.parametrize(
    "body,status,reason",
    [
        (envelope(190, 463, message="Error validating access token: Session has expired."), 401, "auth"),
        (envelope(190, 467), 400, "auth"),
        (envelope(104, message="An access token is required to request this resource."), 400, "auth"),
        (envelope(102), 400, "auth"),
        ({"error": {"message": "x"}}, 401, "auth"),
        (envelope(200, message="(#200) Permissions error"), 403, "permission"),
        (envelope(294), 400, "permission"),
        (envelope(10), 403, "permission"),
        (envelope(3), 500, "permission"),
        (envelope(100, 33, kind="GraphMethodException"), 400, "request"),
        (envelope(803), 404, "request"),
        (envelope(4, transient=True), 429, "throttled"),
        (envelope(17, transient=True), 429, "throttled"),
        (envelope(80007, transient=True), 400, "throttled"),  # several BSP copies say 400: the code decides
        (envelope(613), 400, "throttled"),
        (envelope(130429), 400, "throttled"),
        (envelope(1), 500, "upstream"),
        (envelope(2, transient=True), 503, "upstream"),
        (envelope(131000, transient=True), 400, "upstream"),
        (envelope(999999), 403, "permission"),
        (envelope(999999), 400, "request"),
        ({"error": {"code": "80007"}}, 200, "throttled"),  # code as a string, error on HTTP 200
        (None, 429, "throttled"),
        (None, 401, "auth"),
        (None, 502, "upstream"),
        (None, 200, "parse"),
        ([], 200, "parse"),
        ({"error": "boom"}, 404, "request"),
    ],
)
def test_graph_errors(body, status, reason):
    with pytest.raises(ProviderError) as err:
        parse.check_response(body, status)
    assert err.value.reason == reason


def test_graph_error_fields():
    err = parse.graph_error(envelope(190, 463, message="Error validating access token: Session has expired."), 401)
    assert (err.code, err.http_status, err.request_id) == ("190", 401, "AbCdEf")
    assert "Session has expired" in err.message and "subcode 463" in err.message and "OAuthException" in err.message
    assert parse.check_response({"id": "1"}, 200) == {"id": "1"}


def test_fields_follow_the_version():
    assert "whatsapp_business_manager_messaging_limit" in fields_for("v24.0", health=False)
    assert "whatsapp_business_manager_messaging_limit" not in fields_for("v23.0", health=True)
    assert "messaging_limit_tier" in fields_for("v23.0", health=True)
    assert fields_for("v25.0", health=True).endswith(",health_status")
    assert "health_status" not in fields_for("v25.0", health=False)


@pytest.mark.parametrize(
    "status, quality, expected",
    [
        ("LINKED", "NA", ("CONNECTED", "UNKNOWN")),  # the OpenAPI spec's list-edge spellings
        ("UNLINKED", "UNKNOWN", ("DISCONNECTED", "UNKNOWN")),
        ("MESSAGING_LIMIT_TIER_2", "GREEN", ("OTHER", "GREEN")),  # a connection_status value, not a status
        ("SOMETHING_NEW", "PURPLE", ("OTHER", "OTHER")),
    ],
)
def test_values_metas_own_specs_disagree_on_are_known_or_other(status, quality, expected):
    """Issue 12: never a failed poll, whatever spelling of Meta's enums arrives."""
    n = parse.parse_number(
        {
            "id": "1",
            "display_phone_number": "+1 555 0100",
            "status": status,
            "quality_rating": quality,
            "whatsapp_business_manager_messaging_limit": "TIER_2K",
        },
        "w",
    )
    assert (n.status, n.quality_rating) == expected
    assert (n.messaging_limit_tier, n.limit_scope) == ("TIER_2K", "business_portfolio")
