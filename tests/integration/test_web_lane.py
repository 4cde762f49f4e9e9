"""The HTTP server tells the poll's lane when it answers a request: poll steps wait until the answer is written,
and a client that goes away mid-request leaves no pause behind."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from exporter.lane import lane
from exporter.web import HttpServer


class Slow:
    """A web app whose one route answers when the test says so."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    def routes(self, server: HttpServer) -> list[web.AbstractRouteDef]:
        async def hold(request: web.Request) -> web.StreamResponse:
            self.entered.set()
            await self.release.wait()
            return web.Response(text="done")

        return [web.get("/hold", hold)]


async def _raw_request(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    return reader, writer


def test_poll_steps_wait_while_a_request_is_answered_and_go_once_its_answer_is_written():
    async def run() -> list[str]:
        app, gate, order = Slow(), lane(), []
        gate.max_pause = 60.0  # longer than the test: only the written answer ends the pause
        server = HttpServer(app, "127.0.0.1:0")
        await server.serve()
        try:
            reader, writer = await _raw_request(server.port)
            await asyncio.wait_for(app.entered.wait(), timeout=10)
            order.append(f"answering {gate.answering}")

            async def step() -> None:
                await gate.turn()
                order.append("poll step")

            stepping = asyncio.ensure_future(step())
            for _ in range(20):  # many passes of the loop: the step still waits
                await asyncio.sleep(0)
            order.append(f"step waiting: {not stepping.done()}")
            app.release.set()  # the answer is written, then the step goes
            await asyncio.wait_for(stepping, timeout=10)
            order.append(f"answering {gate.answering}")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            order.append(head.split(b"\r\n")[0].decode())
            writer.close()
        finally:
            await server.close()
        return order

    assert asyncio.run(run()) == ["answering 1", "step waiting: True", "poll step", "answering 0", "HTTP/1.1 200 OK"]


def test_a_client_that_leaves_mid_request_ends_the_pause():
    async def run() -> tuple[int, int]:
        app, gate = Slow(), lane()
        gate.max_pause = 60.0
        server = HttpServer(app, "127.0.0.1:0")
        await server.serve()
        try:
            _, writer = await _raw_request(server.port)
            await asyncio.wait_for(app.entered.wait(), timeout=10)
            during = gate.answering
            writer.transport.get_extra_info("socket").setsockopt(  # a reset, not a polite close
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            writer.close()
            step = asyncio.ensure_future(gate.turn())
            await asyncio.wait_for(step, timeout=10)  # the lost connection ended the pause
            return during, gate.answering
        finally:
            app.release.set()
            await server.close()

    assert asyncio.run(run()) == (1, 0)
