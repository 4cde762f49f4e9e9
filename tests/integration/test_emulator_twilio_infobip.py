"""The Twilio and Infobip emulators on their own, over real sockets: auth, paging, batching, limits, faults."""

import base64
import threading

import httpx

from emulators.infobip import InfobipEmulator
from emulators.scenario import Fault, load_builtin_scenario, loads_scenario
from emulators.twilio import TwilioEmulator, sender_sid
from tests.helpers import emulator_fixture, wait_for

TW_AUTH = ("SKdemo0000000000000000000000000001", "twdemo-secret-0001")
IB_AUTH = {"Authorization": "App ibdemo-api-key-0001"}
LIST = "/v2/Channels/Senders"


twilio = emulator_fixture("twilio", TwilioEmulator, builtin="demo-twilio")
infobip = emulator_fixture("infobip", InfobipEmulator, builtin="demo-infobip")


def test_twilio_auth_401_and_restricted_key_403():
    scenario = loads_scenario("""
credentials:
  - {access_key_id: SKrestricted, access_key_secret: s1, permissions: denied, account: AC1}
  - {access_key_id: AC1, access_key_secret: token, account: AC1}
spaces:
  - {space_id: AC1, access_key_id: AC1, numbers: [{phone_number: "15550001"}]}
""")
    with TwilioEmulator(scenario) as e:
        wrong = httpx.get(e.url + LIST, params={"Channel": "whatsapp"}, auth=("AC1", "nope"))
        assert wrong.status_code == 401 and wrong.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
        assert httpx.get(e.url + LIST, params={"Channel": "whatsapp"}).status_code == 401
        denied = httpx.get(e.url + LIST, params={"Channel": "whatsapp"}, auth=("SKrestricted", "s1"))
        assert denied.status_code == 403 and denied.json()["code"] == 20403
        ok = httpx.get(e.url + LIST, params={"Channel": "whatsapp"}, auth=("AC1", "token"))
        assert ok.status_code == 200 and ok.json()["senders"][0]["sender_id"] == "whatsapp:+15550001"


def test_twilio_paging_validation_and_fetch(twilio):
    assert httpx.get(twilio.url + LIST, auth=TW_AUTH).json()["code"] == 20001  # Channel is required
    assert (
        httpx.get(twilio.url + LIST, params={"Channel": "whatsapp", "PageSize": 1001}, auth=TW_AUTH).status_code == 400
    )
    url, seen, pages = twilio.url + LIST + "?Channel=whatsapp&PageSize=2", [], 0
    while url:
        body = httpx.get(url, auth=TW_AUTH).json()
        assert body["meta"]["key"] == "senders" and body["meta"]["page"] == pages
        seen += [s["sender_id"] for s in body["senders"]]
        url, pages = body["meta"]["next_page_url"], pages + 1
    assert pages == 3 and len(set(seen)) == 6
    sid = sender_sid("14155550101")
    one = httpx.get(f"{twilio.url}{LIST}/{sid}", auth=TW_AUTH).json()
    assert one["sid"] == sid and one["configuration"]["waba_id"] == "203040506070801"
    assert httpx.get(f"{twilio.url}{LIST}/XE123", auth=TW_AUTH).json()["code"] == 20404
    assert httpx.get(f"{twilio.url}{LIST}/XE" + "f" * 32, auth=TW_AUTH).status_code == 404
    assert (
        httpx.get(twilio.url + LIST, params={"Channel": "whatsapp", "PageToken": "PTforged"}, auth=TW_AUTH).status_code
        == 400
    )


def test_twilio_timeline_offline_with_reason_and_back(twilio):
    def first():
        return httpx.get(f"{twilio.url}{LIST}/{sender_sid('14155550101')}", auth=TW_AUTH).json()

    assert first()["status"] == "ONLINE" and first()["offline_reasons"] is None
    twilio.advance(50)
    offline = first()
    assert offline["status"] == "OFFLINE" and offline["offline_reasons"][0]["code"] == "63020"
    twilio.advance(200)
    assert first()["status"] == "ONLINE"


def test_twilio_concurrency_cap_answers_20429(twilio):
    twilio.inject(Fault(kind="delay", seconds=0.5, count=2))
    results = []

    def call():
        results.append(httpx.get(twilio.url + LIST, params={"Channel": "whatsapp"}, auth=TW_AUTH, timeout=5))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    # wait until both are in flight, then a third one is refused

    wait_for(
        lambda: twilio.max_in_flight_seen.get("ACdemo0000000000000000000000000001") == 2,
        "two requests in flight",
        timeout=5,
    )
    refused = httpx.get(twilio.url + LIST, params={"Channel": "whatsapp"}, auth=TW_AUTH)
    for t in threads:
        t.join()
    assert refused.status_code == 429 and refused.json()["code"] == 20429
    assert refused.headers["Twilio-Concurrent-Requests"] == "2"
    assert [r.status_code for r in results] == [200, 200]


def test_twilio_rfc9457_mode():
    with TwilioEmulator(load_builtin_scenario("demo-twilio"), error_format="rfc9457") as e:
        r = httpx.get(e.url + LIST, params={"Channel": "whatsapp"}, auth=("x", "y"))
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("/20003") and r.json()["status"] == 401


def test_twilio_writes_are_refused_and_recorded(twilio):
    r = httpx.post(twilio.url + LIST, json={}, auth=TW_AUTH)
    assert r.status_code == 403 and [c.action for c in twilio.write_action_calls()] == ["CreateChannelsSender"]


def get_quality(e, query, headers=IB_AUTH):
    return httpx.get(e.url + "/whatsapp/1/senders/quality?" + query, headers=headers)


def test_infobip_auth_forms(infobip):
    assert get_quality(infobip, "senders=447860099101", {}).status_code == 401
    bad = get_quality(infobip, "senders=447860099101", {"Authorization": "App wrong"})
    assert bad.json() == {
        "requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}}
    }
    basic = "Basic " + base64.b64encode(b"ibdemo-key-1:ibdemo-api-key-0001").decode()
    assert get_quality(infobip, "senders=447860099101", {"Authorization": basic}).status_code == 200


def test_infobip_senders_forms_omission_and_batch_limit(infobip):
    body = get_quality(infobip, "senders=447860099101%2C447860099999&senders=447860099101,%2B447860099102").json()
    assert [r["sender"] for r in body["results"]] == ["447860099101", "447860099102"]  # unknown left out
    assert get_quality(infobip, "senders=447860099999").json() == {"results": []}
    too_many = get_quality(infobip, "senders=" + ",".join(str(447000000000 + i) for i in range(101)))
    assert too_many.status_code == 400
    assert too_many.json()["requestError"]["serviceException"]["validationErrors"] == {
        "senders": ["size must be between 1 and 100"]
    }
    assert get_quality(infobip, "").status_code == 400


def test_infobip_rate_limit_and_quality_timeline(infobip):
    infobip.advance(55)
    [r] = get_quality(infobip, "senders=447860099101").json()["results"]
    assert r["qualityRating"] == "LOW"
    codes = [get_quality(infobip, "senders=447860099101").status_code for _ in range(25)]
    assert 429 in codes
    assert infobip.max_requests_in_any_second("ibdemo-key-1", accepted_only=True) <= 10
    refused = next(c for c in infobip.calls() if c.throttled)
    assert refused.code == "TOO_MANY_REQUESTS"


def test_infobip_new_error_format_and_fault():
    with InfobipEmulator(load_builtin_scenario("demo-infobip"), error_format="new") as e:
        e.inject(Fault(kind="error", code="GENERAL_ERROR", count=1))
        r = get_quality(e, "senders=447860099101")
        assert r.status_code == 500 and r.json()["errorCode"] == "E500"
        assert get_quality(e, "senders=447860099101").status_code == 200
