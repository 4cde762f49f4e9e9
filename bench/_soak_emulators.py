"""The soak's emulators, in a process of their own (see bench/soak.py).

Keeping them away from the soak's own work (decompressing and parsing a
/metrics of tens of megabytes holds the GIL for a few hundred milliseconds)
matters: an emulator records a request's arrival when its handler thread runs,
so a stall in its process would bunch arrivals into one second and look like
a budget breach by the exporter.

The parent talks to :func:`serve` over a multiprocessing pipe:
``("faults_on",)``, ``("faults_off",)`` (clears every fault and pins every
number's compared attributes to their current values), ``("count",)``,
``("report", on_epoch, off_epoch)`` and ``("stop",)``.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import random
import time
from typing import Any

from emulators.cams import CamsEmulator
from emulators.common import ProviderEmulator
from emulators.kaleyra import KaleyraEmulator
from emulators.nxcloud import NxCloudEmulator
from emulators.scenario import Fault, Scenario, parse_scenario

QPS = {"alibaba_cams": 10, "nxcloud": 5, "kaleyra": 20}
MAX_RECORDS = 400_000
CLASSES = {"alibaba_cams": CamsEmulator, "nxcloud": NxCloudEmulator, "kaleyra": KaleyraEmulator}
COMPARED_ATTRIBUTES = ("status", "quality_rating", "messaging_limit_tier")

# Vocabularies whose documented mapping is the identity (so the raw value is the exported state).
STATUSES = ["CONNECTED"] * 8 + ["FLAGGED", "RATE_LIMITED", "RESTRICTED", "PENDING", "BANNED", "DISCONNECTED"]
QUALITIES = ["GREEN"] * 6 + ["YELLOW"] * 2 + ["RED"]
TIERS = ["TIER_250", "TIER_1K", "TIER_1K", "TIER_10K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED"]

# (kind, parameters, relative weight): faults every emulator gets
COMMON_FAULTS: list[tuple[str, dict[str, Any], float]] = [
    ("delay", {"seconds": 0.3}, 16),
    ("delay", {"seconds": 1.0}, 8),
    ("delay", {"seconds": 3.0}, 4),
    ("malformed", {}, 5),
    ("html", {}, 5),
    ("reset", {}, 5),
    ("truncate", {}, 5),
    ("refuse", {}, 3),
    ("oversize", {"megabytes": 4}, 2),
    ("oversize", {"megabytes": 40}, 1),
    ("unknown_enum", {}, 5),
    ("null_fields", {}, 5),
    ("duplicate_numbers", {}, 5),
]
# error answers per provider: (parameters of an ``error`` fault, relative weight)
ERROR_FAULTS: dict[str, list[tuple[dict[str, Any], float]]] = {
    "alibaba_cams": [
        ({"code": "InternalError"}, 4),
        ({"code": "ServiceUnavailable"}, 4),
        ({"code": "Throttling.User"}, 3),
        ({"code": "Throttling.Api"}, 2),
        ({"code": "Throttling"}, 2),
        ({"code": "System.LimitControl", "http200": True}, 2),
        ({"code": "System.LimitControl"}, 1),
        ({"code": "Throttling.User", "retry_after": 1}, 1),
        ({"code": "SignatureDoesNotMatch"}, 1),
        ({"code": "InvalidAccessKeyId.NotFound"}, 1),
        ({"code": "InvalidTimeStamp.Expired"}, 1),
        ({"code": "Ram.PermissionDeny"}, 1),
    ],
    "nxcloud": [
        ({"code": "9001", "http_status": 500}, 4),
        ({"code": "-1", "http_status": 503}, 4),
        ({"code": "-1", "http_status": 429}, 10),
        ({"code": "1003"}, 1),
        ({"code": "1004"}, 1),
        ({"code": "1005"}, 2),
    ],
    "kaleyra": [
        ({"code": "WA500"}, 4),
        ({"code": "WA500", "http_status": 503}, 4),
        ({"code": "WA429"}, 10),
        ({"code": "RBC001"}, 2),
        ({"code": "WA401"}, 2),
    ],
}


def _number(rng: random.Random, phone: str, name: str, *, new_name: bool) -> dict[str, Any]:
    number: dict[str, Any] = {
        "phone_number": phone,
        "id": "7" + phone[-11:],
        "verified_name": name,
        "status": rng.choice(STATUSES),
        "quality_rating": rng.choice(QUALITIES),
        "messaging_limit_tier": rng.choice(TIERS),
        "code_verification_status": "VERIFIED",
        "name_status": "APPROVED",
    }
    if new_name:
        number["new_name_status"] = "APPROVED"
    if rng.random() < 0.4:  # loops through changes every 2 to 10 minutes
        period = rng.choice([120, 180, 240, 300, 420, 600])
        timeline = []
        for at in sorted(rng.sample(range(10, period, 10), rng.randint(1, 3))):
            attribute, values = rng.choice(
                [("status", STATUSES), ("quality_rating", QUALITIES), ("messaging_limit_tier", TIERS)]
            )
            timeline.append({"at": at, "set": {attribute: rng.choice(values)}})
        number["timeline"] = timeline
        number["repeat_every"] = period
    return number


#: provider -> (keys, spaces per key, numbers per space), key id, secret prefix, phone, shop name, new_name_status
#: (the key id is formatted with the key's ``k``, the phone with a serial, the shop name with ``k`` and ``s``)
SOAK_FLEETS: dict[str, tuple[tuple[int, int, int], str, str, str, str, bool]] = {
    "alibaba_cams": ((5, 60, 10), "cams-soak-ak-{k}", "cams-secret", "86139{:08d}", "Soak Shop {k}-{s}", True),
    "nxcloud": ((3, 25, 20), "nxsoakak{k}", "nx-secret", "62812{:08d}", "Soak Toko {k}-{s}", False),
    "kaleyra": ((2, 5, 50), "HXSOAK{k}00000000", "kal-secret", "9198{:08d}", "Soak Dukaan {k}-{s}", True),
}


def _soak_space(provider: str, k: int, s: int) -> dict[str, Any]:
    """The provider's own keys of space ``s`` of key ``k``."""
    if provider == "alibaba_cams":
        waba = {"id": f"3{k}{s:04d}000001", "name": f"Soak {k}-{s}", "account_review_status": "APPROVED"}
        return {"cust_space_id": f"cams-soak-{k}-{s:03d}", "waba": {**waba, "currency": "USD"}}
    if provider == "nxcloud":
        return {"space_id": f"nxsoak{k}a{s:03d}", "extra": {"response_shape": "array" if s % 2 else "map"}}
    waba = {"id": f"10293847{k}{s:05d}", "name": f"Dukaan {k}-{s}", "account_review_status": "APPROVED"}
    return {"space_id": waba["id"], "waba": waba}


def _provider_scenario(rng: random.Random, provider: str) -> Scenario:
    """One provider's soak fleet (see :data:`SOAK_FLEETS`): every key owns its spaces of random numbers."""
    (keys, spaces, per_space), key, secret, phone, shop, new_name = SOAK_FLEETS[provider]
    name = f"soak-{provider.removeprefix('alibaba_')}"
    doc: dict[str, Any] = {"name": name, "credentials": [], "spaces": []}
    serial = 0
    for k in range(1, keys + 1):
        ak = key.format(k=k)
        doc["credentials"].append({"access_key_id": ak, "access_key_secret": f"{secret}-{k}", "qps": QPS[provider]})
        for s in range(1, spaces + 1):
            numbers = []
            for _ in range(per_space):
                serial += 1
                numbers.append(_number(rng, phone.format(serial), shop.format(k=k, s=s), new_name=new_name))
            doc["spaces"].append({**_soak_space(provider, k, s), "access_key_id": ak, "numbers": numbers})
    return parse_scenario(doc, name)


def build_scenarios(seed: int) -> dict[str, Scenario]:
    """CAMS 5 keys x 60 spaces x 10, NxCloud 3 keys x 25 apps x 20, Kaleyra 2 SIDs x 5 WABAs x 50: 5,000 numbers."""
    rng = random.Random(seed)
    return {provider: _provider_scenario(rng, provider) for provider in SOAK_FLEETS}


# the auth and permission answers (``--exclude auth``)
AUTH_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "InvalidTimeStamp.Expired",
        "Ram.PermissionDeny",
        "1003",
        "1004",
        "1005",
        "RBC001",
        "WA401",
    }
)


def fault_plan(provider: str, share: float, exclude: frozenset[str] = frozenset()) -> list[Fault]:
    """Random faults whose probabilities add up to ``share``, spread by the weights above.

    ``exclude`` drops fault kinds (``oversize``), error codes (``WA401``) or ``auth`` (every auth and
    permission answer); the others share the same total.
    """
    codes = set(exclude) | (AUTH_CODES if "auth" in exclude else set())
    items = [(kind, params, w) for kind, params, w in COMMON_FAULTS if kind not in exclude]
    if "error" not in exclude:
        items += [("error", params, w) for params, w in ERROR_FAULTS[provider] if params["code"] not in codes]
    total = sum(w for _, _, w in items)
    return [Fault(kind=kind, probability=share * w / total, **params) for kind, params, w in items]


class _Warnings(logging.Handler):
    """What the emulators log at warning or above (a crash in a handler, a bad scenario)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()[:200]}")


def _report(emus: dict[str, ProviderEmulator], scenarios: dict[str, Scenario], on: float, off: float) -> dict:
    out: dict[str, Any] = {}
    for provider, emu in emus.items():
        records = emu.requests
        window = [r for r in records if on <= r.time < off]
        creds = []
        for cred in scenarios[provider].credentials:
            counts = emu.per_second_counts(cred.access_key_id)
            budget = QPS[provider]
            over = sorted(s for s, v in counts.items() if v > budget)
            details = []
            for second in over[:3]:
                # the arrivals of that second and the one before: bunched arrivals after a gap = a stalled sender
                near = sorted(
                    (r.time, r)
                    for r in records
                    if r.access_key_id == cred.access_key_id and second - 1 <= r.time < second + 1
                )
                marks = " ".join(
                    f"{(t - second) * 1000:+.0f}{'T' if r.throttled else ''}{'F' if r.fault else ''}" for t, r in near
                )
                details.append(
                    f"{cred.access_key_id} second {second} ({counts[second]} > {budget}), arrivals in ms "
                    f"from its start (T throttled by the emulator, F faulted): {marks}"
                )
            creds.append(
                {
                    "credential": cred.access_key_id,
                    "requests": sum(counts.values()),
                    "max": max(counts.values(), default=0),
                    "budget": budget,
                    "over": len(over),
                    "throttled": sum(1 for r in records if r.access_key_id == cred.access_key_id and r.throttled),
                    "details": details,
                }
            )
        out[provider] = {
            "total": len(records),
            "window": len(window),
            "full": len(records) >= MAX_RECORDS,
            "faults": collections.Counter(r.fault for r in window if r.fault),
            "credentials": creds,
        }
    return out


def serve(conn, seed: int, share: float, exclude: frozenset[str] = frozenset()) -> None:
    warnings = _Warnings()
    logging.getLogger("emulators").addHandler(warnings)
    logging.getLogger("emulators").propagate = False
    scenarios = build_scenarios(seed)
    emus = {p: CLASSES[p](scenarios[p], max_records=MAX_RECORDS, seed=seed + i) for i, p in enumerate(CLASSES)}
    for emu in emus.values():
        emu.start()
    conn.send(
        {
            p: {
                "url": emus[p].url,
                "numbers": scenarios[p].number_count(),
                "credentials": [
                    (
                        c.access_key_id,
                        c.access_key_secret,
                        [s.space_id for s in scenarios[p].spaces if s.access_key_id == c.access_key_id],
                    )
                    for c in scenarios[p].credentials
                ],
            }
            for p in emus
        }
    )
    try:
        while True:
            command, *args = conn.recv()
            if command == "faults_on":
                for provider, emu in emus.items():
                    for fault in fault_plan(provider, share, exclude):
                        emu.inject(fault)
                conn.send(time.time())
            elif command == "faults_off":
                off = time.time()
                expected: dict[str, tuple[str, str, dict[str, Any]]] = {}
                for provider, emu in emus.items():
                    emu.clear_faults(include_scenario=True)
                    for space in scenarios[provider].spaces:
                        for number in space.numbers:
                            state = emu.number_state(space, number.phone_number)
                            pinned = {attr: state.get(attr) for attr in COMPARED_ATTRIBUTES}
                            emu.set_number(space.space_id, number.phone_number, **pinned)
                            expected["+" + number.phone_number] = (provider, space.space_id, pinned)
                conn.send((off, expected))
            elif command == "count":
                conn.send(sum(len(emu.requests) for emu in emus.values()))
            elif command == "report":
                conn.send((_report(emus, scenarios, *args), list(warnings.records)))
            elif command == "stop":
                break
    finally:
        for emu in emus.values():
            emu.stop()
        conn.send("stopped")


def start(seed: int, share: float, exclude: frozenset[str] = frozenset()):
    """(process, pipe end, hello) with the emulators serving in a child process."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(child, seed, share, exclude), daemon=True, name="soak-emulators")
    proc.start()
    if not parent.poll(120):
        proc.kill()
        raise RuntimeError("the emulators did not start")
    return proc, parent, parent.recv()
