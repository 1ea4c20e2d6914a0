"""Named asyncio timers that feed timer inputs back into the machines.

Machines say "start timer X at t" and "cancel timer X" as effects; :class:`Timers` turns those
into ``loop.call_at`` handles on the loop's monotonic clock (``loop.time()``), the same clock the
machines are given as ``now``.  One UA owns one :class:`Timers`; each of its machines (or their
adapters) gets a :class:`TimerScope`, a namespace in it with its own callback, so that ten
thousand UAs in a process cost one timer table each, not one per machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["TimerScope", "Timers"]


class Timers:
    """At most one armed timer per key; arming a key again replaces it."""

    __slots__ = ("_handles", "_loop", "_names", "_scopes")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._scopes: dict[str, Callable[[str], None]] = {}
        self._names: dict[str, set[str]] = {}  # scope prefix → its armed keys

    def now(self) -> float:
        """The loop's monotonic time, in seconds."""
        return self._loop.time()

    def scope(self, prefix: str, fire: Callable[[str], None]) -> TimerScope:
        """A namespace of timers whose expiry calls ``fire(name)``."""
        self._scopes[prefix] = fire
        return TimerScope(self, prefix)

    def start(self, key: str, at: float) -> None:
        """Arm ``key`` to fire at monotonic time ``at``."""
        self.cancel(key)
        self._handles[key] = self._loop.call_at(at, self._expired, key)
        self._names.setdefault(key.partition(":")[0], set()).add(key)

    def cancel(self, key: str) -> None:
        """Disarm ``key`` (nothing happens if it is not armed)."""
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()
            self._forget(key)

    def _forget(self, key: str) -> None:
        scope = key.partition(":")[0]
        names = self._names.get(scope)
        if names is not None:
            names.discard(key)
            if not names:
                del self._names[scope]

    def cancel_all(self, prefix: str = "") -> None:
        """Disarm every timer (of the scope ``prefix``, given as ``"name:"``; all if empty)."""
        if not prefix:
            keys = list(self._handles)
        else:
            keys = [k for k in self._names.get(prefix.rstrip(":"), ()) if k.startswith(prefix)]
        for key in keys:
            self.cancel(key)

    def armed(self, prefix: str = "") -> list[str]:
        """The keys of the armed timers (of the scope ``prefix``; all if empty)."""
        if not prefix:
            return list(self._handles)
        return [k for k in self._names.get(prefix.rstrip(":"), ()) if k.startswith(prefix)]

    def _expired(self, key: str) -> None:
        self._handles.pop(key, None)
        self._forget(key)
        prefix, _, name = key.partition(":")
        self._scopes[prefix](name)


class TimerScope:
    """The timers of one machine, named without its prefix."""

    __slots__ = ("_prefix", "_timers")

    def __init__(self, timers: Timers, prefix: str) -> None:
        self._timers = timers
        self._prefix = prefix + ":"

    def now(self) -> float:
        """The loop's monotonic time, in seconds."""
        return self._timers.now()

    def start(self, name: str, at: float) -> None:
        """Arm ``name`` to fire at ``at``."""
        self._timers.start(self._prefix + name, at)

    def cancel(self, name: str) -> None:
        """Disarm ``name``."""
        self._timers.cancel(self._prefix + name)

    def cancel_all(self) -> None:
        """Disarm every timer of this scope."""
        self._timers.cancel_all(self._prefix)

    def armed(self) -> list[str]:
        """The names of this scope's armed timers."""
        cut = len(self._prefix)
        return [key[cut:] for key in self._timers.armed(self._prefix)]
