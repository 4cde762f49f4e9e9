import pytest

from emulators.cams import CamsEmulator
from emulators.scenario import loads_scenario

SCENARIO = """
credentials:
  - {access_key_id: ak-one, access_key_secret: sk-one-SECRET-VALUE, qps: 10}
  - {access_key_id: ak-two, access_key_secret: sk-two-SECRET-VALUE, qps: 10}
spaces:
  - cust_space_id: cams-shop
    access_key_id: ak-one
    waba: {id: "1001", name: Shop, account_review_status: APPROVED, currency: USD}
    numbers:
      - phone_number: "8613800000001"
        id: "5001"
        verified_name: Shop One
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10K
        code_verification_status: VERIFIED
        name_status: Approval
        new_name_status: Pending_Review
        timeline:
          - {at: 100, set: {quality_rating: YELLOW}}
          - {at: 200, set: {quality_rating: RED, messaging_limit_tier: TIER_1K}}
      - phone_number: "8613800000002"
        status: CONNECTED
        quality_rating: GREEN
        messaging_limit_tier: TIER_10
        timeline:
          - {at: 100, set: {status: FLAGGED}}
          - {at: 200, set: {status: CONNECTED}}
  - cust_space_id: cams-support
    access_key_id: ak-one
    waba: {id: "1002", name: Support, account_review_status: PENDING}
    numbers:
      - {phone_number: "8613800000003", status: PENDING, quality_rating: null, messaging_limit_tier: null}
  - cust_space_id: cams-other
    access_key_id: ak-two
    waba: null
    numbers:
      - {phone_number: "4915100000001", status: CONNECTED, quality_rating: GREEN, messaging_limit_tier: TIER_250}
"""


@pytest.fixture
def scenario():
    return loads_scenario(SCENARIO)


@pytest.fixture
def emulator(scenario):
    emu = CamsEmulator(scenario).start()
    yield emu
    emu.stop()
