"""Carrying out a machine's effects for the adapters of calls, subscriptions and REFERs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..events import BusEvent
from ..fsm.base import CancelTimer, Command, Effect, Emit, StartTimer
from .clock import TimerScope

__all__ = ["carry_out"]


def carry_out(adapter: object, effects: Iterable[Effect], timers: TimerScope,
              publish: Callable[[BusEvent], None]) -> None:
    """Run ``effects`` in order: a :class:`Command` ``x`` calls ``adapter._do_x(**args)``,
    timers go to ``timers``, events to ``publish``."""
    for effect in effects:
        if isinstance(effect, Command):
            getattr(adapter, f"_do_{effect.name}")(**effect.args)
        elif isinstance(effect, StartTimer):
            timers.start(effect.name, effect.at)
        elif isinstance(effect, CancelTimer):
            timers.cancel(effect.name)
        elif isinstance(effect, Emit):
            publish(effect.event)
