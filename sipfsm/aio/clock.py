"""Named asyncio timers that feed timer inputs back into a machine.

Machines say "start timer X at t" and "cancel timer X" as effects; :class:`Timers` turns those
into ``loop.call_at`` handles on the loop's monotonic clock (``loop.time()``), the same clock the
machines are given as ``now``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Timers"]


class Timers:
    """At most one armed timer per name; arming a name again replaces it."""

    __slots__ = ("_fire", "_handles", "_loop")

    def __init__(self, fire: Callable[[str], None],
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._fire = fire
        self._loop = loop or asyncio.get_running_loop()
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def now(self) -> float:
        """The loop's monotonic time, in seconds."""
        return self._loop.time()

    def start(self, name: str, at: float) -> None:
        """Arm ``name`` to fire at monotonic time ``at``."""
        self.cancel(name)
        self._handles[name] = self._loop.call_at(at, self._expired, name)

    def cancel(self, name: str) -> None:
        """Disarm ``name`` (nothing happens if it is not armed)."""
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        """Disarm every timer."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def armed(self) -> list[str]:
        """The names of the armed timers."""
        return list(self._handles)

    def _expired(self, name: str) -> None:
        self._handles.pop(name, None)
        self._fire(name)
