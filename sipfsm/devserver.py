"""An embedded SIP-over-WebSocket registrar and proxy, for ``sipfsm demo`` and fast tests.

Real deployments put Kamailio (or another SIP edge) in front of the UAs; this module exists so
that the demo and the quick integration tests need no setup.  It behaves, for a UA, like the
Kamailio of ``tests/kamailio/kamailio.cfg``: same domain, same digest realm, same users, bindings
that die with their connection, Record-Route on dialog-creating requests.

Theory of operation
-------------------
**Transport (RFC 7118).**  aiohttp's web server accepts WebSocket upgrades on ``/`` only when the
client offers the ``sip`` subprotocol; anything else gets HTTP 400 and no upgrade.  Every frame
(text or binary, UTF-8) carries one SIP message.  A frame that is exactly CRLFCRLF is a keep-alive
ping and is answered with CRLF (RFC 5626 §4.4.1); other frames of nothing but CR and LF are
ignored.  Each connection has an outbound queue drained by its own writer task, so the SIP logic
below never awaits: a frame is handled to completion, synchronously, before the next one is read.

**Every request from a client** first goes through :func:`~sipfsm.sip.check_request` (a malformed
one gets 400; a frame that does not parse at all gets a best-effort 400 when its start line and
the five headers a response copies can be found, and is otherwise dropped).  Then, as Kamailio's
``force_rport()`` does, the top Via gets ``received`` and ``rport`` naming the WebSocket peer;
that pair identifies the connection, so a 2xx that a UAS retransmits after the proxy forgot its
transaction can still be routed back by its Via (RFC 6026).

**Registrar (RFC 3261 §10.3).**  Steps in the RFC's order: the Request-URI and To must be in our
domain (403), Require must hold only ``outbound`` (420), digest authentication (401 with a fresh
MD5/qop=auth nonce; ``stale=true`` when the digest was right but the nonce is expired or unknown;
the nonce count must grow), the authenticated user must be the To user (403), then the contacts.
A contact's lifetime is its ``expires`` parameter, else the Expires header, else 3600 s; below
``min_expires`` the whole request fails with 423 and ``Min-Expires``; above ``max_expires`` it is
clamped.  A contact matches an existing binding by URI (§19.1.4 comparison) or, RFC 5626 §6, by
``+sip.instance`` and ``reg-id``; a match from the same Call-ID needs a higher CSeq.  ``Contact:
*`` with ``Expires: 0`` removes every binding.  The 200 lists every binding of the AoR with the
seconds it has left.  A binding remembers the connection its REGISTER came on: contact hosts
are ``*.invalid`` names, so that connection *is* the route to the UA (Kamailio's received/alias).
Bindings end when they expire (checked whenever the location service is read, against the
injectable ``clock``) and when their connection closes (Kamailio's ``handle_lost_tcp``).

**Proxy (RFC 3261 §16), transaction-stateful.**  An initial request for ``user@<our domain or
127.0.0.1>`` is forked, in parallel, to *every* live binding of that user (useful for testing
forked INVITEs).  Each copy gets Max-Forwards decremented (483 at 0), our
``Record-Route: <sip:127.0.0.1:PORT;transport=ws;lr>`` when the method creates a dialog (INVITE,
SUBSCRIBE, REFER, NOTIFY), its Request-URI rewritten to the binding's contact, and our Via on top
with a fresh ``z9hG4bK`` branch.  A server transaction (keyed by the caller's branch, sent-by,
Call-ID, CSeq number and method) owns one client branch per copy.  Responses pop our Via and go
back to the connection the request came on: 101–199 at once (100 is hop-by-hop; we send our
own 100 Trying to an INVITE), every 2xx at once, and the best non-2xx (§16.7 step 6: 6xx first,
else the lowest class; 503 becomes 500) once every branch is final.  A 2xx or 6xx to an INVITE
cancels the branches still pending; a non-2xx on an INVITE branch is ACKed by us (§17.1.1.3) and
the caller's matching ACK is absorbed.  Timer C (INVITE: the branch is also cancelled) and
Timer F (non-INVITE) end branches that never answer with 408; a branch whose connection closes
ends with 480, as Kamailio's failure route turns its 477 into 480.  An INVITE transaction is kept
``LINGER`` seconds after its final response, for that ACK and for 2xx retransmissions.

**In-dialog requests** (a To tag): our own Route entries are popped, and the request goes to the
connection of the next hop (a remaining Route, else the Request-URI), found by the Contact URIs
seen on each connection (in requests and responses; REGISTERed contacts count through their
bindings).  A Request-URI that is an AoR of our domain is looked up in the location service
instead.  ACK for a 2xx is forwarded statelessly; BYE, re-INVITE, PRACK, UPDATE, INFO, NOTIFY,
REFER… get a transaction like any other request.  An unknown next hop gets 404 (an ACK is
dropped).  **CANCEL** matching a pending INVITE gets 200 and a CANCEL on every unfinished branch
(sent at once: over one ordered WebSocket the INVITE always arrives first, which is the race
§9.1's wait-for-a-provisional rule guards against); the 487 comes back from the callee.  A
CANCEL matching nothing gets 481.

**Choices.**  A user that is not in ``users`` and has no binding gets 404; a known user with no
binding gets 480 (Kamailio answers 404 for both).  A request with no user part in the
Request-URI is for the server: OPTIONS gets 200 (so does OPTIONS to a host of ours for a user
that is neither known nor registered), anything else 484, as Kamailio does.  A REGISTER goes to
the registrar even with a To tag.  Only REGISTER is authenticated unless ``proxy_auth=True``,
which challenges (407) every out-of-dialog request but ACK, CANCEL and PRACK whose From is in
our domain, and requires the authenticated user to be the From user (Kamailio's
``WITH_PROXY_AUTH``).

**Not implemented.**  Path, GRUU, Flow-Timer, merging the 401/407 challenges of several
branches, TLS, any next hop that is not a connected client (there are no outgoing
connections), loop detection beyond Max-Forwards, and any protection against a client that
claims another's Contact (in-dialog routing trusts the Contacts it sees) or never reads (its
outbound queue is unbounded): this is a development tool for loopback use.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Final, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from .errors import ConfigurationError, InvalidStateError, ParseError
from .sip import (
    URI,
    Headers,
    Message,
    NameAddr,
    Request,
    Response,
    Via,
    check_request,
    digest,
    parse,
    parse_uri,
)
from .sip.grammar import is_token
from .sip.headers import canonical_name, header_key, parse_name_addrs, parse_via

__all__ = ["DEFAULT_USERS", "SUBPROTOCOL", "SUPPORTED", "Binding", "DevServer"]

SUBPROTOCOL: Final = "sip"
"""The WebSocket subprotocol a client must offer (RFC 7118 §4.1)."""

DEFAULT_USERS: Final[Mapping[str, str]] = MappingProxyType(
    {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
)
"""The accounts a :class:`DevServer` has when none are given (the Kamailio fixture's)."""

SUPPORTED: Final = ("outbound",)
"""Option tags the server itself implements (a Require of anything else gets 420)."""

_SERVER_NAME: Final = "sipfsm-devserver"
_DEFAULT_EXPIRES: Final = 3600
_DIALOG_CREATING: Final = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
_NO_PROXY_AUTH: Final = frozenset({"ACK", "CANCEL", "PRACK"})
_ALLOW: Final = ("INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY, SUBSCRIBE, REFER, PRACK, "
                 "UPDATE, INFO, REGISTER")
_PING: Final = "\r\n\r\n"
_PONG: Final = "\r\n"
# The headers every response copies from its request (RFC 3261 §8.2.6.2).
_COPIED: Final = ("Via", "From", "To", "Call-ID", "CSeq")
_REASONS: Final = {
    100: "Trying", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 420: "Bad Extension", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops", 484: "Address Incomplete", 487: "Request Terminated",
    500: "Server Internal Error", 505: "Version Not Supported",
}
# Contact URIs remembered per connection for in-dialog routing; bounded, they come from peers.
_MAX_LEARNED_CONTACTS: Final = 64
_MAX_BINDINGS_PER_AOR: Final = 32

TxKey = tuple[str, str, str, int, str]


class _AnyTag(Collection[str]):
    """Makes :func:`check_request` skip its Require check: for a proxied request Require is the
    callee's business, and the server's own requests check it themselves."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_ANY_TAG: Final = _AnyTag()


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One contact of an address of record in the location service (RFC 3261 §10.3).

    ``expires_at`` is on the server's ``clock``; ``connection`` is the id of the WebSocket the
    REGISTER came on, which is where requests for this contact are delivered.
    """

    user: str
    """The AoR's user part (the AoR is ``sip:<user>@<domain>``)."""
    contact: NameAddr
    """The Contact as registered, without its ``expires`` parameter."""
    expires_at: float
    """When the binding ends, on the server's clock."""
    connection: int
    """Id of the WebSocket connection the binding was registered on."""
    instance: str | None = None
    """The ``+sip.instance`` Contact parameter, unquoted (RFC 5626 §4.1)."""
    reg_id: int | None = None
    """The ``reg-id`` Contact parameter (RFC 5626 §4.2)."""
    call_id: str = ""
    """Call-ID of the REGISTER that last refreshed the binding."""
    cseq: int = 0
    """CSeq number of that REGISTER."""

    @property
    def uri(self) -> URI:
        """The contact URI."""
        return self.contact.uri

    def expires_in(self, now: float) -> int:
        """Whole seconds left at ``now`` (rounded to the nearest, never negative): a binding
        made while its REGISTER was being handled reads what was granted, not a second more."""
        return max(0, round(self.expires_at - now))


class _Connection:
    """One accepted WebSocket: its peer address, outbound queue and writer task."""

    __slots__ = ("contacts", "id", "open", "outbox", "peer", "writer", "ws")

    def __init__(self, conn_id: int, ws: web.WebSocketResponse, peer: tuple[str, int] | None):
        self.id = conn_id
        self.ws = ws
        self.peer = peer
        self.open = True
        self.outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        # Contact URI keys learned on this connection, oldest first (an ordered set).
        self.contacts: dict[tuple[str | None, str, int | None], None] = {}


@dataclass(eq=False, slots=True)
class _Nonce:
    issued_at: float
    last_nc: int = 0


@dataclass(eq=False, slots=True)
class _Branch:
    """A client transaction of the proxy: one forwarded copy of a request (RFC 3261 §16.6)."""

    id: str
    tx: _ServerTx
    conn: int
    request: Request
    status: int = 0
    final: bool = False
    cancelled: bool = False


@dataclass(eq=False, slots=True)
class _ServerTx:
    """The response context of one proxied request (RFC 3261 §16.7)."""

    key: TxKey
    conn: int
    request: Request
    branches: list[_Branch] = field(default_factory=list)
    final: int = 0
    best: Response | None = None
    timer: asyncio.TimerHandle | None = None

    @property
    def invite(self) -> bool:
        return self.request.method == "INVITE"


def _new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def _tx_key(request: Request, method: str) -> TxKey:
    via = request.top_via
    cseq = request.cseq
    if via is None or cseq is None:
        raise ParseError("missing Via or CSeq")
    return (via.branch or "", via.sent_by.lower(), request.call_id or "", cseq.seq, method)


def _replace_first(headers: Headers, name: str, items: Sequence[object],
                   replacement: object | None = None) -> None:
    """Rewrite the first line of header ``name`` whose parsed values are ``items``: its first
    value is dropped (or replaced), every other line is kept exactly as received."""
    lines = headers.get_all(name)
    rest = [*([] if replacement is None else [replacement]), *items[1:]]
    first = ", ".join(str(item) for item in rest)
    new_lines = ([first] if first else []) + lines[1:]
    headers.remove(name)
    for line in reversed(new_lines):
        headers.add(name, line, first=True)


def _pop_via(message: Message) -> None:
    lines = message.headers.get_all("Via")
    if lines:
        _replace_first(message.headers, "Via", parse_via([lines[0]]))


def _copy_headers(source: Message, target: Message, *names: str) -> None:
    for name in names:
        for value in source.headers.get_all(name):
            target.headers.add(name, value)


def _printable(text: str, limit: int = 80) -> str:
    return "".join(ch for ch in text if " " <= ch <= "~")[:limit]


M = TypeVar("M", bound=Message)


def _empty(message: M) -> M:
    """``message`` without the Content-Length its constructor wrote first: ``set_body`` writes
    it again, last, once the other headers are in."""
    message.headers.remove("Content-Length")
    return message


def _salvage_reply(data: str | bytes, error: ParseError) -> Response | None:
    """A response to a request that did not parse, when one can be addressed: its start line
    looks like a request (not ACK), the five headers a response copies are there, and the
    response made from them parses (a malformed Via or CSeq would only be echoed)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    head = data.lstrip("\r\n").split("\r\n\r\n", 1)[0]
    start, *lines = head.split("\r\n")
    parts = start.split(" ")
    if (len(parts) != 3 or not is_token(parts[0]) or parts[0] == "ACK"
            or not parts[2].upper().startswith("SIP/")):
        return None
    copied: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or any(ch < " " and ch != "\t" for ch in line):
            continue
        try:
            key = header_key(name)
        except ParseError:
            continue
        if canonical_name(key) in _COPIED:
            copied.append((canonical_name(key), value.strip(" \t")))
    if {name for name, _ in copied} != set(_COPIED):
        return None
    status = error.status if error.status in _REASONS else 400
    reason = _REASONS[status]
    detail = _printable(error.reason)
    try:
        response = _empty(Response(status, f"{reason} ({detail})" if detail else reason))
        for name in _COPIED:  # in the usual order, whatever the request's was
            for header, value in copied:
                if header == name:
                    response.headers.add(header, value)
        response.headers.add("Server", _SERVER_NAME)
        response.set_body(b"")
        parse(bytes(response))  # a reply the client could not parse either is not worth sending
    except (ParseError, ValueError):
        return None
    return response


class DevServer:
    """A loopback SIP-over-WebSocket registrar and record-routing proxy (see the module text).

    ``users`` maps user names to passwords (default :data:`DEFAULT_USERS`); ``realm`` defaults to
    ``domain``.  ``log`` receives one line per notable event (default: no output).  ``clock``
    (seconds, monotonic) decides when bindings and nonces expire; tests pass a fake one.

    Use ``async with DevServer() as server:`` or :meth:`start` / :meth:`stop`; ``server.ws_url``
    is the address for UAs and ``server.bindings()`` the location service.
    """

    TIMER_C: float = 180.0
    """Seconds an INVITE branch may go without a final response (RFC 3261 §16.6 step 11)."""
    TIMER_F: float = 32.0
    """Seconds a non-INVITE branch may go without a final response (64*T1, §17.1.2.2)."""
    LINGER: float = 32.0
    """Seconds an INVITE transaction is kept after its final response, for the ACK of a non-2xx
    and for 2xx retransmissions."""
    NONCE_LIFETIME: float = 300.0
    """Seconds a digest nonce stays valid (then it is answered with ``stale=true``)."""
    MAX_NONCES: int = 4096
    """Outstanding nonces remembered at most (the oldest are forgotten first)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        domain: str = "sipfsm.test",
        users: Mapping[str, str] | None = None,
        realm: str | None = None,
        require_auth: bool = True,
        min_expires: int = 60,
        max_expires: int = 3600,
        log: Callable[[str], None] | None = None,
        *,
        proxy_auth: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigurationError("port", port, "must be 0-65535")
        if min_expires < 0:
            raise ConfigurationError("min_expires", min_expires, "must not be negative")
        if max_expires < max(min_expires, 1):
            raise ConfigurationError("max_expires", max_expires,
                                     "must be at least 1 and at least min_expires")
        self._host = host
        self._wanted_port = port
        self._port = port
        self._domain = domain
        self._realm = realm if realm is not None else domain
        self._users: dict[str, str] = dict(DEFAULT_USERS if users is None else users)
        self._require_auth = require_auth
        self._proxy_auth = proxy_auth
        self._min_expires = min_expires
        self._max_expires = max_expires
        self._log_sink = log
        self._clock = clock
        self._our_hosts = frozenset({domain.lower(), host.lower(), "127.0.0.1", "localhost"})
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._next_id = 0
        self._conns: dict[int, _Connection] = {}
        self._peers: dict[tuple[str, int], int] = {}
        self._location: dict[str, list[Binding]] = {}
        self._contacts: dict[tuple[str | None, str, int | None], int] = {}
        self._nonces: dict[str, _Nonce] = {}
        self._txs: dict[TxKey, _ServerTx] = {}
        self._branches: dict[str, _Branch] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        # One future per running WebSocket handler, done when its cleanup has run.
        self._handlers: set[asyncio.Future[None]] = set()

    # -- public face ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port (the one bound, once started)."""
        return self._port

    @property
    def ws_url(self) -> str:
        """``ws://host:port``, the WebSocket server URI for UAs."""
        if self._runner is None:
            raise InvalidStateError("the devserver is not started")
        return f"ws://{self._host}:{self._port}"

    @property
    def domain(self) -> str:
        """The SIP domain served."""
        return self._domain

    @property
    def realm(self) -> str:
        """The digest realm."""
        return self._realm

    @property
    def users(self) -> dict[str, str]:
        """The accounts (user -> password); a copy."""
        return dict(self._users)

    @property
    def connections(self) -> int:
        """How many WebSocket clients are connected."""
        return sum(1 for conn in self._conns.values() if conn.open)

    @property
    def running(self) -> bool:
        """Whether the server is started and not stopped."""
        return self._runner is not None

    def aor(self, user: str) -> str:
        """The address of record of ``user``: ``sip:<user>@<domain>``."""
        return f"sip:{user}@{self._domain}"

    def bindings(self) -> dict[str, list[Binding]]:
        """The location service: every AoR user with its live bindings (a snapshot)."""
        for user in list(self._location):
            self._live_bindings(user)
        return {user: list(bindings) for user, bindings in self._location.items()}

    async def start(self) -> None:
        """Bind and start serving; sets :attr:`port` and :attr:`ws_url`."""
        if self._runner is not None:
            raise InvalidStateError("the devserver is already started")
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        app = web.Application()
        app.router.add_get("/", self._accept)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._wanted_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._log(f"listening on {self.ws_url} (domain {self._domain})")

    async def stop(self) -> None:
        """Close every client socket and the server; cancel every timer.  Idempotent."""
        runner = self._runner
        if runner is None:
            return
        self._stopping = True
        conns = [conn for conn in self._conns.values() if conn.open]
        await asyncio.gather(
            *(conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"devserver stopping")
              for conn in conns),
            return_exceptions=True,
        )
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5.0)
            self._handlers.clear()
        await runner.cleanup()
        for conn in list(self._conns.values()):
            self._connection_lost(conn)
            if conn.writer is not None:
                conn.writer.cancel()
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._txs.clear()
        self._branches.clear()
        self._nonces.clear()
        self._location.clear()
        self._runner = None
        self._log("stopped")

    async def __aenter__(self) -> DevServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self._runner is not None else "stopped"
        return f"<DevServer {self._domain} {where} connections={self.connections}>"

    # -- WebSocket I/O ----------------------------------------------------------------------------

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), timeout=2.0, autoping=True)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol != SUBPROTOCOL:
            self._log(f"refused a WebSocket upgrade without the {SUBPROTOCOL!r} subprotocol")
            return web.Response(status=400, text="the 'sip' WebSocket subprotocol is required\n")
        if self._stopping:
            return web.Response(status=503, text="stopping\n")
        await ws.prepare(request)
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peer = (str(peername[0]), int(peername[1])) if peername else None
        self._next_id += 1
        conn = _Connection(self._next_id, ws, peer)
        self._conns[conn.id] = conn
        if peer is not None:
            self._peers[peer] = conn.id
        conn.writer = asyncio.create_task(self._write(conn))
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handlers.add(finished)
        self._log(f"[{conn.id}] connected from {peer}")
        try:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT or frame.type is WSMsgType.BINARY:
                    self._frame(conn, frame.data)
                elif frame.type is WSMsgType.ERROR:
                    self._log(f"[{conn.id}] WebSocket error: {ws.exception()!r}")
                    break
        finally:
            self._connection_lost(conn)
            conn.writer.cancel()
            await asyncio.gather(conn.writer, return_exceptions=True)
            try:
                if not ws.closed:
                    await ws.close()
            finally:
                finished.set_result(None)
                self._handlers.discard(finished)
            self._log(f"[{conn.id}] closed")
        return ws

    async def _write(self, conn: _Connection) -> None:
        """Send the connection's queued frames in order, one SIP message per frame."""
        while True:
            frame = await conn.outbox.get()
            try:
                if isinstance(frame, str):
                    await conn.ws.send_str(frame)
                else:
                    await conn.ws.send_bytes(frame)
            except Exception as exc:  # the socket went away: the reader will notice too
                self._log(f"[{conn.id}] send failed: {exc!r}")
                return

    def _send(self, conn_id: int, message: Message | str) -> bool:
        """Queue ``message`` on a connection; False if that connection is gone."""
        conn = self._conns.get(conn_id)
        if conn is None or not conn.open:
            self._log(f"[{conn_id}] gone, not sent: {_first_line(message)}")
            return False
        if isinstance(message, str):
            conn.outbox.put_nowait(message)
            return True
        data = bytes(message)
        try:
            conn.outbox.put_nowait(data.decode("utf-8"))
        except UnicodeDecodeError:
            conn.outbox.put_nowait(data)
        self._log(f"[{conn_id}] >> {_first_line(message)}")
        return True

    def _log(self, text: str) -> None:
        if self._log_sink is not None:
            self._log_sink(text)

    def _later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        assert self._loop is not None

        def fire() -> None:
            self._timers.discard(handle)
            try:
                callback()
            except Exception as exc:
                self._log(f"internal error in a timer: {exc!r}")

        handle = self._loop.call_later(delay, fire)
        self._timers.add(handle)
        return handle

    def _cancel_timer(self, handle: asyncio.TimerHandle | None) -> None:
        if handle is not None:
            handle.cancel()
            self._timers.discard(handle)

    def _connection_lost(self, conn: _Connection) -> None:
        """Forget everything that only made sense with this connection (Kamailio's
        ``handle_lost_tcp``): its bindings, its contacts, its pending branches (480)."""
        if not conn.open:
            return
        conn.open = False
        self._conns.pop(conn.id, None)
        if conn.peer is not None and self._peers.get(conn.peer) == conn.id:
            del self._peers[conn.peer]
        for user, bindings in list(self._location.items()):
            kept = [b for b in bindings if b.connection != conn.id]
            if len(kept) != len(bindings):
                self._log(f"[{conn.id}] {user}: {len(bindings) - len(kept)} binding(s) removed")
            if kept:
                self._location[user] = kept
            else:
                del self._location[user]
        for key in conn.contacts:
            if self._contacts.get(key) == conn.id:
                del self._contacts[key]
        for branch in list(self._branches.values()):
            if branch.conn == conn.id and not branch.final:
                self._branch_response(branch, self._synthetic(branch.tx, 480), synthetic=True)
        for tx in list(self._txs.values()):
            if tx.conn == conn.id and tx.invite and tx.final == 0:
                self._cancel_branches(tx, None)

    # -- frames -----------------------------------------------------------------------------------

    def _frame(self, conn: _Connection, data: str | bytes) -> None:
        """Handle one received frame to completion; never raise."""
        if data in (_PING, _PING.encode()):
            self._send(conn.id, _PONG)  # RFC 5626 §4.4.1 keep-alive pong
            return
        if not (data.strip("\r\n") if isinstance(data, str) else data.strip(b"\r\n")):
            return  # a bare CRLF (a client's pong) or an empty frame
        try:
            message = parse(data)
        except ParseError as exc:
            self._log(f"[{conn.id}] dropped an unparsable frame: {exc}")
            reply = _salvage_reply(data, exc)
            if reply is not None:
                self._send(conn.id, reply)
            return
        try:
            self._log(f"[{conn.id}] << {_first_line(message)}")
            if isinstance(message, Request):
                self._on_request(conn, message)
            else:
                self._on_response(conn, message)
        except ParseError as exc:  # a header read lazily turned out malformed
            self._log(f"[{conn.id}] malformed message: {exc}")
            if isinstance(message, Request) and message.method != "ACK":
                self._reply(conn, message, 400, f"Bad Request ({_printable(str(exc))})")
        except Exception as exc:  # a bug here must not take the server (or this client) down
            self._log(f"[{conn.id}] internal error: {exc!r}")
            if isinstance(message, Request) and message.method != "ACK":
                try:
                    self._reply(conn, message, 500)
                except Exception as again:
                    self._log(f"[{conn.id}] could not answer 500: {again!r}")

    # -- requests ---------------------------------------------------------------------------------

    def _on_request(self, conn: _Connection, request: Request) -> None:
        method = request.method
        rejection = check_request(request, allowed_methods=(method,), supported=_ANY_TAG,
                                  accepted_content={})
        if rejection is not None:
            self._log(f"[{conn.id}] rejected {method}: {rejection.status} {rejection.reason}")
            if method != "ACK":
                self._reply(conn, request, rejection.status, rejection.reason, rejection.headers)
            return
        self._stamp_via(conn, request)
        if method != "REGISTER":  # registered contacts are known through their bindings
            self._learn_contacts(conn, request)
        if method == "CANCEL":
            self._on_cancel(conn, request)
            return
        if method == "ACK" and self._absorb_ack(request):
            return
        self._pop_own_routes(request)
        if method == "REGISTER":  # even with a To tag: a registration is never a dialog
            request.headers.remove("Route")
            self._register(conn, request)
            return
        to = request.to
        assert to is not None  # check_request made sure
        if to.tag is not None:
            self._in_dialog(conn, request)
            return
        if method == "ACK":
            self._log(f"[{conn.id}] dropped an ACK that matches nothing")
            return
        request.headers.remove("Route")  # initial requests: we are the only hop (as Kamailio)
        uri = request.uri
        ours = self._is_our_host(uri.host)
        if method == "OPTIONS" and ours and (
                uri.user is None or (uri.user not in self._users
                                     and not self._live_bindings(uri.user))):
            self._options(conn, request)
            return
        if uri.user is None:
            self._reply(conn, request, 484)
            return
        if not ours:
            self._reply(conn, request, 403, "Relaying Forbidden")
            return
        if not self._authorize_proxy(conn, request):
            return
        self._route_to_user(conn, request, uri.user, record_route=method in _DIALOG_CREATING)

    def _options(self, conn: _Connection, request: Request) -> None:
        unsupported = [tag for tag in request.require if tag not in SUPPORTED]
        if unsupported:
            self._reply(conn, request, 420, "", (("Unsupported", ", ".join(unsupported)),))
            return
        self._reply(conn, request, 200, "", (("Allow", _ALLOW), ("Accept", "application/sdp"),
                                             ("Supported", ", ".join(SUPPORTED))))

    def _route_to_user(self, conn: _Connection, request: Request, user: str, *,
                       record_route: bool) -> None:
        """Fork ``request`` to every live binding of ``user`` (404 unknown, 480 offline)."""
        bindings = self._live_bindings(user)
        targets = [(b.connection, b.uri) for b in bindings if b.connection in self._conns]
        if not targets:
            if request.method != "ACK":
                self._reply(conn, request, 480 if user in self._users else 404)
            return
        self._forward(conn, request, targets, record_route=record_route)

    def _in_dialog(self, conn: _Connection, request: Request) -> None:
        """Route a request with a To tag: to the next Route, else to the Request-URI."""
        routes = request.route
        next_hop = routes[0].uri if routes else request.uri
        target = self._contact_conn(next_hop)
        if target is None and not routes and next_hop.user is not None \
                and self._is_our_host(next_hop.host):
            # An AoR of ours (the dialog was not record-routed through a contact): look it up.
            self._route_to_user(conn, request, next_hop.user, record_route=False)
            return
        if target is None:
            self._log(f"[{conn.id}] no connection for in-dialog {request.method} to {next_hop}")
            if request.method != "ACK":
                self._reply(conn, request, 404, "Not Here")
            return
        self._forward(conn, request, [(target, None)], record_route=False)

    def _forward(self, conn: _Connection, request: Request,
                 targets: Sequence[tuple[int, URI | None]], *, record_route: bool) -> None:
        """Proxy ``request`` to each ``(connection, new Request-URI)`` (RFC 3261 §16.6)."""
        method = request.method
        max_forwards = request.max_forwards
        if max_forwards == 0:
            if method != "ACK":
                self._reply(conn, request, 483)
            return
        if method not in ("ACK", "CANCEL"):
            unsupported = list(request.proxy_require)  # we implement no proxy extension
            if unsupported:
                self._reply(conn, request, 420, "", (("Unsupported", ", ".join(unsupported)),))
                return
        base = Request(method, request.uri, request.headers, request.body)
        base.headers.set("Max-Forwards", str((70 if max_forwards is None else max_forwards) - 1))
        if record_route:
            base.headers.add("Record-Route", self._record_route, first=True)

        def copy_for(uri: URI | None, branch: str) -> Request:
            out = Request(method, uri if uri is not None else base.uri, base.headers, base.body)
            out.headers.add("Via", f"SIP/2.0/WS {self._sent_by};branch={branch}", first=True)
            return out

        if method == "ACK":  # an ACK for a 2xx is its own transaction: forward statelessly
            for target, uri in targets:
                self._send(target, copy_for(uri, _new_branch()))
            return
        key = _tx_key(request, method)
        if key in self._txs:
            self._log(f"[{conn.id}] retransmission of {method} absorbed")
            return
        tx = _ServerTx(key, conn.id, request)
        self._txs[key] = tx
        if tx.invite:
            self._reply(conn, request, 100, tag=False)
        for target, uri in targets:
            branch_id = _new_branch()
            branch = _Branch(branch_id, tx, target, copy_for(uri, branch_id))
            tx.branches.append(branch)
            self._branches[branch_id] = branch
        tx.timer = self._later(self.TIMER_C if tx.invite else self.TIMER_F,
                               lambda: self._timeout(tx))
        for branch in list(tx.branches):
            if not branch.final and not self._send(branch.conn, branch.request):
                self._branch_response(branch, self._synthetic(tx, 480), synthetic=True)

    def _on_cancel(self, conn: _Connection, request: Request) -> None:
        tx = self._txs.get(_tx_key(request, "INVITE"))
        if tx is None:
            self._reply(conn, request, 481)
            return
        self._reply(conn, request, 200)
        if tx.final == 0:
            self._cancel_branches(tx, None)

    def _absorb_ack(self, request: Request) -> bool:
        """Whether ``request`` is the ACK of a non-2xx final response we sent (hop-by-hop,
        RFC 3261 §17.2.1): it ends there."""
        tx = self._txs.get(_tx_key(request, "INVITE"))
        return tx is not None and not 200 <= tx.final < 300

    # -- responses --------------------------------------------------------------------------------

    def _on_response(self, conn: _Connection, response: Response) -> None:
        self._learn_contacts(conn, response)
        vias = response.via
        cseq = response.cseq
        if not vias or cseq is None or vias[0].sent_by.lower() != self._sent_by:
            self._log(f"[{conn.id}] dropped a response whose top Via is not ours")
            return
        if cseq.method == "CANCEL":
            return  # the answer to a CANCEL we sent: hop-by-hop, nothing to relay
        branch = self._branches.get(vias[0].branch or "")
        if branch is not None and branch.conn != conn.id:
            self._log(f"[{conn.id}] dropped a response for another connection's branch")
            return
        _pop_via(response)
        if branch is not None:
            self._branch_response(branch, response)
            return
        # No transaction (a 2xx to an INVITE retransmitted after LINGER): forward it statelessly
        # to the connection the next Via names by its received/rport (RFC 6026 §7.1).
        if (cseq.method == "INVITE" and 200 <= response.status_code < 300 and len(vias) > 1
                and vias[1].received is not None and isinstance(vias[1].rport, int)):
            target = self._peers.get((vias[1].received, vias[1].rport))
            if target is not None:
                self._send(target, response)
                return
        self._log(f"[{conn.id}] dropped a stray {response.status_code} response")

    def _branch_response(self, branch: _Branch, response: Response, *,
                         synthetic: bool = False) -> None:
        """A response (our Via already popped) on one branch (RFC 3261 §16.7)."""
        tx = branch.tx
        status = response.status_code
        if status < 200:
            branch.status = max(branch.status, status)
            if not branch.final and tx.final == 0 and status > 100:
                self._send(tx.conn, response)
            if tx.invite and not branch.final and tx.timer is not None and tx.final == 0:
                self._cancel_timer(tx.timer)  # a provisional resets Timer C (§16.7 step 2)
                tx.timer = self._later(self.TIMER_C, lambda: self._timeout(tx))
            return
        if tx.invite and status >= 300 and not synthetic:
            self._send(branch.conn, self._ack_for(branch, response))
        if branch.final:
            if tx.invite and status < 300:  # every 2xx reaches the caller (§16.7 step 5)
                self._send(tx.conn, response)
            return
        branch.final = True
        branch.status = status
        if status < 300:
            if tx.invite or tx.final == 0:
                self._send(tx.conn, response)
            if tx.final == 0:
                tx.final = status
            if tx.invite:
                self._cancel_branches(tx, 'SIP;cause=200;text="Call completed elsewhere"')
        else:
            if tx.invite and status >= 600:
                self._cancel_branches(tx, None)
            if tx.best is None or _rank(response) < _rank(tx.best):
                tx.best = response
        self._maybe_finish(tx)

    def _maybe_finish(self, tx: _ServerTx) -> None:
        if any(not branch.final for branch in tx.branches):
            return
        if tx.final == 0:
            best = tx.best or self._synthetic(tx, 408)
            if best.status_code == 503:  # §16.7 step 6: a 503 is not passed upstream as such
                best.status_code, best.reason_phrase = 500, _REASONS[500]
            tx.final = best.status_code
            self._send(tx.conn, best)
        self._cancel_timer(tx.timer)
        tx.timer = None
        if tx.invite:
            tx.timer = self._later(self.LINGER, lambda: self._forget(tx))
        else:
            self._forget(tx)

    def _forget(self, tx: _ServerTx) -> None:
        self._cancel_timer(tx.timer)
        tx.timer = None
        if self._txs.get(tx.key) is tx:
            del self._txs[tx.key]
        for branch in tx.branches:
            self._branches.pop(branch.id, None)

    def _timeout(self, tx: _ServerTx) -> None:
        """Timer C / Timer F: unanswered branches end with 408 (INVITE ones are cancelled)."""
        tx.timer = None
        if tx.invite:
            self._cancel_branches(tx, None)
        for branch in list(tx.branches):
            if not branch.final:
                self._branch_response(branch, self._synthetic(tx, 408), synthetic=True)

    def _cancel_branches(self, tx: _ServerTx, reason: str | None) -> None:
        for branch in tx.branches:
            if not branch.final and not branch.cancelled:
                branch.cancelled = True
                self._send(branch.conn, self._hop_request("CANCEL", branch, None, reason))

    def _ack_for(self, branch: _Branch, response: Response) -> Request:
        return self._hop_request("ACK", branch, response, None)

    def _hop_request(self, method: str, branch: _Branch, response: Response | None,
                     reason: str | None) -> Request:
        """A CANCEL (§9.1) or the ACK of a non-2xx (§17.1.1.3) for a branch's INVITE: same
        Request-URI, Via, From, Call-ID, CSeq number and Route; To from the response."""
        invite = branch.request
        out = _empty(Request(method, invite.uri))
        headers = out.headers
        headers.add("Via", f"SIP/2.0/WS {self._sent_by};branch={branch.id}")
        headers.add("Max-Forwards", "70")
        _copy_headers(invite, out, "From")
        _copy_headers(response if response is not None else invite, out, "To")
        _copy_headers(invite, out, "Call-ID")
        cseq = invite.cseq
        assert cseq is not None
        headers.add("CSeq", f"{cseq.seq} {method}")
        _copy_headers(invite, out, "Route")
        if reason is not None:
            headers.add("Reason", reason)
        out.set_body(b"")
        return out

    # -- registrar --------------------------------------------------------------------------------

    def _register(self, conn: _Connection, request: Request) -> None:
        to = request.to
        cseq = request.cseq
        assert to is not None and cseq is not None
        aor = to.uri
        if not (self._is_our_host(request.uri.host) and self._is_our_host(aor.host)):
            self._reply(conn, request, 403, "Not Our Domain")
            return
        unsupported = [tag for tag in request.require if tag not in SUPPORTED]
        if unsupported:
            self._reply(conn, request, 420, "", (("Unsupported", ", ".join(unsupported)),))
            return
        if self._require_auth:
            user = self._authenticate(conn, request, proxy=False)
            if user is None:
                return
            if user != aor.user:
                self._reply(conn, request, 403, "Forbidden Auth ID")
                return
        if aor.user is None:
            self._reply(conn, request, 404, "Not Found (no user in the To URI)")
            return
        now = self._clock()
        current = self._live_bindings(aor.user)
        if request.contact_is_star:
            if request.expires != 0:
                self._reply(conn, request, 400, "Bad Request (Contact * needs Expires: 0)")
                return
            self._location.pop(aor.user, None)
            self._log(f"[{conn.id}] {aor.user}: every binding removed")
            self._reply_bindings(conn, request, [], now)
            return
        header_expires = request.expires
        updates: list[tuple[NameAddr, int, str | None, int | None]] = []
        for contact in request.contact:
            expires = contact.expires
            if expires is None:
                expires = header_expires if header_expires is not None else _DEFAULT_EXPIRES
            if 0 < expires < self._min_expires:
                self._reply(conn, request, 423, "",
                            (("Min-Expires", str(self._min_expires)),))
                return
            raw_reg_id = contact.params.get("reg-id")
            updates.append((
                NameAddr(contact.uri, contact.display_name,
                         {k: v for k, v in contact.params.items() if k != "expires"}),
                min(expires, self._max_expires),
                contact.param("+sip.instance"),
                int(raw_reg_id) if raw_reg_id is not None and raw_reg_id.isascii()
                and raw_reg_id.isdigit() else None,
            ))
        call_id = request.call_id or ""
        for contact, _, instance, reg_id in updates:
            # §10.3 step 7: a binding refreshed from the same Call-ID needs a higher CSeq.
            if any(_same_binding(b, contact, instance, reg_id) and b.call_id == call_id
                   and cseq.seq <= b.cseq for b in current):
                self._reply(conn, request, 400, "Bad Request (CSeq not above the binding's)")
                return
        bindings = list(current)
        for contact, expires, instance, reg_id in updates:
            bindings = [b for b in bindings
                        if not _same_binding(b, contact, instance, reg_id)]
            if expires:  # the most recently refreshed binding goes last
                bindings.append(Binding(
                    user=aor.user, contact=contact, expires_at=now + expires,
                    connection=conn.id, instance=instance, reg_id=reg_id,
                    call_id=call_id, cseq=cseq.seq))
        if len(bindings) > _MAX_BINDINGS_PER_AOR:
            self._reply(conn, request, 403, "Forbidden (too many contacts)")
            return
        if bindings:
            self._location[aor.user] = bindings
        else:
            self._location.pop(aor.user, None)
        self._log(f"[{conn.id}] {aor.user}: {len(bindings)} binding(s)")
        outbound = "outbound" in request.supported and any(
            instance is not None and reg_id is not None for _, _, instance, reg_id in updates)
        self._reply_bindings(conn, request, bindings, now, outbound=outbound)

    def _reply_bindings(self, conn: _Connection, request: Request, bindings: list[Binding],
                        now: float, *, outbound: bool = False) -> None:
        extra = [("Contact", str(b.contact.with_params(expires=str(b.expires_in(now)))))
                 for b in bindings]
        if outbound:  # RFC 5626 §6: the registrar tells the UA it honoured reg-id
            extra.append(("Require", "outbound"))
        self._reply(conn, request, 200, "", tuple(extra))

    def _live_bindings(self, user: str) -> list[Binding]:
        """The bindings of ``user`` that have not expired (expired ones are removed)."""
        bindings = self._location.get(user)
        if not bindings:
            return []
        now = self._clock()
        live = [b for b in bindings if b.expires_at > now]
        if len(live) != len(bindings):
            self._log(f"{user}: {len(bindings) - len(live)} binding(s) expired")
            if live:
                self._location[user] = live
            else:
                del self._location[user]
        return live

    # -- authentication ---------------------------------------------------------------------------

    def _authenticate(self, conn: _Connection, request: Request, *, proxy: bool) -> str | None:
        """The authenticated user, or ``None`` after answering 401/407/400 (RFC 3261 §22)."""
        offered = request.proxy_authorization if proxy else request.authorization
        credentials = next((c for c in offered if isinstance(c, digest.Credentials)
                            and c.realm == self._realm), None)
        if credentials is None:
            self._challenge(conn, request, proxy=proxy, stale=False)
            return None
        password = self._users.get(credentials.username)
        if (password is None or (credentials.qop or "").lower() != "auth"
                or (credentials.algorithm or "MD5").upper() != "MD5"
                or not digest.verify(credentials, request.method, password=password,
                                     body=request.body)):
            self._log(f"[{conn.id}] bad credentials for {credentials.username!r}")
            self._challenge(conn, request, proxy=proxy, stale=False)
            return None
        nonce = self._nonces.get(credentials.nonce)
        if nonce is None or self._clock() - nonce.issued_at >= self.NONCE_LIFETIME:
            # Right password, nonce not (or no longer) ours: the UA may retry at once.
            self._challenge(conn, request, proxy=proxy, stale=True)
            return None
        count = int(credentials.nc or "0", 16)
        if count <= nonce.last_nc:
            self._log(f"[{conn.id}] replayed nonce count for {credentials.username!r}")
            self._challenge(conn, request, proxy=proxy, stale=False)
            return None
        nonce.last_nc = count
        if not _same_uri(credentials.uri, request.uri):
            self._reply(conn, request, 400, "Bad Request (digest uri is not the Request-URI)")
            return None
        return credentials.username

    def _challenge(self, conn: _Connection, request: Request, *, proxy: bool,
                   stale: bool) -> None:
        challenge = digest.make_challenge(self._realm, algorithm="MD5", qop=("auth",),
                                          stale=stale)
        assert challenge.nonce is not None
        now = self._clock()
        if len(self._nonces) >= self.MAX_NONCES:
            for value, nonce in list(self._nonces.items()):
                if now - nonce.issued_at >= self.NONCE_LIFETIME:
                    del self._nonces[value]
            while len(self._nonces) >= self.MAX_NONCES:
                del self._nonces[next(iter(self._nonces))]
        self._nonces[challenge.nonce] = _Nonce(now)
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        self._reply(conn, request, 407 if proxy else 401, "", ((header, str(challenge)),))

    def _authorize_proxy(self, conn: _Connection, request: Request) -> bool:
        """With ``proxy_auth``: challenge requests from our domain, as Kamailio's
        ``WITH_PROXY_AUTH`` does; consume our credentials before forwarding."""
        sender = request.from_
        if (not self._proxy_auth or request.method in _NO_PROXY_AUTH or sender is None
                or not self._is_our_host(sender.uri.host)):
            return True
        user = self._authenticate(conn, request, proxy=True)
        if user is None:
            return False
        if user != sender.uri.user:
            self._reply(conn, request, 403, "Forbidden Auth ID")
            return False
        kept = []
        for line in request.headers.get_all("Proxy-Authorization"):
            try:
                ours = digest.parse_credentials(line).realm == self._realm
            except ParseError:
                ours = False
            if not ours:
                kept.append(line)
        request.headers.remove("Proxy-Authorization")
        for line in kept:
            request.headers.add("Proxy-Authorization", line)
        return True

    # -- helpers ----------------------------------------------------------------------------------

    @property
    def _sent_by(self) -> str:
        return f"{self._host}:{self._port}".lower()

    @property
    def _record_route(self) -> str:
        return f"<sip:{self._host}:{self._port};transport=ws;lr>"

    def _is_our_host(self, host: str) -> bool:
        return host.lower() in self._our_hosts

    def _is_me(self, uri: URI) -> bool:
        return (uri.is_sip and uri.user is None and self._is_our_host(uri.host)
                and uri.port in (None, self._port))

    def _pop_own_routes(self, request: Request) -> None:
        """Remove the Route entries naming us from the top (RFC 3261 §16.4)."""
        while True:
            lines = request.headers.get_all("Route")
            if not lines:
                return
            first_line = parse_name_addrs([lines[0]], "Route")
            if not self._is_me(first_line[0].uri):
                return
            _replace_first(request.headers, "Route", first_line)

    def _stamp_via(self, conn: _Connection, request: Request) -> None:
        """Add ``received`` and ``rport`` to the top Via (RFC 3261 §18.2.1, RFC 3581)."""
        if conn.peer is None:
            return
        lines = request.headers.get_all("Via")
        items = parse_via([lines[0]])
        top = items[0]
        stamped = Via(top.transport, top.host, top.port,
                      {**top.params, "received": conn.peer[0], "rport": str(conn.peer[1])},
                      top.protocol)
        _replace_first(request.headers, "Via", items, stamped)

    def _learn_contacts(self, conn: _Connection, message: Message) -> None:
        """Remember which connection each Contact URI lives on (for in-dialog routing)."""
        try:
            contacts = message.contact
        except ParseError:
            return
        for contact in contacts:
            uri = contact.uri
            if not uri.is_sip:
                continue
            key = (uri.user, uri.host.lower(), uri.port)
            self._contacts[key] = conn.id
            conn.contacts.pop(key, None)
            conn.contacts[key] = None
            while len(conn.contacts) > _MAX_LEARNED_CONTACTS:
                old = next(iter(conn.contacts))
                del conn.contacts[old]
                if self._contacts.get(old) == conn.id:
                    del self._contacts[old]

    def _contact_conn(self, uri: URI) -> int | None:
        """The open connection a contact URI is reached on, if we know one."""
        if not uri.is_sip:
            return None
        conn_id = self._contacts.get((uri.user, uri.host.lower(), uri.port))
        if conn_id is not None and conn_id in self._conns:
            return conn_id
        for user in list(self._location):
            for binding in self._live_bindings(user):
                if binding.uri == uri and binding.connection in self._conns:
                    return binding.connection
        return None

    def _synthetic(self, tx: _ServerTx, status: int) -> Response:
        """A response we make up on a branch's behalf (timeout, connection lost)."""
        return self._make_response(tx.request, status, _REASONS[status])

    def _make_response(self, request: Request, status: int, reason: str,
                       extra: Sequence[tuple[str, str]] = (), *, tag: bool = True) -> Response:
        response = _empty(Response(status, reason or _REASONS.get(status, "")))
        try:
            has_tag = request.to is None or request.to.tag is not None
        except ParseError:
            has_tag = True  # a To we cannot read is copied as it is
        for name in _COPIED:
            for value in request.headers.get_all(name):
                if name == "To" and tag and not has_tag:
                    value = f"{value};tag={secrets.token_hex(6)}"
                response.headers.add(name, value)
        response.headers.add("Server", _SERVER_NAME)
        for name, value in extra:
            response.headers.add(name, value)
        response.set_body(b"")
        return response

    def _reply(self, conn: _Connection, request: Request, status: int, reason: str = "",
               extra: Sequence[tuple[str, str]] = (), *, tag: bool = True) -> None:
        """Answer ``request`` ourselves, on the connection it came on."""
        self._send(conn.id, self._make_response(request, status, reason, extra,
                                                tag=tag and status > 100))


def _rank(response: Response) -> int:
    """Lower is better among final non-2xx responses: 6xx first, then the lowest class."""
    kind = response.status_code // 100
    return 0 if kind == 6 else kind


def _same_binding(binding: Binding, contact: NameAddr, instance: str | None,
                  reg_id: int | None) -> bool:
    if (instance is not None and reg_id is not None and binding.instance == instance
            and binding.reg_id == reg_id):
        return True  # RFC 5626 §6: same instance and reg-id replace the old flow
    return binding.uri == contact.uri


def _same_uri(text: str, uri: URI) -> bool:
    if text == str(uri):
        return True
    try:
        return parse_uri(text) == uri
    except ParseError:
        return False


def _first_line(message: Message | str) -> str:
    if isinstance(message, str):
        return repr(message)
    if isinstance(message, Request):
        return f"{message.method} {message.uri}"
    assert isinstance(message, Response)
    return f"{message.status_code} {message.reason_phrase}"
