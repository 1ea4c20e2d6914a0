"""Every event that travels on the bus: small, frozen, keyword-only dataclasses.

The machines never call each other; they publish these and subscribe to them.  The user-facing
names (``ua.on("connected", …)``) map onto the classes through :data:`UA_EVENTS`.  Each field is
documented where it is declared, so ``help(sipfsm.events.TransportDisconnected)`` is the
reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from .causes import Cause
from .sip.message import Request, Response
from .sip.uri import URI

__all__ = [
    "UA_EVENTS",
    "AckReceived",
    "BusEvent",
    "FrameReceived",
    "FrameSent",
    "KeepAliveTimeout",
    "RequestReceived",
    "TransactionFailed",
    "TransactionResponse",
    "TransactionTerminated",
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


# -- transactions (RFC 3261 §17, RFC 6026) -------------------------------------------------------
#
# ``transaction`` is always the id of the transaction that published the event: the ``id`` its
# creator gave it, or by default ``"{kind}:{branch}:{method}"`` for a client transaction and
# ``"{kind}:{branch}:{sent-by}:{method}"`` for a server one (see :mod:`sipfsm.fsm.transaction`).


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionResponse(BusEvent):
    """A client transaction hands a response to its transaction user (the TU).

    Every 1xx and the final response are delivered, and on an INVITE every 2xx that arrives in
    the "Accepted" state as well (RFC 6026 §7.2: forks and retransmissions are the TU's to
    acknowledge).  When the transaction fails instead (Timer B or F, a transport error) the TU
    gets a *synthesized* final response first, 408 or 503 built from the request (RFC 3261
    §8.1.3.1), followed by :class:`TransactionFailed`; so a TU that only looks at responses still
    sees exactly one final outcome.
    """

    transaction: str
    """The id of the client transaction."""
    response: Response
    """The response as received (or as synthesized, for a failure)."""
    local: bool = False
    """True for the synthesized 408/503 of a failure (the :class:`TransactionFailed` that
    follows says why); False for a response that came over the network."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionFailed(BusEvent):
    """A transaction ended without its normal exchange completing.

    Client transactions: Timer B or F fired (``cause="Request Timeout"``, ``status=408``), the TU
    abandoned an INVITE that never got a final response (the same cause and status), or the
    transport failed (``cause="Connection Error"``, ``status=503``); it always follows the
    synthesized :class:`TransactionResponse` of the same status.  Server transactions: Timer H
    fired before the ACK of a non-2xx final response came (``cause="No ACK"``, ``status=408``),
    or the transport failed (``cause="Connection Error"``, ``status=503``), after which no
    response can reach the peer.
    """

    transaction: str
    """The id of the transaction."""
    cause: str
    """Why, in SIP.js's words: "Request Timeout", "Connection Error" or "No ACK"."""
    status: int
    """The status code the failure counts as: 408 for a timeout, 503 for a transport error."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived(BusEvent):
    """A server transaction was created for a new request, which is now the TU's to answer.

    Published once per server transaction, when it is constructed; retransmissions of the
    request are absorbed by the transaction and never published.
    """

    transaction: str
    """The id of the server transaction; answer through that transaction's ``respond``."""
    request: Request
    """The request as received."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived(BusEvent):
    """The ACK of a non-2xx final response reached its INVITE server transaction.

    That ACK belongs to the transaction (RFC 3261 §17.2.1), which absorbs it and ends; this
    event exists for observability only (traces, tests), and nothing needs to act on it.  The
    ACK of a 2xx is not part of the transaction and is never published as this event: the
    caller hands it to the dialog layer.
    """

    transaction: str
    """The id of the INVITE server transaction."""
    request: Request
    """The ACK as received."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTerminated(BusEvent):
    """A transaction reached its "Terminated" state (the UA's ``transaction_destroyed``).

    Published exactly once per transaction, as the last effect of the step that ended it; by
    then every timer the transaction armed has been cancelled, and the transaction ignores
    every further input.  The UA removes it from its transaction table on this event.
    """

    transaction: str
    """The id of the transaction."""
    kind: str
    """Which machine: ``"ict"``, ``"nict"``, ``"ist"`` or ``"nist"``."""


# -- the UA core and registration ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSent(BusEvent):
    """A client transaction started: its request went to the transport (``new_transaction``)."""

    transaction: str
    """The transaction's id."""
    request: Request
    """The request sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(BusEvent):
    """A MESSAGE arrived out of dialog and was answered 200 (user event ``message``)."""

    request: Request
    """The MESSAGE; ``request.body`` and ``request.content_type`` hold what was sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Registered(BusEvent):
    """A REGISTER succeeded (user event ``registered``), on every 2xx, refreshes included."""

    response: Response
    """The registrar's 2xx."""
    expires: int
    """The lifetime granted to our binding, in seconds."""
    refresh: bool
    """True when this 2xx answered a refresh of an existing binding."""
    pub_gruu: URI | None = None
    """The public GRUU the registrar assigned (RFC 5627), if any."""
    temp_gruu: URI | None = None
    """The temporary GRUU, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unregistered(BusEvent):
    """Our binding is gone (user event ``unregistered``): removed by us, expired, or no longer
    reachable because the connection dropped."""

    response: Response | None
    """The registrar's response to our un-REGISTER, if that is how it ended."""
    cause: Cause | None
    """``None`` for a deliberate unregister; ``Expires``, ``Connection Error``… otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationFailed(BusEvent):
    """A REGISTER failed (user event ``registration_failed``)."""

    response: Response | None
    """The final response, when there was one."""
    cause: Cause
    """Why: ``Authentication Error``, ``Request Timeout``, ``Connection Error``…"""


UA_EVENTS.update({
    "message": MessageReceived,
    "new_transaction": RequestSent,
    "registered": Registered,
    "unregistered": Unregistered,
    "registration_failed": RegistrationFailed,
})


# -- INVITE sessions ---------------------------------------------------------------------------
#
# ``session`` is the id of the session (``Session.id``); each session re-publishes these to its
# own listeners under SIP.js's names (``progress``, ``accepted``, ``confirmed``…).


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionProgress(BusEvent):
    """A provisional response to our INVITE (``progress``)."""

    session: str
    """The session's id."""
    response: Response
    """The 1xx."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionAccepted(BusEvent):
    """The call was answered (``accepted``): the 2xx we received, or the one we sent."""

    session: str
    """The session's id."""
    response: Response | None
    """The caller's received 2xx; ``None`` on the callee's side."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfirmed(BusEvent):
    """The 2xx was acknowledged: the call is up (``confirmed``)."""

    session: str
    """The session's id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRejected(BusEvent):
    """The call was refused with a final response (``rejected``)."""

    session: str
    """The session's id."""
    response: Response | None
    """The failure response received (caller), or ``None`` when we sent it (callee)."""
    cause: Cause
    """Why (SIP.js cause names)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFailed(BusEvent):
    """The call never got up (``failed``): refused, cancelled, unanswered, timed out…"""

    session: str
    """The session's id."""
    response: Response | None
    """The failure response, when one came."""
    cause: Cause
    """Why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCanceled(BusEvent):
    """The call was cancelled (``cancel``): by us (caller) or by the peer (callee)."""

    session: str
    """The session's id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionBye(BusEvent):
    """The peer hung up with BYE (``bye``)."""

    session: str
    """The session's id."""
    request: Request
    """The BYE."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTerminated(BusEvent):
    """The call is over, whatever the way (``terminated``); always the last event."""

    session: str
    """The session's id."""
    cause: Cause
    """Why it ended (``Terminated`` for a BYE, either side)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InviteReceived(BusEvent):
    """A new incoming call (user event ``invite``); ``session`` is the :class:`~sipfsm.session.
    Session` to accept or reject."""

    session: object
    """The new callee session."""
    request: Request
    """The INVITE."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InviteSent(BusEvent):
    """An outgoing call's INVITE went out (user event ``invite_sent``)."""

    session: object
    """The caller session."""


UA_EVENTS.update({"invite": InviteReceived, "invite_sent": InviteSent})


# -- transfers: Replaces (RFC 3891) and REFER (RFC 3515) ------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReplaced(BusEvent):
    """This call was replaced by a new one that named it in ``Replaces`` and was accepted
    (``replaced``); the call ends right after."""

    session: str
    """The replaced session's id."""
    replacement: object
    """The new :class:`~sipfsm.session.Session`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReferRequested(BusEvent):
    """Our REFER got its final response (``refer_requested``): 2xx means the peer agreed to
    try; the outcome comes in NOTIFYs (``refer_progress``, ``refer_accepted``,
    ``refer_rejected``)."""

    session: str
    """The transferring session's id."""
    response: Response | None
    """The final response to the REFER (``None`` when it timed out or the connection went)."""
    accepted: bool
    """Whether it was a 2xx."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReferProgress(BusEvent):
    """A NOTIFY of our REFER reports the new call's progress, a 1xx in its sipfrag
    (``refer_progress``)."""

    session: str
    """The transferring session's id."""
    status: int
    """The status line's code in the sipfrag (100 Trying, 180 Ringing…)."""
    request: Request
    """The NOTIFY."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReferAccepted(BusEvent):
    """The transfer succeeded: the sipfrag of a NOTIFY says 2xx (``refer_accepted``)."""

    session: str
    """The transferring session's id."""
    status: int
    """The 2xx in the sipfrag."""
    request: Request
    """The NOTIFY."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReferRejected(BusEvent):
    """The transfer failed (``refer_rejected``): the REFER was refused, or a NOTIFY's sipfrag
    says ≥ 300, or the subscription ended without a final status."""

    session: str
    """The transferring session's id."""
    status: int | None
    """The failure status (of the REFER's response or in the sipfrag), if any."""
    request: Request | None
    """The NOTIFY that said so, if it was one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRefer(BusEvent):
    """The peer asks us to transfer (``refer``): ``refer`` is a :class:`~sipfsm.refer.
    ReferRequest` to ``accept()`` (and follow) or ``reject()``; with no listener it is accepted
    and followed."""

    session: str
    """The session the REFER came in."""
    refer: object
    """The :class:`~sipfsm.refer.ReferRequest`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutOfDialogReferRequested(BusEvent):
    """An out-of-dialog REFER arrived and ``allow_out_of_dialog_refers`` is on (user event
    ``out_of_dialog_refer_requested``); ``refer`` is the :class:`~sipfsm.refer.ReferRequest`."""

    refer: object
    """The :class:`~sipfsm.refer.ReferRequest`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyReceived(BusEvent):
    """An out-of-dialog NOTIFY, accepted because ``allow_legacy_notifications`` is on and a
    listener exists (user event ``notify``); it was answered 200."""

    request: Request
    """The NOTIFY."""


UA_EVENTS["out_of_dialog_refer_requested"] = OutOfDialogReferRequested
UA_EVENTS["notify"] = NotifyReceived


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionDtmf(BusEvent):
    """A DTMF tone arrived from the peer (session event ``dtmf``)."""

    session: str
    """The session's id."""
    tone: str
    """One of ``0-9 * # A-D``."""
    duration: int
    """Milliseconds, as signalled."""
    via: str
    """``"info"`` (SIP INFO, application/dtmf-relay) or ``"rtp"`` (RFC 4733)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReinvited(BusEvent):
    """A re-INVITE completed (session event ``reinvite``): ours (hold, unhold, renegotiation)
    or the peer's (``remote_hold`` on the session then says whether the peer holds us)."""

    session: str
    """The session's id."""
    local: bool
    """True for our re-INVITE, False for the peer's."""
    accepted: bool
    """False when our re-INVITE was refused (the previous state was kept: decision 8)."""
    held: bool
    """Whether our side holds the call after it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionMessage(BusEvent):
    """A MESSAGE arrived inside the call's dialog and was answered 200 (session event
    ``message``)."""

    session: str
    """The session's id."""
    request: Request
    """The MESSAGE; ``request.body`` and ``request.content_type`` hold what was sent."""


# -- subscriptions (RFC 6665, subscriber side) ---------------------------------------------------
#
# ``subscription`` is the id of the subscription (``Subscription.id``); each subscription
# re-publishes these to its own listeners as ``accepted``, ``notify``, ``failed``, ``terminated``.


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionAccepted(BusEvent):
    """A 2xx answered our initial SUBSCRIBE (``accepted``): once per initial SUBSCRIBE, so
    again when the subscription is renewed after the notifier ended it."""

    subscription: str
    """The subscription's id."""
    response: Response
    """The 2xx."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionNotify(BusEvent):
    """A NOTIFY of the subscription arrived and was answered 200 (``notify``)."""

    subscription: str
    """The subscription's id."""
    request: Request
    """The NOTIFY (``request.content_type`` says what the body is)."""
    state: str
    """What its Subscription-State means for us: ``active``, ``pending`` or ``terminated`` (an
    unknown value counts as ``pending``)."""
    body: str
    """The NOTIFY's body, decoded as UTF-8."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionFailed(BusEvent):
    """The subscription failed (``failed``): its SUBSCRIBE or a refresh was refused or timed
    out, no NOTIFY came within Timer N, or the connection dropped."""

    subscription: str
    """The subscription's id."""
    response: Response | None
    """The failure response, when one came."""
    cause: Cause
    """Why (``Request Timeout``, ``Connection Error``, or the cause of the response's status)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionTerminated(BusEvent):
    """The subscription is over (``terminated``); always its last event."""

    subscription: str
    """The subscription's id."""
    reason: str | None
    """``"unsubscribed"`` (ours: ``unsubscribe()`` or the UA stopping), ``"failed"`` (see
    :attr:`cause`), or the notifier's Subscription-State reason, lower-cased (``noresource``,
    ``rejected``, ``invariant``…; ``None`` when it gave none)."""
    cause: Cause | None
    """Why it failed, when ``reason`` is ``"failed"``."""
