"""The credential's HTTP client under load: where answers are parsed, how many connections, no per-request imports,
no garbage left for the cyclic collector, answers handled in turns of the lane."""

from __future__ import annotations

import asyncio
import gc
import importlib.abc
import json
import sys
import threading
import weakref

import httpx

from emulators.cams import CamsEmulator
from emulators.scenario import generate_fleet
from exporter.lane import Steps, lane
from exporter.providers.cams.client import CamsClient
from exporter.providers.transport import OFFLOAD_BYTES, SPARE_CONNECTIONS, new_http_client
from exporter.ratelimit import TokenBucket

AK, SK = "transport-ak", "transport-sk"
ACTION = "QueryChatappPhoneNumbers"


def fleet(per_space: int) -> CamsEmulator:
    return CamsEmulator(
        generate_fleet(spaces=1, numbers_per_space=per_space, access_key_id=AK, secret=SK, qps=None, timelines=False)
    )


def cams_client(url: str, http: httpx.AsyncClient | None = None) -> CamsClient:
    return CamsClient(endpoint=url, access_key_id=AK, access_key_secret=SK, bucket=TokenBucket(1000), http=http)


def test_a_large_answer_is_parsed_in_a_worker_thread_while_the_loop_runs_and_a_small_one_on_the_loop():
    seen: dict[str, tuple[bool, bool, int]] = {}  # answer -> (on the loop's thread, the loop ran meanwhile, numbers)
    sizes: dict[str, int] = {}  # answer -> its size as compact JSON (at most its size on the wire)

    async def run(url: str, space_id: str, name: str) -> None:
        loop_thread = threading.get_ident()
        loop_ran = threading.Event()
        loop = asyncio.get_running_loop()

        def parser(body: dict) -> Steps[int]:  # a parse cut into steps, as the clients' are
            yield
            if threading.get_ident() != loop_thread:  # off the loop: it must keep running meanwhile
                loop.call_soon_threadsafe(loop_ran.set)
                loop_ran.wait(timeout=30)
            seen[name] = (threading.get_ident() == loop_thread, loop_ran.is_set(), len(body["PhoneNumbers"]))
            sizes[name] = len(json.dumps(body, separators=(",", ":")))
            return len(body["PhoneNumbers"])

        client = cams_client(url)
        try:
            await client.request(ACTION, {"CustSpaceId": space_id}, parser)
        finally:
            await client.aclose()

    with fleet(1000) as large, fleet(1) as small:
        asyncio.run(run(large.url, large.scenario.spaces[0].cust_space_id, "large"))
        asyncio.run(run(small.url, small.scenario.spaces[0].cust_space_id, "small"))
    assert sizes["large"] > OFFLOAD_BYTES > sizes["small"]
    assert seen == {"large": (False, True, 1000), "small": (True, False, 1)}


def test_the_pool_keeps_the_requests_in_flight_plus_a_spare_and_requests_beyond_them_queue_for_one():
    connections: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername")[1])
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.1)  # a provider's latency, so that requests overlap
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def run() -> list[int]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        # 0.25 s to connect and read, less than the last requests wait for a connection (4 x 0.1 s)
        http = new_http_client(0.25, in_flight=3)
        try:
            responses = await asyncio.gather(*(http.get(url) for _ in range(20)))
        finally:
            await http.aclose()
            server.close()
            await server.wait_closed()
        return [r.status_code for r in responses]

    assert asyncio.run(run()) == [200] * 20
    assert len(set(connections)) == 3 + SPARE_CONNECTIONS


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Records every module the import system searches for (a failed import searches again each time)."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(self, fullname, path, target=None):
        self.searched.append(fullname)
        return None  # the next finders do the search


def test_a_request_searches_for_no_module():
    """httpcore imports sniffio on every lock, event and shield of a request: it must be installed (pyproject)."""

    async def run(url: str, space_id: str) -> list[str]:
        client = cams_client(url)
        watcher = _ImportWatcher()
        try:
            await client.query_phone_numbers(space_id)  # the first request may import lazily
            sys.meta_path.insert(0, watcher)
            try:
                for _ in range(5):
                    await client.query_phone_numbers(space_id)
            finally:
                sys.meta_path.remove(watcher)
        finally:
            await client.aclose()
        return watcher.searched

    with fleet(1) as emu:
        assert asyncio.run(run(emu.url, emu.scenario.spaces[0].cust_space_id)) == []


def test_a_finished_exchange_leaves_no_garbage_for_the_cyclic_collector():
    """httpx links a response and its stream both ways; the client unlinks them once the answer is read, so a poll's
    responses are freed as they finish, not by a collection of hundreds of them at once (a 10 ms pause)."""
    responses: list[weakref.ref[httpx.Response]] = []

    async def keep(response: httpx.Response) -> None:
        responses.append(weakref.ref(response))

    async def run(url: str, space_id: str) -> int:
        http = new_http_client(10.0)
        http.event_hooks["response"] = [keep]
        client = cams_client(url, http)
        try:
            return len(await client.query_phone_numbers(space_id)) + len(await client.query_phone_numbers(space_id))
        finally:
            await client.aclose()
            await http.aclose()

    with fleet(3) as emu:
        gc.collect()
        gc.disable()  # only reference counting frees what the exchanges leave
        try:
            assert asyncio.run(run(emu.url, emu.scenario.spaces[0].cust_space_id)) == 6
            assert len(responses) == 2
            assert [ref() for ref in responses] == [None, None]
        finally:
            gc.enable()


def test_an_answer_s_bytes_wait_for_a_turn_of_the_lane_and_none_goes_while_a_request_is_answered():
    """The credential's client hands what a socket read returns to httpx only in a turn of the lane: while the exporter
    answers an HTTP request (a scrape), an arriving answer waits, and it is handled once the scrape is answered."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    async def run() -> tuple[int, bool, int]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        http = new_http_client(5)
        gate = lane()
        gate.max_pause = 60.0  # longer than the test: only request_done() lets the answer through
        try:
            gate.request_started()  # as the server's connection does when a scrape's headers arrived
            fetch = asyncio.ensure_future(http.get(url))
            while not len(gate):  # until the answer's first bytes were read and wait for their turn
                await asyncio.sleep(0.001)
            waiting, held = len(gate), not fetch.done()
            gate.request_done()
            response = await asyncio.wait_for(fetch, timeout=10)
            return waiting, held, response.status_code
        finally:
            await http.aclose()
            server.close()
            await server.wait_closed()

    assert asyncio.run(asyncio.wait_for(run(), timeout=10)) == (1, True, 200)
