"""The INVITE session machine: a call, as caller or callee (RFC 3261 §13-15).

Theory of operation
-------------------
The machine decides what a call does next; the session adapter (:mod:`sipfsm.session`) writes
and sends the messages it asks for (as :class:`~sipfsm.fsm.base.Command` effects) and runs the
session description handler, whose offers and answers are asynchronous and come back as inputs.
The session never touches media itself.

*Caller.*  ``invite`` sends the INVITE with an offer (CALLING).  A provisional response moves to
PROCEEDING.  The first 2xx is acknowledged and confirms the call; a 2xx from another fork, or one
that races our CANCEL, is acknowledged and answered with BYE (§13.2.2.4).  A final failure, a
timeout or a lost connection ends it with a cause.  ``cancel`` before any provisional response is
deferred until one arrives (§9.1; a 100 Trying counts), and when no final response follows
the CANCEL within 64·T1 the INVITE transaction is given up (``Canceled``).

*Callee.*  The session starts RINGING (the UA core has sent 100; the adapter sends 180).
``accept`` asks the handler for an answer (ANSWERING), then sends the 2xx and retransmits it,
T1 doubling up to T2, until the ACK comes (ACCEPTED → CONFIRMED, §13.3.1.4); no ACK within
64·T1 ends the call with BYE and cause ``No ACK``.  ``no_answer_timeout`` answers 408 (``No
Answer``), an ``Expires`` header 487 (``Expires``), a CANCEL 487 (``Canceled``).

*Callee, provisional responses (RFC 3262 §3, decision 7).*  ``progress`` sends a 1xx; a reliable
one carries ``RSeq`` (random start, one more per reliable 1xx) and is retransmitted from T1,
doubling, until a PRACK acknowledges it; no PRACK within 64·T1 answers the INVITE 504 (``No
PRACK``).  Only one reliable 1xx is unacknowledged at a time: later ones wait for the PRACK, in
order.  A PRACK is matched by its RAck (RSeq, the INVITE's CSeq, ``INVITE``); one that matches
nothing is the adapter's to refuse (481).  A 2xx ends the provisional responses, except that it
waits while a reliable 1xx carrying our answer is unacknowledged (RFC 3262 §3): the PRACK lets
it go.

*Both.*  ``bye`` from CONFIRMED sends BYE (TERMINATING until its response, or its timeout); a
BYE from the peer ends the call with cause ``Terminated`` (decision 9).  A callee asked to hang
up before the ACK waits for it (§15: no BYE before the ACK or the end of the transaction).

Timers: ``no_answer``, ``expires``, ``retransmit`` (the 2xx), ``ack`` (64·T1), ``rel1xx`` (the
reliable 1xx), ``prack`` (64·T1), ``glare`` (the re-INVITE retry), ``cancel`` (64·T1 after our
CANCEL).
"""

from __future__ import annotations

import enum
import random
from typing import Any

from ..causes import Cause, cause_for_status
from ..events import (
    SessionAccepted,
    SessionBye,
    SessionCanceled,
    SessionConfirmed,
    SessionFailed,
    SessionProgress,
    SessionReinvited,
    SessionRejected,
    SessionTerminated,
)
from ..sip.message import Request, Response
from .base import (
    SYSTEM_RANDOM,
    CancelTimer,
    Command,
    Emit,
    Model,
    StartTimer,
    TransitionLog,
    define,
)

__all__ = ["T2", "InviteSession", "InviteState"]

T2 = 4.0
"""RFC 3261's T2: the cap of the 2xx retransmission interval, in seconds."""


class InviteState(enum.Enum):
    """Where the call is."""

    INITIAL = "initial"
    """A caller's session before its INVITE is sent."""
    CALLING = "calling"
    """INVITE sent, no provisional response yet."""
    PROCEEDING = "proceeding"
    """A provisional response came (ringing, early dialogs)."""
    CANCELLING = "cancelling"
    """We asked to cancel; the CANCEL is sent, or waits for the first provisional response."""
    RINGING = "ringing"
    """A callee's session: the INVITE came, no answer yet."""
    ANSWERING = "answering"
    """accept() was called; the media answer is being made."""
    ACCEPTED = "accepted"
    """The callee sent its 2xx and waits for the ACK."""
    CONFIRMED = "confirmed"
    """The call is up."""
    REINVITING = "reinviting"
    """The call is up and our re-INVITE (hold, unhold, renegotiation) awaits its answer."""
    REINVITED = "reinvited"
    """The call is up and the peer's re-INVITE is being answered (until its ACK)."""
    TERMINATING = "terminating"
    """We sent BYE and wait for its response."""
    TERMINATED = "terminated"
    """The call is over."""


C = InviteState
_CALLER_PENDING = [C.CALLING, C.PROCEEDING]
_CALLEE_PENDING = [C.RINGING, C.ANSWERING]

TABLE: list[dict[str, Any]] = [
    # -- caller --
    {"trigger": "invite", "source": C.INITIAL, "dest": C.CALLING, "after": "_send_invite"},
    {"trigger": "provisional", "source": _CALLER_PENDING, "dest": C.PROCEEDING,
     "after": "_progress"},
    {"trigger": "provisional", "source": C.CANCELLING, "dest": None, "after": "_deferred_cancel"},
    {"trigger": "success", "source": _CALLER_PENDING, "dest": C.CONFIRMED, "after": "_answered"},
    # A 2xx racing our CANCEL: the call is accepted after all, so ACK it and hang up.
    {"trigger": "success", "source": C.CANCELLING, "dest": C.TERMINATED,
     "after": "_cancel_lost_the_race"},
    {"trigger": "success", "source": [C.CONFIRMED, C.REINVITING, C.REINVITED, C.TERMINATING,
                                      C.TERMINATED], "dest": None, "after": "_unwanted_2xx"},
    {"trigger": "failure", "source": [*_CALLER_PENDING, C.CANCELLING], "dest": C.TERMINATED,
     "after": "_caller_failed"},
    # §9.1: a CANCEL waits for a provisional response — a 100 Trying counts.
    {"trigger": "trying", "source": C.CALLING, "dest": None, "after": "_note_trying"},
    {"trigger": "trying", "source": C.CANCELLING, "dest": None, "after": "_deferred_cancel"},
    {"trigger": "cancel", "source": C.CALLING, "dest": C.CANCELLING,
     "conditions": "_got_trying", "after": "_send_cancel"},
    {"trigger": "cancel", "source": C.CALLING, "dest": C.CANCELLING, "after": "_defer_cancel"},
    # §9.1: no final response 64·T1 after the CANCEL: the INVITE transaction is given up.
    {"trigger": "cancel_timeout", "source": C.CANCELLING, "dest": None, "after": "_abandon"},
    {"trigger": "cancel", "source": C.PROCEEDING, "dest": C.CANCELLING, "after": "_send_cancel"},
    # -- callee --
    {"trigger": "accept", "source": C.RINGING, "dest": C.ANSWERING, "after": "_make_answer"},
    # RFC 3262 §3: no 2xx while a reliable 1xx with our answer in it is unacknowledged.
    {"trigger": "answer_ready", "source": C.ANSWERING, "dest": None,
     "conditions": "_answer_unacked", "after": "_hold_2xx"},
    {"trigger": "answer_ready", "source": C.ANSWERING, "dest": C.ACCEPTED, "after": "_send_2xx"},
    # -- callee: provisional responses, reliable ones acknowledged by PRACK (RFC 3262) --
    {"trigger": "progress", "source": _CALLEE_PENDING, "dest": None,
     "conditions": "_reliable_unacked", "after": "_queue_progress"},
    {"trigger": "progress", "source": _CALLEE_PENDING, "dest": None, "after": "_send_progress"},
    {"trigger": "prack", "source": C.ANSWERING, "dest": C.ACCEPTED,
     "conditions": ["_prack_matches", "_2xx_held"], "after": ["_pracked", "_send_2xx"]},
    {"trigger": "prack", "source": _CALLEE_PENDING, "dest": None,
     "conditions": "_prack_matches", "after": "_pracked"},
    {"trigger": "rel1xx_retransmit", "source": _CALLEE_PENDING, "dest": None,
     "after": "_resend_provisional"},
    {"trigger": "prack_timeout", "source": _CALLEE_PENDING, "dest": C.TERMINATED,
     "after": "_no_prack"},
    {"trigger": "answer_failed", "source": C.ANSWERING, "dest": C.TERMINATED,
     "after": "_media_refused"},
    {"trigger": "reject", "source": _CALLEE_PENDING, "dest": C.TERMINATED, "after": "_rejected"},
    {"trigger": "no_answer", "source": C.RINGING, "dest": C.TERMINATED, "after": "_no_answer"},
    {"trigger": "expires", "source": C.RINGING, "dest": C.TERMINATED, "after": "_expired"},
    {"trigger": "remote_cancel", "source": _CALLEE_PENDING, "dest": C.TERMINATED,
     "after": "_cancelled_by_peer"},
    {"trigger": "retransmit", "source": C.ACCEPTED, "dest": None, "after": "_resend_2xx"},
    {"trigger": "ack", "source": C.ACCEPTED, "dest": C.CONFIRMED, "after": "_acked"},
    {"trigger": "ack", "source": C.TERMINATING, "dest": None, "after": "_acked_then_bye"},
    {"trigger": "ack_timeout", "source": C.ACCEPTED, "dest": C.TERMINATING, "after": "_no_ack"},
    # -- re-INVITE (RFC 3261 §14; decision 8) --
    {"trigger": "reinvite", "source": C.CONFIRMED, "dest": C.REINVITING,
     "after": "_send_reinvite"},
    {"trigger": "reinvite_ok", "source": C.REINVITING, "dest": C.CONFIRMED,
     "after": "_reinvite_accepted"},
    {"trigger": "reinvite_failed", "source": C.REINVITING, "dest": C.CONFIRMED,
     "after": "_reinvite_refused"},
    {"trigger": "glare_retry", "source": C.CONFIRMED, "dest": C.REINVITING,
     "after": "_send_reinvite"},
    {"trigger": "remote_reinvite", "source": C.CONFIRMED, "dest": C.REINVITED,
     "after": "_answer_reinvite"},
    {"trigger": "remote_reinvite", "source": [C.REINVITING, C.REINVITED], "dest": None,
     "after": "_glare"},
    {"trigger": "reinvite_answer_ready", "source": C.REINVITED, "dest": None,
     "after": "_send_reinvite_2xx"},
    {"trigger": "reinvite_answer_failed", "source": C.REINVITED, "dest": C.CONFIRMED,
     "after": "_reinvite_media_refused"},
    {"trigger": "ack", "source": C.REINVITED, "dest": C.CONFIRMED, "after": "_reinvite_acked"},
    # -- both --
    {"trigger": "bye", "source": [C.CONFIRMED, C.REINVITING, C.REINVITED],
     "dest": C.TERMINATING, "after": "_send_bye"},
    {"trigger": "bye", "source": C.ACCEPTED, "dest": C.TERMINATING, "after": "_bye_after_ack"},
    {"trigger": "bye_done", "source": C.TERMINATING, "dest": C.TERMINATED, "after": "_ended"},
    {"trigger": "remote_bye", "source": [C.CONFIRMED, C.ACCEPTED, C.TERMINATING,
                                         C.REINVITING, C.REINVITED],
     "dest": C.TERMINATED, "after": "_peer_hung_up"},
    {"trigger": "lost", "source": [*_CALLER_PENDING, C.CANCELLING, *_CALLEE_PENDING],
     "dest": C.TERMINATED, "after": "_connection_lost"},
]
"""The INVITE session machine.  ``dest: None`` is an internal transition."""


class InviteSession(Model):
    """One call (sans-I/O).  Carry out :meth:`take_effects` after each input."""

    __slots__ = ("_cancel_pending", "_held_2xx", "_hold", "_interval", "_invite_cseq",
                 "_queued", "_random", "_rel_interval", "_response", "_rseq", "_trying",
                 "_unacked", "caller", "cause", "held", "t1")

    state: InviteState

    def __init__(self, *, caller: bool, id: str, t1: float = 0.5,
                 rng: random.Random | None = None, log: TransitionLog | None = None) -> None:
        super().__init__(id, log)
        self._random = rng or SYSTEM_RANDOM
        self.caller = caller
        self.t1 = t1
        self.cause: Cause | None = None
        self._cancel_pending = False
        self._trying = False  # caller: a 100 Trying came (a CANCEL may go)
        self._interval = t1
        self._response: Response | None = None
        self.held = False  # our side has put the call on hold (only changed by a success)
        self._hold = False  # what the re-INVITE in flight asks for
        # Callee, RFC 3262: the next RSeq (random start, §3), the unacknowledged reliable 1xx
        # (its RSeq, and whether it carries our answer), the reliable ones waiting their turn,
        # and a 2xx waiting for the PRACK.
        self._rseq = 1 + int(self._random.random() * (2**31 - 2))
        self._unacked: tuple[int, bool] | None = None
        self._queued: list[dict[str, Any]] = []
        self._held_2xx: tuple[str, str] | None = None
        self._rel_interval = t1
        self._invite_cseq = 0
        if not caller:
            self.state = C.RINGING

    # -- inputs ------------------------------------------------------------------------------------

    def start(self, now: float, *, no_answer: float | None = None,
              expires: float | None = None, invite_cseq: int = 0) -> None:
        """Caller: send the INVITE.  Callee: arm the no-answer and ``Expires`` timers
        (``invite_cseq``, the INVITE's CSeq number, is what a PRACK's RAck must name)."""
        if self.caller:
            self._fire("invite", now=now)
            return
        self._invite_cseq = invite_cseq
        if no_answer is not None:
            self.effects.append(StartTimer("no_answer", now + no_answer))
        if expires is not None:
            self.effects.append(StartTimer("expires", now + expires))

    def response(self, response: Response, now: float) -> None:
        """A response to our INVITE (1xx, every 2xx, or the final failure)."""
        status = response.status_code
        if status == 100:
            self._fire("trying", now=now, response=response)
            return
        trigger = "provisional" if status < 200 else "success" if status < 300 else "failure"
        self._fire(trigger, now=now, response=response)

    def failed(self, cause: Cause, now: float) -> None:
        """Our INVITE got no final response (timeout) or the connection went."""
        self._fire("failure", now=now, response=None, cause=cause)

    def timer_fired(self, name: str, now: float) -> None:
        """One of the session's timers fell due."""
        trigger = {"no_answer": "no_answer", "expires": "expires", "retransmit": "retransmit",
                   "ack": "ack_timeout", "glare": "glare_retry", "rel1xx": "rel1xx_retransmit",
                   "prack": "prack_timeout", "cancel": "cancel_timeout"}.get(name)
        if trigger is not None:
            self._fire(trigger, now=now)

    def input(self, trigger: str, now: float, **kwargs: Any) -> bool:
        """Any other input by its trigger name (``accept``, ``reject``, ``cancel``, ``bye``,
        ``ack``, ``remote_bye``, ``remote_cancel``, ``answer_ready``, ``answer_failed``,
        ``bye_done``, ``lost``); False when the state does not allow it."""
        return self._fire(trigger, now=now, **kwargs)

    def progress(self, now: float, status: int, *, reliable: bool = False,
                 body: tuple[str, str] | None = None,
                 headers: tuple[tuple[str, str], ...] = ()) -> bool:
        """Callee: send a provisional response (reliable: RFC 3262) with an optional body and
        extra headers; False once answered."""
        return self._fire("progress", now=now, status=status, reliable=reliable, body=body,
                          headers=headers)

    def prack(self, now: float, rseq: int, cseq: int, method: str) -> bool:
        """Callee: a PRACK with ``RAck: rseq cseq method``; False when it acknowledges nothing
        (the adapter answers it 481, RFC 3262 §3)."""
        return self._fire("prack", now=now, rack=(rseq, cseq, method))

    @property
    def unacknowledged(self) -> int | None:
        """The RSeq of the reliable 1xx awaiting its PRACK, if any."""
        return self._unacked[0] if self._unacked is not None else None

    # -- caller actions ----------------------------------------------------------------------------

    def _send_invite(self, event: Any) -> None:
        self.effects.append(Command("send_invite"))

    def _progress(self, event: Any) -> None:
        response = event.kwargs["response"]
        self._prack_if_reliable(response)
        self.effects.append(Emit(SessionProgress(session=self.id, response=response)))

    def _prack_if_reliable(self, response: Response) -> None:
        """RFC 3262 §4: a reliable provisional (Require: 100rel, RSeq) is answered with PRACK
        (the adapter drops duplicates and RSeqs that do not increase)."""
        if "100rel" in response.require and response.rseq is not None and response.to \
                is not None and response.to.tag:
            self.effects.append(Command("send_prack", {"response": response}))

    def _note_trying(self, event: Any) -> None:
        self._trying = True

    def _got_trying(self, event: Any) -> bool:
        return self._trying

    def _defer_cancel(self, event: Any) -> None:
        self._cancel_pending = True
        self.effects.append(Emit(SessionCanceled(session=self.id)))

    def _send_cancel(self, event: Any) -> None:
        self._cancelled(event.kwargs["now"])
        self.effects.append(Emit(SessionCanceled(session=self.id)))

    def _cancelled(self, now: float) -> None:
        self.effects.append(Command("send_cancel"))
        self.effects.append(StartTimer("cancel", now + 64 * self.t1))

    def _deferred_cancel(self, event: Any) -> None:
        self._prack_if_reliable(event.kwargs["response"])
        if self._cancel_pending:
            self._cancel_pending = False
            self._cancelled(event.kwargs["now"])

    def _abandon(self, event: Any) -> None:
        self.effects.append(Command("abandon_invite"))

    def _answered(self, event: Any) -> None:
        response = event.kwargs["response"]
        self._response = response
        self.effects.append(Command("send_ack", {"response": response}))
        self.effects.append(Command("apply_answer", {"response": response}))
        self.effects.append(Emit(SessionAccepted(session=self.id, response=response)))
        self.effects.append(Emit(SessionConfirmed(session=self.id)))

    def _unwanted_2xx(self, event: Any) -> None:
        """A further 2xx: the retransmission of the one we took is ACKed again; another
        fork's is ACKed and hung up (RFC 3261 §13.2.2.4)."""
        response = event.kwargs["response"]
        ours = self.state is not C.TERMINATED and self._is_ours(response)
        self.effects.append(Command("send_ack" if ours else "ack_and_bye",
                                    {"response": response}))

    def _cancel_lost_the_race(self, event: Any) -> None:
        response = event.kwargs["response"]
        self.effects.append(Command("ack_and_bye", {"response": response}))
        self._finish(event, Cause.CANCELED, response, rejected=False)

    def _is_ours(self, response: Response) -> bool:
        accepted = self._response
        return accepted is not None and accepted.to is not None and response.to is not None \
            and accepted.to.tag == response.to.tag

    def _caller_failed(self, event: Any) -> None:
        response: Response | None = event.kwargs.get("response")
        if self._cancel_pending or event.transition.source == C.CANCELLING.name:
            cause = Cause.CANCELED
        elif response is not None:
            cause = cause_for_status(response.status_code)
        else:
            cause = event.kwargs.get("cause") or Cause.CONNECTION_ERROR
        self._finish(event, cause, response, rejected=response is not None)

    # -- callee actions ----------------------------------------------------------------------------

    def _make_answer(self, event: Any) -> None:
        self.effects.append(CancelTimer("no_answer"))
        self.effects.append(CancelTimer("expires"))
        self.effects.append(Command("make_answer"))

    def _answer_unacked(self, event: Any) -> bool:
        return self._unacked is not None and self._unacked[1]

    def _hold_2xx(self, event: Any) -> None:
        self._held_2xx = event.kwargs["body"]

    def _2xx_held(self, event: Any) -> bool:
        return self._held_2xx is not None

    def _send_2xx(self, event: Any) -> None:
        now = event.kwargs["now"]
        body = self._held_2xx if self._held_2xx is not None else event.kwargs["body"]
        self._held_2xx = None
        self._end_provisionals()
        self._interval = self.t1
        self.effects.append(Command("respond", {"status": 200, "answer": body}))
        self.effects.append(StartTimer("retransmit", now + self._interval))
        self.effects.append(StartTimer("ack", now + 64 * self.t1))
        self.effects.append(Emit(SessionAccepted(session=self.id, response=None)))

    def _resend_2xx(self, event: Any) -> None:
        self._interval = min(self._interval * 2, T2)
        self.effects.append(Command("resend_2xx"))
        self.effects.append(StartTimer("retransmit", event.kwargs["now"] + self._interval))

    # -- callee: provisional responses ----------------------------------------------------------

    def _reliable_unacked(self, event: Any) -> bool:
        return bool(event.kwargs["reliable"]) and self._unacked is not None

    def _queue_progress(self, event: Any) -> None:
        kwargs = event.kwargs
        self._queued.append({k: kwargs[k] for k in ("status", "reliable", "body", "headers")})

    def _send_progress(self, event: Any) -> None:
        kwargs = event.kwargs
        self._provisional(kwargs["now"], kwargs["status"], kwargs["reliable"], kwargs["body"],
                          kwargs.get("headers", ()))

    def _provisional(self, now: float, status: int, reliable: bool,
                     body: tuple[str, str] | None, headers: tuple[tuple[str, str], ...]) -> None:
        rseq = None
        if reliable:
            rseq, self._rseq = self._rseq, self._rseq + 1
            self._unacked = (rseq, body is not None)
            self._rel_interval = self.t1
            self.effects.append(StartTimer("rel1xx", now + self.t1))
            self.effects.append(StartTimer("prack", now + 64 * self.t1))
        self.effects.append(Command("send_provisional", {"status": status, "rseq": rseq,
                                                         "body": body, "headers": headers}))

    def _prack_matches(self, event: Any) -> bool:
        rseq, cseq, method = event.kwargs["rack"]
        return self._unacked is not None and rseq == self._unacked[0] \
            and cseq == self._invite_cseq and method == "INVITE"

    def _pracked(self, event: Any) -> None:
        self._unacked = None
        self.effects.append(CancelTimer("rel1xx"))
        self.effects.append(CancelTimer("prack"))
        self.effects.append(Command("answer_prack", {"status": 200}))
        if self._queued and self._held_2xx is None:
            self._provisional(event.kwargs["now"], **self._queued.pop(0))

    def _resend_provisional(self, event: Any) -> None:
        self._rel_interval *= 2  # RFC 3262 §3: from T1, doubling (no T2 cap)
        self.effects.append(Command("resend_provisional"))
        self.effects.append(StartTimer("rel1xx", event.kwargs["now"] + self._rel_interval))

    def _no_prack(self, event: Any) -> None:
        self.effects.append(Command("respond", {"status": 504}))
        self._finish(event, Cause.NO_PRACK, None, rejected=False)

    def _end_provisionals(self) -> None:
        """A final response ends the provisional ones: nothing more is retransmitted."""
        self._unacked = None
        self._queued.clear()
        self.effects.append(CancelTimer("rel1xx"))
        self.effects.append(CancelTimer("prack"))

    def _acked(self, event: Any) -> None:
        self._stop_2xx()
        self.effects.append(Emit(SessionConfirmed(session=self.id)))

    def _stop_2xx(self) -> None:
        self.effects.append(CancelTimer("retransmit"))
        self.effects.append(CancelTimer("ack"))

    def _media_refused(self, event: Any) -> None:
        status = event.kwargs.get("status", 488)
        self.effects.append(Command("respond", {"status": status}))
        cause = Cause.INCOMPATIBLE_SDP if status == 488 else Cause.WEBRTC_ERROR
        self._finish(event, cause, None, rejected=True)

    def _rejected(self, event: Any) -> None:
        status = event.kwargs.get("status", 480)
        self.effects.append(CancelTimer("no_answer"))
        self.effects.append(CancelTimer("expires"))
        self.effects.append(Command("respond", {"status": status}))
        self._finish(event, cause_for_status(status), None, rejected=True)

    def _no_answer(self, event: Any) -> None:
        self.effects.append(CancelTimer("expires"))
        self.effects.append(Command("respond", {"status": 408}))
        self._finish(event, Cause.NO_ANSWER, None, rejected=False)

    def _expired(self, event: Any) -> None:
        self.effects.append(CancelTimer("no_answer"))
        self.effects.append(Command("respond", {"status": 487}))
        self._finish(event, Cause.EXPIRES, None, rejected=False)

    def _cancelled_by_peer(self, event: Any) -> None:
        self.effects.append(CancelTimer("no_answer"))
        self.effects.append(CancelTimer("expires"))
        self.effects.append(Command("respond", {"status": 487}))
        self.effects.append(Emit(SessionCanceled(session=self.id)))
        self._finish(event, Cause.CANCELED, None, rejected=True)

    def _no_ack(self, event: Any) -> None:
        self._stop_2xx()
        self.cause = Cause.NO_ACK
        self.effects.append(Command("send_bye"))

    def _bye_after_ack(self, event: Any) -> None:
        self._cancel_pending = True  # reused: "hang up once the ACK is here"
        self.cause = Cause.BYE

    def _acked_then_bye(self, event: Any) -> None:
        if self._cancel_pending:
            self._cancel_pending = False
            self._stop_2xx()
            self.effects.append(Command("send_bye"))

    # -- re-INVITE -------------------------------------------------------------------------------

    def _send_reinvite(self, event: Any) -> None:
        if "hold" in event.kwargs:
            self._hold = bool(event.kwargs["hold"])
        self.effects.append(CancelTimer("glare"))
        self.effects.append(Command("send_reinvite", {"hold": self._hold}))

    def _reinvite_accepted(self, event: Any) -> None:
        response = event.kwargs["response"]
        self.held = self._hold
        self.effects.append(Command("send_ack", {"response": response, "reinvite": True}))
        self.effects.append(Command("apply_answer", {"response": response}))
        self.effects.append(Emit(SessionReinvited(session=self.id, local=True, accepted=True,
                                                  held=self.held)))

    def _reinvite_refused(self, event: Any) -> None:
        """Roll back (decision 8): the hold flag keeps its old value; after a 491 (glare) try
        again after RFC 3261 §14.1's random delay: 2.1–4 s if we own the Call-ID, else 0–2 s."""
        wanted, self._hold = self._hold, self.held
        response: Response | None = event.kwargs.get("response")
        self.effects.append(Command("rollback_media"))
        if response is not None and response.status_code == 491:
            low, high = (2.1, 4.0) if self.caller else (0.0, 2.0)
            delay = low + (high - low) * self._random.random()
            self._hold = wanted  # the retry asks for the same thing; its outcome is reported
            self.effects.append(StartTimer("glare", event.kwargs["now"] + delay))
            return
        self.effects.append(Emit(SessionReinvited(session=self.id, local=True, accepted=False,
                                                  held=self.held)))

    def _answer_reinvite(self, event: Any) -> None:
        self.effects.append(Command("answer_reinvite"))

    def _glare(self, event: Any) -> None:
        self.effects.append(Command("respond_reinvite", {"status": 491}))

    def _send_reinvite_2xx(self, event: Any) -> None:
        self.effects.append(Command("respond_reinvite", {"status": 200,
                                                         "answer": event.kwargs["body"]}))

    def _reinvite_media_refused(self, event: Any) -> None:
        self.effects.append(Command("respond_reinvite", {"status": 488}))

    def _reinvite_acked(self, event: Any) -> None:
        self.effects.append(Emit(SessionReinvited(session=self.id, local=False, accepted=True,
                                                  held=self.held)))

    # -- both ------------------------------------------------------------------------------------

    def _send_bye(self, event: Any) -> None:
        self.cause = event.kwargs.get("cause") or Cause.BYE
        self.effects.append(Command("send_bye"))

    def _ended(self, event: Any) -> None:
        self.effects.append(Command("close_media"))
        self.effects.append(Emit(SessionTerminated(session=self.id,
                                                   cause=self.cause or Cause.BYE)))

    def _peer_hung_up(self, event: Any) -> None:
        self._stop_2xx()
        self.cause = Cause.BYE
        request: Request = event.kwargs["request"]
        self.effects.append(Emit(SessionBye(session=self.id, request=request)))
        self.effects.append(Command("close_media"))
        self.effects.append(Emit(SessionTerminated(session=self.id, cause=Cause.BYE)))

    def _connection_lost(self, event: Any) -> None:
        self._finish(event, Cause.CONNECTION_ERROR, None, rejected=False)

    def _finish(self, event: Any, cause: Cause, response: Response | None, *,
                rejected: bool) -> None:
        self.cause = cause
        self._unacked, self._held_2xx = None, None
        self._queued.clear()
        for name in ("no_answer", "expires", "retransmit", "ack", "rel1xx", "prack", "cancel"):
            self.effects.append(CancelTimer(name))
        if rejected:
            self.effects.append(Emit(SessionRejected(session=self.id, response=response,
                                                     cause=cause)))
        self.effects.append(Emit(SessionFailed(session=self.id, response=response,
                                               cause=cause)))
        self.effects.append(Command("close_media"))
        self.effects.append(Emit(SessionTerminated(session=self.id, cause=cause)))


InviteSession.SPEC = define("invite", InviteState, TABLE, C.INITIAL)
