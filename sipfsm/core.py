"""The UA core (RFC 3261 §8): transactions in, transactions out, and the request gate.

Theory of operation
-------------------
Frames arrive from the transport as :class:`~sipfsm.events.FrameReceived`.  Each is parsed;
a response goes to the client transaction whose branch and method it matches (or is dropped
with a log line), a request to the server transaction it retransmits, or to a new one.  A new
request passes the gate before anything acts on it:

1. RFC 3261 §8.2 stateless checks (:func:`~sipfsm.sip.check_request`): 501, 405, 400, 416, 420,
   415, 406 — answered from a server transaction, so retransmissions are absorbed;
2. is it for us: the Request-URI user must be our AoR user, our Contact user or a GRUU of ours
   (else 404, as SIP.js did);
3. loops and merged requests (§8.2.2.2): our own request coming back (its From tag is one of
   ours and it has no To tag) or a second copy of one we are serving on another branch: 482.

Then the method handler registered for it runs (sessions, subscriptions and REFER register
theirs in later layers); OPTIONS (200 with Allow, Accept, Supported), MESSAGE (200 and the
``message`` event) and an out-of-dialog BYE (481) are handled here.

Requests we send are queued until the transport is connected.  When the connection drops, every
client transaction in flight fails with ``Connection Error`` (decision 4).  Challenges (401/407)
are answered once per challenge, plus once more when the server says ``stale=true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import ClassVar

from .aio.clock import Timers, TimerScope
from .aio.ws import WebSocketRunner
from .bus import EventBus
from .causes import Cause, cause_for_status
from .config import Limits, UAConfig
from .errors import ParseError
from .events import (
    BusEvent,
    FrameReceived,
    MessageReceived,
    RequestSent,
    TransactionFailed,
    TransactionResponse,
    TransactionTerminated,
    TransportConnected,
    TransportDisconnected,
    TransportStopped,
)
from .fsm.base import CancelTimer, Effect, Emit, StartTimer, Transmit
from .fsm.transaction import (
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    Transaction,
    TransactionTable,
    new_branch,
)
from .logging import Logger
from .outgoing import Identity, RequestFactory, new_tag
from .sip import Request, Response, check_request, check_response, parse
from .sip.check import DEFAULT_METHODS
from .sip.digest import Challenge, DigestAuthenticator, DigestError, choose_challenge
from .sip.uri import URI

__all__ = ["Core", "OutgoingRequest", "make_response"]

RequestHandler = Callable[[Request, ServerTransaction], None]
AckHandler = Callable[[Request], None]

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "Version Not Supported",
    603: "Decline",
}
ACCEPT = "application/sdp, application/dtmf-relay, text/plain"
_DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
# The headers a response copies from its request (long and compact names).
_ANSWER_HEADERS = frozenset({"via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"})


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | str = b"",
    content_type: str | None = None,
    user_agent: str | None = None,
) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6): Vias, From, To (+ tag), Call-ID, CSeq copied."""
    response = Response(status, reason if reason is not None else REASONS.get(status, ""))
    out = response.headers
    for via in request.headers.get_all("via"):
        out.add("Via", via)
    if 100 < status < 300 and request.method in _DIALOG_METHODS:
        # §12.1.1: a response that makes a dialog copies every Record-Route of the request,
        # so that the caller learns the route set (and the proxies stay in the path).
        for record_route in request.headers.get_all("record-route"):
            out.add("Record-Route", record_route)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is None:
            continue
        if name == "To" and to_tag and status > 100 and _to_tag(request) is None:
            value = f"{value};tag={to_tag}"
        out.add(name, value)
    for name, value in headers:
        out.add(name, value)
    if user_agent:
        out.add("User-Agent", user_agent)
    response.set_body(body, content_type if body else None)
    return response


class OutgoingRequest:
    """A request we sent and its outcome (SIP.js's ``ClientContext``).

    Events (``on(name, cb)``): ``progress`` (1xx), ``accepted`` (2xx), ``rejected`` (a final
    failure response), ``failed`` (any failure: a response or none, with a :class:`Cause`).
    ``await request.result()`` gives the final response (a timeout or a lost connection gives a
    locally made 408 or 503) — check :attr:`cause` for failures.
    """

    def __init__(self, core: Core, request: Request, credentials: DigestAuthenticator | None):
        self.core = core
        self.request = request
        self.response: Response | None = None
        self.cause: Cause | None = None
        self._credentials = credentials
        self._challenges = 0
        self._stale_retry = False
        self._listeners: dict[str, list[Callable[..., object]]] = {}
        self._done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.transaction_id: str | None = None
        self.challenge: Challenge | None = None  # the last challenge answered, if any

    def on(self, name: str, handler: Callable[..., object]) -> None:
        """Call ``handler(response, cause)`` on ``progress``/``accepted``/``rejected``/
        ``failed``."""
        if name not in ("progress", "accepted", "rejected", "failed"):
            raise ValueError(f"unknown event {name!r}")
        self._listeners.setdefault(name, []).append(handler)

    def _emit(self, name: str, response: Response | None, cause: Cause | None) -> None:
        for handler in list(self._listeners.get(name, ())):
            try:
                handler(response, cause)
            except Exception as exc:  # a listener's bug is reported, not raised
                self.core.log.error("listener failed", event=name, error=repr(exc))

    async def result(self, timeout: float | None = None) -> Response:
        """The final response (wait for it)."""
        return await asyncio.wait_for(asyncio.shield(self._done), timeout)

    @property
    def done(self) -> bool:
        """Whether a final outcome arrived."""
        return self._done.done()

    def _response(self, response: Response) -> None:
        if self._done.done():
            return
        status = response.status_code
        if status < 200:
            self._emit("progress", response, None)
            return
        if status in (401, 407) and self._retry_with_credentials(response):
            return
        self.response = response
        if status < 300:
            self._emit("accepted", response, None)
        else:
            self.cause = (Cause.AUTHENTICATION_ERROR if status in (401, 407)
                          else cause_for_status(status))
            self._emit("rejected", response, self.cause)
            self._emit("failed", response, self.cause)
        self._done.set_result(response)

    def _failed(self, status: int, cause: Cause) -> None:
        if self._done.done():
            return
        response = make_response(self.request, status, cause.value)
        self.response, self.cause = response, cause
        self._emit("failed", None, cause)
        self._done.set_result(response)

    def _retry_with_credentials(self, response: Response) -> bool:
        """Answer a 401/407 once per challenge (plus once more for ``stale=true``)."""
        challenges = response.www_authenticate if response.status_code == 401 else \
            response.proxy_authenticate
        challenge = choose_challenge(challenges)
        if challenge is None or self._credentials is None:
            return False
        if self._challenges >= 1 and not (challenge.stale and not self._stale_retry):
            return False
        if self._challenges >= 1:
            self._stale_retry = True
        self._challenges += 1
        self.challenge = challenge
        try:
            self.core.resend_with_credentials(self, response, challenge, self._credentials)
        except DigestError as exc:
            self.core.log.warn("cannot answer the challenge", error=str(exc))
            return False
        return True


class Core:
    """Transactions and the gate for one UA (sans business logic: handlers plug in)."""

    def __init__(
        self,
        config: UAConfig,
        identity: Identity,
        factory: RequestFactory,
        bus: EventBus,
        runner: WebSocketRunner,
        log: Logger,
        *,
        credentials: Callable[[], DigestAuthenticator | None],
        t1: float = 0.5,
        timers: Callable[[], Timers] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.config = config
        self.limits = limits if limits is not None else Limits()
        self.identity = identity
        self.factory = factory
        self.bus = bus
        self.runner = runner
        self.log = log
        self._credentials = credentials
        self.t1 = t1
        self.transactions = TransactionTable()
        self.handlers: dict[str, RequestHandler] = {}
        # What a UA plugs in: one router for every method it handles (it answers False for the
        # rest), one for CANCEL and one for the ACK of a 2xx — three bound methods, not one per
        # method, for there may be ten thousand UAs in the process.
        self.router: Callable[[Request, ServerTransaction], bool] | None = None
        self.cancel_handler: Callable[[Request, ServerTransaction], None] | None = None
        self.ack_handler: AckHandler | None = None
        self._owners: dict[str, OutgoingRequest] = {}
        self._queue: list[tuple[ClientTransaction, OutgoingRequest | None]] = []
        self._timer_table = timers
        self._timers: TimerScope | None = None
        self._our_tags: dict[str, None] = {}
        # One subscription routed by type (see _ROUTES), not seven: each bound method kept by
        # the bus costs a UA 64 bytes, and there may be ten thousand UAs in the process.
        bus.subscribe(BusEvent, self._on_event)

    _ROUTES: ClassVar[dict[type[BusEvent], str]] = {
        FrameReceived: "_on_frame",
        TransportConnected: "_on_connected",
        TransportDisconnected: "_on_disconnected",
        TransportStopped: "_on_stopped",
        TransactionResponse: "_on_transaction_response",
        TransactionFailed: "_on_transaction_failed",
        TransactionTerminated: "_on_transaction_terminated",
    }

    def _on_event(self, event: BusEvent) -> None:
        route = self._ROUTES.get(type(event))
        if route is not None:
            getattr(self, route)(event)

    # -- time --------------------------------------------------------------------------------------

    def _clock(self) -> TimerScope:
        if self._timers is None:
            table = self._timer_table() if self._timer_table is not None else Timers()
            self._timers = table.scope("tx", self._timer_fired)
        return self._timers

    def now(self) -> float:
        """The loop's monotonic time."""
        return self._clock().now()

    def _timer_fired(self, key: str) -> None:
        tid, _, name = key.rpartition("|")
        transaction = self.transactions.get(tid)
        if transaction is not None:
            transaction.timer_fired(name, self.now())
            self._run(transaction)

    def cancel_timers(self) -> None:
        """Disarm every transaction timer (the UA is stopping)."""
        if self._timers is not None:
            self._timers.cancel_all()

    # -- effects -----------------------------------------------------------------------------------

    def _run(self, transaction: Transaction) -> None:
        self._carry_out(transaction.id, transaction.take_effects())

    def _carry_out(self, tid: str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self._transmit(tid, effect.message)
            elif isinstance(effect, StartTimer):
                self._clock().start(f"{tid}|{effect.name}", effect.at)
            elif isinstance(effect, CancelTimer):
                self._clock().cancel(f"{tid}|{effect.name}")
            elif isinstance(effect, Emit):
                self.bus.publish(effect.event)

    def _transmit(self, tid: str, message: Request | Response) -> None:
        if not self.runner.transport.connected:
            transaction = self.transactions.get(tid)
            if transaction is not None:
                transaction.transport_error(self.now())
                self._run(transaction)
            return
        self.runner.send(str(message))

    # -- sending -----------------------------------------------------------------------------------

    def new_branch(self) -> str:
        """A fresh Via branch (≥ 64 random bits after the magic cookie)."""
        return new_branch()

    def remember_tag(self, tag: str) -> None:
        """Note a From tag of ours (for loop detection); bounded."""
        self._our_tags[tag] = None
        if len(self._our_tags) > 4096:
            del self._our_tags[next(iter(self._our_tags))]

    def send(self, request: Request, *, owner: OutgoingRequest | None = None) -> str:
        """Send ``request`` in a new client transaction (queued until connected); return the
        transaction id."""
        cls = InviteClientTransaction if request.method == "INVITE" else \
            NonInviteClientTransaction
        transaction = cls(request, t1=self.t1, log=self.log)
        self.transactions.add(transaction)
        if owner is not None:
            self._owners[transaction.id] = owner
            owner.transaction_id = transaction.id
        from_ = request.from_
        if from_ is not None and from_.tag:
            self.remember_tag(from_.tag)
        if self.runner.transport.connected:
            self._start(transaction)
        else:
            self._queue.append((transaction, owner))
        return transaction.id

    def abandon(self, transaction_id: str) -> None:
        """Give up an INVITE client transaction that got no final response 64·T1 after its
        CANCEL (RFC 3261 §9.1); it reports a timeout to its owner."""
        transaction = self.transactions.get(transaction_id)
        if isinstance(transaction, InviteClientTransaction):
            transaction.abandon(self.now())
            self._run(transaction)

    def _start(self, transaction: ClientTransaction) -> None:
        transaction.start(self.now())
        self._run(transaction)
        self.bus.publish(RequestSent(transaction=transaction.id, request=transaction.request))

    def request(
        self,
        method: str,
        target: URI,
        *,
        body: bytes | str = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str] | str] = (),
        route: URI | None = None,
    ) -> OutgoingRequest:
        """Send an out-of-dialog request and return its handle."""
        request = self.factory.request(
            method, target, branch=self.new_branch(), body=body, content_type=content_type,
            extra_headers=extra_headers, route=route)
        outgoing = OutgoingRequest(self, request, self._credentials())
        self.send(request, owner=outgoing)
        return outgoing

    def resend_with_credentials(self, outgoing: OutgoingRequest, response: Response,
                                challenge: Challenge, credentials: DigestAuthenticator) -> None:
        """Send ``outgoing``'s request again with an Authorization (or Proxy-Authorization)
        answering ``challenge``: new branch, CSeq one higher (RFC 3261 §22.2)."""
        old = outgoing.request
        answer = credentials.authorize(challenge, old.method, str(old.uri), old.body)
        request = Request(old.method, old.uri, old.headers, old.body)
        headers = request.headers
        headers.set("Via", self.factory.via(self.new_branch()))
        cseq = old.cseq
        assert cseq is not None
        headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        name = "Authorization" if response.status_code == 401 else "Proxy-Authorization"
        headers.remove(name)
        headers.add(name, str(answer))
        outgoing.request = request
        self.send(request, owner=outgoing)

    # -- transport events --------------------------------------------------------------------------

    def _on_connected(self, event: TransportConnected) -> None:
        self.factory.secure = event.server.lower().startswith("wss:")
        queued, self._queue = self._queue, []
        for transaction, _ in queued:
            self._start(transaction)

    def _on_disconnected(self, event: TransportDisconnected) -> None:
        if event.given_up and event.code is None and not self.transactions:
            return
        now = self.now()
        for transaction in list(self.transactions.values()):
            transaction.transport_error(now)
            self._run(transaction)

    def _on_stopped(self, event: TransportStopped) -> None:
        queued, self._queue = self._queue, []
        for transaction, owner in queued:
            self.transactions.remove(transaction.id)
            if owner is not None:
                owner._failed(503, Cause.CONNECTION_ERROR)
        self._on_disconnected(TransportDisconnected(server="", code=None, reason="stopped",
                                                    given_up=False))

    # -- transaction outcomes ----------------------------------------------------------------------

    def _on_transaction_response(self, event: TransactionResponse) -> None:
        owner = self._owners.get(event.transaction)
        if owner is not None and not event.local:  # failures come as TransactionFailed
            owner._response(event.response)

    def _on_transaction_failed(self, event: TransactionFailed) -> None:
        owner = self._owners.get(event.transaction)
        if owner is not None:
            cause = Cause.REQUEST_TIMEOUT if event.status == 408 else Cause.CONNECTION_ERROR
            owner._failed(event.status, cause)

    def _on_transaction_terminated(self, event: TransactionTerminated) -> None:
        self.transactions.remove(event.transaction)
        self._owners.pop(event.transaction, None)

    # -- receiving ---------------------------------------------------------------------------------

    def _on_frame(self, event: FrameReceived) -> None:
        limits = self.limits
        try:
            message = parse(event.data, max_size=limits.max_message_size,
                            max_headers=limits.max_headers,
                            max_line_length=limits.max_line_length)
        except ParseError as exc:
            self._malformed(event.data, exc)
            return
        if isinstance(message, Response):
            self._on_response(message)
        else:
            self._on_request(message)

    def _malformed(self, data: str, error: ParseError) -> None:
        """A frame that does not parse: answer it if it is a request we can still address (its
        start line and the headers a response copies parse on their own), else drop it."""
        self.log.warn("malformed message dropped", reason=str(error))
        start, *fields = data.split("\r\n\r\n", 1)[0].split("\r\n")
        lines, keep = [start], False
        for line in fields:  # only what make_response copies: whatever else broke is left out
            if line[:1] not in (" ", "\t"):  # not a continuation of the line before
                keep = line.partition(":")[0].rstrip(" \t").lower() in _ANSWER_HEADERS
            if keep:
                lines.append(line)
        method, _, rest = lines[0].partition(" ")
        uri, _, version = rest.rpartition(" ")
        if version.upper().startswith("SIP/"):  # an unsupported version (505): read the rest
            lines[0] = f"{method} {uri} SIP/2.0"
        try:
            salvaged = parse("\r\n".join(lines) + "\r\n\r\n", max_headers=self.limits.max_headers,
                             max_line_length=self.limits.max_line_length)
        except ParseError:
            return
        if isinstance(salvaged, Request) and salvaged.method != "ACK" and self._addressable(
                salvaged):
            status = error.status if 400 <= error.status < 700 else 400
            self._send_stateless(make_response(salvaged, status, _reason(status, error.reason),
                                               to_tag=new_tag(),
                                               user_agent=self.config.user_agent_string))

    @staticmethod
    def _addressable(request: Request) -> bool:
        """Whether a response can reach the sender and be matched: a Via and a CSeq.  (A
        request missing From, To or Call-ID still gets its 400, with what it had copied.)"""
        try:
            return bool(request.via and request.cseq)
        except ParseError:
            return False

    def _send_stateless(self, message: Request | Response) -> None:
        if self.runner.transport.connected:
            self.runner.send(str(message))

    def _on_response(self, response: Response) -> None:
        fault = check_response(response)
        top = response.top_via
        if fault is None and top is not None and top.host != self.identity.via_host:
            fault = "the top Via is not ours"
        if fault is not None:
            self.log.warn("response dropped", reason=fault)
            return
        transaction = self.transactions.find_client(response)
        if transaction is None:
            self.log.debug("response for no transaction ignored", status=response.status_code)
            return
        transaction.response_received(response, self.now())
        self._run(transaction)

    def _on_request(self, request: Request) -> None:
        now = self.now()
        existing = self.transactions.find_server(request)
        if request.method == "ACK":
            if isinstance(existing, InviteServerTransaction) and existing.ack_received(
                    request, now):
                self._run(existing)
            elif self.ack_handler is not None:
                try:
                    self.ack_handler(request)  # the ACK of a 2xx belongs to its dialog
                except ParseError as exc:  # no gate for an ACK, and no answer either
                    self.log.warn("malformed ACK dropped", reason=str(exc))
            return
        if existing is not None:
            existing.request_received(request, now)
            self._run(existing)
            return
        if not self._addressable(request):
            self.log.warn("request without the headers to answer it dropped")
            return
        cls = InviteServerTransaction if request.method == "INVITE" else \
            NonInviteServerTransaction
        transaction = cls(request, t1=self.t1, log=self.log)
        self.transactions.add(transaction)
        self._run(transaction)
        if request.method == "CANCEL":
            self._on_cancel(request, transaction)
            return
        rejection = self._gate(request)
        if rejection is not None:
            status, reason, headers = rejection
            self.respond(transaction, status, reason, headers=headers)
            return
        self._dispatch(request, transaction)

    def _on_cancel(self, cancel: Request, transaction: ServerTransaction) -> None:
        """RFC 3261 §9.2: 200 to the CANCEL if its INVITE is ours and pending, else 481; the
        INVITE's owner decides the rest (487 by default)."""
        invite = self.transactions.find_cancelled(cancel)
        if invite is None or invite.terminated:
            self.respond(transaction, 481)
            return
        self.respond(transaction, 200)
        handler = self.handlers.get("CANCEL") or self.cancel_handler
        if handler is not None:
            handler(cancel, invite)
        elif invite.state.value == "proceeding":
            self.respond(invite, 487)

    @property
    def allowed(self) -> tuple[str, ...]:
        """The methods we accept (our ``Allow``)."""
        return DEFAULT_METHODS

    def send_response(self, transaction: ServerTransaction, response: Response) -> None:
        """Send a response we built ourselves from ``transaction``."""
        transaction.respond(response, self.now())
        self._run(transaction)

    def send_outside_transaction(self, message: Request | Response) -> None:
        """Send an ACK for a 2xx, or a retransmitted 2xx after its transaction ended: the two
        messages RFC 3261 sends outside any transaction (§13.2.2.4, §13.3.1.4)."""
        self._send_stateless(message)

    def respond(self, transaction: ServerTransaction, status: int, reason: str | None = None,
                *, headers: Iterable[tuple[str, str]] = (), body: bytes | str = b"",
                content_type: str | None = None, to_tag: str | None = None) -> Response:
        """Answer the request of ``transaction``."""
        response = make_response(transaction.request, status, reason,
                                 to_tag=to_tag or new_tag(), headers=headers, body=body,
                                 content_type=content_type,
                                 user_agent=self.config.user_agent_string)
        transaction.respond(response, self.now())
        self._run(transaction)
        return response

    def _gate(self, request: Request) -> tuple[int, str | None, list[tuple[str, str]]] | None:
        supported = ["path", "gruu", "outbound"]
        if self.config.rel100.value != "none":
            supported.append("100rel")
        if self.config.replaces.value != "none":
            supported.append("replaces")
        rejection = check_request(request, supported=supported)
        if rejection is not None:
            return rejection.status, rejection.reason, list(rejection.headers)
        if not self.identity.is_ours(request.uri):
            return 404, None, []
        to, from_ = request.to, request.from_
        assert to is not None and from_ is not None
        if to.tag is None and from_.tag is not None and from_.tag in self._our_tags:
            return 482, None, []
        if to.tag is None and self.transactions.is_merged(request):
            return 482, "Merged Request", []
        return None

    def _dispatch(self, request: Request, transaction: ServerTransaction) -> None:
        handler = self.handlers.get(request.method)
        if handler is not None:
            handler(request, transaction)
            return
        if self.router is not None and self.router(request, transaction):
            return
        method = request.method
        if method == "OPTIONS":
            self.respond(transaction, 200, headers=[
                ("Allow", ",".join(DEFAULT_METHODS)), ("Accept", ACCEPT),
                ("Supported", "outbound")])
        elif method == "MESSAGE":
            self.respond(transaction, 200)
            self.bus.publish(MessageReceived(request=request))
        elif method in ("BYE", "INFO", "PRACK", "UPDATE", "NOTIFY"):
            self.respond(transaction, 481)
        elif method == "INVITE":
            self.respond(transaction, 480)  # no session layer is listening
        elif method == "SUBSCRIBE":
            self.respond(transaction, 489)
        else:
            self.respond(transaction, 405, headers=[("Allow", ",".join(DEFAULT_METHODS))])


def _to_tag(request: Request) -> str | None:
    try:
        to = request.to
    except ParseError:
        return None
    return to.tag if to is not None else None


def _reason(status: int, detail: str) -> str:
    base = REASONS.get(status, "Bad Request")
    return f"{base} ({detail})"[:120].replace("\r", " ").replace("\n", " ")


