"""The subscriber machine: one subscription to an event package (RFC 6665 §4.1, subscriber side).

Theory of operation
-------------------
The machine decides *when* a SUBSCRIBE goes out and *what* every answer and NOTIFY means; the
adapter (:mod:`sipfsm.subscription`) writes the requests it asks for (``send_subscribe``, with
``expires`` and ``initial``: out of dialog, or inside :attr:`Subscriber.dialog`), answers the
NOTIFY being handled with the status the machine gives (``answer``), reports back one final
outcome per SUBSCRIBE (:meth:`Subscriber.response`, after any digest retry, or
:meth:`Subscriber.failed`) and routes each NOTIFY to :meth:`Subscriber.notify`.

*Starting.*  ``subscribe`` sends the initial SUBSCRIBE and starts Timer N (64·T1, §4.1.2.4):
NOTIFY_WAIT.  The 2xx emits ``accepted`` and makes the dialog; the first NOTIFY moves to ACTIVE
or PENDING (an unknown Subscription-State value counts as ``pending``).  The NOTIFY may come
before the 2xx (§4.1.2.4): then it makes the dialog itself (its From tag is the remote tag, its
Contact the remote target, its Record-Route the route set) and the late 2xx only confirms it.
A final failure ends the subscription (``failed``, then ``terminated``); a 423 with a larger
``Min-Expires`` is retried once with that value.  Timer N running out ends it too (cause
``Request Timeout``).  An *implicit* subscription (RFC 3515: the one a REFER's 2xx creates, in
the REFER's dialog) enters NOTIFY_WAIT by ``adopt`` instead, sending nothing.

*Refreshing.*  The lifetime granted is the 2xx's ``Expires`` (never more than we asked), or the
``expires`` parameter of the last NOTIFY's Subscription-State; the ``refresh`` timer falls due
at 90 % of it and sends an in-dialog SUBSCRIBE (REFRESHING).  Any failure of a refresh (481,
408, a timeout…) ends the subscription; a 423 is retried once, as for the initial SUBSCRIBE.

*NOTIFY* is answered 200 (and reported as ``notify``) while the subscription lives; 400 when it
lacks Event or Subscription-State, 481 when its Event (package and ``id``) or From tag is not
ours, 500 when its CSeq goes backwards (RFC 3261 §12.2.2); its Contact refreshes the remote
target.  A NOTIFY for a subscription that is not live (before it starts, while it waits to
subscribe again, after it ended) gets 481 and nothing else happens.  ``terminated`` with reason
``deactivated`` or ``timeout`` subscribes again at once (a new initial SUBSCRIBE, a new dialog);
``probation`` and ``giveup`` after ``retry-after`` seconds (:data:`RETRY_DELAY` if absent):
WAITING.  A subscription that is terminated by its very first NOTIFY also waits that delay
before trying again, so that a notifier that refuses at once cannot drive a tight loop.  Every
other reason (``rejected``, ``noresource``, ``invariant``, none, unknown) ends it.  A fetch
(``expires=0``) and an implicit subscription are never renewed.

*One SUBSCRIBE at a time.*  Nothing is sent while the outcome of an earlier SUBSCRIBE is
awaited: a refresh, an unsubscribe or a new subscription that falls due meanwhile is remembered
and sent when that outcome arrives.

*Ending.*  ``unsubscribe`` sends ``Expires: 0`` in the dialog and waits for the final NOTIFY or
Timer N (UNSUBSCRIBING).  A lost connection ends a live subscription (cause ``Connection
Error``): the notifier reaches us only through that connection.  ``close`` (the UA stops) ends
it on the spot.  ``terminated`` always comes last, with the notifier's reason, ``unsubscribed``
or ``failed``.

Timers: ``refresh`` (armed exactly in ACTIVE and PENDING), ``N`` (NOTIFY_WAIT, UNSUBSCRIBING),
``retry`` (WAITING).
"""

from __future__ import annotations

import enum
from typing import Any

from ..causes import Cause, cause_for_status
from ..events import (
    SubscriptionAccepted,
    SubscriptionFailed,
    SubscriptionNotify,
    SubscriptionTerminated,
)
from ..sip.headers import Event
from ..sip.message import Headers, Request, Response
from .base import CancelTimer, Command, Emit, Model, StartTimer, TransitionLog, define
from .dialog import Dialog

__all__ = ["REFRESH_RATIO", "RETRY_DELAY", "Subscriber", "SubscriberState", "parse_event"]

REFRESH_RATIO = 0.9
"""A subscription is refreshed when this share of its granted lifetime has passed."""
RETRY_DELAY = 30.0
"""Seconds to wait before subscribing again when the notifier asked for a later retry without
``retry-after`` (or ended a subscription with its first NOTIFY)."""

_AT_ONCE = frozenset({"deactivated", "timeout"})
_LATER = frozenset({"probation", "giveup"})


class SubscriberState(enum.Enum):
    """Where the subscription is."""

    INITIAL = "initial"
    """Nothing sent yet."""
    NOTIFY_WAIT = "notify_wait"
    """The initial SUBSCRIBE is sent (or its 2xx came): waiting for the first NOTIFY (Timer N)."""
    PENDING = "pending"
    """The notifier has the subscription but has not authorised it yet."""
    ACTIVE = "active"
    """The subscription is up; the refresh timer runs."""
    REFRESHING = "refreshing"
    """Subscribed, with a refresh SUBSCRIBE in flight."""
    UNSUBSCRIBING = "unsubscribing"
    """``Expires: 0`` is sent (or waits for an earlier SUBSCRIBE's outcome): waiting for the
    final NOTIFY (Timer N)."""
    WAITING = "waiting"
    """Ended by the notifier with an invitation to come back: a new subscription is due when
    the retry timer fires (or an earlier SUBSCRIBE's outcome arrives)."""
    TERMINATED = "terminated"
    """Over: NOTIFYs get 481."""


S = SubscriberState
_SUBSCRIBED = [S.PENDING, S.ACTIVE]
_OURS = [S.NOTIFY_WAIT, *_SUBSCRIBED, S.REFRESHING]  # states a notifier may end
_NOTIFIABLE = [*_OURS, S.UNSUBSCRIBING]
_LIVE = [*_NOTIFIABLE, S.WAITING]

TABLE: list[dict[str, Any]] = [
    {"trigger": "subscribe", "source": S.INITIAL, "dest": S.NOTIFY_WAIT, "after": "_send_initial"},
    # RFC 3515: the REFER's 2xx made the subscription; its NOTIFYs come in the REFER's dialog.
    {"trigger": "adopt", "source": S.INITIAL, "dest": S.NOTIFY_WAIT, "after": "_await_notify"},
    # -- the outcome of our SUBSCRIBE: a 2xx --
    {"trigger": "ok", "source": S.NOTIFY_WAIT, "dest": None, "after": "_accepted"},
    # The initial SUBSCRIBE's 2xx after its first NOTIFY.
    {"trigger": "ok", "source": _SUBSCRIBED, "dest": None, "after": "_late_accepted"},
    {"trigger": "ok", "source": S.REFRESHING, "dest": None, "conditions": "_refresh_due",
     "after": "_late_refresh"},
    {"trigger": "ok", "source": S.REFRESHING, "dest": S.ACTIVE, "conditions": "_was_active",
     "after": "_refreshed"},
    {"trigger": "ok", "source": S.REFRESHING, "dest": S.PENDING, "after": "_refreshed"},
    {"trigger": "ok", "source": S.UNSUBSCRIBING, "dest": None, "conditions": "_unsubscribe_due",
     "after": "_send_unsubscribe"},
    {"trigger": "ok", "source": S.UNSUBSCRIBING, "dest": None},
    {"trigger": "ok", "source": S.WAITING, "dest": S.NOTIFY_WAIT,
     "conditions": "_resubscribe_due", "after": "_send_initial"},
    {"trigger": "ok", "source": S.WAITING, "dest": None},
    # -- 423 with a larger Min-Expires: once more with that --
    {"trigger": "too_brief", "source": S.NOTIFY_WAIT, "dest": None,
     "conditions": "_may_retry_brief", "after": "_send_initial_again"},
    {"trigger": "too_brief", "source": S.REFRESHING, "dest": None,
     "conditions": "_may_retry_brief", "after": "_send_refresh_again"},
    # -- any other final failure, a timeout, a transport error --
    {"trigger": "rejected", "source": _OURS, "dest": S.TERMINATED, "after": "_failed"},
    {"trigger": "rejected", "source": S.UNSUBSCRIBING, "dest": S.TERMINATED,
     "after": "_unsubscribed"},
    {"trigger": "rejected", "source": S.WAITING, "dest": S.NOTIFY_WAIT,
     "conditions": "_resubscribe_due", "after": "_send_initial"},
    {"trigger": "rejected", "source": S.WAITING, "dest": None},
    # -- NOTIFY, by its Subscription-State --
    {"trigger": "active", "source": [S.NOTIFY_WAIT, *_SUBSCRIBED], "dest": S.ACTIVE,
     "after": "_subscribed"},
    {"trigger": "pending", "source": [S.NOTIFY_WAIT, *_SUBSCRIBED], "dest": S.PENDING,
     "after": "_subscribed"},
    {"trigger": "active", "source": [S.REFRESHING, S.UNSUBSCRIBING], "dest": None,
     "after": "_noted"},
    {"trigger": "pending", "source": [S.REFRESHING, S.UNSUBSCRIBING], "dest": None,
     "after": "_noted"},
    {"trigger": "terminated", "source": _SUBSCRIBED, "dest": S.NOTIFY_WAIT,
     "conditions": "_resubscribe_now", "after": "_resubscribe"},
    {"trigger": "terminated", "source": _OURS, "dest": S.WAITING,
     "conditions": "_may_resubscribe", "after": "_wait_to_resubscribe"},
    {"trigger": "terminated", "source": _OURS, "dest": S.TERMINATED,
     "after": "_ended_by_notifier"},
    {"trigger": "terminated", "source": S.UNSUBSCRIBING, "dest": S.TERMINATED,
     "after": "_unsubscribed"},
    {"trigger": "bad_notify", "source": _NOTIFIABLE, "dest": None, "after": "_answer"},
    {"trigger": "stale_notify", "source": [S.INITIAL, S.WAITING, S.TERMINATED], "dest": None,
     "after": "_answer"},
    # -- timers --
    {"trigger": "refresh", "source": _SUBSCRIBED, "dest": S.REFRESHING, "conditions": "_idle",
     "after": "_send_refresh"},
    {"trigger": "refresh", "source": _SUBSCRIBED, "dest": S.REFRESHING,
     "after": "_refresh_when_settled"},
    {"trigger": "timer_n", "source": S.NOTIFY_WAIT, "dest": S.TERMINATED, "after": "_no_notify"},
    {"trigger": "timer_n", "source": S.UNSUBSCRIBING, "dest": S.TERMINATED,
     "after": "_unsubscribed"},
    {"trigger": "retry", "source": S.WAITING, "dest": S.NOTIFY_WAIT, "conditions": "_idle",
     "after": "_send_initial"},
    {"trigger": "retry", "source": S.WAITING, "dest": None, "after": "_resubscribe_when_settled"},
    # -- the user, the connection, the UA --
    {"trigger": "unsubscribe", "source": [S.NOTIFY_WAIT, *_SUBSCRIBED], "dest": S.UNSUBSCRIBING,
     "conditions": ["_idle", "_in_dialog"], "after": "_send_unsubscribe"},
    {"trigger": "unsubscribe", "source": _OURS, "dest": S.UNSUBSCRIBING,
     "after": "_unsubscribe_when_settled"},
    {"trigger": "unsubscribe", "source": S.WAITING, "dest": S.TERMINATED,
     "after": "_unsubscribed"},
    {"trigger": "lost", "source": [*_OURS, S.WAITING], "dest": S.TERMINATED, "after": "_failed"},
    {"trigger": "lost", "source": S.UNSUBSCRIBING, "dest": S.TERMINATED,
     "after": "_unsubscribed"},
    {"trigger": "close", "source": [S.INITIAL, *_LIVE], "dest": S.TERMINATED,
     "after": "_unsubscribed"},
]
"""The subscriber machine.  ``dest: None`` is an internal transition; among rows with the same
trigger and source the first whose conditions hold wins."""


def parse_event(value: str) -> Event:
    """The ``Event`` header value ``value`` parsed (``presence``, ``refer;id=93809824``…);
    raises :class:`~sipfsm.ParseError` when it is not one."""
    event: Event | None = Headers([("Event", value)]).typed("event")
    assert event is not None
    return event


class Subscriber(Model):
    """One subscription (sans-I/O).  Carry out :meth:`take_effects` after each input.

    ``request`` is the initial SUBSCRIBE in flight (the adapter sets it once written, and again
    after a digest retry): the dialog is made from it and the 2xx, or it and an early NOTIFY.
    """

    __slots__ = ("_announced", "_brief_retried", "_in_flight", "_next", "_refresh_at", "cause",
                 "dialog", "event", "expires", "reason", "renewable", "request", "retry_delay",
                 "substate", "t1")

    state: SubscriberState

    def __init__(self, *, event: str, expires: int, t1: float = 0.5,
                 retry_delay: float = RETRY_DELAY, id: str = "subscription",
                 log: TransitionLog | None = None) -> None:
        super().__init__(id, log)
        self.event = parse_event(event)
        self.expires = expires
        self.t1 = t1
        self.retry_delay = retry_delay
        self.renewable = expires > 0  # a fetch (expires=0) is never renewed
        self.dialog: Dialog | None = None
        self.request: Request | None = None
        self.substate: str | None = None  # "active" or "pending", from the last NOTIFY
        self.reason: str | None = None  # why it ended, once it has
        self.cause: Cause | None = None
        self._in_flight = False  # the outcome of a SUBSCRIBE of ours is awaited
        self._next: str | None = None  # "refresh", "unsubscribe" or "resubscribe", once settled
        self._announced = False  # ``accepted`` was emitted for the current initial SUBSCRIBE
        self._brief_retried = False
        self._refresh_at: float | None = None

    @classmethod
    def implicit(cls, dialog: Dialog, *, event: str, expires: int = 300, t1: float = 0.5,
                 id: str = "subscription", log: TransitionLog | None = None) -> Subscriber:
        """A subscription that already exists in ``dialog`` without a SUBSCRIBE of ours: the
        one a REFER's 2xx creates (RFC 3515 §2.4.4, ``event="refer;id=<CSeq>"``).  ``start``
        enters NOTIFY_WAIT sending nothing; it is refreshed in that dialog if it lasts
        (``expires`` until a NOTIFY says otherwise), and never renewed by a new SUBSCRIBE."""
        subscriber = cls(event=event, expires=expires, t1=t1, id=id, log=log)
        subscriber.dialog = dialog
        subscriber.renewable = False
        return subscriber

    @property
    def in_flight(self) -> bool:
        """Whether the outcome of a SUBSCRIBE of ours is awaited."""
        return self._in_flight

    # -- inputs ------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Subscribe (an implicit subscription only starts waiting for its first NOTIFY)."""
        self._fire("subscribe" if self.dialog is None else "adopt", now=now)

    def response(self, response: Response, now: float) -> None:
        """The final response to our SUBSCRIBE (after any digest retry).  Ignored when no
        SUBSCRIBE of ours awaits one."""
        status = response.status_code
        if status < 200 or not self._in_flight:
            return
        self._in_flight = False
        dialog, cseq = self.dialog, response.cseq
        if dialog is not None and cseq is not None:  # a digest retry used a higher CSeq
            dialog.local_cseq = max(dialog.local_cseq, cseq.seq)
        if status < 300:
            self._brief_retried = False
            if dialog is None and self.state in (S.NOTIFY_WAIT, S.UNSUBSCRIBING):
                self._dialog_from_2xx(response)
            self._fire("ok", now=now, response=response)
        elif not (status == 423 and self._fire("too_brief", now=now, response=response)):
            self._fire("rejected", now=now, response=response, cause=cause_for_status(status))

    def failed(self, cause: Cause, now: float) -> None:
        """Our SUBSCRIBE got no response: ``Request Timeout`` or ``Connection Error``."""
        if self._in_flight:
            self._in_flight = False
            self._fire("rejected", now=now, response=None, cause=cause)

    def notify(self, request: Request, now: float) -> None:
        """A NOTIFY routed to this subscription; the effects answer it (``answer``)."""
        if self.state in (S.INITIAL, S.WAITING, S.TERMINATED):
            self._fire("stale_notify", now=now, request=request, status=481)
            return
        status = self._check(request)
        if status is not None:
            self._fire("bad_notify", now=now, request=request, status=status)
            return
        state = request.subscription_state
        assert state is not None
        trigger = state.state if state.state in ("active", "terminated") else "pending"
        self._fire(trigger, now=now, request=request, status=200)

    def timer_fired(self, name: str, now: float) -> None:
        """Timer ``refresh``, ``N`` or ``retry`` fell due."""
        trigger = {"refresh": "refresh", "N": "timer_n", "retry": "retry"}.get(name)
        if trigger is not None:
            self._fire(trigger, now=now)

    def unsubscribe(self, now: float) -> bool:
        """End the subscription (``Expires: 0``); False when it is not live."""
        return self._fire("unsubscribe", now=now)

    def transport_lost(self, now: float) -> None:
        """The connection dropped: the notifier can no longer reach us."""
        self._fire("lost", now=now, response=None, cause=Cause.CONNECTION_ERROR)

    def close(self, now: float) -> None:
        """End it here and now, sending nothing (the UA is stopping)."""
        self._fire("close", now=now)

    # -- the dialog --------------------------------------------------------------------------------

    def _dialog_from_2xx(self, response: Response) -> None:
        to = response.to
        request = self.request
        if request is not None and to is not None and to.tag:
            self.dialog = Dialog.as_uac(request, response)

    def _check(self, request: Request) -> int | None:
        """The status a NOTIFY must be refused with, or ``None``; an early NOTIFY (no dialog
        yet) makes the dialog, a later one is checked against it and refreshes its target."""
        event, state, from_ = request.event, request.subscription_state, request.from_
        if event is None or state is None:
            return 400
        if event.package.lower() != self.event.package.lower() or event.id != self.event.id:
            return 481
        if from_ is None or not from_.tag:
            return 400
        dialog = self.dialog
        if dialog is None:
            subscribe = self.request
            if subscribe is None or subscribe.cseq is None or subscribe.from_ is None \
                    or not subscribe.from_.tag:
                return 481
            dialog = Dialog.as_uas(request, subscribe.from_.tag, confirmed=True)
            dialog.local_cseq = subscribe.cseq.seq
            self.dialog = dialog
            return None
        if from_.tag != dialog.remote_tag:
            return 481  # another fork's NOTIFY: that subscription is not ours (§4.1.2.4)
        fault = dialog.received(request)
        if fault is not None:
            return fault
        dialog.refresh_target(request)  # NOTIFY is a target refresh (RFC 6665 §4.1.3)
        return None

    # -- conditions ------------------------------------------------------------------------------

    def _idle(self, event: Any) -> bool:
        return not self._in_flight

    def _in_dialog(self, event: Any) -> bool:
        return self.dialog is not None

    def _refresh_due(self, event: Any) -> bool:
        return self._next == "refresh"

    def _unsubscribe_due(self, event: Any) -> bool:
        return self._next == "unsubscribe" and self.dialog is not None

    def _resubscribe_due(self, event: Any) -> bool:
        return self._next == "resubscribe"

    def _was_active(self, event: Any) -> bool:
        return self.substate == "active"

    def _may_retry_brief(self, event: Any) -> bool:
        minimum = event.kwargs["response"].min_expires
        return not self._brief_retried and minimum is not None and minimum > self.expires

    def _resubscribe_now(self, event: Any) -> bool:
        return self.renewable and self._reason(event) in _AT_ONCE and not self._in_flight

    def _may_resubscribe(self, event: Any) -> bool:
        return self.renewable and self._reason(event) in _AT_ONCE | _LATER

    @staticmethod
    def _reason(event: Any) -> str | None:
        state = event.kwargs["request"].subscription_state
        return state.reason if state is not None else None

    # -- actions: sending --------------------------------------------------------------------------

    def _send_initial(self, event: Any) -> None:
        self._brief_retried = False
        self._send_new(event.kwargs["now"])

    def _send_initial_again(self, event: Any) -> None:
        self._brief_retried = True
        self.expires = event.kwargs["response"].min_expires
        self._send_new(event.kwargs["now"])

    def _send_new(self, now: float) -> None:
        """A new initial SUBSCRIBE: a new dialog, Timer N from now."""
        self.dialog = None
        self.request = None
        self.substate = None
        self._announced = False
        self._refresh_at = None
        self._next = None
        self._in_flight = True
        self.effects.append(CancelTimer("retry"))
        self.effects.append(Command("send_subscribe", {"expires": self.expires, "initial": True}))
        self.effects.append(StartTimer("N", now + 64 * self.t1))

    def _await_notify(self, event: Any) -> None:
        self.effects.append(StartTimer("N", event.kwargs["now"] + 64 * self.t1))

    def _send_refresh(self, event: Any) -> None:
        self._next = None
        self._in_flight = True
        self.effects.append(CancelTimer("refresh"))
        self.effects.append(Command("send_subscribe", {"expires": self.expires, "initial": False}))

    def _send_refresh_again(self, event: Any) -> None:
        self._brief_retried = True
        self.expires = event.kwargs["response"].min_expires
        self._send_refresh(event)

    def _refresh_when_settled(self, event: Any) -> None:
        self._next = "refresh"

    def _send_unsubscribe(self, event: Any) -> None:
        self._next = None
        self._in_flight = True
        self.effects.append(CancelTimer("refresh"))
        self.effects.append(Command("send_subscribe", {"expires": 0, "initial": False}))
        self.effects.append(StartTimer("N", event.kwargs["now"] + 64 * self.t1))

    def _unsubscribe_when_settled(self, event: Any) -> None:
        self._next = "unsubscribe"
        self.effects.append(CancelTimer("refresh"))
        self.effects.append(StartTimer("N", event.kwargs["now"] + 64 * self.t1))

    def _resubscribe_when_settled(self, event: Any) -> None:
        self._next = "resubscribe"

    # -- actions: 2xx ------------------------------------------------------------------------------

    def _accept(self, response: Response) -> None:
        if not self._announced:
            self._announced = True
            self.effects.append(Emit(SubscriptionAccepted(subscription=self.id,
                                                          response=response)))

    def _granted(self, response: Response) -> int:
        """The lifetime a 2xx grants: its Expires, never more than we asked (§4.1.2.1)."""
        expires = response.expires
        return self.expires if expires is None else min(expires, self.expires)

    def _accepted_now(self, event: Any) -> float:
        response = event.kwargs["response"]
        self._accept(response)
        return float(event.kwargs["now"] + REFRESH_RATIO * self._granted(response))

    def _accepted(self, event: Any) -> None:
        self._refresh_at = self._accepted_now(event)  # armed once the first NOTIFY is here

    def _late_accepted(self, event: Any) -> None:
        self.effects.append(StartTimer("refresh", self._accepted_now(event)))

    def _late_refresh(self, event: Any) -> None:
        self._accept(event.kwargs["response"])
        self._send_refresh(event)

    def _refreshed(self, event: Any) -> None:
        self.effects.append(StartTimer("refresh", self._accepted_now(event)))

    # -- actions: NOTIFY ---------------------------------------------------------------------------

    def _answer(self, event: Any) -> None:
        self.effects.append(Command("answer", {"status": event.kwargs["status"]}))

    def _notified(self, event: Any) -> None:
        """200 and the ``notify`` event."""
        self._answer(event)
        request: Request = event.kwargs["request"]
        self.effects.append(Emit(SubscriptionNotify(
            subscription=self.id, request=request, state=event.event.name, body=request.text)))

    def _subscribed(self, event: Any) -> None:
        self._noted(event)
        now = event.kwargs["now"]
        state = event.kwargs["request"].subscription_state
        at: float | None = None
        if state.expires is not None:
            at = now + REFRESH_RATIO * state.expires
        elif event.transition.source == S.NOTIFY_WAIT.name:
            at = self._refresh_at if self._refresh_at is not None else \
                now + REFRESH_RATIO * self.expires
        if event.transition.source == S.NOTIFY_WAIT.name:
            self.effects.append(CancelTimer("N"))
        if at is not None:
            self.effects.append(StartTimer("refresh", max(at, now)))

    def _noted(self, event: Any) -> None:
        self._notified(event)
        self.substate = event.event.name

    def _resubscribe(self, event: Any) -> None:
        self._notified(event)
        self.effects.append(CancelTimer("refresh"))
        self._send_new(event.kwargs["now"])

    def _wait_to_resubscribe(self, event: Any) -> None:
        """Again later: after ``retry-after`` (probation, giveup, or a first NOTIFY that ended
        it), or as soon as the SUBSCRIBE in flight has its outcome."""
        self._notified(event)
        now = event.kwargs["now"]
        state = event.kwargs["request"].subscription_state
        self.dialog = None
        self.substate = None
        self._next = None
        self.effects.append(CancelTimer("refresh"))
        self.effects.append(CancelTimer("N"))
        first = event.transition.source == S.NOTIFY_WAIT.name
        if state.reason in _LATER or first:
            delay = state.retry_after if state.retry_after is not None else self.retry_delay
            self.effects.append(StartTimer("retry", now + delay))
        else:
            self._next = "resubscribe"  # deactivated or timeout, a SUBSCRIBE in flight

    def _ended_by_notifier(self, event: Any) -> None:
        self._notified(event)
        self._end(self._reason(event), None)

    # -- actions: the end --------------------------------------------------------------------------

    def _failed(self, event: Any) -> None:
        response: Response | None = event.kwargs.get("response")
        cause: Cause = event.kwargs["cause"]
        self.effects.append(Emit(SubscriptionFailed(subscription=self.id, response=response,
                                                    cause=cause)))
        self._end("failed", cause)

    def _no_notify(self, event: Any) -> None:
        self.effects.append(Emit(SubscriptionFailed(subscription=self.id, response=None,
                                                    cause=Cause.REQUEST_TIMEOUT)))
        self._end("failed", Cause.REQUEST_TIMEOUT)

    def _unsubscribed(self, event: Any) -> None:
        if "request" in event.kwargs:  # the final NOTIFY
            self._notified(event)
        self._end("unsubscribed", None)

    def _end(self, reason: str | None, cause: Cause | None) -> None:
        self.reason, self.cause = reason, cause
        self._next = None
        for name in ("refresh", "N", "retry"):
            self.effects.append(CancelTimer(name))
        self.effects.append(Emit(SubscriptionTerminated(subscription=self.id, reason=reason,
                                                        cause=cause)))


Subscriber.SPEC = define("subscription", SubscriberState, TABLE, S.INITIAL)
