"""What a scrape is served: one immutable :class:`Exposition` per generation, and its bodies.

The gzip body is compressed once per generation, on the first gzip scrape
after a change (or before the generation is served, see
:meth:`exporter.store.Store.update`), in a worker thread (:data:`EXECUTOR`,
at the lowest CPU priority), never on the HTTP server's event loop, and kept; an uncompressed scrape writes
the rendered pieces joined 128 KiB at a time, so the body is never held twice
in memory.  The gzip body is one ordinary zlib stream (level
:data:`GZIP_LEVEL` by default) stopped with a sync flush; a scrape appends the
per-scrape process metrics by continuing a copy of that compressor, so zlib
writes the gzip header, trailer and CRC, and the answer is a single gzip
member.  Concurrent scrapers of a new generation share the one compression in
flight.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

GZIP_LEVEL = 1  # the whole exposition is compressed once per generation: speed wins (gzip -1 ratio)
#: the plain body is served (and fed to zlib) in pieces of about this size: joined on demand, and below
#: glibc's mmap threshold (the image sets 256 KiB), so a piece reuses heap memory instead of faulting in
#: fresh pages (1 MiB pieces cost three times the CPU of the sending)
PIECE_BYTES = 128 << 10

#: the CPU priority (nice value) of the threads that join and compress bodies: the lowest, so that the event
#: loop's thread, when it has a scrape to answer, is not kept waiting for a CPU by a compression (Linux)
BACKGROUND_NICE = 19


def _background() -> None:
    """Lower the calling worker thread's CPU priority (on Linux a thread has a nice value of its own)."""
    # not Linux, or refused: the thread keeps the process's priority
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


#: where bodies are joined and compressed: off the event loop, two at most at once, at the lowest priority
EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="exposition", initializer=_background)


def pieces(parts: Iterable[bytes], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """``parts`` concatenated and cut again into pieces of about ``size`` bytes (each join is short)."""
    batch: list[bytes] = []
    held = 0
    for part in parts:
        batch.append(part)
        held += len(part)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)


class GzipBody:
    """The gzip stream of one exposition, compressed once; :meth:`finish` ends it after a per-scrape tail."""

    def __init__(self, pieces: Iterable[bytes], level: int):
        started = time.perf_counter()
        c = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: a gzip header and trailer
        out = [c.compress(piece) for piece in pieces]
        out.append(c.flush(zlib.Z_SYNC_FLUSH))  # byte-aligned, the stream still open
        self.prefix = b"".join(out)
        self._open = c
        #: CPU-bound seconds this compression took (reported by bench.scrape)
        self.seconds = time.perf_counter() - started

    def finish(self, tail: bytes = b"") -> bytes:
        """The rest of the stream: ``tail`` compressed, then the gzip trailer (CRC-32 and size of everything)."""
        c = self._open.copy()  # the cached state is never advanced: every scrape continues its own copy
        return c.compress(tail) + c.flush(zlib.Z_FINISH)


class Exposition:
    """One immutable rendering of every account, and the bodies served from it (built once, on demand).

    ``runs``: the plain body is the byte strings of every run, one run after
    the other.  A run is shared with the store, which never changes it (it
    makes a new one instead): a generation is a list of references to runs,
    not a copy of every byte string.
    """

    def __init__(
        self,
        runs: list[Sequence[bytes]],
        generation: int,
        rendered_at: float,
        *,
        ready: bool = False,
        gzip_level: int = GZIP_LEVEL,
        length: int | None = None,
    ):
        self.runs = runs
        #: bytes of the plain body (``length``: already known to the caller, which saves summing every part)
        self.length = sum(map(len, self.parts_iter())) if length is None else length
        self.generation = generation
        self.rendered_at = rendered_at
        #: every account had finished its first poll when this was rendered (``/-/ready``)
        self.ready = ready
        self.gzip_level = gzip_level
        self._lock = threading.Lock()
        self._gzip: Future[GzipBody] | None = None
        self._plain: Future[bytes] | None = None

    @property
    def parts(self) -> list[bytes]:
        """Every byte string of the plain body, in order (a new list: tests, tools)."""
        return list(self.parts_iter())

    def parts_iter(self) -> Iterator[bytes]:
        return itertools.chain.from_iterable(self.runs)

    def pieces(self) -> Iterator[bytes]:
        """The plain body in pieces of about 128 KiB, each joined when it is asked for (never held twice)."""
        return pieces(self.parts_iter())

    def plain(self) -> Future[bytes]:
        """The plain body joined once per generation, on the first uncompressed scrape (in :data:`EXECUTOR`).

        Like the gzip body it is built lazily and shared by every uncompressed
        scrape of this generation, so such a scrape costs what serving static
        bytes costs.  Prometheus asks for gzip, so a fleet scraped only by
        Prometheus never pays the memory of this second copy of the body; a
        tool that scrapes uncompressed does, until the next change.
        """
        with self._lock:
            if self._plain is None:
                self._plain = EXECUTOR.submit(b"".join, self.parts_iter())
            return self._plain

    def gzip(self) -> Future[GzipBody]:
        """The gzip body, compressed at most once per generation (in :data:`EXECUTOR`); callers share it."""
        with self._lock:
            if self._gzip is None:
                self._gzip = EXECUTOR.submit(lambda: GzipBody(self.pieces(), self.gzip_level))
            return self._gzip

    # -- synchronous forms (tests, tools) ---------------------------------------

    @property
    def body(self) -> bytes:
        return b"".join(self.parts_iter())

    @property
    def gzipped(self) -> bytes:
        return self.gzip_with(b"")

    def gzip_with(self, tail: bytes = b"") -> bytes:
        """One gzip member holding the exposition followed by ``tail``."""
        gz = self.gzip().result()
        return gz.prefix + gz.finish(tail)
