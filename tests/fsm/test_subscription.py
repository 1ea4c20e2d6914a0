"""The subscriber machine with a fake clock: every rule of RFC 6665's subscriber side that it
implements, and every row of its table."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from harness import Driver

from sipfsm.causes import Cause
from sipfsm.errors import ParseError
from sipfsm.events import (
    SubscriptionAccepted,
    SubscriptionFailed,
    SubscriptionNotify,
    SubscriptionTerminated,
)
from sipfsm.fsm.base import Command, Effect
from sipfsm.fsm.dialog import Dialog
from sipfsm.fsm.subscription import (
    RETRY_DELAY,
    Subscriber,
    SubscriberState,
    parse_event,
)
from sipfsm.sip import Request, Response, parse

S = SubscriberState
T1 = 0.5
N = 64 * T1
VIA = "SIP/2.0/WS a.invalid;branch=z9hG4bKsub"


def message(head: str, body: str = "") -> Request | Response:
    """A message from its header lines (one per ``\\n``-ended line) and body."""
    return parse(head.replace("\n", "\r\n") + "\r\n" + body)


class Peer(Driver):
    """The adapter and the notifier, faked: writes the SUBSCRIBEs the machine asks for (an
    initial one out of dialog with a fresh Call-ID, the others with the machine's dialog),
    records the NOTIFY answers, and makes the notifier's responses and NOTIFYs."""

    def __init__(self, sub: Subscriber) -> None:
        super().__init__(sub, sub.timer_fired)
        self.sub = sub
        self.requests: list[Request] = []
        self.answers: list[int] = []
        self.initials = 0
        self.notify_cseq = 100
        self.tag = "n1"  # the notifier's tag

    def run(self) -> list[Effect]:
        effects = super().run()
        for effect in effects:
            if isinstance(effect, Command) and effect.name == "send_subscribe":
                self.write(int(effect.args["expires"]), bool(effect.args["initial"]))
            elif isinstance(effect, Command) and effect.name == "answer":
                self.answers.append(int(effect.args["status"]))
            elif isinstance(effect, Command):
                raise AssertionError(f"unknown command {effect}")
        return effects

    def write(self, expires: int, initial: bool) -> None:
        sub = self.sub
        headers = [("Event", str(sub.event)), ("Expires", str(expires))]
        if initial:
            self.initials += 1
            request = message(
                f"SUBSCRIBE sip:bob@x.test SIP/2.0\nVia: {VIA}\nMax-Forwards: 70\n"
                f"From: <sip:alice@x.test>;tag=s{self.initials}\nTo: <sip:bob@x.test>\n"
                f"Call-ID: call{self.initials}\nCSeq: {10 * self.initials} SUBSCRIBE\n"
                "Contact: <sip:al@a.invalid;transport=ws>\n"
                + "".join(f"{name}: {value}\n" for name, value in headers))
            assert isinstance(request, Request)
            sub.request = request
        else:
            assert sub.dialog is not None, "an in-dialog SUBSCRIBE without a dialog"
            request = sub.dialog.request("SUBSCRIBE", via=VIA, extra_headers=headers)
        self.requests.append(request)

    @property
    def last(self) -> Request:
        return self.requests[-1]

    def reply(self, status: int, *headers: str, to_tag: str | None = None) -> Response:
        request = self.last
        to = request.headers.get("To") or ""
        if request.to is not None and request.to.tag is None:
            to += f";tag={to_tag or self.tag}"
        response = message(
            f"SIP/2.0 {status} X\nVia: {VIA}\nFrom: {request.headers.get('From')}\nTo: {to}\n"
            f"Call-ID: {request.call_id}\nCSeq: {request.headers.get('CSeq')}\n"
            + "".join(h + "\n" for h in headers))
        assert isinstance(response, Response)
        return response

    def ok(self, expires: int | None = 600, **kw: Any) -> Response:
        headers = ["Contact: <sip:bb@b.invalid;transport=ws>"]
        if expires is not None:
            headers.append(f"Expires: {expires}")
        return self.reply(200, *headers, **kw)

    def notify(self, state: str = "active", *, expires: int | None = 600, cseq: int | None = None,
               event: str | None = None, tag: str | None = None, contact: str = "bb@b.invalid",
               body: str = "", omit: str = "", ids: tuple[str, str] | None = None) -> Request:
        """A NOTIFY for the machine's dialog, or its initial SUBSCRIBE (or ``ids``: Call-ID and
        our tag)."""
        sub = self.sub
        if ids is not None:
            call_id, ours = ids
        elif sub.dialog is not None:
            call_id, ours = sub.dialog.call_id, sub.dialog.local_tag
        else:
            assert sub.request is not None and sub.request.from_ is not None
            call_id, ours = sub.request.call_id or "", sub.request.from_.tag or ""
        if cseq is None:
            self.notify_cseq += 1
            cseq = self.notify_cseq
        value = state if expires is None or not state.startswith(("active", "pending")) \
            else f"{state};expires={expires}"
        lines = [f"Via: SIP/2.0/WS b.invalid;branch=z9hG4bKn{cseq}", "Max-Forwards: 70",
                 f"From: <sip:bob@x.test>;tag={tag or self.tag}",
                 f"To: <sip:alice@x.test>;tag={ours}", f"Call-ID: {call_id}",
                 f"CSeq: {cseq} NOTIFY", f"Contact: <sip:{contact};transport=ws>",
                 f"Event: {event or sub.event}", f"Subscription-State: {value}"]
        lines = [line for line in lines if not omit or not line.startswith(omit)]
        if body:
            lines.append("Content-Type: application/pidf+xml")
        request = message("NOTIFY sip:al@a.invalid;transport=ws SIP/2.0\n" + "\n".join(lines)
                          + "\n", body)
        assert isinstance(request, Request)
        return request

    def give(self, call: Callable[..., Any], *args: Any) -> list[Effect]:
        """Apply one input (the fake clock's time is appended)."""
        return self(call, *args)

    def sends(self) -> list[int]:
        """The Expires of every SUBSCRIBE sent so far."""
        return [int(r.headers.get("Expires") or -1) for r in self.requests]


def make(expires: int = 600, event: str = "presence") -> tuple[Subscriber, Peer]:
    sub = Subscriber(event=event, expires=expires, t1=T1)
    return sub, Peer(sub)


def events(peer: Peer, kind: type[Any]) -> list[Any]:
    return peer.of(kind)


def reach(state: SubscriberState, expires: int = 600) -> tuple[Subscriber, Peer]:
    """A subscription driven into ``state`` by the ordinary path (nothing in flight where the
    state allows it)."""
    sub, peer = make(expires)
    if state is S.INITIAL:
        return sub, peer
    peer.give(sub.start)
    if state is S.NOTIFY_WAIT:
        return sub, peer
    peer.give(sub.response, peer.ok(expires))
    peer.give(sub.notify, peer.notify("pending" if state is S.PENDING else "active",
                                      expires=expires))
    if state is S.REFRESHING:
        peer.advance(0.9 * expires)
    elif state is S.UNSUBSCRIBING:
        peer.give(sub.unsubscribe)
    elif state is S.WAITING:
        peer.give(sub.notify, peer.notify("terminated;reason=probation;retry-after=60"))
    elif state is S.TERMINATED:
        peer.give(sub.notify, peer.notify("terminated;reason=noresource"))
    assert sub.state is state
    return sub, peer


# -- subscribing ---------------------------------------------------------------------------------


def test_subscribe_accepted_then_first_notify() -> None:
    sub, peer = make()
    peer.give(sub.start)
    assert sub.state is S.NOTIFY_WAIT and sub.in_flight
    assert peer.sends() == [600] and peer.last.to is not None and peer.last.to.tag is None
    assert peer.timers == {"N": N}  # Timer N from the moment the SUBSCRIBE leaves
    peer.now = 1
    peer.give(sub.response, peer.ok(300))
    assert sub.state is S.NOTIFY_WAIT and not sub.in_flight
    (accepted,) = events(peer, SubscriptionAccepted)
    assert accepted.response.status_code == 200
    assert sub.dialog is not None and sub.dialog.key == ("call1", "s1", "n1")
    assert str(sub.dialog.remote_target) == "sip:bb@b.invalid;transport=ws"
    assert peer.timers == {"N": N}  # still waiting for the NOTIFY; no refresh before it
    peer.now = 2
    peer.give(sub.notify, peer.notify("active", expires=None, body="<presence/>"))
    assert sub.state is S.ACTIVE and peer.answers == [200]
    (notified,) = events(peer, SubscriptionNotify)
    assert (notified.state, notified.body) == ("active", "<presence/>")
    # The refresh is due at 90 % of the 300 s granted by the 2xx, counted from the 2xx.
    assert peer.timers == {"refresh": 1 + 270}


def test_the_granted_expiry_never_exceeds_what_we_asked() -> None:
    sub, peer = make(600)
    peer.give(sub.start)
    peer.give(sub.response, peer.ok(7200))
    peer.give(sub.notify, peer.notify("pending", expires=None))
    assert sub.state is S.PENDING and peer.timers == {"refresh": 540}
    sub2, peer2 = make(600)
    peer2.give(sub2.start)
    peer2.give(sub2.response, peer2.ok(None))  # no Expires: what we asked
    peer2.give(sub2.notify, peer2.notify("active", expires=None))
    assert peer2.timers == {"refresh": 540}


def test_notify_expires_sets_the_refresh() -> None:
    sub, peer = reach(S.ACTIVE)
    assert peer.timers == {"refresh": 540}
    peer.now = 10
    peer.give(sub.notify, peer.notify("active", expires=100))
    assert peer.timers == {"refresh": 100}
    peer.give(sub.notify, peer.notify("pending", expires=None))  # no expires: unchanged
    assert sub.state is S.PENDING and peer.timers == {"refresh": 100}
    peer.give(sub.notify, peer.notify("pending", expires=None))
    assert sub.state is S.PENDING and peer.timers == {"refresh": 100}
    peer.give(sub.notify, peer.notify("active", expires=1000))  # active again
    assert sub.state is S.ACTIVE and peer.timers == {"refresh": 910}
    assert peer.answers == [200] * 5


def test_notify_before_the_2xx_makes_the_dialog() -> None:
    sub, peer = make(600)
    peer.give(sub.start)
    peer.now = 1
    notify = peer.notify("active", expires=500, contact="early@b.invalid")
    notify.headers.add("Record-Route", "<sip:p1.test;lr>")
    peer.give(sub.notify, notify)
    assert sub.state is S.ACTIVE and sub.in_flight and peer.answers == [200]
    dialog = sub.dialog
    assert dialog is not None and dialog.key == ("call1", "s1", "n1")
    assert dialog.route_set == ["<sip:p1.test;lr>"] and dialog.local_cseq == 10
    assert str(dialog.remote_target) == "sip:early@b.invalid;transport=ws"
    assert peer.timers == {"refresh": 1 + 450} and events(peer, SubscriptionAccepted) == []
    peer.now = 2
    peer.give(sub.response, peer.ok(600))  # the late 2xx confirms it
    assert sub.dialog is dialog and sub.state is S.ACTIVE and not sub.in_flight
    assert len(events(peer, SubscriptionAccepted)) == 1
    assert peer.timers == {"refresh": 2 + 540}
    peer.advance(540)
    assert sub.state is S.REFRESHING
    assert peer.last.cseq is not None and peer.last.cseq.seq == 11  # the dialog's next CSeq


def test_a_pending_notify_before_the_2xx_and_its_late_2xx() -> None:
    sub, peer = make(600)
    peer.give(sub.start)
    peer.give(sub.notify, peer.notify("pending", expires=None))
    assert sub.state is S.PENDING and peer.timers == {"refresh": 540}
    peer.now = 5
    peer.give(sub.response, peer.ok(100))
    assert sub.state is S.PENDING and peer.timers == {"refresh": 95}


def test_a_refresh_due_before_the_late_2xx_waits_for_it() -> None:
    sub, peer = make(10)
    peer.give(sub.start)
    peer.give(sub.notify, peer.notify("active", expires=10))
    peer.advance(9)
    # The initial SUBSCRIBE is still unanswered: no second SUBSCRIBE yet.
    assert sub.state is S.REFRESHING and len(peer.requests) == 1 and peer.timers == {}
    peer.give(sub.response, peer.ok(10))
    assert len(events(peer, SubscriptionAccepted)) == 1
    assert len(peer.requests) == 2 and peer.last.to is not None and peer.last.to.tag == "n1"
    peer.give(sub.response, peer.ok(10))
    assert sub.state is S.ACTIVE and peer.timers == {"refresh": 18}


@pytest.mark.parametrize("first", ["active", "pending"])
def test_the_initial_subscribe_refused_after_an_early_notify(first: str) -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.notify, peer.notify(first))
    peer.give(sub.response, peer.reply(489))
    assert sub.state is S.TERMINATED and peer.timers == {}
    assert events(peer, SubscriptionFailed)[0].response.status_code == 489


def test_a_final_failure_to_the_initial_subscribe() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.response, peer.reply(404))
    assert sub.state is S.TERMINATED and peer.timers == {}
    (failed,) = events(peer, SubscriptionFailed)
    assert failed.cause is Cause.NOT_FOUND and failed.response.status_code == 404
    (ended,) = events(peer, SubscriptionTerminated)
    assert (ended.reason, ended.cause) == ("failed", Cause.NOT_FOUND)
    assert (sub.reason, sub.cause) == ("failed", Cause.NOT_FOUND)


def test_no_response_at_all_fails_with_its_cause() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.failed, Cause.REQUEST_TIMEOUT)
    assert sub.state is S.TERMINATED
    assert events(peer, SubscriptionFailed)[0].cause is Cause.REQUEST_TIMEOUT
    peer.give(sub.failed, Cause.REQUEST_TIMEOUT)  # nothing awaited any more: ignored
    assert len(events(peer, SubscriptionTerminated)) == 1


def test_provisional_and_unawaited_responses_are_ignored() -> None:
    sub, peer = reach(S.ACTIVE)
    effects = peer.give(sub.response, peer.reply(200))  # nothing in flight
    assert effects == [] and sub.state is S.ACTIVE
    sub, peer = make()
    peer.give(sub.start)
    assert peer.give(sub.response, peer.reply(100)) == [] and sub.in_flight


def test_423_is_retried_once_with_min_expires() -> None:
    sub, peer = make(60)
    peer.give(sub.start)
    peer.now = 3
    peer.give(sub.response, peer.reply(423, "Min-Expires: 120"))
    assert sub.state is S.NOTIFY_WAIT and peer.sends() == [60, 120] and sub.expires == 120
    assert peer.last.call_id == "call2"  # a new initial SUBSCRIBE
    assert peer.timers == {"N": 3 + N}
    peer.give(sub.response, peer.reply(423, "Min-Expires: 300"))  # once only
    assert sub.state is S.TERMINATED
    assert events(peer, SubscriptionFailed)[0].response.status_code == 423


def test_423_without_a_larger_min_expires_fails() -> None:
    sub, peer = make(600)
    peer.give(sub.start)
    peer.give(sub.response, peer.reply(423, "Min-Expires: 60"))
    assert sub.state is S.TERMINATED and len(peer.requests) == 1
    sub, peer = make(600)
    peer.give(sub.start)
    peer.give(sub.response, peer.reply(423))
    assert sub.state is S.TERMINATED


def test_timer_n_without_a_notify_fails() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.response, peer.ok())
    peer.advance(N)
    assert sub.state is S.TERMINATED and peer.timers == {}
    assert events(peer, SubscriptionFailed)[0].cause is Cause.REQUEST_TIMEOUT
    assert events(peer, SubscriptionTerminated)[0].reason == "failed"


# -- refreshing ----------------------------------------------------------------------------------


def test_refresh_at_90_percent_in_the_dialog() -> None:
    sub, peer = reach(S.ACTIVE)
    peer.advance(539)
    assert sub.state is S.ACTIVE and len(peer.requests) == 1
    peer.advance(1)
    assert sub.state is S.REFRESHING and peer.timers == {}
    refresh = peer.last
    assert refresh.to is not None and refresh.to.tag == "n1" and refresh.call_id == "call1"
    assert refresh.cseq is not None and refresh.cseq.seq == 11
    assert str(refresh.uri) == "sip:bb@b.invalid;transport=ws"
    assert refresh.headers.get("Expires") == "600"
    peer.give(sub.notify, peer.notify("pending", expires=None))  # noted while refreshing
    assert sub.state is S.REFRESHING and peer.answers[-1] == 200
    peer.give(sub.response, peer.ok(600))
    assert sub.state is S.PENDING and peer.timers == {"refresh": 540 + 540}
    assert len(events(peer, SubscriptionAccepted)) == 1  # not again for a refresh
    peer.advance(540)  # a refresh from PENDING
    assert sub.state is S.REFRESHING
    peer.give(sub.notify, peer.notify("active", expires=None))
    assert sub.state is S.REFRESHING and peer.answers[-1] == 200
    peer.give(sub.response, peer.ok(600))
    assert sub.state is S.ACTIVE


@pytest.mark.parametrize("outcome", ["481", "408", "timeout", "connection"])
def test_a_failed_refresh_ends_the_subscription(outcome: str) -> None:
    sub, peer = reach(S.REFRESHING)
    if outcome.isdigit():
        peer.give(sub.response, peer.reply(int(outcome)))
    else:
        cause = Cause.REQUEST_TIMEOUT if outcome == "timeout" else Cause.CONNECTION_ERROR
        peer.give(sub.failed, cause)
    assert sub.state is S.TERMINATED and peer.timers == {}
    assert len(events(peer, SubscriptionFailed)) == 1
    assert events(peer, SubscriptionTerminated)[0].reason == "failed"


def test_a_refresh_is_retried_once_after_423() -> None:
    sub, peer = reach(S.REFRESHING)
    peer.give(sub.response, peer.reply(423, "Min-Expires: 900"))
    assert sub.state is S.REFRESHING and peer.sends() == [600, 600, 900]
    assert [r.cseq.seq for r in peer.requests[1:] if r.cseq] == [11, 12]
    peer.give(sub.response, peer.ok(900))
    assert sub.state is S.ACTIVE


def test_a_digest_retry_raises_the_dialog_cseq() -> None:
    sub, peer = reach(S.REFRESHING)
    retried = peer.reply(200, "Expires: 600")
    retried.headers.set("CSeq", "12 SUBSCRIBE")  # the adapter resent it with CSeq + 1
    peer.give(sub.response, retried)
    assert sub.dialog is not None and sub.dialog.local_cseq == 12
    peer.advance(540)
    assert peer.last.cseq is not None and peer.last.cseq.seq == 13


# -- NOTIFY --------------------------------------------------------------------------------------


def test_an_in_dialog_notify_refreshes_the_remote_target() -> None:
    sub, peer = reach(S.ACTIVE)
    peer.give(sub.notify, peer.notify("active", contact="moved@c.invalid"))
    assert sub.dialog is not None
    assert str(sub.dialog.remote_target) == "sip:moved@c.invalid;transport=ws"
    peer.advance(540)
    assert str(peer.last.uri) == "sip:moved@c.invalid;transport=ws"


@pytest.mark.parametrize(("variant", "status"), [
    ("no state", 400), ("no event", 400), ("other event", 481), ("other id", 481),
    ("other fork", 481), ("old cseq", 500)])
def test_bad_notifies_are_refused_and_change_nothing(variant: str, status: int) -> None:
    sub, peer = reach(S.ACTIVE)
    timers = dict(peer.timers)
    bad = {"no state": lambda: peer.notify(omit="Subscription-State"),
           "no event": lambda: peer.notify(omit="Event"),
           "other event": lambda: peer.notify(event="dialog"),
           "other id": lambda: peer.notify(event="presence;id=7"),
           "other fork": lambda: peer.notify(tag="n2"),
           "old cseq": lambda: peer.notify(cseq=50)}[variant]()
    effects = peer.give(sub.notify, bad)
    assert peer.answers == [200, status] and sub.state is S.ACTIVE
    assert [e for e in effects if not isinstance(e, Command)] == []
    assert peer.timers == timers


def test_a_notify_without_a_from_tag_is_refused() -> None:
    sub, peer = reach(S.ACTIVE)
    bad = peer.notify()
    bad.headers.set("From", "<sip:bob@x.test>")
    peer.give(sub.notify, bad)
    assert peer.answers[-1] == 400


def test_an_early_notify_that_cannot_make_a_dialog_is_refused() -> None:
    sub, peer = make()
    peer.give(sub.start)
    early = peer.notify()
    sub.request = None  # the adapter never said which SUBSCRIBE went out
    peer.give(sub.notify, early)
    assert peer.answers == [481] and sub.state is S.NOTIFY_WAIT and sub.dialog is None


@pytest.mark.parametrize("state", [S.NOTIFY_WAIT, S.PENDING, S.ACTIVE, S.REFRESHING,
                                   S.UNSUBSCRIBING])
def test_bad_notify_in_every_live_state(state: SubscriberState) -> None:
    sub, peer = reach(state)
    if sub.dialog is None:  # NOTIFY_WAIT before the 2xx
        peer.give(sub.response, peer.ok())
    peer.give(sub.notify, peer.notify(omit="Subscription-State"))
    assert peer.answers[-1] == 400 and sub.state is state


@pytest.mark.parametrize("state", [S.INITIAL, S.WAITING, S.TERMINATED])
def test_a_notify_when_not_subscribed_gets_481_and_nothing_else(state: SubscriberState) -> None:
    sub, peer = reach(state)
    if state is S.INITIAL:
        peer.give(sub.start)
        notify = peer.notify()
        sub, peer = make()
    else:
        notify = peer.notify()
    timers, sent, emitted = dict(peer.timers), len(peer.requests), len(peer.events)
    effects = peer.give(sub.notify, notify)
    assert effects == [Command("answer", {"status": 481})]
    assert (dict(peer.timers), len(peer.requests), len(peer.events)) == (timers, sent, emitted)
    assert sub.state is state


def test_an_unknown_subscription_state_counts_as_pending() -> None:
    sub, peer = reach(S.ACTIVE)
    peer.give(sub.notify, peer.notify("unheard-of"))
    assert sub.state is S.PENDING and events(peer, SubscriptionNotify)[-1].state == "pending"


# -- terminated by the notifier ------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["deactivated", "timeout"])
@pytest.mark.parametrize("state", [S.ACTIVE, S.PENDING])
def test_deactivated_and_timeout_subscribe_again_at_once(reason: str,
                                                         state: SubscriberState) -> None:
    sub, peer = reach(state)
    peer.now = 7
    peer.give(sub.notify, peer.notify(f"terminated;reason={reason}"))
    assert peer.answers[-1] == 200 and events(peer, SubscriptionNotify)[-1].state == "terminated"
    assert sub.state is S.NOTIFY_WAIT and sub.in_flight and sub.dialog is None
    again = peer.last
    assert again.call_id == "call2" and again.to is not None and again.to.tag is None
    assert peer.timers == {"N": 7 + N} and events(peer, SubscriptionTerminated) == []
    peer.give(sub.response, peer.ok(600, to_tag="n9"))
    assert len(events(peer, SubscriptionAccepted)) == 2  # once per initial SUBSCRIBE
    assert sub.dialog is not None and sub.dialog.key == ("call2", "s2", "n9")


@pytest.mark.parametrize("reason", ["probation", "giveup"])
def test_probation_and_giveup_subscribe_again_after_retry_after(reason: str) -> None:
    sub, peer = reach(S.ACTIVE)
    peer.now = 10
    peer.give(sub.notify, peer.notify(f"terminated;reason={reason};retry-after=120"))
    assert sub.state is S.WAITING and peer.timers == {"retry": 130} and sub.dialog is None
    peer.advance(119)
    assert len(peer.requests) == 1
    peer.advance(1)
    assert sub.state is S.NOTIFY_WAIT and len(peer.requests) == 2 and peer.last.call_id == "call2"
    assert peer.timers == {"N": 130 + N}


def test_probation_without_retry_after_waits_the_default() -> None:
    sub, peer = reach(S.PENDING)
    peer.give(sub.notify, peer.notify("terminated;reason=probation"))
    assert peer.timers == {"retry": RETRY_DELAY}


def test_a_first_notify_that_ends_it_never_drives_a_tight_loop() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.response, peer.ok())
    peer.give(sub.notify, peer.notify("terminated;reason=deactivated"))
    assert sub.state is S.WAITING and peer.timers == {"retry": RETRY_DELAY}


def test_a_first_notify_that_ends_it_before_a_failed_subscribe() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.notify, peer.notify("terminated;reason=giveup;retry-after=9"))
    peer.give(sub.response, peer.reply(403))
    assert sub.state is S.WAITING and not sub.in_flight and peer.timers == {"retry": 9}
    assert events(peer, SubscriptionFailed) == []


def test_a_first_notify_that_ends_it_before_the_2xx() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.notify, peer.notify("terminated;reason=timeout"))
    assert sub.state is S.WAITING and sub.in_flight and peer.timers == {"retry": RETRY_DELAY}
    peer.give(sub.response, peer.ok())  # the outcome settles; the retry timer still decides
    assert sub.state is S.WAITING and not sub.in_flight and len(peer.requests) == 1
    peer.advance(RETRY_DELAY)
    assert sub.state is S.NOTIFY_WAIT and len(peer.requests) == 2


def test_deactivated_during_a_refresh_waits_for_its_outcome() -> None:
    sub, peer = reach(S.REFRESHING)
    peer.give(sub.notify, peer.notify("terminated;reason=deactivated"))
    assert sub.state is S.WAITING and peer.timers == {} and len(peer.requests) == 2
    peer.give(sub.response, peer.reply(481))
    assert sub.state is S.NOTIFY_WAIT and len(peer.requests) == 3 and peer.last.call_id == "call2"
    assert events(peer, SubscriptionFailed) == []


def test_deactivated_after_an_early_notify_waits_for_the_2xx() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.notify, peer.notify("active"))
    peer.give(sub.notify, peer.notify("terminated;reason=deactivated"))
    assert sub.state is S.WAITING and len(peer.requests) == 1
    peer.give(sub.response, peer.ok())
    assert sub.state is S.NOTIFY_WAIT and len(peer.requests) == 2


def test_a_retry_due_while_a_subscribe_is_in_flight_waits_for_its_outcome() -> None:
    sub, peer = reach(S.REFRESHING)
    peer.give(sub.notify, peer.notify("terminated;reason=giveup;retry-after=5"))
    assert sub.state is S.WAITING and peer.timers == {"retry": 540 + 5}
    peer.advance(5)
    assert sub.state is S.WAITING and len(peer.requests) == 2  # the refresh is still unanswered
    peer.give(sub.failed, Cause.REQUEST_TIMEOUT)
    assert sub.state is S.NOTIFY_WAIT and len(peer.requests) == 3


@pytest.mark.parametrize("value", ["terminated;reason=rejected", "terminated;reason=noresource",
                                   "terminated;reason=invariant", "terminated",
                                   "terminated;reason=whatever"])
def test_other_reasons_end_it(value: str) -> None:
    sub, peer = reach(S.ACTIVE)
    peer.give(sub.notify, peer.notify(value))
    assert sub.state is S.TERMINATED and peer.answers[-1] == 200 and peer.timers == {}
    (ended,) = events(peer, SubscriptionTerminated)
    reason = value.partition("reason=")[2] or None
    assert (ended.reason, ended.cause) == (reason, None)
    assert events(peer, SubscriptionFailed) == [] and len(peer.requests) == 1


@pytest.mark.parametrize("state", [S.NOTIFY_WAIT, S.PENDING, S.REFRESHING])
def test_ended_by_the_notifier_from_other_states(state: SubscriberState) -> None:
    sub, peer = reach(state)
    peer.give(sub.notify, peer.notify("terminated;reason=rejected"))
    assert sub.state is S.TERMINATED and peer.timers == {}


def test_a_fetch_is_never_renewed() -> None:
    sub, peer = make(0)
    peer.give(sub.start)
    assert peer.sends() == [0]
    peer.give(sub.response, peer.ok(0))
    peer.give(sub.notify, peer.notify("terminated;reason=timeout", body="<presence/>"))
    assert sub.state is S.TERMINATED and len(peer.requests) == 1
    assert events(peer, SubscriptionNotify)[0].body == "<presence/>"


# -- unsubscribing -------------------------------------------------------------------------------


def test_unsubscribe_then_the_final_notify() -> None:
    sub, peer = reach(S.ACTIVE)
    peer.now = 20
    peer.give(sub.unsubscribe)
    assert sub.state is S.UNSUBSCRIBING and peer.sends() == [600, 0]
    assert peer.last.to is not None and peer.last.to.tag == "n1"
    assert peer.timers == {"N": 20 + N}
    peer.give(sub.response, peer.ok(0))
    assert sub.state is S.UNSUBSCRIBING
    peer.give(sub.notify, peer.notify("active"))  # still noted
    peer.give(sub.notify, peer.notify("terminated;reason=timeout"))
    assert sub.state is S.TERMINATED and peer.timers == {} and peer.answers[-2:] == [200, 200]
    (ended,) = events(peer, SubscriptionTerminated)
    assert ended.reason == "unsubscribed" and len(peer.requests) == 2  # timeout: no renewal
    assert sub.unsubscribe(peer.now) is False


@pytest.mark.parametrize("state", [S.NOTIFY_WAIT, S.PENDING])
def test_unsubscribe_from_other_states(state: SubscriberState) -> None:
    sub, peer = reach(state)
    if state is S.NOTIFY_WAIT:
        peer.give(sub.response, peer.ok())  # answered: the dialog exists
    peer.give(sub.unsubscribe)
    assert sub.state is S.UNSUBSCRIBING and peer.sends()[-1] == 0
    peer.give(sub.notify, peer.notify("pending"))
    assert sub.state is S.UNSUBSCRIBING and peer.answers[-1] == 200


def test_unsubscribe_waits_for_timer_n_at_most() -> None:
    sub, peer = reach(S.ACTIVE)
    peer.give(sub.unsubscribe)
    peer.give(sub.response, peer.ok(0))
    peer.advance(N)
    assert sub.state is S.TERMINATED and events(peer, SubscriptionTerminated)[0].reason == \
        "unsubscribed"
    assert events(peer, SubscriptionFailed) == []


def test_a_refused_unsubscribe_ends_it() -> None:
    sub, peer = reach(S.UNSUBSCRIBING)
    peer.give(sub.response, peer.reply(481))
    assert sub.state is S.TERMINATED and sub.reason == "unsubscribed"


def test_unsubscribe_while_the_initial_subscribe_is_unanswered() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.now = 4
    peer.give(sub.unsubscribe)
    assert sub.state is S.UNSUBSCRIBING and len(peer.requests) == 1 and peer.timers == {"N": 4 + N}
    peer.give(sub.notify, peer.notify("active"))  # an early NOTIFY meanwhile
    assert peer.answers == [200] and sub.state is S.UNSUBSCRIBING
    peer.now = 5
    peer.give(sub.response, peer.ok())
    assert peer.sends() == [600, 0] and peer.timers == {"N": 5 + N}
    peer.give(sub.notify, peer.notify("terminated"))
    assert sub.state is S.TERMINATED


def test_unsubscribe_while_the_initial_subscribe_is_unanswered_and_it_fails() -> None:
    sub, peer = make()
    peer.give(sub.start)
    peer.give(sub.unsubscribe)
    peer.give(sub.response, peer.reply(403))
    assert sub.state is S.TERMINATED and sub.reason == "unsubscribed" and len(peer.requests) == 1


def test_unsubscribe_after_a_2xx_without_a_to_tag_waits_for_timer_n() -> None:
    sub, peer = make()
    peer.give(sub.start)
    untagged = peer.ok()
    untagged.headers.set("To", "<sip:bob@x.test>")
    peer.give(sub.response, untagged)
    assert sub.dialog is None
    peer.give(sub.unsubscribe)
    assert sub.state is S.UNSUBSCRIBING and len(peer.requests) == 1
    peer.advance(N)
    assert sub.state is S.TERMINATED


def test_unsubscribe_during_a_refresh_is_sent_after_it() -> None:
    sub, peer = reach(S.REFRESHING)
    peer.give(sub.unsubscribe)
    assert sub.state is S.UNSUBSCRIBING and peer.sends() == [600, 600]
    peer.give(sub.response, peer.ok(600))
    assert peer.sends() == [600, 600, 0]
    assert [r.cseq.seq for r in peer.requests[1:] if r.cseq] == [11, 12]


def test_unsubscribe_while_waiting_to_subscribe_again() -> None:
    sub, peer = reach(S.WAITING)
    peer.give(sub.unsubscribe)
    assert sub.state is S.TERMINATED and peer.timers == {} and sub.reason == "unsubscribed"


def test_unsubscribe_is_refused_once_over() -> None:
    sub, _ = reach(S.TERMINATED)
    assert sub.unsubscribe(0) is False
    fresh, _ = make()
    assert fresh.unsubscribe(0) is False


# -- the connection and the UA -------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.NOTIFY_WAIT, S.PENDING, S.ACTIVE, S.REFRESHING,
                                   S.WAITING])
def test_a_lost_connection_ends_a_live_subscription(state: SubscriberState) -> None:
    sub, peer = reach(state)
    peer.give(sub.transport_lost)
    assert sub.state is S.TERMINATED and peer.timers == {}
    assert events(peer, SubscriptionFailed)[-1].cause is Cause.CONNECTION_ERROR
    assert (sub.reason, sub.cause) == ("failed", Cause.CONNECTION_ERROR)


def test_a_lost_connection_while_unsubscribing() -> None:
    sub, peer = reach(S.UNSUBSCRIBING)
    peer.give(sub.transport_lost)
    assert sub.state is S.TERMINATED and sub.reason == "unsubscribed"
    assert events(peer, SubscriptionFailed) == []


@pytest.mark.parametrize("state", [S.INITIAL, S.NOTIFY_WAIT, S.PENDING, S.ACTIVE, S.REFRESHING,
                                   S.UNSUBSCRIBING, S.WAITING])
def test_close_ends_it_on_the_spot(state: SubscriberState) -> None:
    sub, peer = reach(state)
    sent = len(peer.requests)
    peer.give(sub.close)
    assert sub.state is S.TERMINATED and peer.timers == {} and len(peer.requests) == sent
    assert events(peer, SubscriptionTerminated)[-1].reason == "unsubscribed"
    assert peer.give(sub.close) == []


def test_timers_by_other_names_are_ignored() -> None:
    sub, peer = reach(S.ACTIVE)
    assert peer.give(lambda now: sub.timer_fired("nonsense", now)) == []


def test_every_effect_of_a_terminated_subscription_is_a_481() -> None:
    sub, peer = reach(S.TERMINATED)
    before = len(peer.log)
    peer.give(sub.response, peer.ok())
    peer.give(sub.failed, Cause.REQUEST_TIMEOUT)
    peer.give(sub.transport_lost)
    peer.give(lambda now: sub.timer_fired("refresh", now))
    peer.give(sub.notify, peer.notify())
    assert peer.log[before:] == [Command("answer", {"status": 481})]


# -- the implicit subscription of a REFER (RFC 3515) ----------------------------------------------


def refer_dialog() -> Dialog:
    invite = message("INVITE sip:bob@x.test SIP/2.0\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bK1\n"
                     "From: <sip:alice@x.test>;tag=a1\nTo: <sip:bob@x.test>\nCall-ID: inv1\n"
                     "CSeq: 1 INVITE\nContact: <sip:al@a.invalid;transport=ws>\n")
    ok = message("SIP/2.0 200 OK\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bK1\n"
                 "From: <sip:alice@x.test>;tag=a1\nTo: <sip:bob@x.test>;tag=b1\nCall-ID: inv1\n"
                 "CSeq: 1 INVITE\nContact: <sip:bb@b.invalid;transport=ws>\n")
    assert isinstance(invite, Request) and isinstance(ok, Response)
    dialog = Dialog.as_uac(invite, ok)
    dialog.local_cseq = 2  # the REFER was CSeq 2
    return dialog


def test_an_implicit_refer_subscription_starts_without_a_subscribe() -> None:
    dialog = refer_dialog()
    sub = Subscriber.implicit(dialog, event="refer;id=2", t1=T1)
    peer = Peer(sub)
    peer.tag = "b1"
    peer.give(sub.start)
    assert sub.state is S.NOTIFY_WAIT and peer.requests == [] and not sub.in_flight
    assert peer.timers == {"N": N} and sub.dialog is dialog
    sipfrag = peer.notify("active", expires=60, body="SIP/2.0 100 Trying")
    peer.give(sub.notify, sipfrag)
    assert sub.state is S.ACTIVE and peer.answers == [200] and peer.timers == {"refresh": 54}
    assert events(peer, SubscriptionNotify)[0].body == "SIP/2.0 100 Trying"
    assert sipfrag.cseq is not None and dialog.remote_cseq == sipfrag.cseq.seq
    peer.give(sub.notify, peer.notify("active", event="refer;id=3"))  # another REFER's
    assert peer.answers[-1] == 481
    peer.give(sub.notify, peer.notify("terminated;reason=noresource", body="SIP/2.0 200 OK"))
    assert sub.state is S.TERMINATED and sub.reason == "noresource" and peer.timers == {}
    assert dialog.state.name == "CONFIRMED"  # the call's dialog lives on


def test_an_implicit_subscription_is_refreshed_and_unsubscribed_in_the_dialog() -> None:
    dialog = refer_dialog()
    sub = Subscriber.implicit(dialog, event="refer;id=2", t1=T1, expires=100)
    peer = Peer(sub)
    peer.tag = "b1"
    peer.give(sub.start)
    peer.give(sub.notify, peer.notify("active", expires=None))
    assert peer.timers == {"refresh": 90}
    peer.advance(90)
    refresh = peer.last
    assert refresh.call_id == "inv1" and refresh.headers.get("Event") == "refer;id=2"
    assert refresh.cseq is not None and refresh.cseq.seq == 3
    peer.give(sub.response, peer.ok(100))
    peer.give(sub.unsubscribe)
    assert peer.sends() == [100, 0]
    peer.give(sub.notify, peer.notify("terminated;reason=timeout"))  # never renewed
    assert sub.state is S.TERMINATED and len(peer.requests) == 2


def test_an_implicit_subscription_unsubscribed_before_its_first_notify() -> None:
    sub = Subscriber.implicit(refer_dialog(), event="refer;id=2", t1=T1)
    peer = Peer(sub)
    peer.give(sub.start)
    peer.give(sub.unsubscribe)
    assert sub.state is S.UNSUBSCRIBING and peer.sends() == [0]


def test_an_implicit_subscription_ended_with_deactivated_is_not_renewed() -> None:
    sub = Subscriber.implicit(refer_dialog(), event="refer;id=2", t1=T1)
    peer = Peer(sub)
    peer.tag = "b1"
    peer.give(sub.start)
    peer.give(sub.notify, peer.notify("active"))
    peer.give(sub.notify, peer.notify("terminated;reason=deactivated"))
    assert sub.state is S.TERMINATED and peer.requests == []


def test_parse_event() -> None:
    event = parse_event("refer;id=93809824")
    assert (event.package, event.id) == ("refer", "93809824")
    with pytest.raises(ParseError):
        parse_event("not an event")

