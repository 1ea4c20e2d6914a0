"""A fake clock and effect recorder for driving a sans-I/O machine in tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sipfsm.events import BusEvent
from sipfsm.fsm.base import (
    CancelTimer,
    Close,
    Effect,
    Emit,
    Model,
    Open,
    Send,
    StartTimer,
    Transmit,
)
from sipfsm.sip.message import Request, Response


class Driver:
    """Carries out a model's effects against a fake clock: timers are remembered and fired by
    :meth:`advance`, sockets are numbers, events and transmitted SIP messages are collected."""

    def __init__(self, model: Model, on_timer: Callable[[str, float], None]) -> None:
        self.model = model
        self.on_timer = on_timer
        self.now = 0.0
        self.timers: dict[str, float] = {}
        self.events: list[BusEvent] = []
        self.sent: list[tuple[int, str]] = []
        self.opened: list[Open] = []
        self.closed: list[Close] = []
        self.open_sockets: set[int] = set()
        self.transmitted: list[Request | Response] = []
        self.log: list[Effect] = []

    def run(self) -> list[Effect]:
        effects = self.model.take_effects()
        for effect in effects:
            self.log.append(effect)
            if isinstance(effect, StartTimer):
                assert effect.at >= self.now, effect
                self.timers[effect.name] = effect.at
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.name, None)
            elif isinstance(effect, Emit):
                self.events.append(effect.event)
            elif isinstance(effect, Send):
                self.sent.append((effect.socket, effect.data))
            elif isinstance(effect, Open):
                self.opened.append(effect)
                self.open_sockets.add(effect.socket)
            elif isinstance(effect, Close):
                self.closed.append(effect)
                self.open_sockets.discard(effect.socket)
            elif isinstance(effect, Transmit):
                self.transmitted.append(effect.message)
        return effects

    def __call__(self, call: Callable[..., Any], *args: Any) -> list[Effect]:
        """Apply one input at the current time and carry out its effects."""
        call(*args, self.now)
        return self.run()

    def advance(self, seconds: float) -> None:
        """Move the clock on, firing every timer that falls due, in deadline order."""
        end = self.now + seconds
        while self.timers:
            name, at = min(self.timers.items(), key=lambda item: item[1])
            if at > end:
                break
            del self.timers[name]
            self.now = at
            self.on_timer(name, at)
            self.run()
        self.now = end

    def of(self, kind: type[BusEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
