"""The WebSocket adapter against scripted aiohttp servers on 127.0.0.1: what a real SIP edge
rarely does on purpose (refuse the subprotocol, hang, never answer a ping, send binary)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import WSMsgType, web

from sipfsm.aio.ws import WebSocketRunner
from sipfsm.bus import EventBus
from sipfsm.events import (
    BusEvent,
    FrameReceived,
    KeepAliveTimeout,
    TransportConnected,
    TransportDisconnected,
)
from sipfsm.fsm.transport import Transport, TransportOptions, TransportState

Script = Callable[[web.WebSocketResponse], Awaitable[None]]


class Server:
    """An aiohttp WebSocket server whose behaviour per connection is a script."""

    def __init__(self, script: Script, protocols: tuple[str, ...] = ("sip",)) -> None:
        self.script = script
        self.protocols = protocols
        self.connections = 0
        self.received: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=self.protocols)
        await ws.prepare(request)
        self.connections += 1
        await self.script(ws)
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def record(self, ws: web.WebSocketResponse) -> None:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                self.received.append(message.data)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def make(script: Script | None = None, **kwargs: tuple[str, ...]) -> Server:
        server = Server(script or (lambda ws: asyncio.sleep(0)), **kwargs)
        if script is None:
            server.script = server.record
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def runner_for(*urls: str, **options: float) -> tuple[WebSocketRunner, list[BusEvent]]:
    bus = EventBus()
    events: list[BusEvent] = []
    bus.subscribe(BusEvent, events.append)
    transport = Transport([(url, 0) for url in urls],
                          TransportOptions(**options))  # type: ignore[arg-type]
    return WebSocketRunner(transport, bus), events


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_a_server_without_the_sip_subprotocol_is_refused(serve: Callable[..., Awaitable[
        Server]]) -> None:
    server = await serve(protocols=("chat",))
    runner, events = runner_for(server.url, recovery_min=5, recovery_max=5)
    runner.start()
    await until(lambda: any(isinstance(e, TransportDisconnected) for e in events))
    (refused,) = [e for e in events if isinstance(e, TransportDisconnected)]
    assert refused.given_up and "'sip' subprotocol" in refused.reason
    assert runner.transport.state is TransportState.RECOVERY_WAIT
    await runner.stop()
    assert runner.tasks() == [] and runner.timers_armed() == []


async def test_missing_pong_reconnects(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve()  # records frames, never answers
    runner, events = runner_for(server.url, keep_alive_interval=0.2, pong_timeout=0.3)
    runner.start()
    await until(lambda: sum(isinstance(e, TransportConnected) for e in events) >= 2)
    assert any(isinstance(e, KeepAliveTimeout) for e in events)
    lost = [e for e in events if isinstance(e, TransportDisconnected)]
    assert lost[0].reason == "keep-alive timeout" and not lost[0].given_up
    assert "\r\n\r\n" in server.received
    assert server.connections >= 2
    await runner.stop()
    assert runner.tasks() == []


async def test_server_pings_are_answered_and_binary_frames_decoded(
        serve: Callable[..., Awaitable[Server]]) -> None:
    answers: list[str] = []

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_str("\r\n\r\n")
        await ws.send_bytes("MESSAGE sip:ü@x SIP/2.0\r\n\r\n".encode())
        async for message in ws:
            answers.append(message.data)

    server = await serve(script)
    runner, events = runner_for(server.url)
    runner.start()
    await until(lambda: bool(answers) and any(isinstance(e, FrameReceived) for e in events))
    assert answers[0] == "\r\n"
    (frame,) = [e for e in events if isinstance(e, FrameReceived)]
    assert frame.data == "MESSAGE sip:ü@x SIP/2.0\r\n\r\n"
    await runner.stop()


async def test_a_hung_handshake_times_out(unused_tcp_port: int) -> None:
    hung: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)  # read nothing, answer nothing

    tcp = await asyncio.start_server(accept, "127.0.0.1", unused_tcp_port)
    runner, events = runner_for(f"ws://127.0.0.1:{unused_tcp_port}/", connect_timeout=0.3,
                                recovery_min=5, recovery_max=5)
    runner.start()
    await until(lambda: any(isinstance(e, TransportDisconnected) for e in events))
    (gone,) = [e for e in events if isinstance(e, TransportDisconnected)]
    assert gone.reason == "connect timeout" and gone.given_up
    await runner.stop()
    assert runner.tasks() == []
    for writer in hung:
        writer.close()
    tcp.close()
    await tcp.wait_closed()


async def test_drop_by_the_server_is_reported_with_its_code(
        serve: Callable[..., Awaitable[Server]]) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        if len(closers) == 0:
            closers.append(ws)
            await ws.close(code=4001, message=b"go away")
        else:
            async for _ in ws:
                pass

    closers: list[web.WebSocketResponse] = []
    server = await serve(script)
    runner, events = runner_for(server.url)
    runner.start()
    await until(lambda: sum(isinstance(e, TransportConnected) for e in events) >= 2)
    lost = [e for e in events if isinstance(e, TransportDisconnected)]
    assert lost[0].code == 4001 and not lost[0].given_up
    await runner.stop()
