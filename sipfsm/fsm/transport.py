"""The transport machine: one WebSocket flow to one of several servers (RFC 7118, RFC 5626 §4.4).

Theory of operation
-------------------
The UA has a list of WebSocket servers with weights.  The machine keeps at most one socket,
and each socket has a number; inputs about a socket that is no longer current (a late "opened"
from a socket we gave up on) are ignored, so a slow network cannot resurrect an old flow.

*Choosing a server.*  The highest weight wins, ties are broken at random, and servers marked
failed are skipped.

*First connection to a server fails* (it never opened, or did not open within the connect
timeout): the server is marked failed, ``disconnected`` is published with ``given_up=True``,
and the next server is tried at once.

*An established connection drops* (closed by the peer, a network error, or a keep-alive pong
that never came): ``disconnected`` is published at once (decision 4) and the same server is
reconnected at once; further attempts follow ``reconnection_timeout`` apart, up to
``max_reconnection`` attempts in all.  Then the server is marked failed and the next is tried.

*Every server failed:* recovery.  After a delay of ``k × recovery_min`` seconds, ``k`` a uniform
integer in [1, 2^n] for the n-th recovery in a row, **capped** at ``recovery_max`` (decision 3;
SIP.js wrapped back to the minimum), every server is unmarked and a new round begins.  A
successful connection resets n.

*Keep-alive* (decision 5): while connected, a CRLFCRLF ping every ``keep_alive_interval``
seconds (each interval drawn uniformly from 80–100 % of it); a CRLF pong must arrive within
``pong_timeout`` seconds, else ``keep_alive_timeout`` is published and the flow is treated as
dropped.  A CRLFCRLF ping from the server is answered with CRLF at any time.

Inputs are the public methods; each takes ``now``.  Outputs are :mod:`~sipfsm.fsm.base` effects.
Timers: ``connect`` (connect timeout), ``retry`` (reconnection and recovery delays),
``keep_alive`` (next ping) and ``pong`` (pong timeout).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidStateError
from ..events import (
    FrameReceived,
    FrameSent,
    KeepAliveTimeout,
    TransportConnected,
    TransportConnecting,
    TransportDisconnected,
    TransportStopped,
)
from .base import (
    SYSTEM_RANDOM,
    CancelTimer,
    Close,
    Emit,
    Model,
    Open,
    Send,
    StartTimer,
    TransitionLog,
    define,
)

__all__ = ["Server", "Transport", "TransportOptions", "TransportState"]

PING = "\r\n\r\n"
PONG = "\r\n"


class TransportState(enum.Enum):
    """Where the flow is."""

    STOPPED = "stopped"
    """Not started, or stopped by the user: no socket, no timer."""
    CONNECTING = "connecting"
    """A socket is being opened."""
    CONNECTED = "connected"
    """The socket is open: frames flow, keep-alive runs."""
    RECONNECT_WAIT = "reconnect_wait"
    """Waiting ``reconnection_timeout`` before the next attempt at the same server."""
    RECOVERY_WAIT = "recovery_wait"
    """Every server failed; waiting out the recovery backoff."""


S = TransportState
_ACTIVE = [S.CONNECTING, S.CONNECTED, S.RECONNECT_WAIT, S.RECOVERY_WAIT]

TABLE: list[dict[str, Any]] = [
    {"trigger": "start", "source": S.STOPPED, "dest": S.CONNECTING, "after": "_begin"},
    {"trigger": "stop", "source": _ACTIVE, "dest": S.STOPPED, "before": "_shut_down"},
    {"trigger": "opened", "source": S.CONNECTING, "dest": S.CONNECTED, "after": "_on_opened"},
    # A failed attempt: retry the same server later, try the next one now, or recover.
    {"trigger": "connect_failed", "source": S.CONNECTING, "dest": S.RECONNECT_WAIT,
     "conditions": "_may_retry", "after": "_wait_to_retry"},
    {"trigger": "connect_failed", "source": S.CONNECTING, "dest": S.CONNECTING,
     "conditions": "_has_other_server", "after": "_give_up_and_try_next"},
    {"trigger": "connect_failed", "source": S.CONNECTING, "dest": S.RECOVERY_WAIT,
     "after": "_give_up_and_recover"},
    {"trigger": "dropped", "source": S.CONNECTED, "dest": S.CONNECTING, "after": "_reconnect"},
    {"trigger": "pong_timeout", "source": S.CONNECTED, "dest": S.CONNECTING,
     "after": "_keep_alive_failed"},
    {"trigger": "retry", "source": S.RECONNECT_WAIT, "dest": S.CONNECTING,
     "after": "_retry_same"},
    {"trigger": "retry", "source": S.RECOVERY_WAIT, "dest": S.CONNECTING,
     "after": "_recover"},
    {"trigger": "keep_alive", "source": S.CONNECTED, "dest": None, "after": "_ping"},
    {"trigger": "pong", "source": S.CONNECTED, "dest": None, "after": "_pong"},
    {"trigger": "server_ping", "source": S.CONNECTED, "dest": None, "after": "_answer_ping"},
]
"""The transport machine.  ``dest: None`` is an internal transition (the state stays)."""


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """The knobs of the transport machine, in seconds (from :class:`sipfsm.UAConfig`)."""

    max_reconnection: int = 3
    reconnection_timeout: float = 4.0
    recovery_min: float = 2.0
    recovery_max: float = 30.0
    keep_alive_interval: float = 0.0
    pong_timeout: float = 10.0
    connect_timeout: float = 5.0


class ServerStatus(enum.Enum):
    """A server's standing in the selection (SIP.js's READY / DISCONNECTED / ERROR)."""

    READY = 0
    DISCONNECTED = 1
    FAILED = 2


@dataclass(slots=True)
class Server:
    """One WebSocket server: its URL, weight and standing."""

    url: str
    weight: int = 0
    status: ServerStatus = ServerStatus.READY


class Transport(Model):
    """One UA's WebSocket flow (sans-I/O).  Drive it with the input methods and carry out
    :meth:`take_effects` after each."""

    __slots__ = ("_attempt", "_current", "_pong_armed", "_random", "_recoveries", "_socket",
                 "options", "servers")

    state: TransportState

    def __init__(
        self,
        servers: Sequence[tuple[str, int]],
        options: TransportOptions | None = None,
        *,
        rng: random.Random | None = None,
        id: str = "transport",
        log: TransitionLog | None = None,
    ) -> None:
        super().__init__(id, log)
        if not servers:
            raise ValueError("a transport needs at least one server")
        self.servers = [Server(url, weight) for url, weight in servers]
        self.options = options or TransportOptions()
        self._random = rng or SYSTEM_RANDOM
        self._current: Server = self.servers[0]
        self._socket = 0  # number of the current socket; 0 = none
        self._attempt = 0  # reconnection attempt at the current server; 0 = first connect
        self._recoveries = 0  # recovery rounds in a row without a successful connection
        self._pong_armed = False

    # -- inputs --------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The URL of the server in use (or last used)."""
        return self._current.url

    @property
    def socket(self) -> int:
        """The number of the current socket (0 when there is none)."""
        return self._socket

    @property
    def connected(self) -> bool:
        """Whether frames can be sent now."""
        return self.state is S.CONNECTED

    def start(self, now: float) -> None:
        """Begin connecting.  Raises :class:`InvalidStateError` unless stopped."""
        if not self._fire("start", now=now):
            raise InvalidStateError(f"transport already started ({self.state.value})")

    def stop(self, now: float) -> None:
        """Close the flow and stay closed (a no-op when already stopped)."""
        self._fire("stop", now=now)

    def socket_opened(self, socket: int, now: float) -> None:
        """The WebSocket ``socket`` opened and accepted the ``sip`` subprotocol."""
        if socket == self._socket:
            self._fire("opened", now=now)

    def socket_failed(self, socket: int, reason: str, now: float) -> None:
        """The WebSocket ``socket`` could not be opened (refused, TLS, no ``sip`` subprotocol)."""
        if socket == self._socket:
            self._fire("connect_failed", now=now, reason=reason)

    def socket_closed(self, socket: int, code: int | None, reason: str, now: float) -> None:
        """The WebSocket ``socket`` closed (or failed) after it had opened."""
        if socket != self._socket:
            return
        if self.state is S.CONNECTED:
            self._fire("dropped", now=now, code=code, reason=reason)
        else:
            self._fire("connect_failed", now=now, reason=reason)

    def frame_received(self, socket: int, data: str, now: float) -> None:
        """A text frame arrived: keep-alive CRLFs are handled here, SIP is published."""
        if socket != self._socket or self.state is not S.CONNECTED:
            return
        if data == PONG:
            self._fire("pong", now=now)
        elif data == PING:
            self._fire("server_ping", now=now)
        elif data.strip("\r\n"):
            self.effects.append(Emit(FrameReceived(data=data, server=self._current.url)))

    def timer_fired(self, name: str, now: float) -> None:
        """Timer ``name`` (one this machine armed) reached its deadline."""
        if name == "connect":
            if self.state is S.CONNECTING:
                # The socket that never opened is abandoned (closed), then counts as failed.
                self.effects.append(Close(self._socket, 1000, "connect timeout"))
                self._fire("connect_failed", now=now, reason="connect timeout")
        elif name == "pong":
            self._pong_armed = False
            self._fire("pong_timeout", now=now)
        elif name in ("retry", "keep_alive"):
            self._fire(name, now=now)

    def send(self, data: str) -> None:
        """Send one frame.  Raises :class:`InvalidStateError` when not connected."""
        if self.state is not S.CONNECTED:
            raise InvalidStateError(f"cannot send while {self.state.value}")
        self.effects.append(Send(self._socket, data))
        self.effects.append(Emit(FrameSent(data=data, server=self._current.url)))

    # -- conditions ------------------------------------------------------------------------------

    def _may_retry(self, event: Any) -> bool:
        return 0 < self._attempt < self.options.max_reconnection

    def _has_other_server(self, event: Any) -> bool:
        return any(s is not self._current and s.status is not ServerStatus.FAILED
                   for s in self.servers)

    # -- actions ---------------------------------------------------------------------------------

    def _choose(self) -> Server:
        candidates = [s for s in self.servers if s.status is not ServerStatus.FAILED]
        best = max(s.weight for s in candidates)
        return self._random.choice([s for s in candidates if s.weight == best])

    def _open(self, now: float) -> None:
        self._socket += 1
        self.effects.append(Emit(TransportConnecting(server=self._current.url,
                                                     attempt=max(self._attempt, 1))))
        self.effects.append(Open(self._socket, self._current.url))
        self.effects.append(StartTimer("connect", now + self.options.connect_timeout))

    def _begin(self, event: Any) -> None:
        for server in self.servers:
            server.status = ServerStatus.READY
        self._recoveries = 0
        self._attempt = 0
        self._current = self._choose()
        self._open(event.kwargs["now"])

    def _shut_down(self, event: Any) -> None:
        was_open = self.state is S.CONNECTED
        if self.state in (S.CONNECTING, S.CONNECTED):
            self.effects.append(Close(self._socket, 1000, "stopped"))
        self._cancel_all()
        self._socket += 1  # anything the old socket still says is stale now
        if was_open:
            self.effects.append(Emit(TransportDisconnected(
                server=self._current.url, code=1000, reason="stopped", given_up=False)))
        self.effects.append(Emit(TransportStopped()))

    def _cancel_all(self) -> None:
        self._pong_armed = False
        self.effects.extend(CancelTimer(name) for name in ("connect", "retry", "keep_alive",
                                                           "pong"))

    def _on_opened(self, event: Any) -> None:
        now = event.kwargs["now"]
        self._current.status = ServerStatus.READY
        self._attempt = 0
        self._recoveries = 0
        self.effects.append(CancelTimer("connect"))
        self.effects.append(Emit(TransportConnected(server=self._current.url)))
        self._schedule_ping(now)

    def _schedule_ping(self, now: float) -> None:
        interval = self.options.keep_alive_interval
        if interval > 0:
            self.effects.append(StartTimer("keep_alive",
                                           now + interval * self._random.uniform(0.8, 1.0)))

    def _wait_to_retry(self, event: Any) -> None:
        self.effects.append(CancelTimer("connect"))
        self.effects.append(StartTimer("retry", event.kwargs["now"]
                                       + self.options.reconnection_timeout))

    def _give_up(self, reason: str) -> None:
        self.effects.append(CancelTimer("connect"))
        self._current.status = ServerStatus.FAILED
        self.effects.append(Emit(TransportDisconnected(
            server=self._current.url, code=None, reason=reason, given_up=True)))

    def _give_up_and_try_next(self, event: Any) -> None:
        self._give_up(event.kwargs["reason"])
        self._attempt = 0
        self._current = self._choose()
        self._open(event.kwargs["now"])

    def _give_up_and_recover(self, event: Any) -> None:
        self._give_up(event.kwargs["reason"])
        self.effects.append(StartTimer("retry", event.kwargs["now"] + self.recovery_delay()))
        self._recoveries += 1

    def recovery_delay(self) -> float:
        """The next recovery delay: ``k × min`` with k uniform in [1, 2^n], capped at max."""
        k = self._random.randint(1, 2 ** min(self._recoveries, 30))
        return min(k * self.options.recovery_min, self.options.recovery_max)

    def _lost(self, now: float, code: int | None, reason: str) -> None:
        """An established flow is gone: report it at once and reconnect to the same server."""
        self._cancel_all()
        self._current.status = ServerStatus.DISCONNECTED
        self.effects.append(Emit(TransportDisconnected(
            server=self._current.url, code=code, reason=reason, given_up=False)))
        self._attempt = 1
        self._open(now)

    def _reconnect(self, event: Any) -> None:
        kwargs = event.kwargs
        self._lost(kwargs["now"], kwargs.get("code"), kwargs.get("reason", ""))

    def _keep_alive_failed(self, event: Any) -> None:
        self.effects.append(Emit(KeepAliveTimeout(server=self._current.url)))
        self.effects.append(Close(self._socket, 1000, "keep-alive timeout"))
        self._lost(event.kwargs["now"], None, "keep-alive timeout")

    def _retry_same(self, event: Any) -> None:
        self._attempt += 1
        self._open(event.kwargs["now"])

    def _recover(self, event: Any) -> None:
        for server in self.servers:
            server.status = ServerStatus.READY
        self._attempt = 0
        self._current = self._choose()
        self._open(event.kwargs["now"])

    def _ping(self, event: Any) -> None:
        now = event.kwargs["now"]
        self.effects.append(Send(self._socket, PING))
        if not self._pong_armed:
            self._pong_armed = True
            self.effects.append(StartTimer("pong", now + self.options.pong_timeout))
        self._schedule_ping(now)

    def _pong(self, event: Any) -> None:
        if self._pong_armed:
            self._pong_armed = False
            self.effects.append(CancelTimer("pong"))

    def _answer_ping(self, event: Any) -> None:
        self.effects.append(Send(self._socket, PONG))


Transport.SPEC = define("transport", TransportState, TABLE, S.STOPPED)
