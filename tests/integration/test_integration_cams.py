"""Exporter <-> CAMS emulator over real sockets: poll, scrape, transitions, failures, budget."""

from __future__ import annotations

import gzip as gzip_mod
import logging
import zlib

import httpx
import pytest

from emulators.cams import CamsEmulator
from emulators.scenario import Fault, generate_fleet
from exporter.poller import Poller
from exporter.store import Store
from exporter.web import App, HttpServer
from tests.helpers import (
    REQUEST_ERRORS,
    SECRETS,
    active_state,
    cams_config,
    make_config,
    poll_once,
    samples,
    scrape,
    value,
)
from tests.tools import promtool_check_metrics

M = "whatsapp_phone_number_"


def _serving(emulator, config):
    """Store + poller on ``config`` (not started: tests drive polls) + HTTP server on a free port."""
    store = Store()
    poller = Poller(config, store)
    server = HttpServer(App(store), "127.0.0.1:0").start()
    try:
        yield emulator, poller, server
    finally:
        poller.stop()
        server.stop()


@pytest.fixture
def stack(emulator):
    yield from _serving(emulator, make_config(emulator.url))


@pytest.fixture
def stack_no_retries(emulator):
    """Like ``stack``, with ``retries: 0`` on both accounts: exactly one attempt per call."""
    yield from _serving(emulator, make_config(emulator.url, extra_one="    retries: 0", extra_two="    retries: 0"))


def current(server):
    response = scrape(server.url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return samples(response.text)


def test_first_poll_exposes_every_number(stack):
    _emulator, poller, server = stack
    poller.poll_account("shop")
    poller.poll_account("other")
    s = current(server)
    one = dict(provider="alibaba_cams", account="shop", phone_number="+8613800000001")
    assert active_state(s, M + "status", "status", **one) == "CONNECTED"
    assert active_state(s, M + "quality_rating", "quality_rating", **one) == "GREEN"
    assert active_state(s, M + "messaging_limit_tier", "tier", **one) == "TIER_10K"
    assert active_state(s, M + "code_verification_status", "code_verification_status", **one) == "VERIFIED"
    assert active_state(s, M + "name_status", "name_status", **one) == "APPROVED"
    assert active_state(s, M + "new_name_status", "new_name_status", **one) == "PENDING_REVIEW"
    assert value(s, M + "messaging_limit", **one) == 10_000
    assert (
        value(s, M + "info", **one, verified_name="Shop One", space_id="cams-shop", waba_id="1001", team="growth") == 1
    )
    # legacy TIER_10 of the console page is 1K/day
    assert active_state(s, M + "messaging_limit_tier", "tier", phone_number="+8613800000002") == "TIER_1K"
    # missing fields are UNKNOWN; no limit series for an unknown tier
    three = dict(phone_number="+8613800000003")
    assert active_state(s, M + "quality_rating", "quality_rating", **three) == "UNKNOWN"
    assert active_state(s, M + "status", "status", **three) == "PENDING"
    assert value(s, M + "messaging_limit", **three) is None
    assert active_state(s, "whatsapp_waba_account_review_status", "account_review_status", waba_id="1002") == "PENDING"
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 1
    assert value(s, "whatsapp_exporter_poll_success", account="other") == 1
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3
    assert value(s, "whatsapp_exporter_api_requests_total", account="shop", action="QueryChatappPhoneNumbers") == 2
    assert value(s, "whatsapp_exporter_api_requests_total", account="shop", action="QueryChatappBindWaba") == 2
    assert value(s, "whatsapp_exporter_api_qps_budget", account="shop") == 10
    assert value(s, "whatsapp_exporter_build_info") == 1


def test_transitions_are_followed(stack):
    emulator, poller, server = stack
    poller.poll_account("shop")
    first = current(server)
    changed_at_before = value(first, M + "quality_rating_last_change_timestamp_seconds", phone_number="+8613800000001")

    emulator.advance(150)
    poller.poll_account("shop")
    s = current(server)
    assert active_state(s, M + "quality_rating", "quality_rating", phone_number="+8613800000001") == "YELLOW"
    assert active_state(s, M + "status", "status", phone_number="+8613800000002") == "FLAGGED"
    assert (
        value(s, M + "quality_rating_last_change_timestamp_seconds", phone_number="+8613800000001") > changed_at_before
    )
    # the tier did not change, so neither did its timestamp
    assert value(s, M + "messaging_limit_tier_last_change_timestamp_seconds", phone_number="+8613800000001") == value(
        first, M + "messaging_limit_tier_last_change_timestamp_seconds", phone_number="+8613800000001"
    )

    emulator.advance(100)
    poller.poll_account("shop")
    s = current(server)
    assert active_state(s, M + "quality_rating", "quality_rating", phone_number="+8613800000001") == "RED"
    assert active_state(s, M + "messaging_limit_tier", "tier", phone_number="+8613800000001") == "TIER_1K"
    assert value(s, M + "messaging_limit", phone_number="+8613800000001") == 1000
    assert active_state(s, M + "status", "status", phone_number="+8613800000002") == "CONNECTED"


def test_a_failing_account_keeps_its_last_data_and_leaves_others_alone(stack):
    emulator, poller, server = stack
    poller.poll_account("shop")
    poller.poll_account("other")
    good = current(server)
    emulator.inject(Fault(kind="error", code="InternalError", access_key_id="ak-two"))
    poller.poll_account("other")
    poller.poll_account("shop")
    s = current(server)
    assert value(s, "whatsapp_exporter_poll_success", account="other") == 0
    assert value(s, "whatsapp_exporter_last_successful_poll_timestamp_seconds", account="other") == value(
        good, "whatsapp_exporter_last_successful_poll_timestamp_seconds", account="other"
    )
    assert active_state(s, M + "status", "status", account="other", phone_number="+4915100000001") == "CONNECTED"
    assert value(s, REQUEST_ERRORS, account="other", action="QueryChatappPhoneNumbers", reason="upstream") >= 1
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 1
    assert value(s, "whatsapp_exporter_numbers", account="shop") == 3

    emulator.clear_faults()
    poller.poll_account("other")
    s = current(server)
    assert value(s, "whatsapp_exporter_poll_success", account="other") == 1


@pytest.mark.parametrize(
    "fault,reason",
    [
        (dict(kind="error", code="SignatureDoesNotMatch"), "auth"),
        (dict(kind="error", code="InvalidAccessKeyId.NotFound"), "auth"),
        (dict(kind="error", code="Ram.PermissionDeny"), "permission"),
        (dict(kind="error", code="Forbidden.RAM"), "permission"),
        (dict(kind="error", code="System.LimitControl", http200=True), "throttled"),
        (dict(kind="error", code="Throttling.User"), "throttled"),
        (dict(kind="error", code="ServiceUnavailable"), "upstream"),
        (dict(kind="malformed"), "parse"),
        (dict(kind="html"), "upstream"),
        (dict(kind="reset"), "upstream"),
    ],
)
def test_errors_are_classified_and_counted(stack_no_retries, fault, reason):
    emulator, poller, server = stack_no_retries  # count exactly one attempt per call
    emulator.inject(Fault(access_key_id="ak-two", **fault))
    poller.poll_account("other")
    s = current(server)
    assert value(s, "whatsapp_exporter_poll_success", account="other") == 0
    assert value(s, REQUEST_ERRORS, account="other", action="QueryChatappPhoneNumbers", reason=reason) == 1


def test_timeouts_are_classified(emulator):
    config = cams_config(emulator.url, "other", "ak-two", SECRETS["SK_TWO"], ["cams-other"], timeout="0.3s", retries=0)
    store = Store()
    poller = Poller(config, store)
    emulator.inject(Fault(kind="delay", seconds=1.0, access_key_id="ak-two"))
    try:
        poller.poll_account("other")
    finally:
        poller.stop()
    s = samples(store.exposition.body.decode())
    assert (
        value(s, "whatsapp_exporter_api_request_errors_total", action="QueryChatappPhoneNumbers", reason="timeout") == 1
    )


def test_throttling_is_retried_with_backoff(stack):
    emulator, poller, server = stack
    emulator.inject(Fault(kind="error", code="Throttling.User", access_key_id="ak-two", count=1))
    poller.poll_account("other")
    s = current(server)
    assert value(s, "whatsapp_exporter_poll_success", account="other") == 1
    assert value(s, REQUEST_ERRORS, account="other", action="QueryChatappPhoneNumbers", reason="throttled") == 1
    assert value(s, "whatsapp_exporter_api_requests_total", account="other", action="QueryChatappPhoneNumbers") == 2


def test_only_read_only_actions_are_called(stack):
    emulator, poller, _server = stack
    poller.poll_account("shop")
    poller.poll_account("other")
    actions = {r.action for r in emulator.requests}
    assert actions <= {"QueryChatappPhoneNumbers", "QueryChatappBindWaba", "GetPhoneNumberVerificationStatus"}
    assert all(r.http_status == 200 for r in emulator.requests)


def test_verification_checks_when_enabled(emulator):
    config = make_config(emulator.url, extra_one="    verification_poll_interval: 1h", two=False)
    store = poll_once(config, "shop")
    calls = [r for r in emulator.requests if r.action == "GetPhoneNumberVerificationStatus"]
    assert len(calls) == 3
    s = samples(store.exposition.body.decode())
    assert value(s, M + "info", phone_number="+8613800000001", phone_number_id="5001") == 1
    assert value(s, "whatsapp_exporter_api_requests_total", action="GetPhoneNumberVerificationStatus") == 3


def test_v2_signatures_work_end_to_end(emulator):
    config = make_config(emulator.url, extra_two="    signature_version: v2")
    store = poll_once(config, "other")
    s = samples(store.exposition.body.decode())
    assert value(s, "whatsapp_exporter_poll_success", account="other") == 1


def test_scrape_output_passes_promtool(stack):
    _emulator, poller, server = stack
    poller.poll_account("shop")
    poller.poll_account("other")
    body = scrape(server.url).content
    result = promtool_check_metrics(body)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == b"" and result.stderr == b""


def test_gzip_scrape(stack):
    _emulator, poller, server = stack
    poller.poll_account("shop")
    raw = httpx.get(server.url + "/metrics", headers={"Accept-Encoding": "gzip"}).read()
    plain = scrape(server.url).content
    # httpx decodes transparently; compare the cached part (process metrics change between scrapes)
    response = httpx.Client().send(
        httpx.Request("GET", server.url + "/metrics", headers={"Accept-Encoding": "gzip"}), stream=True
    )
    compressed = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    decompressed = gzip_mod.decompress(compressed)
    head = plain.split(b"# HELP process_")[0]
    assert decompressed.startswith(head)
    assert raw.startswith(head)
    # one gzip member: a client that reads only the first member (httpx) still gets the process metrics
    assert b"# TYPE python_info gauge" in raw and b"# TYPE python_info gauge" in decompressed
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert d.decompress(compressed) == decompressed and d.eof and d.unused_data == b""


def test_endpoints(stack):
    _emulator, poller, server = stack
    assert httpx.get(server.url + "/-/healthy").status_code == 200
    assert httpx.get(server.url + "/-/ready").status_code == 503
    poller.poll_account("shop")
    assert httpx.get(server.url + "/-/ready").status_code == 503  # "other" has not polled yet
    poller.poll_account("other")
    assert httpx.get(server.url + "/-/ready").status_code == 200
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and 'href="/metrics"' in page.text
    assert "shop" in page.text and "other" in page.text
    assert httpx.get(server.url + "/nope").status_code == 404
    assert httpx.head(server.url + "/metrics").status_code == 200


def test_healthy_does_not_depend_on_the_provider(stack_no_retries):
    emulator, poller, server = stack_no_retries
    emulator.stop()
    poller.poll_account("shop")
    assert httpx.get(server.url + "/-/healthy").status_code == 200
    s = current(server)
    assert value(s, "whatsapp_exporter_poll_success", account="shop") == 0


def test_secrets_never_leak(stack, caplog):
    emulator, poller, server = stack
    emulator.inject(Fault(kind="error", code="SignatureDoesNotMatch"))
    with caplog.at_level(logging.DEBUG):
        poller.poll_account("shop")
        poller.poll_account("other")
    outputs = [
        scrape(server.url).text,
        httpx.get(server.url + "/").text,
        caplog.text,
        repr(poller._config),
        str(poller._config),
    ]
    for secret in SECRETS.values():
        for out in outputs:
            assert secret not in out


def test_scheduler_polls_at_once_and_budget_holds_across_50_spaces():
    """50 spaces behind one AccessKey: the emulator never sees more than 10 requests in a second."""
    scenario = generate_fleet(
        spaces=50, numbers_per_space=4, access_key_id="fleet-ak", secret="fleet-sk", qps=10, seed=7
    )
    with CamsEmulator(scenario) as emu:
        config = cams_config(
            emu.url,
            "fleet",
            "fleet-ak",
            "fleet-sk",
            [s.cust_space_id for s in scenario.spaces],
            poll_interval="1h",
            waba_poll_interval="1h",
            qps=10,
        )
        store = Store()
        poller = Poller(config, store)
        generation = store.exposition.generation
        poller.start()  # first poll starts at once
        try:
            assert store.wait_for_generation(generation, timeout=60)
        finally:
            poller.stop()
        snap = store.account("fleet")
        assert snap.poll.success, snap.poll.error
        assert len(snap.numbers) == scenario.number_count()
        assert emu.max_requests_in_any_second("fleet-ak") <= 10
        assert not [r for r in emu.requests if r.code and r.code.startswith("Throttling")]
        assert len(emu.requests) == 100  # one QueryChatappPhoneNumbers and one QueryChatappBindWaba per space
