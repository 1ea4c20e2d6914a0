"""Subscriptions (RFC 6665, subscriber side): :class:`Subscription`, the adapter of the
:class:`~sipfsm.fsm.subscription.Subscriber` machine.

The machine decides; this module carries out what it asks for: it writes the SUBSCRIBEs (the
initial one out of dialog, refreshes and ``Expires: 0`` in the dialog), sends them through the
UA core's transactions (answering digest challenges), answers the NOTIFYs the UA routes to it,
runs its timers, and keeps the UA's routing table in step with the machine's dialog: a NOTIFY
is found by its dialog (Call-ID, our tag, the notifier's tag) or, before the dialog exists, by
the Call-ID and our tag of the initial SUBSCRIBE (the NOTIFY that overtakes the 2xx).

What a user sees::

    sub = ua.subscribe("bob", "presence", expires=600)
    sub.on("notify", lambda event: print(event.state, event.body))
    await sub.wait_for("accepted", timeout=10)
    ...
    sub.unsubscribe()
    await sub.wait_for("terminated", timeout=40)

Events, each with its bus event as argument: ``accepted`` (the 2xx to an initial SUBSCRIBE),
``notify`` (every NOTIFY answered 200: ``state``, ``body``, ``request``), ``failed``
(``response``, ``cause``) and ``terminated`` (``reason``, ``cause``), always the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .aio.clock import TimerScope
from .aio.effects import carry_out
from .bus import Listeners
from .causes import Cause
from .core import OutgoingRequest
from .events import (
    BusEvent,
    SubscriptionAccepted,
    SubscriptionFailed,
    SubscriptionNotify,
    SubscriptionTerminated,
)
from .fsm.dialog import Dialog
from .fsm.subscription import Subscriber, SubscriberState, parse_event
from .fsm.transaction import ServerTransaction
from .sip.message import Request, Response
from .sip.uri import URI

if TYPE_CHECKING:
    from .ua import UA

__all__ = ["DEFAULT_ACCEPT", "Subscription"]

DEFAULT_ACCEPT: Mapping[str, str] = MappingProxyType({
    "presence": "application/pidf+xml",
    "presence.winfo": "application/watcherinfo+xml",
    "message-summary": "application/simple-message-summary",
    "dialog": "application/dialog-info+xml",
    "reg": "application/reginfo+xml",
    "conference": "application/conference-info+xml",
    "refer": "message/sipfrag",
})
"""The ``Accept`` of a SUBSCRIBE by event package, when ``accept`` is not given (a package not
listed here gets no Accept: its default body type applies, RFC 6665 §4.1.2)."""

_EVENT_NAMES: dict[type[BusEvent], str] = {
    SubscriptionAccepted: "accepted",
    SubscriptionNotify: "notify",
    SubscriptionFailed: "failed",
    SubscriptionTerminated: "terminated",
}
STOP_WAIT = 2.0
"""Seconds ``UA.stop()`` waits for the final NOTIFY of an unsubscribe before closing."""


class _SubscribeRequest(OutgoingRequest):
    """One SUBSCRIBE of ours: its final outcome goes to the machine (digest retries aside)."""

    def __init__(self, subscription: Subscription, request: Request, initial: bool) -> None:
        super().__init__(subscription.ua.core, request, subscription.ua._credentials())
        self.subscription = subscription
        self.initial = initial

    def _response(self, response: Response) -> None:
        status, subscription = response.status_code, self.subscription
        if status < 200 or self.done:
            return
        if status in (401, 407) and self._retry_with_credentials(response):
            if self.initial and subscription.machine.request is not None:
                subscription.machine.request = self.request  # the retry is the one now
            return
        self.response = response
        self._done.set_result(response)
        subscription._input(lambda now: subscription.machine.response(response, now))

    def _failed(self, status: int, cause: Cause) -> None:
        if self.done:
            return
        super()._failed(status, cause)
        subscription = self.subscription
        subscription._input(lambda now: subscription.machine.failed(cause, now))


class Subscription:
    """One subscription.  Made by :meth:`UA.subscribe`."""

    def __init__(
        self,
        ua: UA,
        target: URI,
        event: str,
        *,
        expires: int = 3600,
        extra_headers: Iterable[tuple[str, str] | str] = (),
        body: bytes | str = b"",
        content_type: str | None = None,
        accept: str | None = None,
    ) -> None:
        if isinstance(expires, bool) or not isinstance(expires, int) or expires < 0:
            raise ValueError(f"expires must be a whole number of seconds ≥ 0, not {expires!r}")
        if body and not content_type:
            raise ValueError("a SUBSCRIBE body needs a content_type")
        package = parse_event(event).package.lower()  # ParseError for a bad Event value
        self.ua = ua
        self.id = secrets.token_hex(6)
        self.target = target
        self.machine = Subscriber(event=event, expires=expires, t1=ua.core.t1, id=self.id)
        self.accept = accept if accept is not None else DEFAULT_ACCEPT.get(package)
        self._extra = list(extra_headers)
        self._body = body
        self._content_type = content_type
        self._listeners = Listeners(_EVENT_NAMES, "subscription", self._listener_failed)
        self._timers: TimerScope = ua._timers().scope(f"sub{self.id}", self._timer_fired)
        self._notify_tx: ServerTransaction | None = None  # the NOTIFY being answered
        self._routes: list[tuple[str, ...]] = []  # our keys in the UA's routing table

    # -- the user's API ----------------------------------------------------------------------------

    @property
    def state(self) -> SubscriberState:
        """Where the subscription is (:class:`~sipfsm.fsm.subscription.SubscriberState`)."""
        return self.machine.state

    @property
    def event(self) -> str:
        """The ``Event`` it subscribes to (``presence``, ``dialog;id=1``…)."""
        return str(self.machine.event)

    @property
    def dialog(self) -> Dialog | None:
        """The subscription's dialog, once a 2xx or a NOTIFY made it."""
        return self.machine.dialog

    @property
    def reason(self) -> str | None:
        """Why it ended (see :class:`~sipfsm.events.SubscriptionTerminated`), once it has."""
        return self.machine.reason

    @property
    def cause(self) -> Cause | None:
        """The failure cause, when it ended by failing."""
        return self.machine.cause

    def on(self, name: str, handler: Callable[[Any], object]) -> None:
        """Call ``handler(event)`` on ``accepted``, ``notify``, ``failed`` or ``terminated``."""
        self._listeners.on(name, handler)

    def off(self, name: str, handler: Callable[[Any], object]) -> bool:
        """Stop calling ``handler`` for ``name``; return whether it was registered."""
        return self._listeners.off(name, handler)

    async def wait_for(self, name: str, timeout: float | None = None) -> Any:
        """Wait for subscription event ``name`` and return it."""
        return await self._listeners.wait_for(name, timeout)

    def unsubscribe(self) -> None:
        """End the subscription: ``Expires: 0`` in its dialog, then the final NOTIFY (or Timer N)
        brings ``terminated``.  Nothing happens when it is already ending or over."""
        self._input(lambda now: self.machine.unsubscribe(now))

    # -- plumbing ----------------------------------------------------------------------------------

    def _start(self) -> None:
        self.ua._subscriptions[self.id] = self
        self._input(lambda now: self.machine.start(now))

    def _input(self, call: Callable[[float], object]) -> None:
        call(self._timers.now())
        carry_out(self, self.machine.take_effects(), self._timers, self._publish)
        self._sync_routes()

    def _publish(self, event: BusEvent) -> None:
        self.ua.bus.publish(event)
        self._listeners.emit(event)
        if isinstance(event, SubscriptionTerminated):
            self._finished()

    def _listener_failed(self, exc: BaseException) -> None:
        self.ua.log.error("subscription listener failed", error=repr(exc))

    def _timer_fired(self, name: str) -> None:
        self._input(lambda now: self.machine.timer_fired(name, now))

    def _sync_routes(self) -> None:
        """Make the UA find our NOTIFYs: by the dialog once there is one, before that by the
        Call-ID and our tag of the initial SUBSCRIBE in flight."""
        machine, wanted = self.machine, list[tuple[str, ...]]()
        if machine.state is not SubscriberState.TERMINATED:
            dialog, request = machine.dialog, machine.request
            if dialog is not None:
                wanted.append(dialog.key)
            elif request is not None and request.from_ is not None and request.from_.tag:
                wanted.append((request.call_id or "", request.from_.tag))
        if wanted == self._routes:
            return
        routes = self.ua._sub_routes
        for key in self._routes:
            if routes.get(key) is self:
                del routes[key]
        for key in wanted:
            routes[key] = self
        self._routes = wanted

    def _finished(self) -> None:
        self._timers.cancel_all()
        self.ua._subscriptions.pop(self.id, None)
        dialog = self.machine.dialog
        if dialog is not None:
            dialog.terminate()

    def _do_send_subscribe(self, expires: int, initial: bool) -> None:
        ua, machine = self.ua, self.machine
        headers: list[tuple[str, str] | str] = [("Event", str(machine.event)),
                                                ("Expires", str(expires))]
        if self.accept:
            headers.append(("Accept", self.accept))
        if initial:
            request = ua.factory.request(
                "SUBSCRIBE", self.target, branch=ua.core.new_branch(),
                extra_headers=[*headers, *self._extra], body=self._body,
                content_type=self._content_type, route=ua._preloaded_route())
            machine.request = request
        else:
            dialog = machine.dialog
            assert dialog is not None, "the machine refreshes only in a dialog"
            headers += [("Contact", f"<{ua.factory.contact_uri}>"),
                        ("Allow", ",".join(ua.core.allowed)), *self._extra,
                        ("User-Agent", ua.config.user_agent_string)]
            request = dialog.request("SUBSCRIBE", via=ua.factory.via(ua.core.new_branch()),
                                     extra_headers=[_pair(h) for h in headers])
        ua.core.send(request, owner=_SubscribeRequest(self, request, initial))

    def _on_notify(self, request: Request, transaction: ServerTransaction) -> None:
        """A NOTIFY the UA routed here: the machine says how to answer it."""
        self._notify_tx = transaction
        try:
            self._input(lambda now: self.machine.notify(request, now))
        finally:
            self._notify_tx = None

    def _do_answer(self, status: int) -> None:
        if self._notify_tx is not None:
            self.ua.core.respond(self._notify_tx, status)

    def _lost(self) -> None:
        self._input(lambda now: self.machine.transport_lost(now))

    async def _stop(self) -> None:
        """The UA is stopping: unsubscribe if we can, wait a little for the final NOTIFY, then
        end it here."""
        if self.machine.state is SubscriberState.TERMINATED:
            return
        if self.ua.transport.connected:
            ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def done(event: Any) -> None:
                if not ended.done():
                    ended.set_result(None)

            self.on("terminated", done)
            self.unsubscribe()
            if not self._over():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended, STOP_WAIT)
            self.off("terminated", done)
        self._input(lambda now: self.machine.close(now))
        self._timers.cancel_all()

    def _over(self) -> bool:
        return self.machine.state is SubscriberState.TERMINATED

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.event} {self.state.value}>"


def _pair(header: tuple[str, str] | str) -> tuple[str, str]:
    """``("Name", "value")`` from a pair or a ``"Name: value"`` line."""
    if isinstance(header, tuple):
        return header
    name, _, value = header.partition(":")
    return name.strip(), value.strip()
