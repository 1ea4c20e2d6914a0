"""Hypothesis drives the INVITE session machine, as caller and as callee, with random
responses, CANCEL/BYE/ACK/PRACK/provisional responses/timers/losses in any order; after every
step: one terminated event, last, and nothing after it; no timer armed once terminated; a caller
ACKs the 2xx of one dialog only (others get ACK+BYE); a callee sends at most one final
response, no provisional response after it, one unacknowledged reliable provisional at a time
with RSeq going up by one, and no 2xx while a reliable 1xx carrying its answer is
unacknowledged (RFC 3262 §3)."""

from __future__ import annotations

import itertools
from typing import Any

from harness import Driver
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_invite import BYE, reply

from sipfsm.causes import Cause
from sipfsm.events import SessionTerminated
from sipfsm.fsm.base import Command
from sipfsm.fsm.invite import InviteSession, InviteState

S = InviteState


class InviteMachine(RuleBasedStateMachine):
    session: InviteSession
    driver: Driver

    @initialize(caller=st.booleans(), expires=st.sampled_from([None, 5.0]))
    def setup(self, caller: bool, expires: float | None) -> None:
        self.session = InviteSession(caller=caller, id="x", t1=0.5)
        self.driver = Driver(self.session, self.session.timer_fired)
        self.driver(lambda now: self.session.start(now, no_answer=30.0, expires=expires,
                                                   invite_cseq=7))
        self.after_end = 0

    def apply(self, call: Any) -> None:
        ended = self.session.state is S.TERMINATED
        before = len(self.driver.events)
        self.driver(call)
        if ended:
            self.after_end += len(self.driver.events) - before

    @rule(status=st.sampled_from([100, 180, 183, 200, 202, 302, 404, 486, 487, 500, 603]),
          tag=st.sampled_from(["t1", "t2", None]))
    def response(self, status: int, tag: str | None) -> None:
        if self.session.caller:
            self.apply(lambda now: self.session.response(reply(status, tag), now))

    @rule(cause=st.sampled_from([Cause.REQUEST_TIMEOUT, Cause.CONNECTION_ERROR]))
    def no_response(self, cause: Cause) -> None:
        if self.session.caller:
            self.apply(lambda now: self.session.failed(cause, now))

    @rule(trigger=st.sampled_from(["accept", "reject", "cancel", "bye", "ack", "remote_bye",
                                   "remote_cancel", "answer_ready", "answer_failed",
                                   "bye_done", "lost"]))
    def user_or_peer(self, trigger: str) -> None:
        kwargs: dict[str, Any] = {"status": 486, "request": BYE,
                                  "body": ("v=0", "application/sdp")}
        self.apply(lambda now: self.session.input(trigger, now, **kwargs))

    @rule(status=st.sampled_from([180, 183]), reliable=st.booleans(), body=st.booleans())
    def provisional(self, status: int, reliable: bool, body: bool) -> None:
        if not self.session.caller:
            sdp = ("v=0", "application/sdp") if body else None
            self.apply(lambda now: self.session.progress(now, status, reliable=reliable,
                                                         body=sdp))

    @rule(matching=st.booleans(), method=st.sampled_from(["INVITE", "BYE"]))
    def prack(self, matching: bool, method: str) -> None:
        if not self.session.caller:
            rseq = self.session.unacknowledged
            number = rseq if matching and rseq is not None else 99
            self.apply(lambda now: self.session.prack(now, number, 7, method))

    @rule(seconds=st.sampled_from([0.5, 2.0, 5.0, 31.0, 60.0]))
    def advance(self, seconds: float) -> None:
        ended = self.session.state is S.TERMINATED
        before = len(self.driver.events)
        self.driver.advance(seconds)
        if ended:
            self.after_end += len(self.driver.events) - before

    @invariant()
    def one_end_and_nothing_after(self) -> None:
        if not hasattr(self, "driver"):
            return
        ends = [e for e in self.driver.events if isinstance(e, SessionTerminated)]
        terminated = self.session.state is S.TERMINATED
        assert len(ends) == (1 if terminated else 0)
        if terminated:
            assert isinstance(self.driver.events[-1], SessionTerminated) or self.after_end == 0
            assert self.after_end == 0, "events after the end"
            assert self.driver.timers == {}, "a timer outlived the call"

    @invariant()
    def acks_and_finals(self) -> None:
        if not hasattr(self, "driver"):
            return
        commands = [e for e in self.driver.log if isinstance(e, Command)]
        acked = {c.args["response"].to.tag for c in commands if c.name == "send_ack"}
        assert len(acked) <= 1, "ACKed the 2xx of two dialogs"
        finals = [c for c in commands if c.name == "respond" and c.args["status"] >= 200]
        assert len(finals) <= 1, "two final responses to one INVITE"


    @invariant()
    def reliable_provisionals(self) -> None:
        if not hasattr(self, "driver"):
            return
        unacked: tuple[int, bool] | None = None
        rseqs: list[int] = []
        final = False
        for effect in self.driver.log:
            if not isinstance(effect, Command):
                continue
            args = effect.args
            if effect.name == "send_provisional":
                assert not final, "a provisional response after the final one"
                if args["rseq"] is not None:
                    assert unacked is None, "two unacknowledged reliable provisionals"
                    unacked = (args["rseq"], args["body"] is not None)
                    rseqs.append(args["rseq"])
            elif effect.name == "answer_prack":
                assert unacked is not None, "a PRACK answered that acknowledged nothing"
                unacked = None
            elif effect.name == "respond" and args["status"] >= 200:
                final = True
                if 200 <= args["status"] < 300:
                    assert unacked is None or not unacked[1], "2xx before the PRACK"
                unacked = None
        assert all(b == a + 1 for a, b in itertools.pairwise(rseqs)), rseqs


InviteMachine.TestCase.settings = settings(stateful_step_count=40, deadline=None)
test_invite_machine = InviteMachine.TestCase
