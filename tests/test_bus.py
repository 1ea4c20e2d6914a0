"""The event bus: typed, ordered, run-to-completion; and the on/off/wait_for view."""

from __future__ import annotations

import asyncio

import pytest

from sipfsm.bus import EventBus, EventView
from sipfsm.events import (
    BusEvent,
    KeepAliveTimeout,
    TransportConnected,
    TransportConnecting,
    TransportStopped,
)


def test_delivery_is_typed_ordered_and_run_to_completion() -> None:
    bus = EventBus()
    log: list[str] = []

    def first(event: TransportConnecting) -> None:
        log.append(f"first {event.attempt}")
        if event.attempt == 1:
            bus.publish(TransportConnecting(server="x", attempt=2))  # queued, not nested
            log.append("first published")

    bus.subscribe(TransportConnecting, first)
    bus.subscribe(TransportConnecting, lambda e: log.append(f"second {e.attempt}"))
    bus.subscribe(TransportConnected, lambda e: log.append("connected"))
    bus.subscribe(BusEvent, lambda e: log.append(f"any {type(e).__name__}"))
    bus.publish(TransportConnecting(server="x", attempt=1))
    assert log == ["first 1", "first published", "second 1", "any TransportConnecting",
                   "first 2", "second 2", "any TransportConnecting"]
    assert bus.pending() == 0


def test_a_failing_handler_does_not_stop_delivery() -> None:
    errors: list[tuple[BusEvent, BaseException]] = []
    bus = EventBus(on_error=lambda event, exc: errors.append((event, exc)))
    seen: list[BusEvent] = []

    def broken(event: BusEvent) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(TransportStopped, broken)
    bus.subscribe(TransportStopped, seen.append)
    event = TransportStopped()
    bus.publish(event)
    assert seen == [event]
    assert errors[0][0] is event and str(errors[0][1]) == "listener bug"
    assert bus.unsubscribe(TransportStopped, broken) and not bus.unsubscribe(TransportStopped,
                                                                            broken)


def test_events_are_frozen_and_keyword_only() -> None:
    event = KeepAliveTimeout(server="ws://x")
    with pytest.raises(AttributeError):
        event.server = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        KeepAliveTimeout("ws://x")  # type: ignore[call-arg]


async def test_view_by_name() -> None:
    bus = EventBus()
    view = EventView(bus)
    seen: list[BusEvent] = []
    view.on("connected", seen.append)
    bus.publish(TransportConnected(server="a"))
    assert view.off("connected", seen.append)
    bus.publish(TransportConnected(server="b"))
    assert [e.server for e in seen] == ["a"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown event 'conected'"):
        view.on("conected", seen.append)

    waiter = asyncio.ensure_future(view.wait_for(
        "connecting", timeout=1, predicate=lambda e: e.attempt == 2))
    await asyncio.sleep(0)
    bus.publish(TransportConnecting(server="a", attempt=1))
    bus.publish(TransportConnecting(server="a", attempt=2))
    assert (await waiter).attempt == 2
    with pytest.raises(TimeoutError):
        await view.wait_for("connected", timeout=0.01)
    assert bus._handlers[TransportConnected] == ()  # the waiters cleaned up after themselves
