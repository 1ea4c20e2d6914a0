"""The public facade: :class:`UA`.

So far the UA owns its configuration, its event bus and its WebSocket transport: ``start()``
connects (with failover, recovery and keep-alive), ``stop()`` closes everything it started, and
``on`` / ``off`` / ``wait_for`` watch the events.  Transactions, registration and calls build on
this in the following issues.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl as ssl_module
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TextIO

import aiohttp

from .aio.ws import WebSocketRunner
from .bus import EventBus, EventView
from .config import UAConfig
from .events import BusEvent
from .fsm.transport import Transport, TransportOptions
from .logging import Logger, LoggerFactory

__all__ = ["UA"]


class UA:
    """A SIP user agent over WebSocket.

    ``UA(**params)`` takes every :class:`~sipfsm.UAConfig` parameter (or ``config=``);
    :meth:`from_sipjs` takes SIP.js's camelCase names.  With ``autostart`` (the default) the UA
    starts as soon as it exists inside a running event loop, or on ``async with``.

    ``ssl`` is an :class:`ssl.SSLContext` for ``wss://`` servers (verification is on by default);
    ``session`` an aiohttp session to share between many UAs; ``log_stream`` where the built-in
    log lines go (standard error by default).
    """

    def __init__(
        self,
        config: UAConfig | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
        session: aiohttp.ClientSession | None = None,
        log_stream: TextIO | None = None,
        **params: Any,
    ) -> None:
        if config is not None and params:
            raise TypeError("give either a UAConfig or parameters, not both")
        self.config = config if config is not None else UAConfig(**params)
        self.id = secrets.token_hex(4)
        self.bus = EventBus(on_error=self._listener_failed)
        self._events = EventView(self.bus)
        cfg = self.config
        self._logs = LoggerFactory(cfg.log, trace_sip=cfg.trace_sip, stream=log_stream,
                                   secrets=[cfg.password] if cfg.password else [])
        self.log = self._logs.get("ua", self.id)
        self.transport = Transport(
            [(server.ws_uri, server.weight) for server in cfg.ws_servers],
            TransportOptions(
                max_reconnection=cfg.ws_server_max_reconnection,
                reconnection_timeout=cfg.ws_server_reconnection_timeout,
                recovery_min=cfg.connection_recovery_min_interval,
                recovery_max=cfg.connection_recovery_max_interval,
                keep_alive_interval=cfg.keep_alive_interval,
            ),
            id=f"{self.id}.transport",
            log=self._logs.get("transport", self.id),
        )
        transport_log = self._logs.get("transport", self.id)
        self._runner = WebSocketRunner(
            self.transport, self.bus, session=session, ssl=ssl,
            on_trace=self._tracer(transport_log) if cfg.trace_sip else None)
        self._started = False
        if cfg.autostart:
            # Without a running loop yet, starting waits for ``async with`` or start().
            with contextlib.suppress(RuntimeError):
                self.start()

    @classmethod
    def from_sipjs(cls, mapping: Mapping[str, object], **kwargs: Any) -> UA:
        """A UA configured with SIP.js 0.10's camelCase parameter names."""
        return cls(UAConfig.from_sipjs(mapping), **kwargs)

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (needs a running event loop).  Starting twice does nothing."""
        if self._started:
            return
        self._runner.start()
        self._started = True
        self.log.log("started", servers=[s.ws_uri for s in self.config.ws_servers])

    async def stop(self) -> None:
        """Close the transport and everything it started; the UA can be started again."""
        if not self._started:
            return
        self._started = False
        await self._runner.stop()
        self.log.log("stopped")

    async def __aenter__(self) -> UA:
        self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.stop()

    def is_connected(self) -> bool:
        """Whether the WebSocket to a server is open now."""
        return self.transport.connected

    def send_frame(self, data: str) -> None:
        """Send one raw frame (a whole SIP message) on the WebSocket.  Raises
        :class:`~sipfsm.InvalidStateError` when not connected.  Low level: prefer the request
        methods that later issues add."""
        self._runner.send(data)

    # -- events ------------------------------------------------------------------------------------

    def on(self, name: str, handler: Callable[[Any], object]) -> None:
        """Call ``handler(event)`` every time event ``name`` happens (see :data:`UA_EVENTS`)."""
        self._events.on(name, handler)

    def off(self, name: str, handler: Callable[[Any], object]) -> bool:
        """Stop calling ``handler`` for ``name``."""
        return self._events.off(name, handler)

    async def wait_for(self, name: str, timeout: float | None = None,
                       predicate: Callable[[Any], bool] | None = None) -> Any:
        """Wait for the next event ``name`` and return it (TimeoutError after ``timeout`` s)."""
        return await self._events.wait_for(name, timeout, predicate)

    def _listener_failed(self, event: BusEvent, exc: BaseException) -> None:
        self.log.error("listener failed", event=type(event).__name__, error=repr(exc))

    @staticmethod
    def _tracer(log: Logger) -> Callable[[str, str, str], None]:
        def trace(direction: str, data: str, peer: str) -> None:
            log.trace("sent" if direction == "sent" else "received", data, peer=peer)

        return trace

    def __repr__(self) -> str:
        return f"<UA {self.id} {self.config.uri} {self.transport.state.value}>"
