"""The REFER notifier machine with a fake clock: every row, and a hypothesis stateful test —
an accepted REFER ends with exactly one terminal NOTIFY (unless a NOTIFY failed), nothing
follows the end, no timer outlives it."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import Driver
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sipfsm.fsm.base import Command
from sipfsm.fsm.refer import DECIDE, EXPIRES, ReferNotifier, ReferState

R = ReferState


def notifier() -> tuple[ReferNotifier, Driver]:
    machine = ReferNotifier("r", expires=EXPIRES)
    driver = Driver(machine, machine.timer_fired)
    driver(lambda now: machine.start(now))
    return machine, driver


def commands(driver: Driver, name: str) -> list[Mapping[str, Any]]:
    return [e.args for e in driver.log if isinstance(e, Command) and e.name == name]


def test_accept_answers_202_notifies_trying_and_arms_the_expiry() -> None:
    machine, driver = notifier()
    assert machine.state is R.PENDING
    driver(lambda now: machine.input("accept", now))
    assert machine.state is R.ACTIVE
    assert commands(driver, "respond") == [{"status": 202}]
    assert commands(driver, "notify") == [
        {"status": 100, "reason": "Trying", "state": f"active;expires={EXPIRES}"}]
    assert driver.timers == {"expires": EXPIRES}  # the decision timer is gone


def test_the_final_status_is_the_one_terminal_notify() -> None:
    machine, driver = notifier()
    driver(lambda now: machine.input("accept", now))
    driver(lambda now: machine.input("final", now, status=486, reason="Busy Here"))
    assert machine.state is R.TERMINATED
    assert commands(driver, "notify")[-1] == {
        "status": 486, "reason": "Busy Here", "state": "terminated;reason=noresource"}
    assert driver.timers == {}
    assert not machine.input("final", 0, status=200)


def test_reject_answers_the_refer_and_notifies_nothing() -> None:
    machine, driver = notifier()
    driver(lambda now: machine.input("reject", now, status=603))
    assert machine.state is R.TERMINATED
    assert commands(driver, "respond") == [{"status": 603}]
    assert commands(driver, "notify") == []
    assert not machine.input("accept", 0)


def test_an_undecided_refer_is_refused_603_after_the_decision_time() -> None:
    machine, driver = notifier()
    driver.advance(DECIDE - 1)
    assert machine.state is R.PENDING
    driver.advance(2)
    assert machine.state is R.TERMINATED
    assert commands(driver, "respond") == [{"status": 603}]
    assert driver.timers == {}


def test_expiry_ends_the_subscription_with_reason_timeout() -> None:
    machine, driver = notifier()
    driver(lambda now: machine.input("accept", now))
    driver.advance(EXPIRES + 1)
    assert machine.state is R.TERMINATED
    assert commands(driver, "notify")[-1]["state"] == "terminated;reason=timeout"


def test_a_failed_notify_ends_it_without_another() -> None:
    machine, driver = notifier()
    driver(lambda now: machine.input("accept", now))
    driver(lambda now: machine.input("notify_failed", now))
    assert machine.state is R.TERMINATED
    assert len(commands(driver, "notify")) == 1
    assert driver.timers == {}


class NotifierMachine(RuleBasedStateMachine):
    machine: ReferNotifier
    driver: Driver

    @initialize()
    def setup(self) -> None:
        self.machine, self.driver = notifier()
        self.failed = False
        self.after_end = 0

    def apply(self, trigger: str, **kwargs: Any) -> None:
        ended = self.machine.state is R.TERMINATED
        before = len(self.driver.log)
        self.driver(lambda now: self.machine.input(trigger, now, **kwargs))
        if ended:
            self.after_end += len(self.driver.log) - before

    @rule(trigger=st.sampled_from(["accept", "reject", "notify_failed"]))
    def decide(self, trigger: str) -> None:
        if trigger == "notify_failed" and self.machine.state is R.ACTIVE:
            self.failed = True
        self.apply(trigger, status=603)

    @rule(status=st.sampled_from([200, 202, 404, 486, 603]))
    def final(self, status: int) -> None:
        self.apply("final", status=status, reason="X")

    @rule(seconds=st.sampled_from([1.0, 33.0, 100.0, 301.0]))
    def advance(self, seconds: float) -> None:
        ended = self.machine.state is R.TERMINATED
        before = len(self.driver.log)
        self.driver.advance(seconds)
        if ended:
            self.after_end += len(self.driver.log) - before

    @invariant()
    def one_terminal_notify(self) -> None:
        if not hasattr(self, "driver"):
            return
        notifies = commands(self.driver, "notify")
        terminal = [n for n in notifies if n["state"].startswith("terminated")]
        accepted = {"status": 202} in commands(self.driver, "respond")
        assert len(terminal) <= 1, "two terminal NOTIFYs"
        if self.machine.state is R.TERMINATED and accepted and not self.failed:
            assert len(terminal) == 1, "an accepted REFER ended without its terminal NOTIFY"
        if terminal:
            assert notifies[-1] is terminal[0], "a NOTIFY after the terminal one"
            assert notifies[0]["status"] == 100
        assert self.after_end == 0, "effects after the end"
        if self.machine.state is R.TERMINATED:
            assert self.driver.timers == {}


NotifierMachine.TestCase.settings = settings(stateful_step_count=20, deadline=None)
test_refer_notifier = NotifierMachine.TestCase
