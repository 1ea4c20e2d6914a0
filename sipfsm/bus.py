"""The event bus: typed, synchronous, run-to-completion.

:meth:`EventBus.publish` appends to one queue.  If nobody is delivering yet, the caller becomes
the deliverer and drains the queue: each event goes to its handlers in subscription order, and
each handler runs to completion before the next starts.  An event published by a handler waits
in the queue until the current event has reached every handler.  Delivery order is therefore a
pure function of the publish order, which lets property tests replay any sequence exactly.

A handler that raises does not stop delivery: the exception is logged (or passed to the
``on_error`` callback) and the next handler runs — one faulty listener must not take the UA down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from .events import UA_EVENTS, BusEvent

__all__ = ["EventBus", "EventView", "Handler", "Listeners"]

E = TypeVar("E", bound=BusEvent)
Handler = Callable[[Any], object]


class EventBus:
    """Typed publish/subscribe with run-to-completion delivery."""

    __slots__ = ("_at", "_delivering", "_handlers", "_on_error", "_queue")

    def __init__(self, on_error: Callable[[BusEvent, BaseException], None] | None = None) -> None:
        # Tuples, not lists: subscriptions change rarely, and a UA holds a dozen of them.
        self._handlers: dict[type[BusEvent], tuple[Handler, ...]] = {}
        self._queue: list[BusEvent] = []
        self._at = 0  # the next event of the queue to deliver
        self._delivering = False
        self._on_error = on_error

    def subscribe(self, kind: type[E], handler: Callable[[E], object]) -> None:
        """Call ``handler(event)`` for every published event of type ``kind`` (or a subclass)."""
        self._handlers[kind] = (*self._handlers.get(kind, ()), handler)

    def unsubscribe(self, kind: type[E], handler: Callable[[E], object]) -> bool:
        """Remove one subscription; return whether it existed."""
        handlers = self._handlers.get(kind, ())
        if handler not in handlers:
            return False
        at = handlers.index(handler)
        self._handlers[kind] = handlers[:at] + handlers[at + 1:]
        return True

    def has_subscribers(self, kind: type[BusEvent]) -> bool:
        """Whether anything subscribed to ``kind`` itself (a UA's listeners, a ``wait_for``)."""
        return bool(self._handlers.get(kind))

    def publish(self, event: BusEvent) -> None:
        """Queue ``event``; deliver the queue now unless a delivery is already under way."""
        self._queue.append(event)
        if self._delivering:
            return
        self._delivering = True
        try:
            queue = self._queue
            while self._at < len(queue):  # a list and a cursor: a deque costs 600 B, empty
                self._at += 1
                self._deliver(queue[self._at - 1])
            queue.clear()
            self._at = 0
        finally:
            self._delivering = False

    def _deliver(self, event: BusEvent) -> None:
        for kind in type(event).__mro__:
            for handler in self._handlers.get(kind, ()):
                try:
                    handler(event)
                except Exception as exc:
                    if self._on_error is not None:
                        self._on_error(event, exc)
            if kind is BusEvent:
                break

    def pending(self) -> int:
        """How many events wait for delivery (non-zero only inside a handler)."""
        return len(self._queue) - self._at


class EventView:
    """``on`` / ``off`` / ``wait_for`` by user-facing name, over a bus (the UA's public view).

    Handlers given to :meth:`on` receive the event object; names come from
    :data:`sipfsm.events.UA_EVENTS` (``"connected"``, ``"disconnected"``…).
    """

    __slots__ = ("_bus", "_names")

    def __init__(self, bus: EventBus, names: dict[str, type[BusEvent]] | None = None) -> None:
        self._bus = bus
        self._names = UA_EVENTS if names is None else dict(names)  # shared, never written

    def _kind(self, name: str) -> type[BusEvent]:
        try:
            return self._names[name]
        except KeyError:
            known = ", ".join(sorted(self._names))
            raise ValueError(f"unknown event {name!r}; known events: {known}") from None

    def on(self, name: str, handler: Handler) -> None:
        """Call ``handler(event)`` each time event ``name`` happens."""
        kind = self._kind(name)
        self._bus.subscribe(kind, handler)

    def off(self, name: str, handler: Handler) -> bool:
        """Stop calling ``handler`` for ``name``; return whether it was subscribed."""
        return self._bus.unsubscribe(self._kind(name), handler)

    async def wait_for(
        self, name: str, timeout: float | None = None,
        predicate: Callable[[Any], bool] | None = None,
    ) -> Any:
        """Wait for the next event ``name`` (optionally one that satisfies ``predicate``) and
        return it; raise :class:`TimeoutError` after ``timeout`` seconds."""
        kind = self._kind(name)
        future: asyncio.Future[BusEvent] = asyncio.get_running_loop().create_future()

        def handler(event: BusEvent) -> None:
            if not future.done() and (predicate is None or predicate(event)):
                future.set_result(event)

        self._bus.subscribe(kind, handler)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._bus.unsubscribe(kind, handler)


class Listeners:
    """One object's listeners by event name — a call's, a subscription's — with ``on`` /
    ``off`` / ``wait_for`` for the user and :meth:`emit` for the object.

    ``names`` maps the object's event types to their names; a listener's exception is passed
    to ``on_error`` and the next listener runs.
    """

    __slots__ = ("_handlers", "_kind", "_names", "_on_error")

    def __init__(self, names: dict[type[BusEvent], str], kind: str,
                 on_error: Callable[[BaseException], None]) -> None:
        self._names = names  # shared, never written
        self._kind = kind
        self._on_error = on_error
        self._handlers: dict[str, list[Handler]] = {}

    def on(self, name: str, handler: Handler) -> None:
        """Call ``handler(event)`` each time event ``name`` happens."""
        if name not in self._names.values():
            raise ValueError(f"unknown {self._kind} event {name!r}")
        self._handlers.setdefault(name, []).append(handler)

    def off(self, name: str, handler: Handler) -> bool:
        """Stop calling ``handler`` for ``name``; return whether it was registered."""
        handlers = self._handlers.get(name, [])
        if handler not in handlers:
            return False
        handlers.remove(handler)
        return True

    def listened(self, name: str) -> bool:
        """Whether anything listens to ``name``."""
        return bool(self._handlers.get(name))

    def emit(self, event: BusEvent) -> None:
        """Hand ``event`` to the listeners of its name (none if its type has no name)."""
        for handler in list(self._handlers.get(self._names.get(type(event), ""), ())):
            try:
                handler(event)
            except Exception as exc:  # a listener's bug is reported, not raised
                self._on_error(exc)

    async def wait_for(self, name: str, timeout: float | None = None) -> Any:
        """Wait for the next event ``name`` and return it; :class:`TimeoutError` after
        ``timeout`` seconds."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(event: Any) -> None:
            if not future.done():
                future.set_result(event)

        self.on(name, done)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self.off(name, done)
