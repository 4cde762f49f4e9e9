"""Generated fleets (large scenarios for benchmarks and tests) and scenario cloning."""

from __future__ import annotations

import copy
import random
from typing import Any

from .loader import parse_scenario
from .model import Scenario
from .validation import ScenarioError

# ---------------------------------------------------------------------------
# generated fleets

_FLEET_STATUS = [
    ("CONNECTED", 80),
    ("FLAGGED", 6),
    ("RATE_LIMITED", 4),
    ("PENDING", 4),
    ("RESTRICTED", 2),
    ("DISCONNECTED", 2),
    ("BANNED", 1),
    ("UNKNOWN", 1),
]


_FLEET_QUALITY = [("GREEN", 75), ("YELLOW", 12), ("RED", 6), ("UNKNOWN", 4), (None, 3)]


_FLEET_TIER = [
    ("TIER_1K", 35),
    ("TIER_10K", 25),
    ("TIER_250", 15),
    ("TIER_100K", 10),
    ("TIER_UNLIMITED", 5),
    ("TIER_50", 4),
    ("TIER_10", 3),
    ("TIER_2K", 2),
    (None, 1),
]


_FLEET_CODE = [("VERIFIED", 85), ("NOT_VERIFIED", 10), ("EXPIRED", 5)]


_FLEET_NAME = [
    ("Approval", 50),
    ("APPROVED", 35),
    ("Pending_Review", 8),
    ("PENDING_REVIEW", 3),
    ("Rejected", 2),
    ("DECLINED", 2),
]


_FLEET_REVIEW = [("APPROVED", 90), ("PENDING", 6), ("REJECTED", 2), ("DISABLED", 2)]


def _pick(rng: random.Random, table: list[tuple[Any, int]]) -> Any:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights=weights, k=1)[0]


def generate_fleet(
    spaces: int = 50,
    numbers_per_space: int = 5,
    access_key_id: str = "fleet-ak",
    secret: str = "fleet-secret",
    qps: int | None = 10,
    seed: int = 0,
    space_prefix: str = "cams-fleet-",
    timelines: bool = True,
) -> Scenario:
    """A large, deterministic (for a given ``seed``) scenario: ``spaces`` spaces owned by one key.

    Phone numbers are unique across the fleet.  Most numbers are healthy; the
    rest spread over the documented vocabulary.  With ``timelines`` some numbers
    get a looping quality/status timeline.
    """
    if spaces < 0 or numbers_per_space < 0:
        raise ScenarioError("generate_fleet", "spaces and numbers_per_space must be >= 0")
    rng = random.Random(seed)
    width = max(4, len(str(spaces)))
    space_list = []
    serial = 0
    for s in range(spaces):
        space_id = f"{space_prefix}{s + 1:0{width}d}"
        numbers = []
        for _ in range(numbers_per_space):
            serial += 1
            number: dict[str, Any] = {
                "phone_number": f"86139{serial:08d}",
                "id": f"1{seed % 1000:03d}{serial:011d}",
                "verified_name": f"Fleet Shop {s + 1}",
                "status": _pick(rng, _FLEET_STATUS),
                "quality_rating": _pick(rng, _FLEET_QUALITY),
                "messaging_limit_tier": _pick(rng, _FLEET_TIER),
                "code_verification_status": _pick(rng, _FLEET_CODE),
                "name_status": _pick(rng, _FLEET_NAME),
                "new_name_status": _pick(rng, _FLEET_NAME),
                "is_official": rng.choice(["N", "N", "N", "Y"]),
                "status_callback_url": f"https://fleet.example/{space_id}/status",
                "up_callback_url": f"https://fleet.example/{space_id}/inbound",
            }
            if timelines and rng.random() < 0.1:
                period = rng.choice([120, 180, 300])
                number["timeline"] = [
                    {"at": period // 3, "set": {"quality_rating": "YELLOW"}},
                    {"at": 2 * period // 3, "set": {"quality_rating": "RED", "status": "FLAGGED"}},
                ]
                number["repeat_every"] = period
            numbers.append(number)
        space_list.append(
            {
                "cust_space_id": space_id,
                "access_key_id": access_key_id,
                "waba": {
                    "id": f"2{seed % 1000:03d}{s + 1:011d}",
                    "name": f"Fleet Shop {s + 1}",
                    "account_review_status": _pick(rng, _FLEET_REVIEW),
                    "currency": "USD",
                    "message_template_namespace": f"fleet_{seed}_{s + 1:06d}",
                },
                "numbers": numbers,
            }
        )
    data = {
        "name": f"fleet-{spaces}x{numbers_per_space}-seed{seed}",
        "credentials": [{"access_key_id": access_key_id, "access_key_secret": secret, "qps": qps}],
        "spaces": space_list,
    }
    return parse_scenario(data, "generate_fleet")


def clone_scenario(scenario: Scenario) -> Scenario:
    """A deep copy (emulators never mutate a scenario, but tests may)."""
    return copy.deepcopy(scenario)
