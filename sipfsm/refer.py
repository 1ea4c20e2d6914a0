"""Transfers (RFC 3515 REFER, RFC 3891 Replaces): both sides of a REFER.

*Receiving.*  A REFER in a call reaches the session's ``refer`` listeners as a
:class:`ReferRequest`; an out-of-dialog one reaches the UA's ``out_of_dialog_refer_requested``
listeners, and only when ``allow_out_of_dialog_refers`` is on (decision 2: otherwise 405).
``accept()`` answers 202 and, by default, follows it: a new call to the Refer-To target, with
the ``Replaces`` its URI carries and our ``Referred-By``; the implicit subscription (the
:class:`~sipfsm.fsm.refer.ReferNotifier` machine) reports ``100 Trying`` and then the new call's
final status to the referrer in NOTIFYs (decision 10).  ``reject()`` answers 603.  With no
listener at all the REFER is accepted and followed, as SIP.js did — for an out-of-dialog REFER
that means anyone who can reach the UA can make it call anyone: the UA logs a warning, and the
docs say why ``allow_out_of_dialog_refers`` is off by default.

*Sending.*  :class:`Referral` is the transferor's side of one REFER (``Session.refer``): the
REFER's final response, then the NOTIFYs of its subscription, whose ``message/sipfrag`` status
lines become the session events ``refer_progress``, ``refer_accepted`` and ``refer_rejected``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .aio.effects import carry_out
from .causes import Cause
from .core import OutgoingRequest
from .errors import InvalidStateError, ParseError
from .events import (
    SessionReferAccepted,
    SessionReferProgress,
    SessionReferRejected,
    SessionReferRequested,
)
from .fsm.dialog import Dialog
from .fsm.refer import ReferNotifier, ReferState
from .fsm.transaction import ServerTransaction
from .sip.headers import Replaces, parse_name_addr, parse_replaces_value
from .sip.message import Request, Response
from .sip.uri import URI

if TYPE_CHECKING:
    from .session import Session
    from .ua import UA

__all__ = ["ReferRequest", "Referral", "refer_to_value", "sipfrag_status"]

SIPFRAG = "message/sipfrag;version=2.0"


def sipfrag_status(body: str) -> int | None:
    """The status code of a ``message/sipfrag`` body's status line (``SIP/2.0 200 OK``)."""
    line = body.lstrip("\r\n").split("\r\n", 1)[0].split("\n", 1)[0]
    version, _, rest = line.partition(" ")
    code = rest.partition(" ")[0]
    if not version.upper().startswith("SIP/") or not code.isdigit() or len(code) != 3:
        return None
    status = int(code)
    return status if 100 <= status <= 699 else None


def refer_to_value(target: URI, replaces: Replaces | None = None) -> str:
    """A Refer-To value: ``<target>``, with an escaped ``?Replaces=`` for an attended
    transfer (RFC 3891 §7)."""
    if replaces is None:
        return f"<{target}>"
    return f"<{target}?Replaces={quote(str(replaces), safe='')}>"


# -- receiving -------------------------------------------------------------------------------------


class ReferRequest:
    """A REFER we received: :meth:`accept` (and follow it) or :meth:`reject` it."""

    def __init__(self, ua: UA, request: Request, transaction: ServerTransaction,
                 dialog: Dialog, *, session: Session | None = None) -> None:
        self.ua = ua
        self.request = request
        self.session = session
        """The call the REFER came in (``None`` for an out-of-dialog REFER)."""
        self.dialog = dialog
        self.id = secrets.token_hex(4)
        self.machine = ReferNotifier(self.id)
        self._transaction = transaction
        self._timers = ua._timers().scope(f"r{self.id}", self._timer_fired)
        refer_to = request.refer_to
        assert refer_to is not None  # checked by the UA before a ReferRequest is made
        uri = refer_to.uri
        self.target: URI = uri.replace(headers={})
        """Where to call: the Refer-To URI without its headers."""
        replaces = uri.headers.get("Replaces") or uri.headers.get("replaces")
        self.replaces: Replaces | None = parse_replaces_value(replaces) if replaces else None
        """The dialog the new call is to replace (attended transfer), if any."""
        self.referred_by: str | None = request.headers.get("Referred-By")
        self.new_session: Session | None = None
        """The call made by following the REFER."""
        self._input(lambda now: self.machine.start(now))

    @property
    def state(self) -> ReferState:
        """Where the implicit subscription is."""
        return self.machine.state

    def accept(self, *, follow: bool = True, extra_headers: Iterable[tuple[str, str]] = (),
               session_description_handler_options: Mapping[str, Any] | None = None
               ) -> Session | None:
        """Answer 202 and, with ``follow`` (the default), call the target now; returns that
        call.  Without ``follow`` the application makes the call itself and reports its outcome
        with :meth:`notify`."""
        self._require("accept")
        if not follow:
            return None
        headers = list(extra_headers)
        if self.replaces is not None:
            headers.append(("Replaces", str(self.replaces)))
        headers.append(("Referred-By", self.referred_by or f"<{self.dialog.remote_uri}>"))
        session = self.ua.invite(self.target, extra_headers=headers,
                                 session_description_handler_options=(
                                     session_description_handler_options))
        self.new_session = session
        session.on("accepted", lambda event: self.notify(200, "OK"))
        session.on("failed", self._call_failed)
        return session

    def reject(self, status_code: int = 603) -> None:
        """Refuse the REFER (a final response from 400 to 699; 603 Declined by default)."""
        if not 400 <= status_code <= 699:
            raise ValueError(f"a REFER is refused with 400–699, not {status_code}")
        self._require("reject", status=status_code)

    def notify(self, status: int, reason: str = "") -> None:
        """Report the referred call's final status (for ``accept(follow=False)``); once."""
        if self.machine.state is ReferState.ACTIVE:
            self._input(lambda now: self.machine.input("final", now, status=status,
                                                       reason=reason))

    def _call_failed(self, event: Any) -> None:
        response: Response | None = event.response
        if response is not None:
            self.notify(response.status_code, response.reason_phrase)
        elif event.cause is Cause.REQUEST_TIMEOUT:
            self.notify(408, "Request Timeout")
        else:
            self.notify(503, "Service Unavailable")

    def _require(self, trigger: str, **kwargs: Any) -> None:
        done: list[bool] = []
        self._input(lambda now: done.append(self.machine.input(trigger, now, **kwargs)))
        if not done[0]:
            raise InvalidStateError(f"cannot {trigger} a REFER that is "
                                    f"{self.machine.state.value}")

    def _input(self, call: Callable[[float], object]) -> None:
        call(self._timers.now())
        carry_out(self, self.machine.take_effects(), self._timers, self.ua.bus.publish)
        if self.machine.state is ReferState.TERMINATED:
            self._timers.cancel_all()

    def _timer_fired(self, name: str) -> None:
        self._input(lambda now: self.machine.timer_fired(name, now))

    def _do_respond(self, status: int) -> None:
        headers = [("Contact", f"<{self.ua.factory.contact_uri}>")] if status < 300 else []
        self.ua.core.respond(self._transaction, status, headers=headers,
                             to_tag=self.dialog.local_tag)

    def _do_notify(self, status: int, reason: str, state: str) -> None:
        ua = self.ua
        cseq = self.request.cseq
        notify = self.dialog.request(
            "NOTIFY", via=ua.factory.via(ua.core.new_branch()),
            body=f"SIP/2.0 {status} {reason}".rstrip() + "\r\n", content_type=SIPFRAG,
            extra_headers=[("Event", f"refer;id={cseq.seq if cseq else 0}"),
                           ("Subscription-State", state),
                           ("Contact", f"<{ua.factory.contact_uri}>"),
                           ("User-Agent", ua.config.user_agent_string)])
        ua.core.send(notify, owner=_NotifyRequest(self, notify))


class _NotifyRequest(OutgoingRequest):
    """One NOTIFY of ours: a failure ends the subscription (RFC 6665 §4.2.2)."""

    def __init__(self, refer: ReferRequest, request: Request) -> None:
        super().__init__(refer.ua.core, request, refer.ua._credentials())
        self.refer = refer

    def _response(self, response: Response) -> None:
        super()._response(response)
        if self.done and response.status_code >= 300:
            self._end()

    def _failed(self, status: int, cause: Cause) -> None:
        super()._failed(status, cause)
        self._end()

    def _end(self) -> None:
        refer = self.refer
        if refer.machine.state is ReferState.ACTIVE:
            refer._input(lambda now: refer.machine.input("notify_failed", now))


def check_refer(request: Request) -> tuple[int, str] | None:
    """Why a REFER cannot be followed (status, reason), or ``None``: exactly one Refer-To, a
    SIP or SIPS URI, whose Replaces (if any) parses."""
    try:
        refer_to = request.refer_to
    except ParseError:
        return 400, "Bad Refer-To header field"
    if refer_to is None:
        return 400, "Missing Refer-To header field"
    uri = refer_to.uri
    if uri.scheme not in ("sip", "sips"):
        return 416, "Refer-To must be a SIP URI"
    replaces = uri.headers.get("Replaces") or uri.headers.get("replaces")
    if replaces:
        try:
            parse_replaces_value(replaces)
        except ParseError:
            return 400, "Bad Replaces in Refer-To"
    return None


# -- sending ---------------------------------------------------------------------------------------


class Referral:
    """Our REFER in a call and the NOTIFYs of its subscription (the transferor's side)."""

    def __init__(self, session: Session, request: Request, *,
                 active_after_transfer: bool) -> None:
        self.session = session
        self.request = request
        self.active_after_transfer = active_after_transfer
        cseq = request.cseq
        self.event_id = str(cseq.seq) if cseq is not None else ""
        self.accepted = False  # the REFER got its 2xx
        self.outcome: int | None = None  # the final sipfrag status, once known
        self.ended = False  # the subscription is over (terminal NOTIFY, or failure)

    def matches(self, request: Request) -> bool:
        """Whether a NOTIFY belongs to this REFER (``Event: refer`` with our ``id``, or no id:
        RFC 3515 §2.4.6 allows none for the first REFER of a dialog)."""
        try:
            event = request.event
        except ParseError:
            return False
        return event is not None and event.package.lower() == "refer" \
            and event.id in (None, self.event_id)

    def response(self, response: Response | None) -> None:
        """The REFER's final response (``None``: it timed out or the connection went)."""
        session = self.session
        accepted = response is not None and 200 <= response.status_code < 300
        self.accepted = accepted
        session._publish(SessionReferRequested(session=session.id, response=response,
                                               accepted=accepted))
        if not accepted:
            self.ended = True
            session._publish(SessionReferRejected(
                session=session.id, status=response.status_code if response else None,
                request=None))

    def notify(self, request: Request) -> tuple[int, str | None]:
        """A NOTIFY of the subscription: the status to answer it with (and a reason)."""
        session = self.session
        content_type = request.content_type
        status = sipfrag_status(request.text) if request.body else None
        if content_type is None or content_type.mime != "message/sipfrag" or status is None:
            return 400, "Bad sipfrag body"
        try:
            state = request.subscription_state
        except ParseError:
            state = None
        terminated = state is not None and state.state == "terminated"
        if self.outcome is None:
            if status < 200:
                session._publish(SessionReferProgress(session=session.id, status=status,
                                                      request=request))
            elif status < 300:
                self.outcome = status
                session._publish(SessionReferAccepted(session=session.id, status=status,
                                                      request=request))
            else:
                self.outcome = status
                session._publish(SessionReferRejected(session=session.id, status=status,
                                                      request=request))
        if terminated and not self.ended:
            self.ended = True
            if self.outcome is None:  # over without a final status: the transfer failed
                session._publish(SessionReferRejected(session=session.id, status=None,
                                                      request=request))
        if self.outcome is not None and 200 <= self.outcome < 300 \
                and not self.active_after_transfer:
            self.active_after_transfer = True  # hang up once, whatever NOTIFYs follow
            session._transferred()
        return 200, None


class _ReferOut(OutgoingRequest):
    """Our REFER: its final response goes to the :class:`Referral`."""

    def __init__(self, referral: Referral) -> None:
        session = referral.session
        super().__init__(session.ua.core, referral.request, session.ua._credentials())
        self.referral = referral

    def _response(self, response: Response) -> None:
        super()._response(response)
        if self.done and response is self.response:
            self.referral.response(response)
            if response.status_code in (408, 481):  # RFC 3261 §12.2.1.2: the dialog is gone
                self.referral.session._dialog_error()

    def _failed(self, status: int, cause: Cause) -> None:
        super()._failed(status, cause)
        self.referral.response(None)
        if cause is Cause.REQUEST_TIMEOUT:
            self.referral.session._dialog_error()


def send_refer(session: Session, target: URI | Session, *, extra_headers: Iterable[
        tuple[str, str]] = (), active_after_transfer: bool = False) -> Referral:
    """Send a REFER in ``session``'s dialog: blind to ``target`` (a URI), or attended to the
    peer of ``target`` (another session), whose dialog the new call replaces."""
    from .session import Session

    ua, dialog = session.ua, session.dialog
    assert dialog is not None
    if isinstance(target, Session):
        other = target.dialog
        if other is None:
            raise InvalidStateError("the consultation call has no dialog")
        # RFC 3891 §3: the tags as the *target* sees its dialog with us — its local tag (our
        # remote one) is the to-tag; ours is the from-tag.  Right whoever placed that call.
        replaces = Replaces(other.call_id, other.remote_tag, other.local_tag)
        refer_to = refer_to_value(_aor(other.remote_uri, other.remote_target), replaces)
    else:
        refer_to = refer_to_value(target)
    request = dialog.request(
        "REFER", via=ua.factory.via(ua.core.new_branch()),
        extra_headers=[("Refer-To", refer_to), ("Referred-By", f"<{ua.config.uri}>"),
                       ("Contact", f"<{ua.factory.contact_uri}>"),
                       ("Allow", ",".join(ua.core.allowed)),
                       *extra_headers,
                       ("User-Agent", ua.config.user_agent_string)])
    referral = Referral(session, request, active_after_transfer=active_after_transfer)
    ua.core.send(request, owner=_ReferOut(referral))
    return referral


def _aor(name_addr: str, fallback: URI) -> URI:
    """The URI inside a dialog's remote URI (``"Carol" <sip:carol@…>``), parameters dropped."""
    try:
        return parse_name_addr(name_addr, 0, "To")[0].uri.replace(params={}, headers={})
    except ParseError:
        return fallback
