"""CRC-32 of a long sequence of byte strings, updated cheaply when a few of them change.

The gzip trailer needs the CRC-32 of the whole uncompressed exposition.  Hashing
tens of megabytes on every poll would cost more than everything else an
incremental update does, so the CRC is kept in a segment tree: leaves are the
CRCs of the pieces, and a node combines its children with zlib's
``crc32_combine`` (the CRC of a concatenation from the CRCs of its parts).  A
change re-hashes only the changed pieces and the tree nodes above them.

Python's ``zlib`` module does not expose ``crc32_combine``; it is called from
the system's libz through ctypes.  Where libz cannot be loaded,
:data:`AVAILABLE` is False and callers fall back to hashing everything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import zlib


def _load():
    for name in (ctypes.util.find_library("z"), "libz.so.1", "libz.dylib"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        fn = getattr(lib, "crc32_combine64", None) or getattr(lib, "crc32_combine", None)
        if fn is None:
            continue
        fn.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64 if fn.__name__.endswith("64") else ctypes.c_long)
        fn.restype = ctypes.c_ulong
        if fn(zlib.crc32(b"ab"), zlib.crc32(b"cd"), 2) == zlib.crc32(b"abcd"):
            return fn
    return None


_combine = _load()
AVAILABLE = _combine is not None


def combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)``."""
    if len2 == 0:
        return crc1
    return _combine(crc1, crc2, len2)


class CrcTree:
    """CRC-32 and total length of an ordered list of pieces, with cheap point updates."""

    def __init__(self, pieces: list[bytes]):
        size = 1
        while size < max(1, len(pieces)):
            size *= 2
        self._size = size
        self._crc = [0] * (2 * size)
        self._len = [0] * (2 * size)
        for i, piece in enumerate(pieces):
            self._crc[size + i] = zlib.crc32(piece)
            self._len[size + i] = len(piece)
        for node in range(size - 1, 0, -1):
            self._pull(node)

    def __len__(self) -> int:
        return self._size

    def _pull(self, node: int) -> None:
        left, right = 2 * node, 2 * node + 1
        self._crc[node] = combine(self._crc[left], self._crc[right], self._len[right])
        self._len[node] = self._len[left] + self._len[right]

    def copy(self) -> "CrcTree":
        clone = CrcTree.__new__(CrcTree)
        clone._size, clone._crc, clone._len = self._size, list(self._crc), list(self._len)
        return clone

    def update(self, changes: dict[int, bytes]) -> None:
        """Replace the pieces at the given positions (which must exist)."""
        nodes = set()
        for i, piece in changes.items():
            leaf = self._size + i
            self._crc[leaf] = zlib.crc32(piece)
            self._len[leaf] = len(piece)
            nodes.add(leaf // 2)
        while nodes and 0 not in nodes:
            for node in nodes:
                self._pull(node)
            nodes = {node // 2 for node in nodes if node > 1}

    @property
    def crc(self) -> int:
        return self._crc[1]

    @property
    def length(self) -> int:
        return self._len[1]
