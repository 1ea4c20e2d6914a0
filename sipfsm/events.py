"""Every event that travels on the bus: small, frozen, keyword-only dataclasses.

The machines never call each other; they publish these and subscribe to them.  The user-facing
names (``ua.on("connected", …)``) map onto the classes through :data:`UA_EVENTS`.  Each field is
documented where it is declared, so ``help(sipfsm.events.TransportDisconnected)`` is the
reference.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "UA_EVENTS",
    "BusEvent",
    "FrameReceived",
    "FrameSent",
    "KeepAliveTimeout",
    "TransportConnected",
    "TransportConnecting",
    "TransportDisconnected",
    "TransportStopped",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BusEvent:
    """Base class of every bus event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConnecting(BusEvent):
    """A WebSocket connection attempt begins (user event ``connecting``)."""

    server: str
    """The ``ws://`` or ``wss://`` URL being connected to."""
    attempt: int
    """1 for a first connection to this server; n for the n-th reconnection after a drop."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConnected(BusEvent):
    """The WebSocket is open and the server accepted the ``sip`` subprotocol (``connected``)."""

    server: str
    """The server's URL."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportDisconnected(BusEvent):
    """A connection ended or a server was given up (user event ``disconnected``).

    Published at the moment an established connection drops (decision 4), when a first connect
    to a server fails, and when reconnection to a server is abandoned.
    """

    server: str
    """The server's URL."""
    code: int | None
    """The WebSocket close code, when the socket had opened and one was received."""
    reason: str
    """Why, in words: the close reason, the connect error, "keep-alive timeout", "stopped"…"""
    given_up: bool
    """True when this server is now marked failed and the next one will be tried."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportStopped(BusEvent):
    """The transport was stopped by the user and will not reconnect."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeepAliveTimeout(BusEvent):
    """No CRLF pong arrived in time after a CRLFCRLF ping (``keep_alive_timeout``); the
    connection is treated as dead and re-established (decision 5)."""

    server: str
    """The server's URL."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameReceived(BusEvent):
    """A SIP message frame arrived (keep-alive CRLFs are not published)."""

    data: str
    """The frame's text (binary frames decoded as UTF-8)."""
    server: str
    """The server it came from."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameSent(BusEvent):
    """A frame was handed to the WebSocket."""

    data: str
    """The frame's text."""
    server: str
    """The server it went to."""


UA_EVENTS: dict[str, type[BusEvent]] = {
    "connecting": TransportConnecting,
    "connected": TransportConnected,
    "disconnected": TransportDisconnected,
    "keep_alive_timeout": KeepAliveTimeout,
    "transport_stopped": TransportStopped,
}
"""User-facing event names (SIP.js's, in snake_case) and the bus events behind them."""
