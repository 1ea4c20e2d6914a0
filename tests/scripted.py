"""A scripted SIP-over-WebSocket peer for tests: an aiohttp server on 127.0.0.1 that hands each
connection to the test, which sends crafted frames and reads what the UA sends."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import WSMsgType, web

from sipfsm.sip import Request, Response, parse


class Peer:
    """One accepted WebSocket, seen from the server side."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def receive(self, timeout: float = 5.0) -> Request | Response:
        """The next SIP message from the UA (keep-alive CRLFs skipped)."""
        while True:
            data = await asyncio.wait_for(self.inbox.get(), timeout)
            if data.strip("\r\n"):
                return parse(data)

    async def request(self, method: str | None = None, timeout: float = 5.0) -> Request:
        while True:
            message = await self.receive(timeout)
            if isinstance(message, Request) and (method is None or message.method == method):
                return message

    async def response(self, timeout: float = 5.0) -> Response:
        while True:
            message = await self.receive(timeout)
            if isinstance(message, Response):
                return message

    async def silence(self, seconds: float) -> list[str]:
        """Everything the UA sends during ``seconds`` (expected: nothing)."""
        await asyncio.sleep(seconds)
        got = []
        while not self.inbox.empty():
            got.append(self.inbox.get_nowait())
        return got

    async def close(self, code: int = 1000) -> None:
        await self.ws.close(code=code)


class ScriptedServer:
    """Accepts WebSockets with the ``sip`` subprotocol and queues them as :class:`Peer`."""

    def __init__(self) -> None:
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.clients: list[Any] = []  # UAs a test made, stopped by its fixture
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("sip",))
        await ws.prepare(request)
        peer = Peer(ws)
        await self.peers.put(peer)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await peer.inbox.put(message.data)
        peer.closed.set()
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

    async def peer(self, timeout: float = 5.0) -> Peer:
        return await asyncio.wait_for(self.peers.get(), timeout)


def request_text(method: str, uri: str, *, extra: str = "", body: str = "",
                 from_tag: str | None = None, to: str | None = None,
                 call_id: str | None = None, cseq: int = 1, branch: str | None = None,
                 content_length: int | None = None) -> str:
    """A request as the edge would deliver it to the UA."""
    length = len(body.encode()) if content_length is None else content_length
    return (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/WS 127.0.0.1:5066;branch={branch or 'z9hG4bK' + secrets.token_hex(6)}"
            "\r\n"
            "Max-Forwards: 69\r\n"
            f"From: <sip:bob@sipfsm.test>;tag={from_tag or secrets.token_hex(4)}\r\n"
            f"To: {to or '<' + uri + '>'}\r\n"
            f"Call-ID: {call_id or secrets.token_hex(8)}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"{extra}"
            f"Content-Length: {length}\r\n\r\n{body}")
