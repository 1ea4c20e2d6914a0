"""Hypothesis drives the registration machine: random responses, failures, drops, timers and
user calls; after every step: never two REGISTERs in flight, the refresh and expire timers are
armed exactly while registered and idle, no answer to a final failure is another REGISTER
(no auth loop), and the state is one the table can reach."""

from __future__ import annotations

import random

from harness import Driver
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_registration import CONTACT, INSTANCE, ok, reply

from sipfsm.causes import Cause
from sipfsm.fsm.base import Command
from sipfsm.fsm.registration import Registration, RegistrationState

S = RegistrationState
REACHABLE = {S.UNREGISTERED, S.REGISTERING, S.REGISTERED, S.REFRESHING, S.UNREGISTERING}


class RegistrationMachine(RuleBasedStateMachine):
    reg: Registration
    driver: Driver

    @initialize(expires=st.sampled_from([30, 60, 600, 3600]), seed=st.integers(0, 999))
    def setup(self, expires: int, seed: int) -> None:
        self.reg = Registration(expires=expires, contact=CONTACT, instance=INSTANCE,
                                refresh_delay=lambda e, u: max(e * (0.5 + u / 2) - 1, e / 2),
                                rng=random.Random(seed))
        self.driver = Driver(self.reg, self.reg.timer_fired)
        self.in_flight = 0

    def apply(self, call: object, *args: object, outcome: bool = False) -> int:
        """Apply an input (and any follow-up it asks for); return the REGISTERs it sent
        itself, follow-ups excluded."""
        if outcome:
            self.in_flight = 0
        effects = self.driver(call, *args)  # type: ignore[arg-type]
        direct = 0
        for effect in effects:
            if isinstance(effect, Command) and effect.name == "send_register":
                self.in_flight += 1
                direct += 1
            if isinstance(effect, Command) and effect.name == "follow_up":
                follow = self.reg.register if effect.args["input"] == "register" \
                    else self.reg.unregister
                self.apply(follow)
        assert self.in_flight <= 1, "two REGISTERs in flight"
        return direct

    def outcome_pending(self) -> bool:
        return self.reg.state in (S.REGISTERING, S.REFRESHING, S.UNREGISTERING)

    @rule()
    def register(self) -> None:
        self.apply(self.reg.register)

    @rule(all=st.booleans())
    def unregister(self, all: bool) -> None:
        self.apply(lambda now: self.reg.unregister(now, all=all))

    @precondition(outcome_pending)
    @rule(expires=st.sampled_from([None, 0, 1, 30, 600]), header=st.sampled_from([None, 45]),
          other=st.booleans())
    def success(self, expires: int | None, header: int | None, other: bool) -> None:
        self.apply(self.reg.response, ok(expires, other=other, header=header), outcome=True)

    @precondition(outcome_pending)
    @rule(status=st.sampled_from([401, 403, 404, 407, 408, 423, 480, 500, 503, 603]),
          min_expires=st.sampled_from([None, 10, 7200]))
    def failure(self, status: int, min_expires: int | None) -> None:
        headers = [f"Min-Expires: {min_expires}"] if min_expires is not None else []
        sent = self.apply(self.reg.response, reply(status, *headers), outcome=True)
        if status in (401, 407):
            assert sent == 0, "a final 401/407 must not trigger another REGISTER (auth loop)"

    @precondition(outcome_pending)
    @rule(cause=st.sampled_from([Cause.REQUEST_TIMEOUT, Cause.CONNECTION_ERROR]))
    def no_response(self, cause: Cause) -> None:
        self.apply(self.reg.failed, cause, outcome=True)

    @rule()
    def transport_lost(self) -> None:
        self.apply(self.reg.transport_lost, outcome=True)

    @rule(seconds=st.sampled_from([1, 10, 30, 100, 1000]))
    def advance(self, seconds: float) -> None:
        end = self.driver.now + seconds
        while True:
            due = [(at, name) for name, at in self.driver.timers.items() if at <= end]
            if not due:
                break
            at, name = min(due)
            del self.driver.timers[name]
            self.driver.now = at
            self.apply(self.reg.timer_fired, name)
            self.driver.now = at
        self.driver.now = end

    @invariant()
    def timers_fit_the_state(self) -> None:
        if not hasattr(self, "driver"):
            return
        timers, state = set(self.driver.timers), self.reg.state
        assert state in REACHABLE
        assert ("expire" in timers) == (state in (S.REGISTERED, S.REFRESHING))
        assert ("refresh" in timers) == (state is S.REGISTERED)
        assert self.reg.registered == (state in (S.REGISTERED, S.REFRESHING))
        assert (self.in_flight == 1) == self.outcome_pending()


RegistrationMachine.TestCase.settings = settings(stateful_step_count=50, deadline=None)
test_registration_machine = RegistrationMachine.TestCase
