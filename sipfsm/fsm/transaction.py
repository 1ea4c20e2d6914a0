"""The four transaction machines of RFC 3261 §17, as corrected by RFC 6026, over WebSocket.

Theory of operation
-------------------
A transaction is one request and the responses to it (RFC 3261 §17).  The client side sends
the request and hands the responses to its transaction user (the TU: the UA core, a dialog or a
usage); the server side hands a new request to the TU and sends the TU's responses.  There are
four machines: INVITE client (``ict``, §17.1.1), non-INVITE client (``nict``, §17.1.2), INVITE
server (``ist``, §17.2.1) and non-INVITE server (``nist``, §17.2.2).  RFC 6026 §7 gives both
INVITE machines an "Accepted" state, so that every 2xx reaches the UAC core and retransmitted
INVITEs are not taken for new ones.

*The transport is reliable.*  sipfsm only speaks SIP over WebSocket (RFC 7118), so the machines
are the RFC's for a reliable transport, and that removes a lot:

* no retransmission timers (A, E and G only run over unreliable transports, §17.1.1.2,
  §17.1.2.2, §17.2.1);
* timers D, I, J and K are zero for reliable transports, so the states they guard ("Completed"
  of ICT, NICT and NIST, "Confirmed" of IST) last no time at all: these machines go straight to
  "Terminated" where the RFC says to enter them.  A retransmitted final response, which is what
  ICT's "Completed" waits for, cannot come over a reliable hop (the server only retransmits on
  Timer G), so nothing is lost;
* what is left are the timeouts, all 64·T1 (T1 = 0.5 s unless the transaction is given another
  ``t1``): B (ICT waits for any response), F (NICT waits for a final response), H (IST waits for
  the ACK of its non-2xx final response), L (IST in "Accepted" lets the TU retransmit its 2xx),
  M (ICT in "Accepted" passes further 2xx up).

*Inputs and outputs.*  Inputs are the public methods, each taking ``now`` (seconds on a monotonic
clock).  Outputs are :mod:`~sipfsm.fsm.base` effects: :class:`Transmit` for a request or response
to send, :class:`StartTimer`/:class:`CancelTimer` for timers named by their letter (``"B"``,
``"F"``, ``"H"``, ``"L"``, ``"M"``; :meth:`Transaction.timer_fired` turns them back into the
triggers ``timer_b`` … ``timer_m``) and :class:`Emit` for the bus events
:class:`~sipfsm.events.TransactionResponse`, :class:`~sipfsm.events.TransactionFailed`,
:class:`~sipfsm.events.RequestReceived`, :class:`~sipfsm.events.AckReceived` and
:class:`~sipfsm.events.TransactionTerminated`.

*Guarantees.*  Every transaction publishes ``TransactionTerminated`` exactly once, as the last
effect of the step that ends it, after cancelling every timer it still has armed; from then on
it ignores every input, with no effect and no exception.  A client transaction delivers exactly
one outcome to the TU: one final response, or, on a timeout or transport error, a synthesized
408 or 503 (RFC 3261 §8.1.3.1) followed by ``TransactionFailed``.  The only repeats are the
further 2xx an ICT passes up in "Accepted", which RFC 6026 §7.2 requires.

*Choices where the RFC leaves room* (most for a flow that, once gone, cannot carry a response
back: over a reliable transport a response goes on the connection the request came on, RFC 3261
§18.2.2, and nobody can open a new connection to a WebSocket client):

* A transport error ends the transaction from every state that still expects traffic, and the TU
  is told.  That includes ICT and NICT in "Proceeding" (RFC 3261 §17.1.4 asks the TU to be
  informed; decision 4: in-flight transactions fail cleanly) and IST and NIST in every live
  state, where RFC 6026's IST diagram keeps its state.  ICT in "Accepted" has delivered its
  outcome already and ignores transport errors, as in RFC 6026's ICT diagram.
* The IST sends ``100 Trying`` at once (unless built with ``trying=False``) instead of waiting
  200 ms to see whether the TU answers (§17.2.1 allows both).
* :meth:`InviteClientTransaction.abandon` lets the TU give up on an INVITE whose CANCEL got no
  final response within 64·T1 (RFC 3261 §9.1); it counts as a timeout.
* The ACK for a 2xx is not the IST's (§17.2.1): ``ack_received`` returns False for it.
* A timer input for a timer the transaction has not armed (one it cancelled, fired late by the
  adapter) is ignored, so a race between cancelling and firing cannot end a transaction.
* Timer H counts as a 408 ("No ACK"): the TU learns that its final response probably never
  arrived.

Matching (§17.1.3, §17.2.3) is done by :func:`matching_key_for_response`,
:func:`matching_key_for_request` and :class:`TransactionTable`.  Transaction ids are the caller's
choice, or by default ``"{kind}:{branch}:{method}"`` for client transactions (our own branches,
from :func:`new_branch`, are unique) and ``"{kind}:{branch}:{sent-by}:{method}"`` for server ones,
since two peers may pick the same branch and only the sent-by tells them apart (§17.2.3).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidStateError, ParseError
from ..events import (
    AckReceived,
    BusEvent,
    RequestReceived,
    TransactionFailed,
    TransactionResponse,
    TransactionTerminated,
)
from ..sip.message import Request, Response
from .base import CancelTimer, Emit, Model, StartTimer, TransitionLog, Transmit, define

__all__ = [
    "MAGIC_COOKIE",
    "T1",
    "TIMERS",
    "ClientTransaction",
    "InviteClientState",
    "InviteClientTransaction",
    "InviteServerState",
    "InviteServerTransaction",
    "NonInviteClientState",
    "NonInviteClientTransaction",
    "NonInviteServerState",
    "NonInviteServerTransaction",
    "ServerTransaction",
    "Transaction",
    "TransactionTable",
    "build_ack",
    "matching_key_for_request",
    "matching_key_for_response",
    "new_branch",
]

MAGIC_COOKIE = "z9hG4bK"
"""The prefix of every RFC 3261 branch (§8.1.1.7)."""
T1 = 0.5
"""RFC 3261's T1, the round-trip estimate, in seconds (§17.1.1.1)."""
TIMERS = {"B": "timer_b", "F": "timer_f", "H": "timer_h", "L": "timer_l", "M": "timer_m"}
"""Timer names (as in :class:`StartTimer`) and the triggers they fire."""


def new_branch() -> str:
    """A fresh Via branch: the magic cookie and 64 random bits from :mod:`secrets`
    (decision 11)."""
    return MAGIC_COOKIE + secrets.token_hex(8)


# -- the four state sets -----------------------------------------------------------------------


class InviteClientState(enum.Enum):
    """Where an INVITE client transaction is (RFC 3261 §17.1.1, RFC 6026 §7.2)."""

    CREATED = "created"
    """Built but not sent: :meth:`InviteClientTransaction.start` sends it."""
    CALLING = "calling"
    """The INVITE is sent; no response yet.  Timer B runs."""
    PROCEEDING = "proceeding"
    """A provisional response came.  No timer: the TU decides how long to wait (CANCEL)."""
    ACCEPTED = "accepted"
    """A 2xx came; every further 2xx goes to the TU, which ACKs them.  Timer M runs."""
    TERMINATED = "terminated"
    """Done (also at once after a 3xx-6xx and its ACK, since Timer D is zero)."""


class NonInviteClientState(enum.Enum):
    """Where a non-INVITE client transaction is (RFC 3261 §17.1.2)."""

    CREATED = "created"
    """Built but not sent: :meth:`NonInviteClientTransaction.start` sends it."""
    TRYING = "trying"
    """The request is sent; no response yet.  Timer F runs."""
    PROCEEDING = "proceeding"
    """A provisional response came.  Timer F still runs."""
    TERMINATED = "terminated"
    """Done (at once after the final response, since Timer K is zero)."""


class InviteServerState(enum.Enum):
    """Where an INVITE server transaction is (RFC 3261 §17.2.1, RFC 6026 §7.1)."""

    PROCEEDING = "proceeding"
    """The INVITE went to the TU, which has not sent a final response yet."""
    COMPLETED = "completed"
    """A 3xx-6xx was sent; waiting for its ACK.  Timer H runs."""
    ACCEPTED = "accepted"
    """A 2xx was sent; the TU may retransmit it.  Timer L runs."""
    TERMINATED = "terminated"
    """Done (at once when the ACK comes, since Timer I is zero)."""


class NonInviteServerState(enum.Enum):
    """Where a non-INVITE server transaction is (RFC 3261 §17.2.2)."""

    TRYING = "trying"
    """The request went to the TU, which has not responded yet."""
    PROCEEDING = "proceeding"
    """The TU sent a provisional response."""
    TERMINATED = "terminated"
    """Done (at once after the final response, since Timer J is zero)."""


# -- the four tables ---------------------------------------------------------------------------

IC = InviteClientState
NC = NonInviteClientState
IS = InviteServerState
NS = NonInviteServerState

ICT_TABLE: list[dict[str, Any]] = [
    {"trigger": "start", "source": IC.CREATED, "dest": IC.CALLING,
     "after": ["_send_request", "_start_timer_b"]},
    {"trigger": "recv_1xx", "source": IC.CALLING, "dest": IC.PROCEEDING,
     "after": ["_stop_timer_b", "_to_tu"]},
    {"trigger": "recv_1xx", "source": IC.PROCEEDING, "dest": None, "after": "_to_tu"},
    {"trigger": "recv_2xx", "source": [IC.CALLING, IC.PROCEEDING], "dest": IC.ACCEPTED,
     "after": ["_stop_timer_b", "_to_tu", "_start_timer_m"]},
    # RFC 6026 §7.2: every 2xx (a retransmission, or another fork's) goes up; the TU ACKs it.
    {"trigger": "recv_2xx", "source": IC.ACCEPTED, "dest": None, "after": "_pass_up"},
    # Through "Completed" in no time (Timer D = 0): ACK, response to the TU, done.
    {"trigger": "recv_3xx_6xx", "source": [IC.CALLING, IC.PROCEEDING], "dest": IC.TERMINATED,
     "after": ["_send_ack", "_to_tu", "_end"]},
    {"trigger": "timer_b", "source": IC.CALLING, "dest": IC.TERMINATED,
     "after": ["_time_out", "_end"]},
    {"trigger": "abandon", "source": [IC.CALLING, IC.PROCEEDING], "dest": IC.TERMINATED,
     "after": ["_time_out", "_end"]},
    {"trigger": "transport_error", "source": [IC.CALLING, IC.PROCEEDING],
     "dest": IC.TERMINATED, "after": ["_connection_error", "_end"]},
    {"trigger": "timer_m", "source": IC.ACCEPTED, "dest": IC.TERMINATED, "after": "_end"},
]
"""The INVITE client transaction.  ``dest: None`` is an internal transition (the state stays)."""

NICT_TABLE: list[dict[str, Any]] = [
    {"trigger": "start", "source": NC.CREATED, "dest": NC.TRYING,
     "after": ["_send_request", "_start_timer_f"]},
    {"trigger": "recv_1xx", "source": NC.TRYING, "dest": NC.PROCEEDING, "after": "_to_tu"},
    {"trigger": "recv_1xx", "source": NC.PROCEEDING, "dest": None, "after": "_to_tu"},
    # Through "Completed" in no time (Timer K = 0).
    {"trigger": "recv_final", "source": [NC.TRYING, NC.PROCEEDING], "dest": NC.TERMINATED,
     "after": ["_to_tu", "_end"]},
    {"trigger": "timer_f", "source": [NC.TRYING, NC.PROCEEDING], "dest": NC.TERMINATED,
     "after": ["_time_out", "_end"]},
    {"trigger": "transport_error", "source": [NC.TRYING, NC.PROCEEDING],
     "dest": NC.TERMINATED, "after": ["_connection_error", "_end"]},
]
"""The non-INVITE client transaction."""

IST_TABLE: list[dict[str, Any]] = [
    {"trigger": "retransmission", "source": [IS.PROCEEDING, IS.COMPLETED], "dest": None,
     "after": "_resend_response"},
    # RFC 6026 §7.1: absorbed, not passed to the TU (which retransmits its 2xx itself).
    {"trigger": "retransmission", "source": IS.ACCEPTED, "dest": None},
    {"trigger": "send_1xx", "source": IS.PROCEEDING, "dest": None, "after": "_send_response"},
    {"trigger": "send_2xx", "source": IS.PROCEEDING, "dest": IS.ACCEPTED,
     "after": ["_send_response", "_start_timer_l"]},
    {"trigger": "send_2xx", "source": IS.ACCEPTED, "dest": None, "after": "_transmit"},
    {"trigger": "send_3xx_6xx", "source": IS.PROCEEDING, "dest": IS.COMPLETED,
     "after": ["_send_response", "_start_timer_h"]},
    # Through "Confirmed" in no time (Timer I = 0).
    {"trigger": "ack", "source": IS.COMPLETED, "dest": IS.TERMINATED,
     "after": ["_absorb_ack", "_end"]},
    # The ACK of a 2xx is the TU's (``ack_received`` returns False for the caller to pass on).
    {"trigger": "ack", "source": IS.ACCEPTED, "dest": None},
    {"trigger": "timer_h", "source": IS.COMPLETED, "dest": IS.TERMINATED,
     "after": ["_no_ack", "_end"]},
    {"trigger": "timer_l", "source": IS.ACCEPTED, "dest": IS.TERMINATED, "after": "_end"},
    {"trigger": "transport_error", "source": [IS.PROCEEDING, IS.COMPLETED, IS.ACCEPTED],
     "dest": IS.TERMINATED, "after": ["_connection_error", "_end"]},
]
"""The INVITE server transaction."""

NIST_TABLE: list[dict[str, Any]] = [
    # §17.2.2: retransmissions in "Trying" are discarded; in "Proceeding" they get the last 1xx.
    {"trigger": "retransmission", "source": NS.TRYING, "dest": None},
    {"trigger": "retransmission", "source": NS.PROCEEDING, "dest": None,
     "after": "_resend_response"},
    {"trigger": "send_1xx", "source": [NS.TRYING, NS.PROCEEDING], "dest": NS.PROCEEDING,
     "after": "_send_response"},
    # Through "Completed" in no time (Timer J = 0).
    {"trigger": "send_final", "source": [NS.TRYING, NS.PROCEEDING], "dest": NS.TERMINATED,
     "after": ["_send_response", "_end"]},
    {"trigger": "transport_error", "source": [NS.TRYING, NS.PROCEEDING],
     "dest": NS.TERMINATED, "after": ["_connection_error", "_end"]},
]
"""The non-INVITE server transaction."""


# -- messages the transactions write -----------------------------------------------------------


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK for a 3xx-6xx final response to ``invite`` (RFC 3261 §17.1.1.3).

    Request-URI, Call-ID and From as in the INVITE; the To of the response (with its tag); the
    CSeq number of the INVITE with method ACK; one Via, the INVITE's top one (same branch,
    decision 11); the INVITE's Route lines; Max-Forwards 70; no body.
    """
    cseq = invite.cseq
    if cseq is None:
        raise ValueError("the INVITE has no CSeq")
    fields = [("Via", str(invite.top_via))]
    fields += [("Route", route) for route in invite.headers.get_all("Route")]
    fields += [
        ("Max-Forwards", "70"),
        ("To", response.headers.get("To") or ""),
        ("From", invite.headers.get("From") or ""),
        ("Call-ID", invite.headers.get("Call-ID") or ""),
        ("CSeq", f"{cseq.seq} ACK"),
    ]
    return Request("ACK", invite.uri, fields)  # (which adds Content-Length: 0)


def _response_to(request: Request, status: int, reason: str) -> Response:
    """A response built from ``request`` alone: Via, From, To, Call-ID, CSeq copied (§8.2.6.2),
    and Timestamp in a 100 (§8.2.6.1).  Used for 100 Trying, and for the 408 and 503 a client
    transaction reports in place of a response that never came (§8.1.3.1)."""
    response = Response(status, reason)
    names = ("Via", "From", "To", "Call-ID", "CSeq") + (("Timestamp",) if status == 100 else ())
    for name in names:
        for value in request.headers.get_all(name):
            response.headers.add(name, value)
    response.set_body(b"")
    return response


# -- matching (§17.1.3, §17.2.3) ---------------------------------------------------------------


def _branch(message: Request | Response) -> str | None:
    try:
        via = message.top_via
    except ParseError:
        return None
    return via.branch if via is not None else None


def matching_key_for_response(response: Response) -> tuple[str, str] | None:
    """The key of the client transaction ``response`` belongs to (RFC 3261 §17.1.3): the branch
    of its top Via and the method of its CSeq, which tells the response to a CANCEL from the
    response to the INVITE it cancels (they share the branch).  ``None`` when either is missing
    or malformed: such a response matches no transaction."""
    branch = _branch(response)
    try:
        cseq = response.cseq
    except ParseError:
        return None
    if not branch or cseq is None:
        return None
    return branch, cseq.method


def _client_key(request: Request) -> tuple[str, str] | None:
    """The key a client transaction is filed under: its request's branch and method."""
    branch = _branch(request)
    return (branch, request.method) if branch else None


def matching_key_for_request(request: Request) -> tuple[str, str, str] | None:
    """The key of the server transaction ``request`` belongs to (RFC 3261 §17.2.3): the branch
    and sent-by of its top Via and its method, with ACK counted as INVITE (the ACK of a non-2xx
    belongs to the INVITE's transaction).  A CANCEL keys its own transaction; see
    :meth:`TransactionTable.find_cancelled` for the INVITE it cancels.  ``None`` when the top
    Via is missing or malformed or its branch lacks the magic cookie: RFC 2543 matching is not
    supported, so such requests match nothing (each one is new)."""
    try:
        via = request.top_via
    except ParseError:
        return None
    if via is None or not (via.branch or "").startswith(MAGIC_COOKIE):
        return None
    method = "INVITE" if request.method == "ACK" else request.method
    # Host names are case-insensitive; the rest of sent-by is digits.
    return via.branch or "", via.sent_by.lower(), method


# -- the machines ------------------------------------------------------------------------------


class Transaction(Model):
    """What the four machines share: the request, T1, the armed timers and the last response.

    Not a machine itself; use one of the four subclasses.
    """

    __slots__ = ("_armed", "_last_response", "_request", "t1")

    _armed: set[str]
    _last_response: Response | None
    _request: Request
    t1: float

    def __init__(self, request: Request, id: str, t1: float, log: TransitionLog | None) -> None:
        if not t1 > 0:
            raise ValueError(f"t1 must be positive, not {t1!r}")
        super().__init__(id, log)
        self._request = request
        self.t1 = t1
        self._armed = set()
        self._last_response = None

    @property
    def kind(self) -> str:
        """``"ict"``, ``"nict"``, ``"ist"`` or ``"nist"``."""
        return self.SPEC.name

    @property
    def request(self) -> Request:
        """The request that created the transaction."""
        return self._request

    @property
    def last_response(self) -> Response | None:
        """Client: the last response passed to the TU.  Server: the last response sent.  Once
        an INVITE transaction is accepted (a 2xx), ``None``: it no longer needs one."""
        return self._last_response

    @property
    def terminated(self) -> bool:
        """Whether the transaction has ended (it then ignores every input)."""
        return self.state.name == "TERMINATED"

    @property
    def armed(self) -> frozenset[str]:
        """The timers armed now, by letter."""
        return frozenset(self._armed)

    def timer_fired(self, name: str, now: float) -> None:
        """Timer ``name`` (``"B"``, ``"F"``, ``"H"``, ``"L"`` or ``"M"``) reached its deadline.
        A timer this transaction has not armed (a late one, already cancelled) is ignored."""
        if name not in self._armed:
            return
        self._armed.discard(name)
        self._fire(TIMERS[name], now=now)

    def transport_error(self, now: float) -> None:
        """The transport could not send, or the flow the transaction uses is gone."""
        self._fire("transport_error", now=now)

    # -- actions shared by all ---------------------------------------------------------------

    def _start(self, name: str, now: float) -> None:
        self._armed.add(name)
        self.effects.append(StartTimer(name, now + 64 * self.t1))

    def _stop(self, name: str) -> None:
        if name in self._armed:
            self._armed.discard(name)
            self.effects.append(CancelTimer(name))

    def _emit(self, event: BusEvent) -> None:
        self.effects.append(Emit(event))

    def _end(self, event: Any) -> None:
        """Entering "Terminated": disarm everything, then say so, once."""
        for name in sorted(self._armed):
            self._stop(name)
        self._emit(TransactionTerminated(transaction=self.id, kind=self.kind))


class ClientTransaction(Transaction):
    """What the two client machines share: sending the request, passing responses up, and
    reporting a timeout or a transport error as a synthesized response plus a failure."""

    __slots__ = ()

    def __init__(self, request: Request, id: str | None, t1: float,
                 log: TransitionLog | None) -> None:
        key = _client_key(request)
        if key is None:
            raise ValueError("a client request needs a top Via with a branch (new_branch())")
        super().__init__(request, id if id is not None else f"{self.SPEC.name}:{key[0]}:"
                         f"{request.method}", t1, log)

    def start(self, now: float) -> None:
        """Send the request.  Raises :class:`InvalidStateError` if it was sent already (a
        terminated transaction ignores it, like everything else)."""
        if not self.terminated and not self._fire("start", now=now):
            raise InvalidStateError(f"{self.id} already started ({self.state.value})")

    def response_received(self, response: Response, now: float) -> None:
        """A response matching this transaction arrived (see :class:`TransactionTable`).
        Responses the state has no use for (a 1xx after the final one) are dropped."""
        self._fire(self._trigger_for(response.status_code), now=now, response=response)

    def _trigger_for(self, status: int) -> str:
        raise NotImplementedError

    def _send_request(self, event: Any) -> None:
        self.effects.append(Transmit(self._request))

    def _to_tu(self, event: Any) -> None:
        response = event.kwargs["response"]
        self._last_response = response
        self._emit(TransactionResponse(transaction=self.id, response=response))

    def _fail(self, status: int, reason: str, cause: str) -> None:
        synthesized = _response_to(self._request, status, reason)
        self._emit(TransactionResponse(transaction=self.id, response=synthesized, local=True))
        self._emit(TransactionFailed(transaction=self.id, cause=cause, status=status))

    def _time_out(self, event: Any) -> None:
        self._fail(408, "Request Timeout", "Request Timeout")

    def _connection_error(self, event: Any) -> None:
        self._fail(503, "Service Unavailable", "Connection Error")


class InviteClientTransaction(ClientTransaction):
    """An INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §7.2), sans-I/O.

    ``CREATED --start--> CALLING``; a 1xx leads to ``PROCEEDING``; a 2xx to ``ACCEPTED`` (Timer
    M); a 3xx-6xx is ACKed and ends it; Timer B (only in ``CALLING``), a transport error or
    :meth:`abandon` end it with a synthesized 408 or 503.
    """

    __slots__ = ("_ack",)

    state: InviteClientState

    def __init__(self, request: Request, *, id: str | None = None, t1: float = T1,
                 log: TransitionLog | None = None) -> None:
        if request.method != "INVITE":
            raise ValueError(f"an INVITE client transaction cannot send {request.method}")
        super().__init__(request, id, t1, log)
        self._ack: Request | None = None

    @property
    def ack(self) -> Request | None:
        """The ACK this transaction sent for a 3xx-6xx final response, if it sent one."""
        return self._ack

    def abandon(self, now: float) -> None:
        """Give up waiting for a final response: the TU sent a CANCEL and nothing final came
        within 64·T1 (RFC 3261 §9.1).  Reported as a timeout; ignored once a final response
        came."""
        self._fire("abandon", now=now)

    def _trigger_for(self, status: int) -> str:
        return "recv_1xx" if status < 200 else "recv_2xx" if status < 300 else "recv_3xx_6xx"

    def _start_timer_b(self, event: Any) -> None:
        self._start("B", event.kwargs["now"])

    def _stop_timer_b(self, event: Any) -> None:
        self._stop("B")

    def _start_timer_m(self, event: Any) -> None:
        self._start("M", event.kwargs["now"])
        # Accepted, the transaction only absorbs 2xx retransmissions for 64·T1: it keeps no
        # response (the TU has it) and no parsed headers, which matters when thousands of
        # calls linger in Timer M.
        self._last_response = None
        self._request.compact()

    def _pass_up(self, event: Any) -> None:
        self._emit(TransactionResponse(transaction=self.id, response=event.kwargs["response"]))

    def _send_ack(self, event: Any) -> None:
        self._ack = build_ack(self._request, event.kwargs["response"])
        self.effects.append(Transmit(self._ack))


class NonInviteClientTransaction(ClientTransaction):
    """A non-INVITE client transaction (RFC 3261 §17.1.2), sans-I/O.

    ``CREATED --start--> TRYING`` (Timer F); a 1xx leads to ``PROCEEDING``; a final response
    ends it; Timer F or a transport error end it with a synthesized 408 or 503.
    """

    __slots__ = ()

    state: NonInviteClientState

    def __init__(self, request: Request, *, id: str | None = None, t1: float = T1,
                 log: TransitionLog | None = None) -> None:
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"a non-INVITE client transaction cannot send {request.method}")
        super().__init__(request, id, t1, log)

    def _trigger_for(self, status: int) -> str:
        return "recv_1xx" if status < 200 else "recv_final"

    def _start_timer_f(self, event: Any) -> None:
        self._start("F", event.kwargs["now"])


class ServerTransaction(Transaction):
    """What the two server machines share: publishing the request, sending the TU's responses
    and re-sending the last one when the request is retransmitted."""

    __slots__ = ()

    def __init__(self, request: Request, id: str | None, t1: float,
                 log: TransitionLog | None) -> None:
        if id is None:
            key = matching_key_for_request(request)
            # Without an RFC 3261 branch nothing can match this transaction again; any unique
            # id will do.
            branch, sent_by = key[:2] if key is not None else (secrets.token_hex(8), "")
            id = f"{self.SPEC.name}:{branch}:{sent_by}:{request.method}"
        super().__init__(request, id, t1, log)

    def request_received(self, request: Request, now: float) -> None:
        """A retransmission of the request arrived: the last response is sent again where the
        RFC says so; otherwise it is absorbed.  Never passed to the TU."""
        self._fire("retransmission", now=now, request=request)

    def respond(self, response: Response, now: float) -> None:
        """Send the TU's ``response``.  Raises :class:`InvalidStateError` when the state no
        longer allows it (a second final response, a 1xx after the final one); a terminated
        transaction ignores it."""
        if self.terminated:
            return
        trigger = self._trigger_for(response.status_code)
        if not self._fire(trigger, now=now, response=response):
            raise InvalidStateError(f"{self.id} cannot send a {response.status_code} response "
                                    f"while {self.state.value}")

    def _trigger_for(self, status: int) -> str:
        raise NotImplementedError

    def _send_response(self, event: Any) -> None:
        response = event.kwargs["response"]
        self._last_response = response
        self.effects.append(Transmit(response))

    def _resend_response(self, event: Any) -> None:
        if self._last_response is not None:
            self.effects.append(Transmit(self._last_response))

    def _connection_error(self, event: Any) -> None:
        self._emit(TransactionFailed(transaction=self.id, cause="Connection Error", status=503))


class InviteServerTransaction(ServerTransaction):
    """An INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1), sans-I/O.

    Created in ``PROCEEDING`` (publishing :class:`~sipfsm.events.RequestReceived` and sending
    ``100 Trying``); 1xx from the TU stay there; a 2xx leads to ``ACCEPTED`` (Timer L), a
    3xx-6xx to ``COMPLETED`` (Timer H), which the ACK ends; Timer H, Timer L or a transport error
    end it otherwise.
    """

    __slots__ = ()

    state: InviteServerState

    def __init__(self, request: Request, *, id: str | None = None, t1: float = T1,
                 trying: bool = True, log: TransitionLog | None = None) -> None:
        if request.method != "INVITE":
            raise ValueError(f"an INVITE server transaction cannot serve {request.method}")
        super().__init__(request, id, t1, log)
        if trying:
            self._last_response = _response_to(request, 100, "Trying")
            self.effects.append(Transmit(self._last_response))
        self._emit(RequestReceived(transaction=self.id, request=request))

    def ack_received(self, request: Request, now: float) -> bool:
        """An ACK matching this transaction arrived.  True when the transaction absorbed it
        (it acknowledges our 3xx-6xx, and ends the transaction); False otherwise, in particular
        in ``ACCEPTED``, where it is the ACK of our 2xx and the caller must pass it to the
        dialog layer."""
        completed = self.state is IS.COMPLETED
        self._fire("ack", now=now, request=request)
        return completed

    def _trigger_for(self, status: int) -> str:
        return "send_1xx" if status < 200 else "send_2xx" if status < 300 else "send_3xx_6xx"

    def _start_timer_h(self, event: Any) -> None:
        self._start("H", event.kwargs["now"])

    def _start_timer_l(self, event: Any) -> None:
        self._start("L", event.kwargs["now"])
        # Accepted, the TU retransmits its 2xx itself: the transaction keeps no response and
        # no parsed headers for its 64·T1 (thousands of calls may linger in Timer L).
        self._last_response = None
        self._request.compact()

    def _transmit(self, event: Any) -> None:
        self.effects.append(Transmit(event.kwargs["response"]))

    def _absorb_ack(self, event: Any) -> None:
        self._emit(AckReceived(transaction=self.id, request=event.kwargs["request"]))

    def _no_ack(self, event: Any) -> None:
        self._emit(TransactionFailed(transaction=self.id, cause="No ACK", status=408))


class NonInviteServerTransaction(ServerTransaction):
    """A non-INVITE server transaction (RFC 3261 §17.2.2), sans-I/O.

    Created in ``TRYING`` (publishing :class:`~sipfsm.events.RequestReceived`); a 1xx from the TU
    leads to ``PROCEEDING``; the final response ends it; so does a transport error.  It arms no
    timer: Timer J, its only one, is zero.
    """

    __slots__ = ()

    state: NonInviteServerState

    def __init__(self, request: Request, *, id: str | None = None, t1: float = T1,
                 log: TransitionLog | None = None) -> None:
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"a non-INVITE server transaction cannot serve {request.method}")
        super().__init__(request, id, t1, log)
        self._emit(RequestReceived(transaction=self.id, request=request))

    def _trigger_for(self, status: int) -> str:
        return "send_1xx" if status < 200 else "send_final"


InviteClientTransaction.SPEC = define("ict", InviteClientState, ICT_TABLE, IC.CREATED)
NonInviteClientTransaction.SPEC = define("nict", NonInviteClientState, NICT_TABLE, NC.CREATED)
InviteServerTransaction.SPEC = define("ist", InviteServerState, IST_TABLE, IS.PROCEEDING)
NonInviteServerTransaction.SPEC = define("nist", NonInviteServerState, NIST_TABLE, NS.TRYING)


# -- the registry ------------------------------------------------------------------------------


_Client = InviteClientTransaction | NonInviteClientTransaction
_Server = InviteServerTransaction | NonInviteServerTransaction
_Any = _Client | _Server
_Key = tuple[str, ...]


def _merge_key(request: Request) -> tuple[object, ...] | None:
    try:
        from_, cseq, call_id = request.from_, request.cseq, request.call_id
    except ParseError:
        return None  # the gate answers it 400; there is nothing to merge with
    if from_ is None or cseq is None:
        return None
    return (call_id, from_.tag, cseq.seq, cseq.method)


class TransactionTable:
    """The live transactions of one UA: a mapping from id to transaction that also finds them
    by the RFC 3261 matching rules.

    Pure bookkeeping: it creates nothing and drives nothing.  The UA adds a transaction when it
    creates one and removes it on :class:`~sipfsm.events.TransactionTerminated`.
    """

    __slots__ = ("_by_id", "_clients", "_merge", "_servers")

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[_Any, _Key | None]] = {}
        self._clients: dict[_Key, _Client] = {}
        self._servers: dict[_Key, _Server] = {}
        # (Call-ID, From tag, CSeq) → the matching keys of the server transactions that have
        # them: the merged-request check is one look-up, not a scan of every live transaction
        # (at 150 calls/s a UA holds ~5,000 INVITE transactions in their 32 s Timer L).
        self._merge: dict[tuple[object, ...], list[_Key]] = {}

    def add(self, transaction: _Any) -> None:
        """File ``transaction``.  Raises :class:`ValueError` if its id or its matching key is
        taken already (create a server transaction only when :meth:`find_server` found none)."""
        if transaction.id in self._by_id:
            raise ValueError(f"a transaction {transaction.id!r} exists already")
        key: _Key | None
        if isinstance(transaction, ClientTransaction):
            key = _client_key(transaction.request)
            if key is not None and key in self._clients:
                raise ValueError(f"a transaction matching {key!r} exists already")
            if key is not None:
                self._clients[key] = transaction
        else:
            key = matching_key_for_request(transaction.request)
            if key is not None and key in self._servers:
                raise ValueError(f"a transaction matching {key!r} exists already")
            if key is not None:
                self._servers[key] = transaction
                merge = _merge_key(transaction.request)
                if merge is not None:
                    self._merge.setdefault(merge, []).append(key)
        self._by_id[transaction.id] = (transaction, key)

    def find_client(self, response: Response) -> _Client | None:
        """The client transaction ``response`` belongs to (§17.1.3), or ``None`` (then the
        response goes to the core: a stray 2xx is a fork's, anything else is dropped)."""
        key = matching_key_for_response(response)
        return self._clients.get(key) if key is not None else None

    def find_server(self, request: Request) -> _Server | None:
        """The server transaction ``request`` belongs to (§17.2.3): a retransmission, or the
        ACK of an INVITE's non-2xx.  ``None`` for a new request (or the ACK of a 2xx)."""
        key = matching_key_for_request(request)
        return self._servers.get(key) if key is not None else None

    def find_cancelled(self, cancel: Request) -> InviteServerTransaction | None:
        """The INVITE server transaction a CANCEL targets: the one its top Via matches with the
        method taken as INVITE (RFC 3261 §9.2)."""
        key = matching_key_for_request(cancel)
        if key is None:
            return None
        found = self._servers.get((key[0], key[1], "INVITE"))
        return found if isinstance(found, InviteServerTransaction) else None

    def is_merged(self, request: Request) -> bool:
        """Whether ``request`` is a merged request (RFC 3261 §8.2.2.2): it has no To tag, and
        its From tag, Call-ID and CSeq are those of a live server transaction that it does not
        match (the same request reached us by two paths; the UAS answers 482)."""
        try:
            to, from_, call_id, cseq = request.to, request.from_, request.call_id, request.cseq
        except ParseError:
            return False
        if to is None or to.tag is not None or from_ is None or cseq is None:
            return False
        mine = matching_key_for_request(request)
        keys = self._merge.get((call_id, from_.tag, cseq.seq, cseq.method), ())
        return any(key != mine for key in keys)

    def remove(self, id: str) -> _Any | None:
        """Forget the transaction with this id; return it (``None`` if there was none)."""
        entry = self._by_id.pop(id, None)
        if entry is None:
            return None
        transaction, key = entry
        if key is not None:
            if isinstance(transaction, ClientTransaction):
                self._clients.pop(key, None)
            else:
                self._servers.pop(key, None)
                merge = _merge_key(transaction.request)
                keys = self._merge.get(merge) if merge is not None else None
                if keys is not None:
                    if key in keys:
                        keys.remove(key)
                    if not keys:
                        del self._merge[merge]  # type: ignore[arg-type]
        return transaction

    # -- the mapping view (id → transaction) -----------------------------------------------------

    def get(self, id: str) -> _Any | None:
        """The transaction with this id, or ``None``."""
        entry = self._by_id.get(id)
        return entry[0] if entry is not None else None

    def __getitem__(self, id: str) -> _Any:
        return self._by_id[id][0]

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, id: object) -> bool:
        return id in self._by_id

    def __iter__(self) -> Iterator[str]:
        """The ids (a snapshot: removing while iterating is fine)."""
        return iter(list(self._by_id))

    def keys(self) -> list[str]:
        """Every id."""
        return list(self._by_id)

    def values(self) -> list[_Any]:
        """Every transaction (a snapshot)."""
        return [entry[0] for entry in self._by_id.values()]

    def items(self) -> list[tuple[str, _Any]]:
        """Every ``(id, transaction)`` pair (a snapshot)."""
        return [(id, entry[0]) for id, entry in self._by_id.items()]
