"""Horizontal sharding: ``--shard N --total-shards M``.

Each replica polls only the accounts whose credential hashes to its shard.
The hash is taken over the *credential* (provider, endpoint host, credential
id), not the account name, so every account that signs with the same
credential lands in the same replica: one token bucket keeps owning the whole
QPS budget of that credential.  Two replicas polling one credential would each
believe they have the full budget and together exceed it.

The hash is FNV-1a (64 bit) followed by jump consistent hashing, as in
kube-state-metrics: raising ``--total-shards`` moves only about 1/M of the
credentials.
"""

from __future__ import annotations

import dataclasses

from exporter.config import Account, Config


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def shard_of(account: Account, total_shards: int) -> int:
    provider, host, credential_id = account.credential_key
    return jump_hash(fnv1a64("\x00".join((provider, host, credential_id)).encode()), total_shards)


def select(config: Config, shard: int, total_shards: int) -> Config:
    """The accounts of ``config`` that this shard polls."""
    if total_shards < 1 or not 0 <= shard < total_shards:
        raise ValueError(f"shard must be in 0..{total_shards - 1} and total shards at least 1")
    if total_shards == 1:
        return config
    mine = tuple(a for a in config.accounts if shard_of(a, total_shards) == shard)
    return dataclasses.replace(config, accounts=mine)
