"""Calls: :class:`Session`, the adapter between the INVITE machine, dialogs and media.

The :class:`~sipfsm.fsm.invite.InviteSession` machine decides; this module carries out what it
asks for: it writes INVITE, ACK, CANCEL, BYE and the responses (through the UA core's
transactions), keeps the :class:`~sipfsm.fsm.dialog.Dialog`, and runs the session description
handler, whose offers and answers are asynchronous and come back to the machine as inputs.

What a user sees: ``ua.invite(target)`` returns a caller :class:`Session`; incoming calls
arrive on the UA's ``invite`` event.  A session has ``accept()``, ``reject()``, ``cancel()``,
``bye()``, ``terminate()``, and events ``progress``, ``accepted``, ``confirmed``, ``rejected``,
``failed``, ``cancel``, ``bye``, ``dtmf``, ``terminated`` (each with the bus event as argument).
``session.dtmf("123#")`` sends DTMF by INFO or RFC 4733 (``dtmf_type``);
``session.message("hi")`` sends a MESSAGE in the call, and one from the peer is the session's
``message`` event.

A callee's ``progress(status_code, rel100=…, early_media=…)`` sends a provisional response;
reliable ones (RFC 3262) carry RSeq and are retransmitted until the caller's PRACK, and a 183
with early media carries our answer (or, for an INVITE without SDP, our offer, answered in the
PRACK).  ``invite_without_sdp`` calls put the offer in the 2xx (or a reliable 1xx) and the answer
in the ACK (or the PRACK).  An UPDATE from the peer (RFC 3311) refreshes the target, or
renegotiates the media of an established call (491 while another offer is outstanding).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .aio.clock import TimerScope
from .aio.effects import carry_out
from .bus import Listeners
from .causes import Cause
from .core import OutgoingRequest, make_response
from .errors import InvalidStateError
from .events import (
    BusEvent,
    SessionAccepted,
    SessionBye,
    SessionCanceled,
    SessionConfirmed,
    SessionDtmf,
    SessionFailed,
    SessionMessage,
    SessionProgress,
    SessionRefer,
    SessionReferAccepted,
    SessionReferProgress,
    SessionReferRejected,
    SessionReferRequested,
    SessionReinvited,
    SessionRejected,
    SessionReplaced,
    SessionTerminated,
)
from .fsm.dialog import Dialog, DialogState
from .fsm.invite import InviteSession, InviteState
from .fsm.transaction import InviteServerTransaction, ServerTransaction
from .media.base import IncompatibleSDP, SessionDescriptionHandler
from .outgoing import new_tag
from .refer import Referral, ReferRequest, check_refer, send_refer
from .sip.headers import bounded_int
from .sip.message import Request, Response
from .sip.uri import URI

if TYPE_CHECKING:
    from .ua import UA

__all__ = ["Session"]

T = TypeVar("T")

_EVENT_NAMES: dict[type[BusEvent], str] = {
    SessionProgress: "progress",
    SessionAccepted: "accepted",
    SessionConfirmed: "confirmed",
    SessionRejected: "rejected",
    SessionFailed: "failed",
    SessionCanceled: "cancel",
    SessionBye: "bye",
    SessionTerminated: "terminated",
    SessionDtmf: "dtmf",
    SessionReinvited: "reinvite",
    SessionMessage: "message",
    SessionReplaced: "replaced",
    SessionRefer: "refer",
    SessionReferRequested: "refer_requested",
    SessionReferProgress: "refer_progress",
    SessionReferAccepted: "refer_accepted",
    SessionReferRejected: "refer_rejected",
}
_TONES = frozenset("0123456789*#ABCDabcd,")
DTMF_PAUSE = 2.0
"""Seconds a ``,`` waits in a DTMF string (decision 9)."""


class _InviteRequest(OutgoingRequest):
    """Our INVITE's outcome: every response goes to the session (digest retries aside)."""

    def __init__(self, session: Session, request: Request) -> None:
        super().__init__(session.ua.core, request, session.ua._credentials())
        self.session = session

    def _response(self, response: Response) -> None:
        status = response.status_code
        if status in (401, 407) and not self.done and self._retry_with_credentials(response):
            self.session._invite = self.request  # the retry is the INVITE from now on
            return
        self.session._on_response(response)

    def _failed(self, status: int, cause: Cause) -> None:
        self.session._input(lambda now: self.session.machine.failed(cause, now))


class _ByeRequest(OutgoingRequest):
    """Our BYE: whatever its outcome, the call is over."""

    def __init__(self, session: Session, request: Request) -> None:
        super().__init__(session.ua.core, request, session.ua._credentials())
        self.session = session

    def _response(self, response: Response) -> None:
        if response.status_code >= 200 and not (response.status_code in (401, 407)
                                                 and self._retry_with_credentials(response)):
            self.session._input(lambda now: self.session.machine.input("bye_done", now))

    def _failed(self, status: int, cause: Cause) -> None:
        self.session._input(lambda now: self.session.machine.input("bye_done", now))


class _InDialogRequest(OutgoingRequest):
    """A request of ours in the call (INFO, MESSAGE, REFER…): a 481 or a 408 to it — or no
    answer at all — means the dialog is gone, and the call ends (RFC 3261 §12.2.1.2)."""

    def __init__(self, session: Session, request: Request) -> None:
        super().__init__(session.ua.core, request, session.ua._credentials())
        self.session = session

    def _response(self, response: Response) -> None:
        super()._response(response)
        if self.done and response.status_code in (408, 481):
            self.session._dialog_error()

    def _failed(self, status: int, cause: Cause) -> None:
        super()._failed(status, cause)
        if cause is Cause.REQUEST_TIMEOUT:
            self.session._dialog_error()


class _ReinviteRequest(OutgoingRequest):
    """Our re-INVITE: its outcome goes to the machine (``reinvite_ok`` / ``reinvite_failed``)."""

    def __init__(self, session: Session, request: Request) -> None:
        super().__init__(session.ua.core, request, session.ua._credentials())
        self.session = session

    def _response(self, response: Response) -> None:
        status, session = response.status_code, self.session
        if status < 200:
            return
        if status in (401, 407) and not self.done and self._retry_with_credentials(response):
            session._reinvite_out = self.request
            return
        if status < 300 and session.state is not InviteState.REINVITING:
            session._do_send_ack(response, reinvite=True)  # a retransmitted 2xx: ACK again
            return
        trigger = "reinvite_ok" if status < 300 else "reinvite_failed"
        gone = status in (408, 481)  # RFC 3261 §12.2.1.2: the dialog is gone
        if status < 300 and response.contact and session.dialog is not None:
            session.dialog.remote_target = response.contact[0].uri  # a target refresh (§12.2)
        self._set_done(response)
        session._input(lambda now: session.machine.input(trigger, now, response=response))
        if gone:
            session._dialog_error()

    def _failed(self, status: int, cause: Cause) -> None:
        self._set_done(None)
        session = self.session
        session._input(lambda now: session.machine.input("reinvite_failed", now, response=None))
        if cause is Cause.REQUEST_TIMEOUT:
            session._dialog_error()

    def _set_done(self, response: Response | None) -> None:
        if not self._done.done() and response is not None:
            self._done.set_result(response)


class Session:
    """One call.  Made by :meth:`UA.invite` (caller) or handed over by the ``invite`` event
    (callee)."""

    def __init__(
        self,
        ua: UA,
        *,
        caller: bool,
        target: URI | None = None,
        invite: Request | None = None,
        transaction: InviteServerTransaction | None = None,
        sdh_options: Mapping[str, Any] | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.ua = ua
        self.id = secrets.token_hex(6)
        self.machine = InviteSession(caller=caller, id=self.id, t1=ua.core.t1)
        self.target = target
        self.dialog: Dialog | None = None
        self._invite = invite
        self._transaction = transaction
        self._extra = list(extra_headers)
        self._listeners = Listeners(_EVENT_NAMES, "session", self._listener_failed)
        self._timers: TimerScope = ua._timers().scope(f"s{self.id}", self._timer_fired)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._local_tag = new_tag()
        self._ok: Response | None = None
        # SIP.js's defaults (empty ``constraints`` and ``peer_connection_options``) mean
        # nothing to our handlers, whose options are strict: leave them out when empty.
        options = {k: v for k, v in ua.config.session_description_handler_factory_options.items()
                   if not (k in ("constraints", "peer_connection_options") and not v)}
        options.update(sdh_options or {})
        factory = ua.config.session_description_handler_factory or _default_factory
        if factory is _default_factory:  # our aiortc handler reports RFC 4733 tones to us
            options.setdefault("on_dtmf", self._rtp_dtmf)
        self.sdh: SessionDescriptionHandler = factory(self, options)  # type: ignore[assignment]
        self._reinvite_out: Request | None = None
        self._invite_owner: _InviteRequest | None = None
        self._reinvite_owner: _ReinviteRequest | None = None
        self._rseqs: dict[str, int] = {}  # the last RSeq PRACKed, per early dialog (To tag)
        self._early_answer = False  # an answer came in a reliable 1xx (RFC 3262 §5)
        self._reinvite_in: tuple[Request, ServerTransaction] | None = None
        # Offer/answer state beyond the plain "offer in the INVITE, answer in the 2xx":
        self._without_sdp = False  # caller: our INVITE carries no offer
        self._anonymous = False  # caller: From anonymous, Privacy: id (RFC 3323/3325)
        self._local_sdp: asyncio.Future[tuple[str, str]] | None = None  # our answer or offer
        self._remote_answer_due = False  # callee: our offer went out, its answer has not come
        self._early_offer = False  # callee: a reliable 1xx carried our offer (PRACK answers)
        self._reliable_1xx: Response | None = None  # callee: the one awaiting its PRACK
        self._prack_in: ServerTransaction | None = None  # the PRACK being answered
        self._early_offer_answered = False
        self._dtmf_queue: list[tuple[str, int, int]] = []
        self._dtmf_task: asyncio.Task[None] | None = None
        self.remote_identity = None if invite is None else invite.from_
        self.replaces: Session | None = None
        """Callee: the call this one replaces (an INVITE with ``Replaces``, RFC 3891); when
        this one is accepted, that one emits ``replaced`` and ends."""
        self._referral: Referral | None = None  # our REFER in flight, and its subscription

    # -- the user's API ----------------------------------------------------------------------------

    @property
    def state(self) -> InviteState:
        """Where the call is (:class:`~sipfsm.fsm.invite.InviteState`)."""
        return self.machine.state

    @property
    def cause(self) -> Cause | None:
        """Why the call ended (or failed), once it has."""
        return self.machine.cause

    @property
    def request(self) -> Request | None:
        """The INVITE (ours, or the one we received)."""
        return self._invite

    def on(self, name: str, handler: Callable[[Any], object]) -> None:
        """Call ``handler(event)`` on ``progress``, ``accepted``, ``confirmed``, ``rejected``,
        ``failed``, ``cancel``, ``bye``, ``dtmf``, ``message`` or ``terminated``."""
        self._listeners.on(name, handler)

    async def wait_for(self, name: str, timeout: float | None = None) -> Any:
        """Wait for session event ``name`` and return it."""
        return await self._listeners.wait_for(name, timeout)

    def accept(self) -> None:
        """Answer an incoming call (the media answer is made, then the 2xx goes out)."""
        self._require("accept")

    def reject(self, status_code: int = 480) -> None:
        """Refuse an incoming call with a final response (300–699)."""
        if not 300 <= status_code <= 699:
            raise ValueError(f"a rejection needs a status from 300 to 699, not {status_code}")
        self._require("reject", status=status_code)

    def progress(self, status_code: int = 180, *, rel100: bool | None = None,
                 early_media: bool | None = None,
                 extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        """Callee: send a provisional response (101–199) before answering.

        ``rel100`` — send it reliably (RFC 3262: ``Require: 100rel``, ``RSeq``, retransmitted
        until the caller's PRACK; 504 and cause ``No PRACK`` after 64·T1 without one).  ``None``
        (the default) means reliably when the INVITE requires 100rel, or supports it and this
        UA's ``rel100`` is ``required``; ``True`` needs the caller's support and a UA whose
        ``rel100`` is not ``none``; ``False`` is refused when the caller requires 100rel.
        ``early_media`` (default: for a 183) puts our session description in it: the answer to
        the INVITE's offer, or our offer when the INVITE had none (then the 1xx must be
        reliable and the caller answers in its PRACK).  Reliable responses go out one at a
        time, each after the previous one's PRACK.
        """
        if not 101 <= status_code <= 199:
            raise ValueError(f"a provisional response needs a status from 101 to 199, "
                             f"not {status_code}")
        if self.machine.caller or self.state not in (InviteState.RINGING,
                                                     InviteState.ANSWERING):
            raise InvalidStateError(f"cannot send progress on a call that is "
                                    f"{self.state.value}")
        reliable = self._reliable(rel100)
        early = status_code == 183 if early_media is None else early_media
        invite = self._invite
        assert invite is not None
        if early and not invite.body and not reliable:
            raise ValueError("early media with an INVITE without SDP needs a reliable "
                             "provisional response (the caller answers in its PRACK)")
        headers = tuple(extra_headers)
        if early:
            self._spawn(self._early_progress(status_code, reliable, headers))
        else:
            self._input(lambda now: self.machine.progress(now, status_code, reliable=reliable,
                                                          headers=headers))

    def _reliable(self, rel100: bool | None) -> bool:
        """Whether a provisional response goes out reliably (decision 7)."""
        invite = self._invite
        assert invite is not None
        requires = "100rel" in invite.require
        supports = requires or "100rel" in invite.supported
        ours = self.ua.config.rel100.value
        if rel100 is None:
            return requires or (supports and ours == "required")
        if rel100 and not supports:
            raise ValueError("the caller does not support 100rel: no reliable provisional "
                             "response can be sent")
        if rel100 and ours == "none":
            raise ValueError("this UA's rel100 is 'none': it cannot send reliable "
                             "provisional responses")
        if not rel100 and requires:
            raise ValueError("the caller requires 100rel: provisional responses must be "
                             "reliable")
        return rel100

    async def _early_progress(self, status: int, reliable: bool,
                              headers: tuple[tuple[str, str], ...]) -> None:
        try:
            body = await self._local_description()
        except Exception as exc:  # no description to send: the call cannot go on
            self.ua.log.warn("no early media description", error=repr(exc))
            status_code = 488 if isinstance(exc, IncompatibleSDP) else 480
            self._input(lambda now: self.machine.input("reject", now, status=status_code))
            return
        if not self._invite or not self._invite.body:
            self._early_offer = True
        self._input(lambda now: self.machine.progress(now, status, reliable=reliable,
                                                      body=body, headers=headers))

    def _local_description(self) -> asyncio.Future[tuple[str, str]]:
        """Callee: our answer to the INVITE's offer (or our offer, for an INVITE without one),
        made once and shared by early media and the 2xx."""
        if self._local_sdp is None:
            self._local_sdp = self._spawn(self._describe())
        return self._local_sdp

    async def _describe(self) -> tuple[str, str]:
        invite = self._invite
        assert invite is not None
        if invite.body:
            await self.sdh.set_description(invite.text)
        return await self.sdh.get_description()

    def cancel(self) -> None:
        """Give up an outgoing call that has not been answered."""
        self._require("cancel")

    def bye(self) -> None:
        """Hang up an established call."""
        self._require("bye")

    def dtmf(self, tones: str, *, duration: int = 100, inter_tone_gap: int = 500) -> None:
        """Send DTMF ``tones`` (``0-9 * # A-D``; ``,`` pauses 2 s) on the established call.

        With ``dtmf_type="rtp"`` the media handler sends RFC 4733 events if telephone-event was
        negotiated; otherwise, and with ``dtmf_type="info"``, each tone is a SIP INFO with
        ``application/dtmf-relay``.  ``duration`` is clamped to 70–6000 ms, ``inter_tone_gap``
        raised to at least 50 ms (SIP.js's rules); tones are queued and sent in order.
        """
        if not tones or not set(tones) <= _TONES:
            raise ValueError(f"invalid DTMF tones {tones!r}")
        if self.state is not InviteState.CONFIRMED:
            raise InvalidStateError(f"cannot send DTMF on a call that is {self.state.value}")
        duration = min(max(duration, 70), 6000)
        inter_tone_gap = max(inter_tone_gap, 50)
        if self.ua.config.dtmf_type.value == "rtp" and self.sdh.send_dtmf(
                tones, duration=duration, inter_tone_gap=inter_tone_gap):
            return
        self._dtmf_queue.extend((tone, duration, inter_tone_gap) for tone in tones.upper())
        if self._dtmf_task is None or self._dtmf_task.done():
            self._dtmf_task = asyncio.ensure_future(self._send_dtmf_info())
            self._tasks.add(self._dtmf_task)
            self._dtmf_task.add_done_callback(self._tasks.discard)

    async def _send_dtmf_info(self) -> None:
        while self._dtmf_queue and self.state is InviteState.CONFIRMED:
            tone, duration, gap = self._dtmf_queue.pop(0)
            if tone == ",":
                await asyncio.sleep(DTMF_PAUSE)
                continue
            dialog = self.dialog
            if dialog is None:
                return
            info = dialog.request(
                "INFO", via=self.ua.factory.via(self.ua.core.new_branch()),
                body=f"Signal={tone}\r\nDuration={duration}\r\n",
                content_type="application/dtmf-relay",
                extra_headers=[("User-Agent", self.ua.config.user_agent_string)])
            self.ua.core.send(info, owner=_InDialogRequest(self, info))
            await asyncio.sleep((duration + gap) / 1000)

    def _rtp_dtmf(self, tone: str, duration: int) -> None:
        self._publish(SessionDtmf(session=self.id, tone=tone, duration=int(duration), via="rtp"))

    def _on_update(self, request: Request, transaction: ServerTransaction) -> None:
        """An UPDATE in the call (RFC 3311).  Without a body it only refreshes the target (as
        session timers do) → 200.  With an offer: 491 while another offer is outstanding (a
        re-INVITE either way, or a call not yet up), else our answer in the 200 — or 488 when
        the media cannot take it, the call going on as before."""
        contact = [("Contact", f"<{self.ua.factory.contact_uri}>")]
        if not request.body:
            self.ua.core.respond(transaction, 200, headers=contact, to_tag=self._local_tag)
            if self.dialog is not None:
                self.dialog.refresh_target(request)
            return
        if self.state is not InviteState.CONFIRMED:
            self.ua.core.respond(transaction, 491, headers=[("Retry-After", "1")],
                                 to_tag=self._local_tag)
            return
        self._spawn(self._answer_update(request, transaction))

    async def _answer_update(self, request: Request, transaction: ServerTransaction) -> None:
        try:
            await self.sdh.set_description(request.text)
            body, content_type = await self.sdh.get_description()
        except Exception as exc:  # an offer we cannot take: the media stays as it was
            self.ua.log.warn("UPDATE offer refused", error=repr(exc))
            self.ua.core.respond(transaction, 488, to_tag=self._local_tag)
            return
        self.ua.core.respond(transaction, 200, body=body, content_type=content_type,
                             headers=[("Contact", f"<{self.ua.factory.contact_uri}>")],
                             to_tag=self._local_tag)
        if self.dialog is not None:
            self.dialog.refresh_target(request)

    def _on_info(self, request: Request, transaction: ServerTransaction) -> None:
        """An INFO in the dialog: DTMF (application/dtmf-relay or application/dtmf) → 200 and
        the ``dtmf`` event; no Content-Type → 415 (decision 9); other bodies → 415."""
        content_type = request.content_type
        mime = content_type.mime if content_type is not None else None
        tone, duration = None, 100
        if mime == "application/dtmf-relay":
            for line in request.text.splitlines():
                name, _, value = line.partition("=")
                if name.strip().lower() == "signal":
                    tone = value.strip()[:1].upper()
                elif name.strip().lower() == "duration" and (
                        number := bounded_int(value.strip())) is not None:
                    duration = number  # not int(): "²" is a digit to str.isdigit()
        elif mime == "application/dtmf":
            tone = request.text.strip()[:1].upper()
        if tone is None or tone not in _TONES or tone == ",":
            self.ua.core.respond(transaction, 415, headers=[
                ("Accept", "application/dtmf-relay, application/dtmf")])
            return
        self.ua.core.respond(transaction, 200, to_tag=self._local_tag)
        self._publish(SessionDtmf(session=self.id, tone=tone, duration=duration, via="info"))

    def message(self, body: str | bytes, *, content_type: str = "text/plain",
                extra_headers: Iterable[tuple[str, str]] = ()) -> OutgoingRequest:
        """Send a MESSAGE (RFC 3428) inside the established call; the returned handle reports
        its outcome like :meth:`UA.message`'s.  The peer's session gets a ``message`` event."""
        if not body:
            raise ValueError("a MESSAGE needs a body")
        dialog = self.dialog
        if dialog is None or self.state not in (InviteState.CONFIRMED, InviteState.REINVITING,
                                                InviteState.REINVITED):
            raise InvalidStateError(f"cannot send a MESSAGE on a call that is "
                                    f"{self.state.value}")
        request = dialog.request(
            "MESSAGE", via=self.ua.factory.via(self.ua.core.new_branch()), body=body,
            content_type=content_type,
            extra_headers=[*extra_headers, ("User-Agent", self.ua.config.user_agent_string)])
        outgoing = _InDialogRequest(self, request)
        self.ua.core.send(request, owner=outgoing)
        return outgoing

    def _on_message(self, request: Request, transaction: ServerTransaction) -> None:
        """A MESSAGE in the dialog: 200 and the ``message`` event."""
        self.ua.core.respond(transaction, 200, to_tag=self._local_tag)
        self._publish(SessionMessage(session=self.id, request=request))

    @property
    def held(self) -> bool:
        """Whether we have put the call on hold."""
        return self.machine.held

    @property
    def remote_hold(self) -> bool:
        """Whether the peer has put us on hold (its media direction is sendonly/inactive)."""
        direction = getattr(self.sdh, "remote_direction", None)
        return direction in ("sendonly", "inactive")

    async def hold(self, timeout: float | None = 32.0) -> bool:
        """Put the call on hold (a re-INVITE with a sendonly/inactive offer); True if the peer
        accepted.  A refusal leaves everything as it was (decision 8)."""
        return await self._reinvite(True, timeout)

    async def unhold(self, timeout: float | None = 32.0) -> bool:
        """Take the call off hold."""
        return await self._reinvite(False, timeout)

    async def reinvite(self, timeout: float | None = 32.0) -> bool:
        """Renegotiate the media with a new offer (keeping the hold state)."""
        return await self._reinvite(self.held, timeout)

    async def _reinvite(self, hold: bool, timeout: float | None) -> bool:
        outcome = asyncio.ensure_future(self._next_local_reinvite(timeout))
        try:
            self._require("reinvite", hold=hold)
        except InvalidStateError:
            outcome.cancel()
            raise
        event: SessionReinvited = await outcome
        return event.accepted

    async def _next_local_reinvite(self, timeout: float | None) -> SessionReinvited:
        while True:
            event: SessionReinvited = await self.wait_for("reinvite", timeout)
            if event.local:
                return event

    def refer(self, target: str | URI | Session, *,
              extra_headers: Iterable[tuple[str, str]] = (),
              active_after_transfer: bool = False) -> Referral:
        """Transfer the peer (RFC 3515): blind to ``target`` (a URI or user), or attended to
        the peer of another session — ``target`` is then the consultation call, which the new
        call replaces (RFC 3891).  The outcome arrives as ``refer_requested`` (the REFER's
        response), then ``refer_progress`` / ``refer_accepted`` / ``refer_rejected`` from the
        peer's NOTIFYs; once the transfer succeeded this call is hung up, unless
        ``active_after_transfer``.  One REFER at a time."""
        if self.state is not InviteState.CONFIRMED:
            raise InvalidStateError(f"cannot refer a call that is {self.state.value}")
        if self._referral is not None and not self._referral.ended:
            raise InvalidStateError("a REFER of this call is still in progress")
        if isinstance(target, Session):
            if target is self:
                raise ValueError("a call cannot be transferred to itself")
            where: URI | Session = target
        else:
            where = self.ua.normalize_target(target)
        self._referral = send_refer(self, where, extra_headers=extra_headers,
                                    active_after_transfer=active_after_transfer)
        return self._referral

    def _dialog_error(self) -> None:
        """A request in the call got 481 or 408 (or no answer): the dialog is gone, and so is
        the call (cause ``Dialog Error``)."""
        self.ua.log.warn("the dialog is gone: ending the call", session=self.id)
        with contextlib.suppress(InvalidStateError):
            self._require("bye", cause=Cause.DIALOG_ERROR)

    def _transferred(self) -> None:
        """Our transfer succeeded: this call is done (unless kept, see :meth:`refer`)."""
        with contextlib.suppress(InvalidStateError):
            self.bye()

    def _on_refer(self, request: Request, transaction: ServerTransaction) -> None:
        """The peer's REFER: 400/416 when it cannot be followed, 491 outside a confirmed call,
        else the ``refer`` event (with no listener: accepted and followed)."""
        fault = check_refer(request)
        if fault is not None:
            self.ua.core.respond(transaction, fault[0], fault[1], to_tag=self._local_tag)
            return
        if self.state is not InviteState.CONFIRMED or self.dialog is None:
            self.ua.core.respond(transaction, 491, to_tag=self._local_tag)
            return
        refer = ReferRequest(self.ua, request, transaction, self.dialog, session=self)
        if self._listeners.listened("refer"):
            self._publish(SessionRefer(session=self.id, refer=refer))
        else:
            refer.accept()

    def _on_notify(self, request: Request, transaction: ServerTransaction) -> None:
        """A NOTIFY in the call: our REFER's subscription, or 481 (RFC 6665 §4.1.3)."""
        referral = self._referral
        if referral is None or referral.ended or not referral.matches(request):
            self.ua.core.respond(transaction, 481, "Subscription does not exist",
                                 to_tag=self._local_tag)
            return
        status, reason = referral.notify(request)
        self.ua.core.respond(transaction, status, reason, to_tag=self._local_tag)
        if status == 200 and self.dialog is not None:
            self.dialog.refresh_target(request)

    def _replace_other(self) -> None:
        """We were accepted: the call we replace emits ``replaced`` and ends."""
        old, self.replaces = self.replaces, None
        if old is not None and old.state is not InviteState.TERMINATED:
            old._publish(SessionReplaced(session=old.id, replacement=self))
            old.terminate()

    def terminate(self) -> None:
        """End the call whatever its state: BYE, CANCEL or a rejection; no-op once ended."""
        state = self.machine.state
        if state in (InviteState.CONFIRMED, InviteState.ACCEPTED, InviteState.REINVITING,
                     InviteState.REINVITED):
            self.bye()
        elif state in (InviteState.CALLING, InviteState.PROCEEDING):
            self.cancel()
        elif state in (InviteState.RINGING, InviteState.ANSWERING):
            self.reject(480)

    def _require(self, trigger: str, **kwargs: Any) -> None:
        if not self._input_ok(trigger, **kwargs):
            raise InvalidStateError(f"cannot {trigger} a call that is {self.state.value}")

    # -- plumbing ----------------------------------------------------------------------------------

    def _input(self, call: Callable[[float], object]) -> None:
        call(self._timers.now())
        carry_out(self, self.machine.take_effects(), self._timers, self._publish)

    def _publish(self, event: BusEvent) -> None:
        self.ua.bus.publish(event)
        self._listeners.emit(event)
        if isinstance(event, SessionTerminated):
            self._finished()

    def _listener_failed(self, exc: BaseException) -> None:
        self.ua.log.error("session listener failed", error=repr(exc))

    def _timer_fired(self, name: str) -> None:
        self._input(lambda now: self.machine.timer_fired(name, now))

    def _spawn(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Run ``work`` as a task of the call's (cancelled when the UA stops)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _finished(self) -> None:
        # Nothing of the call may wait forever: an INVITE of ours still without a final
        # response is given up, a re-INVITE of the peer's still unanswered gets 487 (§15.1.2).
        for owner in (self._invite_owner, self._reinvite_owner):
            if owner is not None and owner.transaction_id is not None and not owner.done:
                self.ua.core.abandon(owner.transaction_id)
        if self._reinvite_in is not None:
            transaction = self._reinvite_in[1]
            if transaction.state.name == "PROCEEDING":  # no final response yet
                self.ua.core.respond(transaction, 487, to_tag=self._local_tag)
        if self.dialog is not None:
            self.dialog.terminate()
            self.ua._dialog_ended(self.dialog.key)
        self._timers.cancel_all()
        self.ua._sessions.pop(self.id, None)

    # -- caller ------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._input(lambda now: self.machine.start(now))

    def _do_send_invite(self) -> None:
        self._spawn(self._send_invite())

    async def _send_invite(self) -> None:
        body, content_type = "", None
        if not self._without_sdp:
            try:
                body, content_type = await self.sdh.get_description()
            except Exception as exc:  # the media could not make an offer
                self.ua.log.warn("no offer", error=repr(exc))
                self._input(lambda now: self.machine.failed(Cause.WEBRTC_ERROR, now))
                return
        assert self.target is not None
        ua = self.ua
        extra = list(self._extra)
        required = [tag for tag, setting in (("100rel", ua.config.rel100),
                                             ("replaces", ua.config.replaces))
                    if setting.value == "required"]
        if required:  # SIP.js: a required option tag is not also listed in Supported
            extra.append(("Require", ", ".join(required)))
        from_ = None
        if self._anonymous:
            # RFC 3323/3325: an anonymous From, our identity asserted for the edge only.
            from_ = f'"Anonymous" <sip:anonymous@anonymous.invalid>;tag={self._local_tag}'
            extra += [("P-Preferred-Identity", f"<{ua.config.uri}>"), ("Privacy", "id")]
        request = ua.factory.request(
            "INVITE", self.target, branch=ua.core.new_branch(), from_tag=self._local_tag,
            body=body, content_type=content_type, extra_headers=extra,
            route=ua._preloaded_route(), from_=from_,
            contact_uri=ua.identity.temp_gruu if self._anonymous else None)
        self._invite = request
        ua._sessions[self.id] = self
        self._invite_owner = _InviteRequest(self, request)
        ua.core.send(request, owner=self._invite_owner)
        from .events import InviteSent

        ua.bus.publish(InviteSent(session=self))

    def _on_response(self, response: Response) -> None:
        to = response.to
        status = response.status_code
        if status < 300 and to is not None and to.tag and self._invite is not None:
            # The first 1xx with a tag makes the early dialog; a 2xx from another fork
            # replaces it while nothing is confirmed (after that, the machine hangs it up).
            dialog = self.dialog
            confirmed = dialog is not None and dialog.state is DialogState.CONFIRMED
            if dialog is None or (status >= 200 and not confirmed
                                  and dialog.remote_tag != to.tag):
                self._dialog(Dialog.as_uac(self._invite, response))
            if status >= 200 and self.dialog is not None and self.dialog.remote_tag == to.tag:
                self.dialog.confirm()
        self._input(lambda now: self.machine.response(response, now))

    def _dialog(self, dialog: Dialog) -> None:
        if self.dialog is not None:
            self.ua._dialogs.pop(self.dialog.key, None)
        self.dialog = dialog
        self.ua._dialogs[dialog.key] = self

    def _do_send_ack(self, response: Response, reinvite: bool = False) -> None:
        dialog = self.dialog
        invite = self._reinvite_out if reinvite else self._invite
        if dialog is None or invite is None or invite.cseq is None:
            return
        if self._without_sdp and not reinvite and not self._early_answer:
            # Our INVITE had no offer: the 2xx has it, and our answer goes in the ACK.
            self._spawn(self._send_ack_with_answer(response, dialog, invite.cseq.seq))
            return
        ack = dialog.request("ACK", via=self.ua.factory.via(self.ua.core.new_branch()),
                             cseq=invite.cseq.seq)
        self.ua.core.send_outside_transaction(ack)

    async def _send_ack_with_answer(self, response: Response, dialog: Dialog,
                                    cseq: int) -> None:
        answer: tuple[str, str] | None = None
        failure: Exception | None = None
        try:
            answer = await self._answer_remote_offer(response)
        except Exception as exc:  # no offer in the 2xx, or one we cannot answer
            failure = exc
        body, content_type = answer if answer is not None else ("", None)
        ack = dialog.request("ACK", via=self.ua.factory.via(self.ua.core.new_branch()),
                             cseq=cseq, body=body, content_type=content_type)
        self.ua.core.send_outside_transaction(ack)
        if failure is not None:
            self.ua.log.warn("cannot answer the offer of the 2xx", error=repr(failure))
            with contextlib.suppress(InvalidStateError):
                self._require("bye", cause=Cause.BAD_MEDIA_DESCRIPTION)

    def _answer_remote_offer(self, response: Response) -> asyncio.Future[tuple[str, str]]:
        """Caller without an offer: our answer to the peer's offer (in a reliable 1xx or the
        2xx), made once; retransmitted 2xxs are ACKed with the same answer."""
        if self._local_sdp is None:
            self._local_sdp = self._spawn(self._answer_offer(response))
        return self._local_sdp

    async def _answer_offer(self, response: Response) -> tuple[str, str]:
        if not response.body:
            raise IncompatibleSDP("the response carries no offer")
        await self.sdh.set_description(response.text)
        return await self.sdh.get_description()

    def _do_ack_and_bye(self, response: Response) -> None:
        """ACK a 2xx we do not want, then hang up that dialog (§13.2.2.4)."""
        invite = self._invite
        to = response.to
        if invite is None or invite.cseq is None or to is None or not to.tag:
            return
        other = Dialog.as_uac(invite, response)
        via = self.ua.factory.via
        self.ua.core.send_outside_transaction(
            other.request("ACK", via=via(self.ua.core.new_branch()), cseq=invite.cseq.seq))
        bye = other.request("BYE", via=via(self.ua.core.new_branch()))
        self.ua.core.send(bye)

    def _do_apply_answer(self, response: Response) -> None:
        # The offer/answer may have completed in a reliable 1xx: then the 2xx repeats it.
        # Without an offer of ours, the 2xx's body is an offer, answered in the ACK.
        if response.body and not self._early_answer and not self._without_sdp:
            self._spawn(self._apply_answer(response))

    def _do_send_prack(self, response: Response) -> None:
        """PRACK a reliable provisional response (RFC 3262 §4), once per RSeq, in order; the
        first one carrying an answer to our offer sets up early media."""
        if self.ua.config.rel100.value == "none":
            self.ua.log.warn("reliable provisional response ignored: rel100 is unsupported")
            return
        invite, to, rseq = self._invite, response.to, response.rseq
        if invite is None or invite.cseq is None or to is None or not to.tag or rseq is None:
            return
        last = self._rseqs.get(to.tag)
        if last is not None and rseq <= last:
            return  # a retransmission, or out of order (§4)
        self._rseqs[to.tag] = rseq
        dialog = self.dialog
        if dialog is None or dialog.remote_tag != to.tag:
            dialog = Dialog.as_uac(invite, response)  # another fork's early dialog
        rack = f"{rseq} {invite.cseq.seq} INVITE"
        if response.body and not self._early_answer and dialog is self.dialog:
            self._early_answer = True
            if self._without_sdp:  # the 1xx carries the offer: our answer goes in the PRACK
                self._spawn(self._prack_with_answer(response, dialog, rack))
                return
            self._spawn(self._apply_answer(response))
        prack = dialog.request(
            "PRACK", via=self.ua.factory.via(self.ua.core.new_branch()),
            extra_headers=[("RAck", rack), ("User-Agent", self.ua.config.user_agent_string)])
        self.ua.core.send(prack)

    async def _prack_with_answer(self, response: Response, dialog: Dialog, rack: str) -> None:
        try:
            body, content_type = await self._answer_remote_offer(response)
        except Exception as exc:  # an offer we cannot answer: give the call up
            self.ua.log.warn("cannot answer the offer of the reliable 1xx", error=repr(exc))
            with contextlib.suppress(InvalidStateError):
                self.cancel()
            return
        prack = dialog.request(
            "PRACK", via=self.ua.factory.via(self.ua.core.new_branch()), body=body,
            content_type=content_type,
            extra_headers=[("RAck", rack), ("User-Agent", self.ua.config.user_agent_string)])
        self.ua.core.send(prack)

    async def _apply_answer(self, response: Response) -> None:
        try:
            await self.sdh.set_description(response.text)
        except Exception as exc:  # a bad answer: hang up (SIP.js: 'Bad Media Description')
            self.ua.log.warn("bad answer", error=repr(exc))
            with contextlib.suppress(InvalidStateError):
                self.bye()

    def _do_abandon_invite(self) -> None:
        """No final response 64·T1 after our CANCEL (RFC 3261 §9.1): the INVITE transaction
        is given up, which reports the failure that ends the call."""
        owner = self._invite_owner
        if owner is not None and owner.transaction_id is not None:
            self.ua.core.abandon(owner.transaction_id)

    def _do_send_cancel(self) -> None:
        invite = self._invite
        if invite is None or invite.cseq is None:
            return
        cancel = Request("CANCEL", invite.uri)
        for name in ("Route",):
            for value in invite.headers.get_all(name):
                cancel.headers.add(name, value)
        cancel.headers.add("Via", invite.headers.get("Via") or "")
        cancel.headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            cancel.headers.add(name, invite.headers.get(name) or "")
        cancel.headers.add("CSeq", f"{invite.cseq.seq} CANCEL")
        cancel.headers.add("User-Agent", self.ua.config.user_agent_string)
        cancel.set_body(b"")
        self.ua.core.send(cancel)

    # -- callee ------------------------------------------------------------------------------------

    def _incoming(self, no_answer: float, expires: float | None) -> None:
        invite = self._invite
        assert invite is not None
        self._dialog(Dialog.as_uas(invite, self._local_tag))
        self.ua._sessions[self.id] = self
        cseq = invite.cseq.seq if invite.cseq is not None else 0
        self._input(lambda now: self.machine.start(now, no_answer=no_answer, expires=expires,
                                                   invite_cseq=cseq))
        # The automatic 180 (SIP.js's), reliable when the caller requires it (decision 7).
        reliable = self._reliable(None)
        self._input(lambda now: self.machine.progress(now, 180, reliable=reliable))

    def _respond(self, status: int, body: str | None = None, content_type: str | None = None
                 ) -> Response | None:
        transaction = self._transaction
        invite = self._invite
        if transaction is None or invite is None or transaction.terminated:
            return None
        return self._answer(invite, transaction, status, body, content_type, supported=True)

    def _answer(self, request: Request, transaction: ServerTransaction, status: int,
                body: str | None, content_type: str | None, *, supported: bool,
                extra: Iterable[tuple[str, str]] = ()) -> Response:
        """Respond to an INVITE or re-INVITE of ours: Contact on 1xx/2xx, Allow (and, for the
        dialog-making INVITE, Supported) on 2xx, our To tag, the body given."""
        headers: list[tuple[str, str]] = list(extra)
        if status < 300:
            headers.append(("Contact", f"<{self.ua.factory.contact_uri}>"))
        if 200 <= status < 300:
            headers.append(("Allow", ",".join(self.ua.core.allowed)))
            if supported:
                headers.append(("Supported", ", ".join(self.ua.factory.supported("INVITE"))))
        response = make_response(request, status, to_tag=self._local_tag, headers=headers,
                                 body=body or b"", content_type=content_type,
                                 user_agent=self.ua.config.user_agent_string)
        self.ua.core.send_response(transaction, response)
        return response

    def _do_make_answer(self) -> None:
        self._spawn(self._make_answer())

    async def _make_answer(self) -> None:
        invite = self._invite
        assert invite is not None
        try:
            body, content_type = await self._local_description()
        except IncompatibleSDP as exc:
            self.ua.log.warn("incompatible offer", error=str(exc))
            self._input(lambda now: self.machine.input("answer_failed", now, status=488))
            return
        except Exception as exc:  # the media could not answer
            self.ua.log.warn("no answer", error=repr(exc))
            self._input(lambda now: self.machine.input("answer_failed", now, status=480))
            return
        self._input(lambda now: self.machine.input("answer_ready", now, body=(body,
                                                                              content_type)))

    def _do_respond(self, status: int, answer: tuple[str, str] | None = None) -> None:
        if answer is not None:
            self._ok = self._respond(status, *answer)
            if self.dialog is not None:
                self.dialog.confirm()
            self._replace_other()
            invite = self._invite
            # Our offer in the 2xx (an INVITE without SDP) is answered in the ACK.
            self._remote_answer_due = invite is not None and not invite.body \
                and not self._early_offer
        else:
            self._respond(status)

    def _do_send_provisional(self, status: int, rseq: int | None,
                             body: tuple[str, str] | None,
                             headers: tuple[tuple[str, str], ...]) -> None:
        transaction, invite = self._transaction, self._invite
        if transaction is None or invite is None or transaction.terminated:
            return
        extra = list(headers)
        if rseq is not None:
            extra += [("Require", "100rel"), ("RSeq", str(rseq))]
        text, content_type = body if body is not None else (None, None)
        response = self._answer(invite, transaction, status, text, content_type,
                                supported=False, extra=extra)
        if rseq is not None:
            self._reliable_1xx = response

    def _do_resend_provisional(self) -> None:
        transaction = self._transaction
        if self._reliable_1xx is not None and transaction is not None \
                and not transaction.terminated:
            self.ua.core.send_response(transaction, self._reliable_1xx)

    def _on_prack(self, request: Request, transaction: ServerTransaction) -> None:
        """A PRACK (RFC 3262 §3): 200 if its RAck names the reliable 1xx awaiting it, else 481;
        it must carry the answer when that 1xx carried our offer (else 400), and may carry no
        new offer (488: offers in PRACK are not supported)."""
        rack = request.rack
        if rack is None:
            self.ua.core.respond(transaction, 400, "Missing RAck header field",
                                 to_tag=self._local_tag)
            return
        if self.machine.caller or self.machine.unacknowledged != rack.rseq:
            self.ua.core.respond(transaction, 481, to_tag=self._local_tag)
            return
        answer_due = self._early_offer and not self._early_offer_answered
        if answer_due and not request.body:
            self.ua.core.respond(transaction, 400, "Missing session description",
                                 to_tag=self._local_tag)
            return
        if request.body and not answer_due:
            self.ua.core.respond(transaction, 488, "Offers in PRACK are not supported",
                                 to_tag=self._local_tag)
            return
        self._prack_in = transaction
        if not self._input_ok_prack(rack.rseq, rack.cseq, rack.method):
            self._prack_in = None
            self.ua.core.respond(transaction, 481, to_tag=self._local_tag)
            return
        if answer_due:
            self._early_offer_answered = True
            self._spawn(self._apply_remote_answer(request.text))

    def _input_ok_prack(self, rseq: int, cseq: int, method: str) -> bool:
        done: list[bool] = []
        self._input(lambda now: done.append(self.machine.prack(now, rseq, cseq, method)))
        return done[0]

    def _do_answer_prack(self, status: int) -> None:
        transaction = self._prack_in
        if transaction is not None:
            self._prack_in = None
            self._reliable_1xx = None
            self.ua.core.respond(transaction, status, to_tag=self._local_tag)

    def _do_resend_2xx(self) -> None:
        transaction = self._transaction
        if self._ok is not None and transaction is not None and not transaction.terminated:
            self.ua.core.send_response(transaction, self._ok)
        elif self._ok is not None:
            self.ua.core.send_outside_transaction(self._ok)

    def _on_ack(self, request: Request) -> None:
        answer_due = self._remote_answer_due and self.state is InviteState.ACCEPTED
        self._input(lambda now: self.machine.input("ack", now))
        if not answer_due:
            return
        self._remote_answer_due = False
        if request.body:
            self._spawn(self._apply_remote_answer(request.text))
        else:  # our offer went unanswered: RFC 3264 has no way on; hang up
            self.ua.log.warn("the ACK carries no answer to our offer")
            with contextlib.suppress(InvalidStateError):
                self._require("bye", cause=Cause.BAD_MEDIA_DESCRIPTION)

    async def _apply_remote_answer(self, text: str) -> None:
        try:
            await self.sdh.set_description(text)
        except Exception as exc:  # a bad answer: hang up (SIP.js: 'Bad Media Description')
            self.ua.log.warn("bad answer", error=repr(exc))
            with contextlib.suppress(InvalidStateError):
                self._require("bye", cause=Cause.BAD_MEDIA_DESCRIPTION)

    def _on_cancel(self) -> None:
        self._input(lambda now: self.machine.input("remote_cancel", now))

    # -- both ------------------------------------------------------------------------------------

    # -- re-INVITE -------------------------------------------------------------------------------

    def _do_send_reinvite(self, hold: bool) -> None:
        self._spawn(self._send_reinvite(hold))

    async def _send_reinvite(self, hold: bool) -> None:
        modifiers = [self.sdh.hold_modifier] if hold else []
        dialog = self.dialog
        try:
            body, content_type = await self.sdh.get_description(None, modifiers)
        except Exception as exc:  # no offer: the re-INVITE fails before it leaves
            self.ua.log.warn("no offer for the re-INVITE", error=repr(exc))
            self._input(lambda now: self.machine.input("reinvite_failed", now, response=None))
            return
        if dialog is None:
            return
        request = dialog.request(
            "INVITE", via=self.ua.factory.via(self.ua.core.new_branch()), body=body,
            content_type=content_type,
            extra_headers=[("Contact", f"<{self.ua.factory.contact_uri}>"),
                           ("Allow", ",".join(self.ua.core.allowed)),
                           ("User-Agent", self.ua.config.user_agent_string)])
        self._reinvite_out = request
        self._reinvite_owner = _ReinviteRequest(self, request)
        self.ua.core.send(request, owner=self._reinvite_owner)

    def _do_rollback_media(self) -> None:
        """Decision 8: after a refused re-INVITE the signalling state is as before; a handler
        with a ``rollback()`` is asked to drop its unanswered offer too."""
        rollback = getattr(self.sdh, "rollback", None)
        if callable(rollback):
            self._spawn(_maybe_await(rollback()))

    def _on_reinvite(self, request: Request, transaction: ServerTransaction) -> None:
        """The peer's re-INVITE: answered with a new answer, or 491 in glare (§14.2)."""
        assert self.dialog is not None
        fault = self.dialog.received(request)
        if fault is not None:
            self.ua.core.respond(transaction, fault)
            return
        previous = self._reinvite_in
        self._reinvite_in = (request, transaction)
        if not self._input_ok("remote_reinvite"):
            self._reinvite_in = previous
            self.ua.core.respond(transaction, 491, to_tag=self._local_tag)

    def _do_answer_reinvite(self) -> None:
        self._spawn(self._answer_reinvite())

    async def _answer_reinvite(self) -> None:
        assert self._reinvite_in is not None
        request = self._reinvite_in[0]
        try:
            if request.body:
                await self.sdh.set_description(request.text)
            body, content_type = await self.sdh.get_description()
        except Exception as exc:  # an offer we cannot take: 488, the call goes on as before
            self.ua.log.warn("re-INVITE refused", error=repr(exc))
            self._input(lambda now: self.machine.input("reinvite_answer_failed", now))
            return
        self._input(lambda now: self.machine.input("reinvite_answer_ready", now,
                                                   body=(body, content_type)))

    def _do_respond_reinvite(self, status: int, answer: tuple[str, str] | None = None) -> None:
        if self._reinvite_in is None:
            return
        request, transaction = self._reinvite_in
        body, content_type = answer if answer is not None else (None, None)
        self._answer(request, transaction, status, body, content_type, supported=False)
        if 200 <= status < 300 and self.dialog is not None:
            self.dialog.refresh_target(request)

    # -- both ------------------------------------------------------------------------------------

    def _do_send_bye(self) -> None:
        dialog = self.dialog
        if dialog is None:
            self._input(lambda now: self.machine.input("bye_done", now))
            return
        bye = dialog.request("BYE", via=self.ua.factory.via(self.ua.core.new_branch()),
                             extra_headers=[("User-Agent", self.ua.config.user_agent_string)])
        self.ua.core.send(bye, owner=_ByeRequest(self, bye))

    def _on_bye(self, request: Request, transaction: ServerTransaction) -> None:
        self.ua.core.respond(transaction, 200, to_tag=self._local_tag)
        if not self._input_ok("remote_bye", request=request):
            self.ua.log.debug("BYE in a state that ignores it", state=self.state.value)

    def _input_ok(self, trigger: str, **kwargs: Any) -> bool:
        done: list[bool] = []
        self._input(lambda now: done.append(self.machine.input(trigger, now, **kwargs)))
        return done[0]

    def _lost(self) -> None:
        self._input(lambda now: self.machine.input("lost", now))

    def _do_close_media(self) -> None:
        self._spawn(self._close_media())

    async def _close_media(self) -> None:
        with contextlib.suppress(Exception):
            await self.sdh.close()

    async def _stop(self) -> None:
        """The UA is stopping: end the call and wait for our tasks."""
        with contextlib.suppress(InvalidStateError):
            self.terminate()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.sdh.close()

    def __repr__(self) -> str:
        return f"<Session {self.id} {'caller' if self.machine.caller else 'callee'} " \
               f"{self.state.value}>"


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value


def _default_factory(session: object, options: Mapping[str, Any] | None) -> Any:
    from .media import aiortc_factory

    return aiortc_factory(session, options)
