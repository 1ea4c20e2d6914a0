"""Hypothesis drives the subscriber machine: random outcomes of its SUBSCRIBEs (2xx with any
Expires, failures, 423, timeouts), NOTIFYs with random states, reasons, expiries and faults,
timers, unsubscribe, a lost connection and the UA closing it.  After every step: each Call-ID's
SUBSCRIBEs have strictly increasing CSeqs, never two SUBSCRIBEs in flight, the refresh timer is
armed exactly while ACTIVE or PENDING (Timer N exactly while waiting for a NOTIFY, the retry
timer only while WAITING), every NOTIFY gets exactly one answer, a terminated subscription
answers NOTIFY with 481 and does nothing else, and no timer outlives it."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_subscription import Peer, make

from sipfsm.causes import Cause
from sipfsm.events import SubscriptionTerminated
from sipfsm.fsm.base import Command, Effect
from sipfsm.fsm.subscription import Subscriber, SubscriberState
from sipfsm.sip import Request

S = SubscriberState
REASONS = ["deactivated", "timeout", "probation", "giveup", None, "rejected", "noresource",
           "invariant", "other"]


class SubscriptionMachine(RuleBasedStateMachine):
    sub: Subscriber
    peer: Peer

    @initialize(expires=st.sampled_from([0, 10, 60, 600, 600, 3600]))
    def setup(self, expires: int) -> None:
        self.begin(expires)

    def begin(self, expires: int) -> None:
        self.sub, self.peer = make(expires)
        self.outstanding: Request | None = None
        self.ids = ("", "")  # the last Call-ID and local tag seen, for NOTIFYs that come late
        self.ended_with = -1  # how many events there were when it terminated
        self.apply(self.sub.start)

    # -- applying inputs -----------------------------------------------------------------------

    def apply(self, call: Any, *args: Any, outcome: bool = False) -> list[Effect]:
        if outcome:
            self.outstanding = None
        was_over = self.sub.state is S.TERMINATED
        before = len(self.peer.requests)
        effects = self.peer.give(call, *args)
        self.check_sent(before, was_over)
        if was_over:
            assert all(e == Command("answer", {"status": 481}) for e in effects), effects
        return effects

    def check_sent(self, before: int, was_over: bool) -> None:
        new = self.peer.requests[before:]
        assert len(new) <= 1, "two SUBSCRIBEs in one step"
        for request in new:
            assert not was_over, "a terminated subscription sent a SUBSCRIBE"
            assert self.outstanding is None, "a SUBSCRIBE while another is in flight"
            assert request.cseq is not None
            earlier = [r.cseq.seq for r in self.peer.requests[:-1]
                       if r.call_id == request.call_id and r.cseq is not None]
            assert all(seq < request.cseq.seq for seq in earlier), "CSeq did not increase"
            self.outstanding = request

    def remember_ids(self) -> None:
        sub = self.sub
        if sub.dialog is not None:
            self.ids = (sub.dialog.call_id, sub.dialog.local_tag)
        elif sub.request is not None and sub.request.from_ is not None:
            self.ids = (sub.request.call_id or "", sub.request.from_.tag or "")

    # -- the notifier's answers to our SUBSCRIBE -----------------------------------------------

    def awaited(self) -> bool:
        return self.outstanding is not None

    @precondition(awaited)
    @rule(expires=st.sampled_from([None, 0, 5, 60, 600, 7200]), tag=st.sampled_from(["n1", "n2"]))
    def success(self, expires: int | None, tag: str) -> None:
        assert self.outstanding is not None
        self.peer.requests.append(self.outstanding)  # reply() answers the last request
        response = self.peer.ok(expires, to_tag=tag)
        self.peer.requests.pop()
        self.apply(self.sub.response, response, outcome=True)

    @precondition(awaited)
    @rule(status=st.sampled_from([423, 423, 403, 408, 481, 489, 500, 603]),
          min_expires=st.sampled_from([None, 5, 900, 7200]), rare=st.integers(0, 2))
    def failure(self, status: int, min_expires: int | None, rare: int) -> None:
        if rare and status != 423:
            return  # failures end it: keep them rarer than the rest
        assert self.outstanding is not None
        headers = [f"Min-Expires: {min_expires}"] if min_expires is not None else []
        self.peer.requests.append(self.outstanding)
        response = self.peer.reply(status, *headers)
        self.peer.requests.pop()
        self.apply(self.sub.response, response, outcome=True)

    @precondition(awaited)
    @rule(cause=st.sampled_from([Cause.REQUEST_TIMEOUT, Cause.CONNECTION_ERROR]),
          rare=st.integers(0, 3))
    def no_response(self, cause: Cause, rare: int) -> None:
        if not rare:
            self.apply(self.sub.failed, cause, outcome=True)

    # -- NOTIFY --------------------------------------------------------------------------------

    @rule(state=st.sampled_from(["active", "pending", "weird"]),
          expires=st.sampled_from([None, 0, 30, 600]), early=st.integers(0, 2))
    def notify(self, state: str, expires: int | None, early: int) -> None:
        self.send_notify(state, expires, None, early)

    @rule(reason=st.sampled_from(REASONS), retry_after=st.sampled_from([None, 0, 20]),
          early=st.integers(0, 2))
    def notify_terminated(self, reason: str | None, retry_after: int | None, early: int) -> None:
        value = "terminated" if reason is None else f"terminated;reason={reason}"
        if retry_after is not None:
            value += f";retry-after={retry_after}"
        self.send_notify(value, None, None, early)

    @rule(state=st.sampled_from(["active", "terminated;reason=noresource"]),
          fault=st.sampled_from(["old cseq", "no state", "other event", "other fork"]),
          early=st.integers(0, 2))
    def bad_notify(self, state: str, fault: str, early: int) -> None:
        self.send_notify(state, 600, fault, early)

    def send_notify(self, value: str, expires: int | None, fault: str | None,
                    early: int) -> None:
        sub = self.sub
        if sub.state is S.NOTIFY_WAIT and sub.in_flight and not early:
            return  # mostly, the 2xx comes first: a NOTIFY before it is the exception
        self.remember_ids()
        own = sub.dialog.remote_tag if sub.dialog is not None else "n1"
        kw: dict[str, Any] = {"expires": expires, "tag": own}
        if fault == "old cseq":
            kw["cseq"] = 1
        elif fault == "no state":
            kw["omit"] = "Subscription-State"
        elif fault == "other event":
            kw["event"] = "dialog"
        elif fault == "other fork":
            kw["tag"] = own + "x"
        if sub.dialog is None and sub.request is None:  # late: it has no ids of its own now
            kw["ids"] = self.ids
        request = self.peer.notify(value, **kw)
        answers = len(self.peer.answers)
        live = sub.state not in (S.INITIAL, S.WAITING, S.TERMINATED)
        # Without a dialog yet the NOTIFY makes one: no CSeq or fork to compare with.
        known = sub.dialog is not None and (sub.dialog.remote_cseq or 0) > 1
        expected = {None: {200}, "old cseq": {500} if known else {200},
                    "no state": {400}, "other event": {481},
                    "other fork": {481} if sub.dialog is not None else {200}}[fault]
        effects = self.apply(sub.notify, request)
        assert len(self.peer.answers) == answers + 1, "a NOTIFY without exactly one answer"
        status = self.peer.answers[-1]
        if not live:
            assert effects == [Command("answer", {"status": 481})]
        else:
            assert status in expected, (fault, status)

    # -- time, the user, the connection --------------------------------------------------------

    @rule(seconds=st.sampled_from([0.5, 2, 9, 20, 33, 100, 1000]))
    def advance(self, seconds: float) -> None:
        driver = self.peer
        end = driver.now + seconds
        while True:
            due = [(at, name) for name, at in driver.timers.items() if at <= end]
            if not due:
                break
            at, name = min(due)
            del driver.timers[name]
            driver.now = at
            self.apply(lambda now, name=name: self.sub.timer_fired(name, now))
        driver.now = end

    @rule(rare=st.integers(0, 2))
    def unsubscribe(self, rare: int) -> None:
        if not rare:
            self.apply(self.sub.unsubscribe)

    @rule(rare=st.integers(0, 3))
    def transport_lost(self, rare: int) -> None:
        if not rare:
            self.apply(self.sub.transport_lost)

    @rule(rare=st.integers(0, 5))
    def close(self, rare: int) -> None:
        if not rare:
            self.apply(self.sub.close)

    @precondition(lambda self: self.sub.state is S.TERMINATED)
    @rule(expires=st.sampled_from([0, 10, 60, 600, 600, 3600]))
    def subscribe_again(self, expires: int) -> None:
        """A new subscription (the invariants hold for each one)."""
        self.begin(expires)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def timers_fit_the_state(self) -> None:
        if not hasattr(self, "sub"):
            return
        timers, state, sub = set(self.peer.timers), self.sub.state, self.sub
        assert ("refresh" in timers) == (state in (S.ACTIVE, S.PENDING)), (state, timers)
        assert ("N" in timers) == (state in (S.NOTIFY_WAIT, S.UNSUBSCRIBING)), (state, timers)
        if "retry" in timers:
            assert state is S.WAITING
        if state is S.WAITING:
            assert "retry" in timers or sub.in_flight
        if state is S.TERMINATED:
            assert timers == set()
        assert sub.in_flight == (self.outstanding is not None)

    @invariant()
    def terminated_is_the_last_event(self) -> None:
        if not hasattr(self, "sub"):
            return
        ended = [i for i, e in enumerate(self.peer.events) if isinstance(e, SubscriptionTerminated)]
        assert len(ended) <= 1
        assert (self.sub.state is S.TERMINATED) == bool(ended)
        if ended:
            assert ended[0] == len(self.peer.events) - 1


SubscriptionMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60,
                                                deadline=None)
test_subscription_machine = SubscriptionMachine.TestCase
