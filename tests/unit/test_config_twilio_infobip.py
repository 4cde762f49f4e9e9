"""Twilio and Infobip accounts in the configuration: keys, defaults, and one clear line per problem."""

import pytest

from exporter.config import ConfigError, parse_config

ENV = {"TW": "tw-SECRET", "IB": "ib-SECRET"}
TWILIO = """
  - name: tw
    provider: twilio
    credentials: {sid: SK0123, secret: "${TW}"}
    twilio_accounts: [{account_sid: AC123%s}]
"""
INFOBIP = """
  - name: ib
    provider: infobip
    endpoint: https://abc123.api.infobip.com
    credentials: {api_key: "${IB}"}
    sender_groups: [{group: shop, senders: ["+447700900000", 447700900001]}]
"""


def test_twilio_and_infobip_accounts():
    config = parse_config(
        "accounts:" + TWILIO % ', senders: ["+14155550100", "XE0123456789abcdef0123456789abcdef"]' + INFOBIP, env=ENV
    )
    tw, ib = config.accounts
    assert (tw.endpoint, tw.qps, tw.page_size, tw.max_concurrent_requests) == (
        "https://messaging.twilio.com",
        5.0,
        100,
        2,
    )
    assert tw.units[0].id == "AC123"
    assert tw.units[0].phone_numbers == ("14155550100", "XE0123456789abcdef0123456789abcdef")
    assert tw.credentials.access_key_id == "SK0123" and tw.credentials.access_key_secret == "tw-SECRET"
    assert (ib.endpoint, ib.qps) == ("https://abc123.api.infobip.com", 10.0)
    assert ib.units[0].id == "shop" and ib.units[0].phone_numbers == ("447700900000", "447700900001")
    assert "ib-SECRET" not in repr(config)


@pytest.mark.parametrize(
    "text,where,message",
    [
        (
            "accounts:" + INFOBIP.replace("    endpoint: https://abc123.api.infobip.com\n", ""),
            "accounts[0].endpoint",
            "personal base URL",
        ),
        (
            "accounts:" + INFOBIP.replace(', senders: ["+447700900000", 447700900001]', ""),
            "accounts[0].sender_groups[0].senders",
            "required",
        ),
        ("accounts:" + TWILIO % ', senders: ["nope"]', "accounts[0].twilio_accounts[0].senders[0]", "invalid sender"),
        (
            "accounts:" + TWILIO.replace("}]", "}, {account_sid: AC2}]") % "",
            "accounts[0].twilio_accounts",
            "exactly one",
        ),
        ("accounts:" + TWILIO % "" + "    page_size: 0\n", "accounts[0].page_size", "whole number"),
        (
            "accounts:" + TWILIO.replace('secret: "${TW}"', "secret: inline") % "",
            "accounts[0].credentials.secret",
            "inline secrets are not allowed",
        ),
    ],
)
def test_problems_name_the_key(text, where, message):
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=ENV)
    assert info.value.path == where and message in str(info.value)
    assert "SECRET" not in str(info.value)
