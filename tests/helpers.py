"""Shared helpers for the integration tests: configs for the emulator, scraping, parsing."""

from __future__ import annotations

import json
import time

import pytest

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config

SECRETS = {"SK_ONE": "sk-one-SECRET-VALUE", "SK_TWO": "sk-two-SECRET-VALUE"}


def config_yaml(endpoint: str, *, extra_one: str = "", extra_two: str = "", two: bool = True) -> str:
    text = f"""
accounts:
  - name: shop
    provider: alibaba_cams
    endpoint: {endpoint}
    credentials: {{access_key_id: ak-one, access_key_secret: "${{SK_ONE}}"}}
    poll_interval: 30s
    waba_poll_interval: 30s
    labels: {{team: growth}}
    spaces:
      - cust_space_id: cams-shop
      - cust_space_id: cams-support
{extra_one}
"""
    if two:
        text += f"""
  - name: other
    provider: alibaba_cams
    endpoint: {endpoint}
    credentials: {{access_key_id: ak-two, access_key_secret: "${{SK_TWO}}"}}
    poll_interval: 30s
    spaces:
      - cust_space_id: cams-other
{extra_two}
"""
    return text


def make_config(endpoint: str, **kw):
    return parse_config(config_yaml(endpoint, **kw), env=SECRETS)


def scrape(url: str, path: str = "/metrics", gzip: bool = False) -> httpx.Response:
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    return httpx.get(url + path, headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """All samples of an exposition, keyed by (name, frozenset of label pairs), via prometheus_client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(all_samples, name: str, **labels) -> float | None:
    want = set(labels.items())
    found = [v for (n, ls), v in all_samples.items() if n == name and want <= set(ls)]
    if not found:
        return None
    assert len(found) == 1, (name, labels, found)
    return found[0]


def active_state(all_samples, name: str, label: str, **labels) -> str:
    want = set(labels.items())
    states = [dict(ls)[label] for (n, ls), v in all_samples.items() if n == name and want <= set(ls) and v == 1]
    assert len(states) == 1, (name, labels, states)
    return states[0]


class FakeClock:
    """A wall clock the test sets: ``clock.t = ...``."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Resp:
    """A raw HTTP answer from an emulator; each provider's tests add their own accessors."""

    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Resp({self.status}, {self.body[:300]!r})"


def wait_for(predicate, what: str, timeout: float = 30.0, interval: float = 0.05):
    """Wait for a condition and return its truthy value; fail with ``what`` after ``timeout`` seconds.

    Bounded, and never asserts on how long it took (speed is for benchmarks).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


class OnLoop:
    """Calls an async provider (or client) from a synchronous test: each coroutine method runs to completion on
    ``loop``, one loop for the object's whole life (its HTTP client and budget belong to it); ``client`` is
    wrapped too.  Attributes are passed through."""

    def __init__(self, obj, loop):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name):
        import inspect

        value = getattr(self._obj, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self._loop.run_until_complete(value(*args, **kwargs))
        if name == "client":
            return OnLoop(value, self._loop)
        return value

    def __setattr__(self, name, value):
        setattr(self._obj, name, value)
