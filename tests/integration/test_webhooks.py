"""The webhook receiver over real sockets: signatures, handshake, routing, debounce, limits, reload,
and events that make the real Poller poll again long before its next scheduled poll."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from emulators.kaleyra import KaleyraEmulator
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import loads_scenario
from exporter import model
from exporter.config import parse_config
from exporter.store import AccountSnapshot, Store
from exporter.web import App, HttpServer
from exporter.webhooks import (
    EVENTS_FAMILY,
    MAX_BODY_BYTES,
    REFRESHES_FAMILY,
    REJECTED_FAMILY,
    WebhookManager,
    nxcloud_sign,
)
from tests.helpers import (
    active_state,
    free_port,
    no_secret_logged_fixture,
    samples,
    scrape,
    start_exporter,
    start_with_webhooks,
    value,
    wait_for,
)
from tests.integration.test_integration_providers import KAL_SCENARIO, NX_SCENARIO
from tests.tools import promtool_check_metrics

META_SECRET = "meta-app-SECRET-0123456789"
VERIFY_TOKEN = "verify-TOKEN-abcdef"
KALEYRA_TOKEN = "kaleyra-TOKEN-0123456789abcdef"
NX_SECRET = "nx-secret-VALUE"
ENV = {
    "META_APP_SECRET": META_SECRET,
    "META_VERIFY_TOKEN": VERIFY_TOKEN,
    "KALEYRA_WEBHOOK_TOKEN": KALEYRA_TOKEN,
    "NX": NX_SECRET,
    "KAL": "kaleyra-key-VALUE",
    "SK_ONE": "sk-one-SECRET-VALUE",
}
SECRETS = (META_SECRET, VERIFY_TOKEN, KALEYRA_TOKEN, NX_SECRET)

WEBHOOKS = """
webhooks:
  listen_address: "{listen}"
  debounce: {debounce}
  meta: {{app_secret: "${{META_APP_SECRET}}", verify_token: "${{META_VERIFY_TOKEN}}"}}
  kaleyra: {{token: "${{KALEYRA_WEBHOOK_TOKEN}}"}}
  nxcloud: {{}}
"""


# --------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------


def meta_body(
    waba_id="1001", field="phone_number_quality_update", phone="8613800000001", event="DOWNGRADE", at: int = 1748454394
) -> bytes:
    """A Meta delivery; events that differ only in ``at`` are distinct deliveries, not replays."""
    value = {"display_phone_number": phone, "event": event, "current_limit": "TIER_1K"}
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": waba_id, "time": at, "changes": [{"field": field, "value": value}]}],
        }
    ).encode()


def meta_signature(body: bytes, secret: str = META_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_meta(url, body: bytes, signature: str | None = "auto", **kw) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        signature = meta_signature(body)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return checked(httpx.post(url + "/webhooks/meta", content=body, headers=headers, timeout=10, **kw))


def nx_body(field="phone_number_quality_update", phone="6281300000001") -> bytes:
    return json.dumps(
        {
            "field": field,
            "value": {"business_phone": phone, "wabaId": "77001", "time": int(time.time()), "event": "FLAGGED"},
        },
        ensure_ascii=False,
    ).encode()


def post_nx(
    url,
    body: bytes,
    ak="nx-ak",
    secret=NX_SECRET,
    ts: int | None = None,
    sign: str | None = None,
    drop: str | None = None,
) -> httpx.Response:
    ts_text = str(int(time.time() * 1000) if ts is None else ts)
    headers = {"Content-Type": "application/json", "accessKey": ak, "ts": ts_text, "bizType": "2", "action": "webhook"}
    headers["sign"] = sign or nxcloud_sign(ak, "webhook", "2", ts_text, body, secret)
    if drop:
        del headers[drop]
    return checked(httpx.post(url + "/webhooks/nxcloud", content=body, headers=headers, timeout=10))


def get_kaleyra(url, token: str | None = KALEYRA_TOKEN, **params) -> httpx.Response:
    query = {"display_phone_number": "919876543210", "event": "FLAGGED", "current_limit": "TIER_10K"}
    query.update(params)
    if token is not None:
        query["token"] = token
    return checked(httpx.get(url + "/webhooks/kaleyra", params=query, timeout=10))


def checked(response: httpx.Response) -> httpx.Response:
    """Every answer of the receiver: no secret in it, whatever it says."""
    text = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    for secret in SECRETS:
        assert secret not in text
    return response


# --------------------------------------------------------------------------
# Unit level: routing against a fake poller (routing only), real Store, real HTTP
# --------------------------------------------------------------------------

ROUTING = """
accounts:
  - name: shop
    provider: alibaba_cams
    credentials: {access_key_id: ak-one, access_key_secret: "${SK_ONE}"}
    spaces: [{cust_space_id: cams-shop}]
  - name: nx-a
    provider: nxcloud
    credentials: {access_key: nx-ak, access_secret: "${NX}"}
    apps: [{appkey: app-1, business_phones: ["+6281300000001"]}]
  - name: nx-b
    provider: nxcloud
    credentials: {access_key: nx-ak, access_secret: "${NX}"}
    apps: [{appkey: app-2}]
  - name: kal
    provider: kaleyra
    pod: IN
    credentials: {sid: SID1, api_key: "${KAL}"}
    wabas: [{waba_id: "1029384756"}]
  - name: kal2
    provider: kaleyra
    pod: IN
    credentials: {sid: SID2, api_key: "${KAL}"}
    wabas: [{waba_id: "555"}]
"""


class FakePoller:
    """Implements only request_refresh, with the real one's contract: one pending refresh per account,
    and records the facts handed to it."""

    def __init__(self):
        self.pending: set[str] = set()
        self.calls: list[tuple[str, float]] = []
        self.phones: list = []
        self.facts: list = []
        self.limits: list = []

    def apply_waba_update(self, name, update) -> bool:
        self.facts.append((name, update))
        return True

    def apply_business_limit(self, name, waba_id, tier) -> bool:
        self.limits.append((name, waba_id, tier))
        return True

    def request_refresh(self, name: str, delay: float, phones=None) -> bool:
        self.calls.append((name, delay))
        self.phones.append(None if phones is None else tuple(phones))
        if name in self.pending:
            return False
        self.pending.add(name)
        return True

    def accounts(self) -> list[str]:
        return [name for name, _ in self.calls]


def snapshot(name: str, provider: str, *numbers: tuple[str, str]) -> AccountSnapshot:
    tracked = {
        phone: model.TrackedNumber(
            model.PhoneNumber(phone_number=phone, waba_id=waba), model.ChangeTimes.first_seen(0.0)
        )
        for phone, waba in numbers
    }
    return AccountSnapshot(name=name, provider=provider, poll_interval=60.0, qps=1.0, numbers=tracked)


no_secret_logged = no_secret_logged_fixture(SECRETS)


@pytest.fixture
def routing(no_secret_logged):
    config = parse_config(ROUTING + WEBHOOKS.format(listen="127.0.0.1:0", debounce="0s"), env=ENV)
    store = Store()
    store.update_many(
        [
            snapshot("shop", "alibaba_cams", ("+8613800000001", "1001")),
            snapshot("kal2", "kaleyra", ("+919800000009", "555")),
        ]
    )
    poller = FakePoller()
    manager = WebhookManager(poller, store)
    manager.apply(config)
    yield manager.receiver.url, poller, manager, store
    manager.stop()


def count(manager, family=EVENTS_FAMILY, **labels) -> int:
    return manager.metrics.value(family, **labels)


def test_meta_valid_signature_routes_by_waba_and_by_number(routing):
    url, poller, manager, _ = routing
    r = post_meta(url, meta_body(waba_id="1001"))
    assert r.status_code == 200
    assert poller.calls == [("shop", 0.0)]
    assert poller.phones == [("+8613800000001",)]  # a quality event names its number: only it is read again
    # a Kaleyra WABA is a unit of the account
    assert post_meta(url, meta_body(waba_id="1029384756", phone="")).status_code == 200
    assert poller.accounts()[-1] == "kal"
    # unknown WABA, but the store holds the number (digits compared)
    assert post_meta(url, meta_body(waba_id="9999", phone="+91 98000-00009")).status_code == 200
    assert poller.accounts()[-1] == "kal2"
    assert count(manager, provider="meta", event="phone_number_quality_update", result="accepted") == 3
    assert count(manager, REFRESHES_FAMILY, account="shop") == 1
    assert poller.phones[1] is None  # no number named: the whole account
    # nothing matches: still 200 (the provider must not retry), counted, no refresh
    n = len(poller.calls)
    assert post_meta(url, meta_body(waba_id="4242", phone="15550000000", field="account_update")).status_code == 200
    assert len(poller.calls) == n
    assert count(manager, provider="meta", event="account_update", result="unmatched") == 1


def test_meta_fields_that_are_not_about_health_are_ignored(routing):
    url, poller, manager, _ = routing
    assert post_meta(url, meta_body(field="messages")).status_code == 200
    assert post_meta(url, meta_body(field="brand_new_field")).status_code == 200
    assert post_meta(url, json.dumps({"object": "page", "entry": []}).encode()).status_code == 200
    assert poller.calls == []
    assert count(manager, provider="meta", event="other", result="ignored") == 3


@pytest.mark.parametrize(
    "signature,status,reason",
    [
        (None, 401, "missing_signature"),
        ("sha256=" + "0" * 64, 403, "bad_signature"),
        (meta_signature(meta_body(), "another-secret"), 403, "bad_signature"),
        ("sha1=" + "0" * 40, 403, "bad_signature"),
        ("sha256=not-hex", 403, "bad_signature"),
    ],
)
def test_meta_unsigned_or_wrongly_signed_is_refused_and_counted(routing, signature, status, reason):
    url, poller, manager, _ = routing
    r = post_meta(url, meta_body(), signature=signature)
    assert r.status_code == status
    assert poller.calls == []
    assert count(manager, REJECTED_FAMILY, provider="meta", reason=reason) == 1
    assert count(manager, provider="meta", event="unknown", result="refused") == 1


def test_meta_signature_covers_the_raw_bytes(routing):
    url, poller, manager, _ = routing
    body = meta_body()
    tampered = body.replace(b"1001", b"1002")
    assert post_meta(url, tampered, signature=meta_signature(body)).status_code == 403
    # valid signature over bytes that are not JSON: invalid, never acted on
    assert post_meta(url, b"{not json").status_code == 400
    assert post_meta(url, b'{"object": "whatsapp_business_account", "entry": 5}').status_code == 400
    assert poller.calls == []
    assert count(manager, REJECTED_FAMILY, provider="meta", reason="invalid_body") == 2
    assert count(manager, provider="meta", event="unknown", result="invalid") == 2


def test_meta_handshake(routing):
    url, poller, manager, _ = routing

    def handshake(**params):
        query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
        query.update(params)
        return checked(httpx.get(url + "/webhooks/meta", params={k: v for k, v in query.items() if v is not None}))

    ok = handshake()
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    assert handshake(**{"hub.verify_token": "wrong"}).status_code == 403
    assert handshake(**{"hub.verify_token": None}).status_code == 403
    assert handshake(**{"hub.mode": "unsubscribe"}).status_code == 400
    assert handshake(**{"hub.challenge": "<script>alert(1)</script> x"}).status_code == 400
    assert count(manager, REJECTED_FAMILY, provider="meta", reason="bad_verify_token") == 2
    assert poller.calls == []


def test_nxcloud_signature_matches_the_documented_vector():
    body = '{"name":"牛小信","id":10001}'.encode()
    assert (
        nxcloud_sign("fme2na3kdi3ki", "send", "1", "1655710885431", body, "abciiiko2k3")
        == "87c3560d3331ae23f1021e2025722354"
    )
    assert (
        nxcloud_sign("fme2na3kdi3ki", "send", "1", "1655710885431", b"", "abciiiko2k3")
        == "884afe159e39b6c88a0d6102ca97d704"
    )


def test_nxcloud_valid_signature_routes_to_the_access_key_narrowed_by_number(routing):
    url, poller, manager, _ = routing
    assert post_nx(url, nx_body(phone="6281300000001")).status_code == 200
    assert poller.accounts() == ["nx-a"]  # configured number of nx-a
    assert post_nx(url, nx_body(phone="6200000000000", field="account_update")).status_code == 200
    assert sorted(poller.accounts()[1:]) == ["nx-a", "nx-b"]  # unknown number: every account of the key
    assert count(manager, provider="nxcloud", event="phone_number_quality_update", result="accepted") == 1
    assert count(manager, provider="nxcloud", event="account_update", result="accepted") == 1
    assert post_nx(url, nx_body(field="message_template_status_update")).status_code == 200
    assert count(manager, provider="nxcloud", event="other", result="ignored") == 1


@pytest.mark.parametrize(
    "kw,status,reason",
    [
        ({"sign": "0" * 32}, 403, "bad_signature"),
        ({"secret": "not-the-secret"}, 403, "bad_signature"),
        ({"ts_offset": -120}, 403, "expired"),
        ({"ts_offset": 120}, 403, "expired"),
        ({"ak": "someone-else"}, 403, "unknown_access_key"),
        ({"drop": "sign"}, 401, "missing_signature"),
        ({"drop": "ts"}, 401, "missing_signature"),
    ],
)
def test_nxcloud_refusals(routing, kw, status, reason):
    url, poller, manager, _ = routing
    if "ts_offset" in kw:  # taken when the test runs, not when the module is collected
        kw = {"ts": int((time.time() + kw["ts_offset"]) * 1000)}
    assert post_nx(url, nx_body(), **kw).status_code == status
    assert poller.calls == []
    assert count(manager, REJECTED_FAMILY, provider="nxcloud", reason=reason) == 1


def test_nxcloud_expired_timestamp_with_a_valid_signature_is_a_replay(routing):
    url, poller, _manager, _ = routing
    body = nx_body()
    old = int((time.time() - 61) * 1000)
    assert post_nx(url, body, ts=old).status_code == 403
    assert poller.calls == []


def test_kaleyra_token(routing):
    url, poller, manager, _ = routing
    assert get_kaleyra(url, token=None).status_code == 401
    assert get_kaleyra(url, token="wrong-token-wrong-token").status_code == 403
    assert get_kaleyra(url, token=KALEYRA_TOKEN[:-1]).status_code == 403
    assert poller.calls == []
    assert count(manager, REJECTED_FAMILY, provider="kaleyra", reason="missing_token") == 1
    assert count(manager, REJECTED_FAMILY, provider="kaleyra", reason="bad_token") == 2
    # known number: its account only; the event is normalized
    assert get_kaleyra(url, display_phone_number="919800000009", event="flagged").status_code == 200
    assert poller.accounts() == ["kal2"]
    assert count(manager, provider="kaleyra", event="FLAGGED", result="accepted") == 1
    # unknown number: every Kaleyra account; an unknown event is "other"
    assert get_kaleyra(url, display_phone_number="911111111111", event="SOMETHING_NEW").status_code == 200
    assert sorted(poller.accounts()[1:]) == ["kal", "kal2"]
    assert count(manager, provider="kaleyra", event="other", result="accepted") == 1
    # neither number nor event: invalid
    assert get_kaleyra(url, display_phone_number="", event="").status_code == 400
    # a POST is not Kaleyra's callback
    assert checked(httpx.post(url + "/webhooks/kaleyra?token=" + KALEYRA_TOKEN, content=b"{}")).status_code == 405


def test_limits_and_paths(routing):
    url, poller, manager, _ = routing
    # oversize by Content-Length: refused unread
    with socket.create_connection(("127.0.0.1", manager.receiver.port), timeout=10) as s:
        s.sendall(b"POST /webhooks/meta HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1))
        assert s.recv(100).startswith(b"HTTP/1.1 413")

    # oversize, chunked
    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"y" * 65536

    r = checked(httpx.post(url + "/webhooks/nxcloud", content=chunks(), headers={"sign": "x"}))
    assert r.status_code == 413
    assert count(manager, REJECTED_FAMILY, provider="meta", reason="too_large") == 1
    assert count(manager, REJECTED_FAMILY, provider="nxcloud", reason="too_large") == 1
    # a valid event sent chunked is fine
    body = meta_body()
    r = checked(
        httpx.post(
            url + "/webhooks/meta",
            content=iter([body[:10], body[10:]]),
            headers={"X-Hub-Signature-256": meta_signature(body)},
        )
    )
    assert r.status_code == 200 and poller.accounts() == ["shop"]
    # no length at all
    with socket.create_connection(("127.0.0.1", manager.receiver.port), timeout=10) as s:
        s.sendall(b"POST /webhooks/meta HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 411")
    assert checked(httpx.get(url + "/-/healthy")).status_code == 200
    assert checked(httpx.get(url + "/metrics")).status_code == 404
    assert checked(httpx.get(url + "/webhooks/nxcloud")).status_code == 405
    assert checked(httpx.put(url + "/webhooks/meta", content=b"")).status_code == 405
    assert checked(httpx.head(url + "/webhooks/kaleyra?token=" + KALEYRA_TOKEN)).status_code == 405
    assert len(poller.calls) == 1


def test_slow_header_clients_do_not_block_events(routing):
    """Issue 13: 64 clients dripping header lines used to fill the listener's slots (503 for everyone)."""
    url, poller, manager, _ = routing
    port = manager.receiver.port
    drippers = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    try:
        for sock in drippers:
            sock.sendall(b"POST /webhooks/meta HTTP/1.1\r\nHost: x\r\n")
        for i, sock in enumerate(drippers):
            sock.sendall(b"X-Drip: %d\r\n" % i)
        assert post_meta(url, meta_body()).status_code == 200
        assert poller.accounts() == ["shop"]
    finally:
        for sock in drippers:
            sock.close()


def test_a_body_that_does_not_arrive_is_cut_off(routing, monkeypatch):
    from exporter.webhooks import handler  # where the body is read (exporter.webhooks re-exports the default)

    monkeypatch.setattr(handler, "BODY_TIMEOUT", 0.5)
    _url, poller, manager, _ = routing
    with socket.create_connection(("127.0.0.1", manager.receiver.port), timeout=10) as s:
        s.sendall(b"POST /webhooks/meta HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert s.recv(100).startswith(b"HTTP/1.1 408")
    assert count(manager, REJECTED_FAMILY, provider="meta", reason="invalid_body") == 1
    assert poller.calls == []


def test_only_the_enabled_endpoints_exist(no_secret_logged):
    config = parse_config(
        ROUTING
        + """
webhooks:
  listen_address: "127.0.0.1:0"
  nxcloud: {}
""",
        env=ENV,
    )
    manager = WebhookManager(FakePoller(), Store())
    manager.apply(config)
    try:
        url = manager.receiver.url
        assert post_meta(url, meta_body()).status_code == 404
        assert get_kaleyra(url).status_code == 404
        assert post_nx(url, nx_body()).status_code == 200
        text = manager.metrics.render()
        assert 'provider="meta"' not in text and 'provider="kaleyra"' not in text
        # the refresh counters cover the accounts the NxCloud endpoint can reach
        assert f'{REFRESHES_FAMILY}{{provider="nxcloud",account="nx-a",result="scheduled"}} 1' in text
        assert 'account="shop"' not in text
    finally:
        manager.stop()


def test_counters_are_valid_prometheus_text_preinitialized_and_published(routing):
    url, _poller, manager, store = routing
    text = manager.metrics.render()
    for line in (
        f'{EVENTS_FAMILY}{{provider="meta",event="phone_number_quality_update",result="accepted"}} 0',
        f'{EVENTS_FAMILY}{{provider="kaleyra",event="FLAGGED",result="debounced"}} 0',
        f'{REJECTED_FAMILY}{{provider="nxcloud",reason="expired"}} 0',
        f'{EVENTS_FAMILY}{{provider="meta",event="unknown",result="replayed"}} 0',
        f'{REFRESHES_FAMILY}{{provider="kaleyra",account="kal2",result="scheduled"}} 0',
        f'{REFRESHES_FAMILY}{{provider="kaleyra",account="kal2",result="coalesced"}} 0',
    ):
        assert line in text
    post_meta(url, meta_body())
    # published to the store's exposition (by the publisher thread: wait for it)
    server = HttpServer(App(store), "127.0.0.1:0").start()
    try:

        def published():
            s = samples(scrape(server.url).text)
            return (
                value(s, REFRESHES_FAMILY, account="shop", result="scheduled") == 1
                and value(s, EVENTS_FAMILY, provider="meta", event="phone_number_quality_update", result="accepted")
                == 1
            )

        wait_for(published, "the counters on /metrics")
        exposition = scrape(server.url).content
        check = promtool_check_metrics(exposition)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        server.stop()


# --------------------------------------------------------------------------
# Reload: new secrets, routes and listen address; off and on again
# --------------------------------------------------------------------------


def test_reload_swaps_secrets_routes_and_address(no_secret_logged):
    store = Store()
    store.update_many([snapshot(name, "alibaba_cams", ("+8613800000001", "1001")) for name in ("shop", "shop2")])
    poller = FakePoller()
    manager = WebhookManager(poller, store)
    first = parse_config(ROUTING + WEBHOOKS.format(listen="127.0.0.1:0", debounce="0s"), env=ENV)
    manager.apply(first)
    old_url = manager.receiver.url
    try:
        new_env = {**ENV, "META_APP_SECRET": "meta-app-NEW-SECRET"}
        second = parse_config(
            ROUTING.replace("name: shop", "name: shop2") + WEBHOOKS.format(listen="localhost:0", debounce="5s"),
            env=new_env,
        )
        plan = manager.prepare(second)
        assert post_meta(old_url, meta_body()).status_code == 200  # nothing changed before the commit
        plan.commit()
        url = manager.receiver.url
        assert url != old_url
        with pytest.raises(httpx.TransportError):
            httpx.get(old_url + "/-/healthy", timeout=5)
        assert post_meta(url, meta_body()).status_code == 403  # the old secret
        body = meta_body()
        assert post_meta(url, body, signature=meta_signature(body, "meta-app-NEW-SECRET")).status_code == 200
        assert poller.calls[-1] == ("shop2", 5.0)  # new route and debounce
        # a listen address that is taken: prepare fails, the receiver keeps serving
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            third = parse_config(
                ROUTING + WEBHOOKS.format(listen=f"127.0.0.1:{taken.getsockname()[1]}", debounce="0s"), env=ENV
            )
            with pytest.raises(OSError):
                manager.prepare(third)
        assert checked(httpx.get(url + "/-/healthy")).status_code == 200
        # turned off: the listener closes and the counters leave /metrics; on again: they come back
        manager.apply(parse_config(ROUTING, env=ENV))
        assert manager.receiver is None
        assert b"webhook" not in store.exposition.body
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/-/healthy", timeout=5)
        manager.apply(first)
        # the counters survived: the two accepted events are still counted
        assert (
            b'whatsapp_exporter_webhook_events_total{provider="meta",event="phone_number_quality_update",'
            b'result="accepted"} 2'
        ) in store.exposition.body
    finally:
        manager.stop()


# --------------------------------------------------------------------------
# Through the real Poller and Store: a webhook makes the exporter poll again at once
# --------------------------------------------------------------------------

LIVE = """
accounts:
  - name: shop
    provider: alibaba_cams
    endpoint: {cams}
    credentials: {{access_key_id: ak-one, access_key_secret: "${{SK_ONE}}"}}
    poll_interval: 1h
    spaces: [{{cust_space_id: cams-shop}}]
  - name: nx
    provider: nxcloud
    endpoint: {nx}
    credentials: {{access_key: nx-ak, access_secret: "${{NX}}"}}
    qps: 10
    poll_interval: 1h
    apps: [{{appkey: app-shop}}, {{appkey: app-travel}}]
  - name: kal
    provider: kaleyra
    endpoint: {kal}
    credentials: {{sid: HXSID1, api_key: "${{KAL}}"}}
    poll_interval: 1h
    wabas: [{{waba_id: "1029384756"}}]
"""


@pytest.fixture
def live(emulator, no_secret_logged, request):
    debounce = getattr(request, "param", "0s")
    nx = NxCloudEmulator(loads_scenario(NX_SCENARIO)).start()
    kal = KaleyraEmulator(loads_scenario(KAL_SCENARIO)).start()
    config = parse_config(
        LIVE.format(cams=emulator.url, nx=nx.url, kal=kal.url)
        + WEBHOOKS.format(listen="127.0.0.1:0", debounce=debounce),
        env=ENV,
    )
    store, poller, manager = start_with_webhooks(config)
    server = HttpServer(App(store), "127.0.0.1:0").start()
    wait_for(store.ready, "the first poll of every account")
    try:
        yield {
            "cams": emulator,
            "nx": nx,
            "kal": kal,
            "store": store,
            "poller": poller,
            "manager": manager,
            "url": manager.receiver.url,
            "metrics": server.url,
        }
    finally:
        manager.stop()
        poller.stop()
        server.stop()
        nx.stop()
        kal.stop()


def state(env, family, label, **labels):
    try:
        return active_state(samples(scrape(env["metrics"]).text), "whatsapp_phone_number_" + family, label, **labels)
    except AssertionError:
        return None


def test_meta_event_polls_the_account_long_before_its_next_poll(live):
    assert state(live, "quality_rating", "quality_rating", phone_number="+8613800000001") == "GREEN"
    live["cams"].set_number("cams-shop", "8613800000001", quality_rating="RED")
    # the next scheduled poll is an hour away; the event (WABA 1001 of the CAMS space) brings the change
    assert post_meta(live["url"], meta_body(waba_id="1001", phone="")).status_code == 200
    wait_for(
        lambda: state(live, "quality_rating", "quality_rating", phone_number="+8613800000001") == "RED",
        "the refreshed quality rating",
    )
    assert live["manager"].metrics.value(REFRESHES_FAMILY, account="shop") == 1


def test_nxcloud_event_polls_the_nxcloud_account(live):
    live["nx"].set_number("app-shop", "6281300000001", quality_rating="RED")
    assert post_nx(live["url"], nx_body(phone="6281300000001")).status_code == 200
    wait_for(
        lambda: state(live, "quality_rating", "quality_rating", phone_number="+6281300000001") == "RED",
        "the refreshed NxCloud number",
    )


def test_kaleyra_event_polls_the_kaleyra_account(live):
    live["kal"].set_number("1029384756", "919876543210", status="FLAGGED")
    assert get_kaleyra(live["url"], display_phone_number="919876543210", event="FLAGGED").status_code == 200
    wait_for(
        lambda: state(live, "status", "status", phone_number="+919876543210") == "FLAGGED",
        "the refreshed Kaleyra number",
    )


@pytest.mark.parametrize("live", ["60s"], indirect=True)
def test_a_burst_of_events_leaves_one_pending_refresh(live):
    calls_before = len(live["cams"].calls("QueryChatappPhoneNumbers"))
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: post_meta(live["url"], meta_body(at=1748454394 + i)).status_code, range(20)))
    assert statuses == [200] * 20
    metrics = live["manager"].metrics
    labels = dict(provider="meta", event="phone_number_quality_update")
    assert metrics.value(EVENTS_FAMILY, result="accepted", **labels) == 1
    assert metrics.value(EVENTS_FAMILY, result="debounced", **labels) == 19
    assert metrics.value(REFRESHES_FAMILY, account="shop") == 1
    # the one refresh waits for the debounce delay: no poll happened yet
    assert len(live["cams"].calls("QueryChatappPhoneNumbers")) == calls_before
    assert live["poller"].request_refresh("shop", 60.0) is False


# --------------------------------------------------------------------------
# The command line: start-up, reload (new secret, new address, refused address), shutdown
# --------------------------------------------------------------------------


def test_exporter_process_serves_reloads_and_never_logs_secrets(emulator, tmp_path):
    import signal

    from tests.helpers import SECRETS as CAMS_SECRETS
    from tests.helpers import config_yaml

    (tmp_path / "app-secret").write_text("meta-FILE-secret-one\n")
    (tmp_path / "kaleyra-token").write_text(KALEYRA_TOKEN + "\n")

    def write(port: int) -> None:
        (tmp_path / "config.yaml").write_text(
            config_yaml(emulator.url, two=False)
            + f"""
webhooks:
  listen_address: "127.0.0.1:{port}"
  debounce: 0s
  meta: {{app_secret_file: app-secret, verify_token: "${{META_VERIFY_TOKEN}}"}}
  kaleyra: {{token_file: kaleyra-token}}
"""
        )

    port_a, port_b, port_m = free_port(), free_port(), free_port()
    write(port_a)
    log_path = tmp_path / "exporter.log"
    with open(log_path, "w") as log_file:
        proc = start_exporter(
            tmp_path / "config.yaml",
            port_m,
            log_file,
            {**CAMS_SECRETS, "META_VERIFY_TOKEN": VERIFY_TOKEN},
            "--web.enable-lifecycle",  # issue 13
        )
        try:
            metrics_url, a, b = (f"http://127.0.0.1:{p}" for p in (port_m, port_a, port_b))

            def ready():
                try:
                    return (
                        httpx.get(metrics_url + "/-/ready").status_code == 200
                        and httpx.get(a + "/-/healthy").status_code == 200
                    )
                except httpx.TransportError:
                    return False

            wait_for(ready, "the exporter and its webhook listener")
            body = meta_body(waba_id="1001")
            assert post_meta(a, body, signature=meta_signature(body, "meta-FILE-secret-one")).status_code == 200
            assert get_kaleyra(a).status_code == 200  # no Kaleyra account: unmatched, but accepted

            def counted():
                s = samples(httpx.get(metrics_url + "/metrics").text)
                return (
                    value(s, REFRESHES_FAMILY, account="shop", result="scheduled") == 1
                    and value(s, EVENTS_FAMILY, provider="kaleyra", event="FLAGGED", result="unmatched") == 1
                )

            wait_for(counted, "the webhook counters on /metrics")
            check = promtool_check_metrics(httpx.get(metrics_url + "/metrics").content)
            assert check.returncode == 0, check.stdout + check.stderr

            # reload: a new secret (from the file) and a new address
            (tmp_path / "app-secret").write_text("meta-FILE-secret-two\n")
            write(port_b)
            r = httpx.post(metrics_url + "/-/reload")
            assert r.status_code == 200, r.text
            with pytest.raises(httpx.TransportError):
                httpx.get(a + "/-/healthy")
            assert post_meta(b, body, signature=meta_signature(body, "meta-FILE-secret-one")).status_code == 403
            assert post_meta(b, body, signature=meta_signature(body, "meta-FILE-secret-two")).status_code == 200

            # reload onto an address that is taken: refused as a whole, the receiver stays where it is
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                write(taken.getsockname()[1])
                r = httpx.post(metrics_url + "/-/reload")
                assert r.status_code == 500 and "webhooks.listen_address: cannot listen on" in r.text
            assert httpx.get(b + "/-/healthy").status_code == 200
            assert (
                value(
                    samples(httpx.get(metrics_url + "/metrics").text), "whatsapp_exporter_config_last_reload_successful"
                )
                == 0
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    logged = log_path.read_text()
    assert "webhook receiver listening" in logged and "webhook event" in logged
    for secret in (KALEYRA_TOKEN, VERIFY_TOKEN, "meta-FILE-secret-one", "meta-FILE-secret-two", *CAMS_SECRETS.values()):
        assert secret not in logged
    assert "Traceback" not in logged
