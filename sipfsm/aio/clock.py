"""Named asyncio timers that feed timer inputs back into the machines.

Machines say "start timer X at t" and "cancel timer X" as effects; a :class:`TimerScope` turns
those into ``loop.call_at`` handles on the loop's monotonic clock (``loop.time()``), the same
clock the machines are given as ``now``.  Each machine (or its adapter) gets a scope of its
own, with its own callback; :class:`Timers` only hands the scopes out and tells the time.

A scope keeps its armed handles in a dict made on first use and keyed by the very name strings
of the machines' effects, so an idle machine costs one small object and an armed timer one
handle: with ten thousand UAs in a process, that is what a timer table must weigh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["TimerScope", "Timers"]


class Timers:
    """The clock of one UA, the factory of its machines' timer scopes, and the count of the
    timers they have armed (:attr:`armed`, for leak checks)."""

    __slots__ = ("_loop", "armed")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self.armed = 0

    def now(self) -> float:
        """The loop's monotonic time, in seconds."""
        return self._loop.time()

    def scope(self, prefix: str, fire: Callable[[str], None]) -> TimerScope:
        """A namespace of timers whose expiry calls ``fire(name)``; ``prefix`` names it in
        diagnostics."""
        return TimerScope(self, prefix, fire)


class TimerScope:
    """The timers of one machine: at most one armed timer per name; arming it again
    replaces it."""

    __slots__ = ("_fire", "_handles", "_table", "prefix")

    def __init__(self, table: Timers, prefix: str, fire: Callable[[str], None]) -> None:
        self._table = table
        self.prefix = prefix
        self._fire = fire
        self._handles: dict[str, asyncio.TimerHandle] | None = None

    def now(self) -> float:
        """The loop's monotonic time, in seconds."""
        return self._table._loop.time()

    def start(self, name: str, at: float) -> None:
        """Arm ``name`` to fire at monotonic time ``at``."""
        handles = self._handles
        if handles is None:
            handles = self._handles = {}
        old = handles.get(name)
        if old is not None:
            old.cancel()
        else:
            self._table.armed += 1
        handles[name] = self._table._loop.call_at(at, self._expired, name)

    def cancel(self, name: str) -> None:
        """Disarm ``name`` (nothing happens if it is not armed)."""
        if self._handles:
            handle = self._handles.pop(name, None)
            if handle is not None:
                handle.cancel()
                self._table.armed -= 1

    def cancel_all(self) -> None:
        """Disarm every timer of this scope."""
        handles = self._handles
        if handles:
            for handle in handles.values():
                handle.cancel()
            self._table.armed -= len(handles)
            handles.clear()

    def armed(self) -> list[str]:
        """The names of this scope's armed timers."""
        return list(self._handles) if self._handles else []

    def _expired(self, name: str) -> None:
        assert self._handles is not None
        if self._handles.pop(name, None) is not None:
            self._table.armed -= 1
        self._fire(name)
