"""The NxCloud signer reproduces every NxCloud vector, including NxCloud's own worked example."""

import json
from pathlib import Path

import pytest

from exporter.providers.nxcloud import signer

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures" / "signing-vectors.json").read_text())["nxcloud_md5"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_vectors(v):
    body = v["body"].encode()
    if "expected_string_to_sign" in v:
        got = signer.string_to_sign(v["accessKey"], v["action"], v["bizType"], v["ts"], body, v["accessSecret"])
        assert got == v["expected_string_to_sign"].encode()
    assert (
        signer.sign(v["accessKey"], v["action"], v["bizType"], v["ts"], body, v["accessSecret"]) == v["expected_sign"]
    )


def test_serialize_is_compact_utf8_and_matches_a_vector():
    v = next(x for x in VECTORS if x["name"] == "getPhone for every number of the app")
    body = signer.serialize({"appkey": "jh42xxxd434", "messaging_product": "whatsapp"})
    assert body == v["body"].encode()
    assert signer.serialize({"name": "牛小信"}) == '{"name":"牛小信"}'.encode()


def test_the_signature_covers_the_exact_bytes():
    a = signer.sign("k", "getPhone", "2", "1", b'{"a":1,"b":2}', "s")
    b = signer.sign("k", "getPhone", "2", "1", b'{"b":2,"a":1}', "s")
    assert a != b
