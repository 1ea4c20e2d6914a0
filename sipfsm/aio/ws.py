"""The WebSocket adapter: carries out the transport machine's effects with aiohttp.

One :class:`WebSocketRunner` drives one :class:`~sipfsm.fsm.transport.Transport`.  Every input
(a socket opened, a frame, a close, a timer) is turned into a call on the machine with the loop's
monotonic time, and the effects the machine returns are carried out in order: sockets opened and
closed, frames written (one SIP message per text frame, RFC 7118 §5.2), timers armed, events
published on the bus.

Sockets are opened with the ``sip`` subprotocol (RFC 7118 §4.1); a server that does not accept
it is refused.  Binary frames are decoded as UTF-8 (decision 11).  A frame over
``max_frame_size`` octets is not read: aiohttp closes the socket (1009, message too big), which
the machine sees as any dropped connection (see :class:`~sipfsm.config.Limits`).  ``wss://``
certificates are verified unless the ``ssl`` given says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import Callable

import aiohttp
from aiohttp.streams import EMPTY_PAYLOAD
from multidict import CIMultiDict, CIMultiDictProxy

from ..bus import EventBus
from ..fsm.base import CancelTimer, Close, Effect, Emit, Open, Send, StartTimer
from ..fsm.transport import Transport
from .clock import Timers, TimerScope

__all__ = ["WebSocketRunner"]

SUBPROTOCOL = "sip"


class _Socket:
    """One WebSocket: its connect/read task, its outbound frames, and a writer task that
    exists only while there is something to write (an idle UA holds no writer, which matters
    with ten thousand of them in one process)."""

    __slots__ = ("closing", "outbox", "reader", "writer", "ws")

    def __init__(self) -> None:
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.outbox: list[str] = []
        self.closing = False


class WebSocketRunner:
    """Runs one transport machine over aiohttp WebSockets."""

    def __init__(
        self,
        transport: Transport,
        bus: EventBus,
        *,
        session: aiohttp.ClientSession | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        on_trace: Callable[[str, str, str], None] | None = None,
        max_frame_size: int = 1 << 20,
        timers: Callable[[], Timers] | None = None,
    ) -> None:
        self.transport = transport
        self.bus = bus
        self._session = session
        self._own_session = session is None
        self._ssl = ssl
        self._trace = on_trace
        self._max_frame = max_frame_size
        self._sockets: dict[int, _Socket] = {}
        self._clock = timers  # gives the UA's timer table; or we make our own at start()
        self._timers: TimerScope | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # -- the public face ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting (must be called with a running loop)."""
        if self._timers is None:
            table = self._clock() if self._clock is not None else Timers()
            self._timers = table.scope("ws", self._timer_fired)
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        self._input(self.transport.start)

    async def stop(self) -> None:
        """Stop the transport, close every socket and wait until nothing of ours runs."""
        if self._timers is not None:
            self._input(self.transport.stop)
        tasks = [t for s in self._sockets.values() for t in (s.reader, s.writer) if t]
        for socket in list(self._sockets.values()):
            await self._close_socket(socket, 1000, "stopped")
        await asyncio.gather(*self._closing, return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sockets.clear()
        if self._timers is not None:
            self._timers.cancel_all()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def send(self, data: str) -> None:
        """Send one frame (raises :class:`~sipfsm.InvalidStateError` when not connected)."""
        self.transport.send(data)
        self._run(self.transport.take_effects())

    def timers_armed(self) -> list[str]:
        """The names of the transport timers now armed (for tests and diagnostics)."""
        return self._timers.armed() if self._timers is not None else []

    def tasks(self) -> list[asyncio.Task[None]]:
        """The asyncio tasks this runner owns right now."""
        owned = [t for s in self._sockets.values() for t in (s.reader, s.writer) if t is not None]
        return [t for t in [*owned, *self._closing] if not t.done()]

    # -- inputs ------------------------------------------------------------------------------------

    def _now(self) -> float:
        assert self._timers is not None
        return self._timers.now()

    def _input(self, call: Callable[[float], None]) -> None:
        call(self._now())
        self._run(self.transport.take_effects())

    def _timer_fired(self, name: str) -> None:
        self._input(lambda now: self.transport.timer_fired(name, now))

    # -- effects -----------------------------------------------------------------------------------

    def _run(self, effects: list[Effect]) -> None:
        timers = self._timers
        assert timers is not None
        for effect in effects:
            if isinstance(effect, Send):
                socket = self._sockets.get(effect.socket)
                if socket is not None and socket.ws is not None and not socket.closing:
                    socket.outbox.append(effect.data)
                    if socket.writer is None or socket.writer.done():
                        socket.writer = asyncio.create_task(self._write(socket, socket.ws))
            elif isinstance(effect, Emit):
                self.bus.publish(effect.event)
            elif isinstance(effect, StartTimer):
                timers.start(effect.name, effect.at)
            elif isinstance(effect, CancelTimer):
                timers.cancel(effect.name)
            elif isinstance(effect, Open):
                socket = _Socket()
                self._sockets[effect.socket] = socket
                socket.reader = asyncio.create_task(self._connect(effect.socket, effect.url))
            elif isinstance(effect, Close):
                closing = self._sockets.pop(effect.socket, None)
                if closing is not None:
                    task = asyncio.create_task(
                        self._close_socket(closing, effect.code, effect.reason))
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    async def _close_socket(self, socket: _Socket, code: int, reason: str) -> None:
        socket.closing = True
        if socket.writer is not None and not socket.writer.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(socket.writer), 1.0)
        if socket.ws is not None and not socket.ws.closed:
            with contextlib.suppress(Exception):
                await socket.ws.close(code=code, message=reason.encode())
        elif socket.reader is not None and socket.reader is not asyncio.current_task():
            socket.reader.cancel()

    # -- one socket's life -------------------------------------------------------------------------

    async def _connect(self, number: int, url: str) -> None:
        socket = self._sockets[number]
        assert self._session is not None
        try:
            ws = await self._session.ws_connect(
                url, protocols=(SUBPROTOCOL,), autoping=True, max_msg_size=self._max_frame,
                ssl=self._ssl if self._ssl is not None else True,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every connect failure is an input, whatever its kind
            reason = _describe(exc)
            self._input(lambda now: self.transport.socket_failed(number, reason, now))
            return
        if ws.protocol != SUBPROTOCOL:
            await ws.close(code=1002, message=b"the sip subprotocol is required")
            self._input(lambda now: self.transport.socket_failed(
                number, "the server did not accept the 'sip' subprotocol", now))
            return
        _forget_handshake(ws)
        socket.ws = ws
        if self._sockets.get(number) is not socket:  # abandoned while connecting
            await ws.close()
            return
        self._input(lambda now: self.transport.socket_opened(number, now))
        # The read loop is written out here, not in a helper or an ``async for``: each of those
        # is one more suspended coroutine frame per connection, for as long as it lives.
        reason = "closed by the server"
        try:
            while True:
                message = await ws.receive()
                kind = message.type
                if kind is aiohttp.WSMsgType.TEXT:
                    data: str = message.data
                elif kind is aiohttp.WSMsgType.BINARY:
                    data = bytes(message.data).decode("utf-8", "replace")
                else:
                    if kind is aiohttp.WSMsgType.ERROR:
                        reason = _describe(ws.exception() or Exception("WebSocket error"))
                    break
                if self._trace is not None:
                    self._trace("received", data, self.transport.server)
                self._frame(number, data)
                # Not kept alive by this frame while it waits for the next one (the last
                # message of an idle UA would otherwise live as long as its connection).
                del message, data
        except (aiohttp.ClientError, OSError) as exc:
            reason = _describe(exc)
        code = ws.close_code
        socket.closing = True
        socket.outbox.clear()
        self._sockets.pop(number, None)
        self._input(lambda now: self.transport.socket_closed(number, code, reason, now))

    def _frame(self, number: int, data: str) -> None:
        self._input(lambda now: self.transport.frame_received(number, data, now))

    async def _write(self, socket: _Socket, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Write the queued frames in order, then end (the next send starts a new writer)."""
        outbox = socket.outbox
        try:
            while outbox:
                data = outbox.pop(0)  # a few frames at most: a list is lighter than a deque
                if self._trace is not None:
                    self._trace("sent", data, self.transport.server)
                try:
                    await ws.send_str(data)
                except (aiohttp.ClientError, ConnectionError, RuntimeError):
                    outbox.clear()
                    return  # the reader sees the close and reports it
        finally:
            if socket.writer is asyncio.current_task():
                socket.writer = None  # a finished task and its frame are not kept


def _forget_handshake(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Drop what aiohttp keeps of the HTTP upgrade (the 101's headers, the request's), which
    nothing reads once the WebSocket is open: about 4 KiB per connection, which is a sixth of
    an idle UA.  Attributes that a future aiohttp lacks are simply skipped."""
    # The connection's HTTP response parser is never fed again once the 101 has switched the
    # protocol to WebSocket frames (aiohttp routes every byte to the frame parser), yet it holds
    # its buffers for the connection's life: about 2.5 KiB.
    connection = getattr(ws, "_conn", None)
    protocol = getattr(connection, "protocol", None)
    if protocol is not None and getattr(protocol, "_upgraded", False):
        with contextlib.suppress(AttributeError, TypeError):
            protocol._parser = None
    response = getattr(ws, "_response", None)
    if response is None:
        return
    empty_headers = CIMultiDictProxy(CIMultiDict[str]())
    for name, empty in (("_raw_headers", ()), ("_headers", empty_headers), ("_cache", {}),
                        ("_history", ()), ("_request_info", None), ("_traces", []),
                        ("content", EMPTY_PAYLOAD)):
        if hasattr(response, name):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(response, name, empty)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
