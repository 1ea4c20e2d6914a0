"""Hypothesis drives the transport machine with random inputs and checks its invariants after
every step: never two sockets open, every recovery delay within [min, max], a stopped transport
never reconnects, and the armed timers always fit the state."""

from __future__ import annotations

import random
from collections.abc import Sequence

from harness import Driver
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sipfsm.fsm.base import Open, StartTimer
from sipfsm.fsm.transport import PING, PONG, Transport, TransportOptions, TransportState

S = TransportState


class TransportMachine(RuleBasedStateMachine):
    transport: Transport
    driver: Driver
    options: TransportOptions

    @initialize(
        weights=st.lists(st.integers(0, 3), min_size=1, max_size=4),
        seed=st.integers(0, 2**32 - 1),
        recovery=st.tuples(st.integers(1, 5), st.integers(0, 40)),
        max_reconnection=st.integers(1, 4),
        reconnection_timeout=st.integers(1, 5),
        keep_alive=st.sampled_from([0, 15, 30]),
    )
    def setup(self, weights: list[int], seed: int, recovery: tuple[int, int],
              max_reconnection: int, reconnection_timeout: int, keep_alive: int) -> None:
        low, extra = recovery
        self.options = TransportOptions(
            max_reconnection=max_reconnection, reconnection_timeout=reconnection_timeout,
            recovery_min=low, recovery_max=low + extra, keep_alive_interval=keep_alive,
            pong_timeout=10, connect_timeout=5)
        servers = [(f"ws://s{i}.test", w) for i, w in enumerate(weights)]
        self.transport = Transport(servers, self.options, rng=random.Random(seed))
        self.driver = Driver(self.transport, self.transport.timer_fired)
        self.was_stopped = True

    def step(self, call: object, *args: object) -> None:
        before = self.transport.state
        effects = self.driver(call, *args)  # type: ignore[arg-type]
        self.check(before, effects)

    def check(self, before: TransportState, effects: Sequence[object]) -> None:
        state = self.transport.state
        if before is S.STOPPED and state is S.STOPPED:
            assert not any(isinstance(e, Open) for e in effects), "a stopped transport reconnects"
        for effect in effects:
            if isinstance(effect, StartTimer) and effect.name == "retry" and \
                    state is S.RECOVERY_WAIT:
                delay = effect.at - self.driver.now  # (float subtraction: allow rounding)
                assert self.options.recovery_min - 1e-9 <= delay <= self.options.recovery_max + 1e-9

    def _socket_gone(self, socket: int) -> None:
        self.driver.open_sockets.discard(socket)

    @rule()
    def start(self) -> None:
        if self.transport.state is S.STOPPED:
            self.step(self.transport.start)

    @rule()
    def stop(self) -> None:
        self.step(self.transport.stop)

    @rule(stale=st.booleans())
    def opened(self, stale: bool) -> None:
        socket = self.transport.socket - (1 if stale else 0)
        if socket in self.driver.open_sockets:
            self.step(self.transport.socket_opened, socket)

    @rule(stale=st.booleans())
    def failed(self, stale: bool) -> None:
        socket = self.transport.socket - (1 if stale else 0)
        if self.transport.state is S.CONNECTING or stale:
            self._socket_gone(socket)
            self.step(self.transport.socket_failed, socket, "refused")

    @rule(stale=st.booleans(), code=st.sampled_from([1000, 1001, 1006, None]))
    def closed(self, stale: bool, code: int | None) -> None:
        socket = self.transport.socket - (1 if stale else 0)
        self._socket_gone(socket)
        self.step(self.transport.socket_closed, socket, code, "closed")

    @rule(data=st.sampled_from([PING, PONG, "OPTIONS sip:x SIP/2.0\r\n\r\n", "\r\n\r\n\r\n"]))
    def frame(self, data: str) -> None:
        self.step(self.transport.frame_received, self.transport.socket, data)

    @precondition(lambda self: self.transport.state is S.CONNECTED)
    @rule()
    def send(self) -> None:
        self.transport.send("MESSAGE sip:x SIP/2.0\r\n\r\n")
        self.driver.run()

    @rule(seconds=st.sampled_from([0.5, 1, 3, 5, 10, 30, 100]))
    def advance(self, seconds: float) -> None:
        end = self.driver.now + seconds
        while True:
            due = [(at, name) for name, at in self.driver.timers.items() if at <= end]
            if not due:
                break
            at, name = min(due)
            before = self.transport.state
            del self.driver.timers[name]
            self.driver.now = at
            self.transport.timer_fired(name, at)
            self.check(before, self.driver.run())
        self.driver.now = end

    @invariant()
    def never_two_sockets(self) -> None:
        if hasattr(self, "driver"):
            assert len(self.driver.open_sockets) <= 1

    @invariant()
    def timers_fit_the_state(self) -> None:
        if not hasattr(self, "driver"):
            return
        timers, state = set(self.driver.timers), self.transport.state
        if state is S.STOPPED:
            assert timers == set() and self.driver.open_sockets == set()
        elif state is S.CONNECTING:
            assert "connect" in timers and "retry" not in timers
            assert self.driver.open_sockets == {self.transport.socket}
        elif state is S.CONNECTED:
            assert self.driver.open_sockets == {self.transport.socket}
            assert timers <= {"keep_alive", "pong"}
            assert ("keep_alive" in timers) == (self.options.keep_alive_interval > 0)
        else:
            assert timers == {"retry"} and self.driver.open_sockets == set()


TransportMachine.TestCase.settings = settings(stateful_step_count=60,
                                              deadline=None)
test_transport_machine = TransportMachine.TestCase
