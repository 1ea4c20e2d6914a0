"""The public facade: :class:`UA`.

A UA owns its configuration, its event bus, its WebSocket transport, its UA core (transactions
and the request gate) and its registration.  ``start()`` connects (with failover, recovery and
keep-alive) and, with ``register=True``, registers on every (re)connect; ``stop()`` unregisters
if registered and closes everything it started.  ``on`` / ``off`` / ``wait_for`` watch the
events by name (``connected``, ``registered``, ``message``…).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
import ssl as ssl_module
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, TextIO

import aiohttp

from .aio.clock import Timers, TimerScope
from .aio.ws import WebSocketRunner
from .bus import EventBus, EventView
from .causes import Cause
from .config import Limits, Supported, UAConfig
from .core import Core, OutgoingRequest
from .errors import ConfigurationError, ParseError
from .events import (
    BusEvent,
    InviteReceived,
    MessageReceived,
    NotifyReceived,
    OutOfDialogReferRequested,
    Registered,
    TransportConnected,
    TransportDisconnected,
)
from .fsm.base import CancelTimer, Command, Emit, StartTimer
from .fsm.dialog import Dialog, DialogState
from .fsm.invite import InviteState
from .fsm.registration import Registration
from .fsm.transaction import InviteServerTransaction, ServerTransaction
from .fsm.transport import Transport, TransportOptions
from .logging import Logger, LoggerFactory
from .outgoing import Identity, RequestFactory, new_call_id, new_tag, normalize_target
from .refer import ReferRequest, check_refer
from .session import Session
from .sip.digest import Challenge, DigestAuthenticator, DigestError
from .sip.message import Request, Response
from .sip.uri import URI
from .subscription import Subscription

__all__ = ["UA"]

AuthenticationFactory = Callable[["UA"], object]


class UA:
    """A SIP user agent over WebSocket.

    ``UA(**params)`` takes every :class:`~sipfsm.UAConfig` parameter (or ``config=``);
    :meth:`from_sipjs` takes SIP.js's camelCase names.  With ``autostart`` (the default) the UA
    starts as soon as it exists inside a running event loop, or on ``async with``.

    Keyword-only extras that are not SIP.js parameters: ``ssl`` (for ``wss://``: an
    :class:`ssl.SSLContext`, or the path of a PEM file of CA certificates, which then are the
    only ones trusted; without it, certificates and host names are verified against the
    system's CAs), ``session`` (an aiohttp session to share between many UAs), ``log_stream``
    (where built-in log lines go; standard error by default), ``t1`` (RFC 3261's T1 in seconds;
    tests shorten it) and ``limits`` (a :class:`~sipfsm.config.Limits`: the largest message,
    frame, header count and line accepted from the server, and what happens to one over them).
    """

    __slots__ = (
        "__weakref__",
        "_authenticator",
        "_credentials_ready",
        "_dialogs",
        "_ended_dialogs",
        "_events",
        "_logs",
        "_reg_call_id",
        "_reg_challenge",
        "_reg_cseq",
        "_reg_serial",
        "_reg_timers",
        "_register_wanted",
        "_runner",
        "_sessions",
        "_started",
        "_sub_routes",
        "_subscriptions",
        "_timer_table",
        "bus",
        "config",
        "core",
        "factory",
        "id",
        "identity",
        "log",
        "registration",
        "transport",
    )

    def __init__(
        self,
        config: UAConfig | None = None,
        *,
        ssl: ssl_module.SSLContext | str | os.PathLike[str] | None = None,
        session: aiohttp.ClientSession | None = None,
        log_stream: TextIO | None = None,
        t1: float = 0.5,
        limits: Limits | None = None,
        **params: Any,
    ) -> None:
        if config is not None and params:
            raise TypeError("give either a UAConfig or parameters, not both")
        self.config = cfg = config if config is not None else UAConfig(**params)
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            ssl = ssl_module.create_default_context(cafile=os.fspath(ssl))  # a CA file
        limits = limits if limits is not None else Limits()
        self.id = secrets.token_hex(4)
        self.bus = EventBus(on_error=self._listener_failed)
        self._events = EventView(self.bus)
        self._logs = LoggerFactory(cfg.log, trace_sip=cfg.trace_sip, stream=log_stream,
                                   secrets=[cfg.password] if cfg.password else [])
        self.log = self._logs.get("ua", self.id)
        # Transitions are logged at debug level; below it the machines get no logger at all.
        debug = cfg.log.level >= 3
        transport_log = self._logs.get("transport", self.id)
        self.transport = Transport(
            [(server.ws_uri, server.weight) for server in cfg.ws_servers],
            TransportOptions(
                max_reconnection=cfg.ws_server_max_reconnection,
                reconnection_timeout=cfg.ws_server_reconnection_timeout,
                recovery_min=cfg.connection_recovery_min_interval,
                recovery_max=cfg.connection_recovery_max_interval,
                keep_alive_interval=cfg.keep_alive_interval,
            ),
            id=f"{self.id}.transport",
            log=transport_log if debug else None,
        )
        self._runner = WebSocketRunner(
            self.transport, self.bus, session=session, ssl=ssl,
            on_trace=self._tracer(transport_log) if cfg.trace_sip else None,
            max_frame_size=limits.max_frame_size, timers=self._timers)
        self.identity = Identity(cfg)
        self.factory = RequestFactory(cfg, self.identity)
        self._authenticator: DigestAuthenticator | None = None
        if cfg.password is not None and cfg.authentication_factory is None:
            self._authenticator = DigestAuthenticator(cfg.authorization_user, cfg.password)
        self.core = Core(cfg, self.identity, self.factory, self.bus, self._runner,
                         self._logs.get("core", self.id), credentials=self._credentials,
                         t1=t1, timers=self._timers, limits=limits)
        self.registration = Registration(
            expires=cfg.register_expires, contact=self.factory.device_uri,
            instance=cfg.instance_id, refresh_delay=cfg.register_refresh_delay,
            id=f"{self.id}.registration",
            log=self._logs.get("registration", self.id) if debug else None)
        self._register_wanted = cfg.register
        self._reg_call_id = new_call_id()
        self._reg_cseq = secrets.randbelow(9999) + 1
        self._reg_serial = 0  # which REGISTER is current (older outcomes are stale)
        self._reg_challenge: Challenge | None = None
        self._timer_table: Timers | None = None  # made on first use, inside the loop
        self._reg_timers: TimerScope | None = None
        self._credentials_ready: asyncio.Task[None] | None = None
        self._started = False
        self.bus.subscribe(BusEvent, self._on_event)  # routed by type: one subscription
        self._sessions: dict[str, Session] = {}
        self._dialogs: dict[tuple[str, str, str], Session] = {}
        self._ended_dialogs: dict[tuple[str, str, str], None] | None = None  # made on first use
        self._subscriptions: dict[str, Subscription] = {}
        # A subscription's NOTIFYs by its dialog id, or (Call-ID, our tag) before it has one.
        self._sub_routes: dict[tuple[str, ...], Subscription] = {}
        core = self.core
        core.router = self._route
        core.cancel_handler = self._on_cancel
        core.ack_handler = self._on_ack
        if cfg.autostart:
            # Without a running loop yet, starting waits for ``async with`` or start().
            with contextlib.suppress(RuntimeError):
                self.start()

    @classmethod
    def from_sipjs(cls, mapping: Mapping[str, object], **kwargs: Any) -> UA:
        """A UA configured with SIP.js 0.10's camelCase parameter names."""
        return cls(UAConfig.from_sipjs(mapping), **kwargs)

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (needs a running event loop).  Starting twice does nothing."""
        if self._started:
            return
        self._runner.start()
        self._started = True
        self.log.log("started", servers=[s.ws_uri for s in self.config.ws_servers])

    async def stop(self) -> None:
        """Unregister (if registered, waiting a little for the answer), close the transport and
        everything it started.  The UA can be started again."""
        if not self._started:
            return
        if self._subscriptions:  # unsubscribed first, while the connection is there
            await asyncio.gather(*(sub._stop() for sub in list(self._subscriptions.values())))
        if self.registration.registered and self.transport.connected:
            done = asyncio.ensure_future(self.wait_for("unregistered", timeout=2))
            self._reg_input(lambda now: self.registration.unregister(now))
            with contextlib.suppress(TimeoutError):
                await done
        for session in list(self._sessions.values()):
            await session._stop()
        self._started = False
        if self._credentials_ready is not None:
            self._credentials_ready.cancel()
        await self._runner.stop()
        self.core.cancel_timers()
        if self._reg_timers is not None:
            self._reg_timers.cancel_all()
        self.log.log("stopped")

    async def __aenter__(self) -> UA:
        self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.stop()

    def is_connected(self) -> bool:
        """Whether the WebSocket to a server is open now."""
        return self.transport.connected

    def is_registered(self) -> bool:
        """Whether our binding at the registrar is alive."""
        return self.registration.registered

    # -- requests ----------------------------------------------------------------------------------

    def normalize_target(self, target: str | URI) -> URI:
        """The SIP URI for ``target`` (``"bob"`` → ``sip:bob@<our domain>``)."""
        return normalize_target(target, self.config.uri)

    def request(self, method: str, target: str | URI, *, body: bytes | str = b"",
                content_type: str | None = None,
                extra_headers: Iterable[tuple[str, str] | str] = ()) -> OutgoingRequest:
        """Send an out-of-dialog request; the returned handle reports ``progress``,
        ``accepted``, ``rejected`` and ``failed``, and ``await handle.result()`` gives the final
        response.  Sent as soon as the transport is connected."""
        return self.core.request(method.upper(), self.normalize_target(target), body=body,
                                 content_type=content_type, extra_headers=extra_headers,
                                 route=self._preloaded_route())

    def message(self, target: str | URI, body: str | bytes, *,
                content_type: str = "text/plain",
                extra_headers: Iterable[tuple[str, str] | str] = ()) -> OutgoingRequest:
        """Send a MESSAGE (RFC 3428)."""
        if not body:
            raise ValueError("a MESSAGE needs a body")
        return self.request("MESSAGE", target, body=body, content_type=content_type,
                            extra_headers=extra_headers)

    def _preloaded_route(self) -> URI | None:
        server = self.transport.server
        for ws_server in self.config.ws_servers:
            if ws_server.ws_uri == server:
                return ws_server.sip_uri
        return None

    # -- registration ------------------------------------------------------------------------------

    def register(self) -> None:
        """Register now, and again on every reconnect (sets ``register``)."""
        self._register_wanted = True
        if self.transport.connected:
            self._reg_input(self.registration.register)

    def unregister(self, *, all: bool = False) -> None:
        """Remove our binding (``all=True``: every binding of our AoR) and stop re-registering."""
        self._register_wanted = False
        if self.transport.connected:
            self._reg_input(lambda now: self.registration.unregister(now, all=all))

    def _timers(self) -> Timers:
        """The UA's clock, which hands each machine its timer scope."""
        if self._timer_table is None:
            self._timer_table = Timers()
        return self._timer_table

    def _credentials(self) -> DigestAuthenticator | None:
        return self._authenticator

    def _reg_clock(self) -> TimerScope:
        if self._reg_timers is None:
            self._reg_timers = self._timers().scope("reg", self._reg_timer_fired)
        return self._reg_timers

    def _reg_timer_fired(self, name: str) -> None:
        self._reg_input(lambda now: self.registration.timer_fired(name, now))

    def _reg_input(self, call: Callable[[float], None]) -> None:
        clock = self._reg_clock()
        call(clock.now())
        for effect in self.registration.take_effects():
            if isinstance(effect, Command) and effect.name == "send_register":
                self._send_register(int(effect.args["expires"]), bool(effect.args["star"]))
            elif isinstance(effect, Command) and effect.name == "follow_up":
                follow = effect.args["input"]
                if follow == "register":
                    self._reg_input(self.registration.register)
                else:
                    self._reg_input(lambda now: self.registration.unregister(now))
            elif isinstance(effect, StartTimer):
                clock.start(effect.name, effect.at)
            elif isinstance(effect, CancelTimer):
                clock.cancel(effect.name)
            elif isinstance(effect, Emit):
                self.bus.publish(effect.event)

    def _send_register(self, expires: int, star: bool) -> None:
        cfg = self.config
        if star:
            contact = "*"
        else:
            contact = (f"<{self.factory.device_uri}>;reg-id=1;"
                       f'+sip.instance="<urn:uuid:{cfg.instance_id}>";expires={expires}')
        aor = self.factory.name_addr(cfg.uri.replace(params={}, headers={}))
        extra = [("Contact", contact), ("Expires", str(expires))]
        if self._reg_challenge is not None and self._authenticator is not None:
            # Answer the registrar's last challenge up front (its nonce, the next nc), as JsSIP
            # does: a refresh then takes one round trip.  A stale or unknown nonce just brings a
            # new 401, answered as usual.
            with contextlib.suppress(DigestError):
                extra.append(("Authorization", str(self._authenticator.authorize(
                    self._reg_challenge, "REGISTER", str(cfg.registrar_server)))))
        request = self.factory.request(
            "REGISTER", cfg.registrar_server, branch=self.core.new_branch(),
            call_id=self._reg_call_id, cseq=self._reg_cseq, to=aor, contact=False,
            route=self._preloaded_route(), extra_headers=extra)
        self._reg_cseq += 1
        outgoing = OutgoingRequest(self.core, request, self._authenticator)
        self._reg_serial += 1
        serial = self._reg_serial
        outgoing.on("accepted", lambda response, cause: self._reg_outcome(
            serial, outgoing, response))
        outgoing.on("failed", lambda response, cause: self._reg_outcome(
            serial, outgoing, response, cause))
        self.core.send(request, owner=outgoing)

    def _reg_outcome(self, serial: int, outgoing: OutgoingRequest, response: Response | None,
                     cause: Cause | None = None) -> None:
        cseq = outgoing.request.cseq
        if cseq is not None:  # digest retries raised it
            self._reg_cseq = max(self._reg_cseq, cseq.seq + 1)
        if serial != self._reg_serial:
            return  # an old REGISTER's late news
        if outgoing.challenge is not None and outgoing.challenge.realm is not None:
            self._reg_challenge = outgoing.challenge  # remembered for the next REGISTER
        if response is not None:
            self._reg_input(lambda now: self.registration.response(response, now))
        else:
            self._reg_input(lambda now: self.registration.failed(
                cause or Cause.CONNECTION_ERROR, now))

    def _on_event(self, event: BusEvent) -> None:
        if isinstance(event, TransportConnected):
            self._on_connected(event)
        elif isinstance(event, TransportDisconnected):
            self._on_disconnected(event)
        elif isinstance(event, Registered):
            self._on_registered(event)

    # -- calls -------------------------------------------------------------------------------------

    def invite(self, target: str | URI, *, extra_headers: Iterable[tuple[str, str]] = (),
               invite_without_sdp: bool = False, anonymous: bool = False,
               session_description_handler_options: Mapping[str, Any] | None = None
               ) -> Session:
        """Call ``target``; the returned :class:`~sipfsm.session.Session` reports
        ``progress``, ``accepted``, ``confirmed``, ``failed``, ``terminated``…  The INVITE goes
        out as soon as the media offer is ready and the transport connected.

        ``invite_without_sdp``: send no offer; the callee offers in its 2xx (or a reliable 1xx)
        and our answer goes in the ACK (or the PRACK).  ``anonymous``: ``From: "Anonymous"
        <sip:anonymous@anonymous.invalid>`` with ``P-Preferred-Identity`` (our AoR, for the
        edge) and ``Privacy: id`` (RFC 3323/3325); the Contact is our temporary GRUU when the
        registrar gave one, else our random ``.invalid`` device contact, which names nobody.
        """
        session = Session(self, caller=True, target=self.normalize_target(target),
                          sdh_options=session_description_handler_options,
                          extra_headers=extra_headers)
        session._without_sdp = invite_without_sdp
        session._anonymous = anonymous
        session._start()
        return session

    def sessions(self) -> list[Session]:
        """The calls in progress."""
        return list(self._sessions.values())

    def resources(self) -> dict[str, int]:
        """What the UA holds right now — calls, dialogs, subscriptions, transactions, armed
        timers and asyncio tasks — for leak checks in long-running programs and load tests:
        once everything has ended, all but the registration's timers are back to zero."""
        tasks = len(self._runner.tasks())
        for session in self._sessions.values():
            tasks += sum(1 for task in session._tasks if not task.done())
        return {
            "sessions": len(self._sessions),
            "dialogs": len(self._dialogs),
            "subscriptions": len(self._subscriptions),
            "transactions": len(self.core.transactions),
            "timers": self._timer_table.armed if self._timer_table is not None else 0,
            "tasks": tasks,
        }

    def subscribe(self, target: str | URI, event: str, expires: int = 3600, *,
                  extra_headers: Iterable[tuple[str, str] | str] = (),
                  body: bytes | str = b"", content_type: str | None = None,
                  accept: str | None = None) -> Subscription:
        """Subscribe to ``event`` (``presence``, ``message-summary``, ``dialog;id=1``…) of
        ``target`` for ``expires`` seconds (0: a one-time fetch), refreshed until
        ``unsubscribe()`` (RFC 6665).  The returned :class:`~sipfsm.subscription.Subscription`
        reports ``accepted``, ``notify``, ``failed`` and ``terminated``.  ``accept`` is the
        Accept header (by default the event package's usual body type); ``body`` and
        ``content_type`` go in the initial SUBSCRIBE.  The SUBSCRIBE goes out as soon as the
        transport is connected."""
        subscription = Subscription(self, self.normalize_target(target), event,
                                    expires=expires, extra_headers=extra_headers, body=body,
                                    content_type=content_type, accept=accept)
        subscription._start()
        return subscription

    def subscriptions(self) -> list[Subscription]:
        """The subscriptions that have not ended."""
        return list(self._subscriptions.values())

    def _dialog_of(self, request: Request) -> Session | None:
        to, from_ = request.to, request.from_
        if to is None or from_ is None or not to.tag or not from_.tag:
            return None
        return self._dialogs.get((request.call_id or "", to.tag, from_.tag))

    _ROUTES: ClassVar[dict[str, str]] = {
        "INVITE": "_on_invite", "BYE": "_in_dialog", "INFO": "_in_dialog",
        "UPDATE": "_in_dialog", "PRACK": "_in_dialog", "REFER": "_on_refer",
        "NOTIFY": "_on_notify", "MESSAGE": "_on_message",
    }
    """Which method of ours takes which request (the core asks :meth:`_route`)."""

    def _route(self, request: Request, transaction: ServerTransaction) -> bool:
        name = self._ROUTES.get(request.method)
        if name is None:
            return False
        getattr(self, name)(request, transaction)
        return True

    def _on_invite(self, request: Request, transaction: ServerTransaction) -> None:
        core = self.core
        if request.to is not None and request.to.tag:
            session = self._dialog_of(request)
            if session is None or session.dialog is None:
                core.respond(transaction, 481)
            else:
                session._on_reinvite(request, transaction)  # a re-INVITE
            return
        if not request.contact:
            core.respond(transaction, 400, "Missing Contact header field")
            return
        if not isinstance(transaction, InviteServerTransaction):
            return
        if self.config.rel100 is Supported.REQUIRED and "100rel" not in request.require \
                and "100rel" not in request.supported:
            # Decision 7 (RFC 3262 §3): we require 100rel and the caller cannot do it.
            core.respond(transaction, 421, headers=[("Require", "100rel")])
            return
        replaced: Session | None = None
        if self.config.replaces is not Supported.UNSUPPORTED:
            refusal, replaced = self._replaced_by(request)
            if refusal is not None:
                core.respond(transaction, refusal)
                return
        session = Session(self, caller=False, invite=request, transaction=transaction)
        session.replaces = replaced
        session._incoming(float(self.config.no_answer_timeout),
                          float(request.expires) if request.expires is not None else None)
        self.bus.publish(InviteReceived(session=session, request=request))

    def _replaced_by(self, request: Request) -> tuple[int | None, Session | None]:
        """RFC 3891 §3 for an INVITE with Replaces: (a refusal status, or the session it
        replaces).  No such dialog, or an early one the peer began → 481; a call already over
        → 603; ``early-only`` against a confirmed call → 486.  No Replaces → (None, None)."""
        try:
            replaces = request.replaces
        except ParseError:
            return 400, None
        if replaces is None:
            return None, None
        key = (replaces.call_id, replaces.to_tag, replaces.from_tag)
        session = self._dialogs.get(key)
        if session is None or session.dialog is None:
            return (603 if key in (self._ended_dialogs or ()) else 481), None
        if session.state in (InviteState.TERMINATING, InviteState.TERMINATED):
            return 603, None
        confirmed = session.dialog.state is DialogState.CONFIRMED
        if confirmed and replaces.early_only:
            return 486, None
        if not confirmed and not session.machine.caller:
            return 481, None  # only the originator of an early dialog may see it replaced
        return None, session

    _ENDED_KEPT = 64
    """How many ended calls' dialog ids are remembered, to answer a late Replaces 603."""

    def _dialog_ended(self, key: tuple[str, str, str]) -> None:
        self._dialogs.pop(key, None)
        ended = self._ended_dialogs
        if ended is None:
            ended = self._ended_dialogs = {}
        ended[key] = None
        if len(ended) > self._ENDED_KEPT:
            del ended[next(iter(ended))]

    def _on_refer(self, request: Request, transaction: ServerTransaction) -> None:
        """A REFER: in a call, the session's; out of dialog, decision 2."""
        if request.to is not None and request.to.tag:
            self._in_dialog(request, transaction)
            return
        if not self.config.allow_out_of_dialog_refers:
            self.core.respond(transaction, 405, headers=[("Allow", ",".join(self.core.allowed))])
            return
        refusal = check_refer(request)
        if refusal is None and not request.contact:
            refusal = (400, "Missing Contact header field")
        if refusal is not None:
            self.core.respond(transaction, refusal[0], refusal[1])
            return
        dialog = Dialog.as_uas(request, new_tag(), confirmed=True)
        refer = ReferRequest(self, request, transaction, dialog)
        if self.bus.has_subscribers(OutOfDialogReferRequested):
            self.bus.publish(OutOfDialogReferRequested(refer=refer))
            return
        self.log.warn("out-of-dialog REFER accepted and followed: nobody listens to "
                      "out_of_dialog_refer_requested, so anyone who can reach this UA can make "
                      "it call anyone", target=str(refer.target))
        refer.accept()

    def _on_notify(self, request: Request, transaction: ServerTransaction) -> None:
        """A NOTIFY: a call's (our REFER's subscription), else a legacy one when
        ``allow_legacy_notifications`` is on and someone listens to ``notify``, else 481."""
        if request.to is not None and request.to.tag:
            subscription = self._subscription_of(request)
            if subscription is not None:
                subscription._on_notify(request, transaction)
                return
            if self._to_session(request, transaction):
                return
        if self.config.allow_legacy_notifications and self.bus.has_subscribers(NotifyReceived):
            self.core.respond(transaction, 200)
            self.bus.publish(NotifyReceived(request=request))
            return
        self.core.respond(transaction, 481, "Subscription does not exist")

    def _subscription_of(self, request: Request) -> Subscription | None:
        """The subscription a NOTIFY belongs to: by its dialog, or by the Call-ID and our tag
        of an initial SUBSCRIBE whose 2xx it overtook (RFC 6665 §4.1.2.4)."""
        to, from_ = request.to, request.from_
        if to is None or not to.tag:
            return None
        call_id, routes = request.call_id or "", self._sub_routes
        remote = from_.tag if from_ is not None and from_.tag else ""
        return routes.get((call_id, to.tag, remote)) or routes.get((call_id, to.tag))

    def _on_message(self, request: Request, transaction: ServerTransaction) -> None:
        """A MESSAGE: inside a call, the session's (200 and its ``message`` event); otherwise
        200 and the UA's ``message`` event, as always."""
        if self._to_session(request, transaction):
            return
        self.core.respond(transaction, 200)
        self.bus.publish(MessageReceived(request=request))

    def _on_cancel(self, cancel: Request, invite: ServerTransaction) -> None:
        for session in list(self._sessions.values()):
            if session._transaction is invite:
                session._on_cancel()
                return
        if not invite.terminated and invite.state.value == "proceeding":
            self.core.respond(invite, 487)

    def _on_ack(self, request: Request) -> None:
        session = self._dialog_of(request)
        if session is not None:
            session._on_ack(request)

    _SESSION_HANDLERS: ClassVar[dict[str, str]] = {
        "BYE": "_on_bye", "INFO": "_on_info", "PRACK": "_on_prack", "REFER": "_on_refer",
        "NOTIFY": "_on_notify", "MESSAGE": "_on_message", "UPDATE": "_on_update",
    }
    """Which method of a :class:`Session` takes which in-dialog request."""

    def _in_dialog(self, request: Request, transaction: ServerTransaction) -> None:
        if not self._to_session(request, transaction):
            self.core.respond(transaction, 481)

    def _to_session(self, request: Request, transaction: ServerTransaction) -> bool:
        """Hand an in-dialog request to the call whose dialog it names, after the dialog's own
        checks (481, 500); False when no call has that dialog."""
        session = self._dialog_of(request)
        if session is None or session.dialog is None:
            return False
        fault = session.dialog.received(request)
        name = self._SESSION_HANDLERS.get(request.method)
        if fault is not None:
            self.core.respond(transaction, fault)
        elif name is None:
            self.core.respond(transaction, 501)
        else:
            getattr(session, name)(request, transaction)
        return True

    def _on_registered(self, event: Registered) -> None:
        self.identity.pub_gruu = event.pub_gruu
        self.identity.temp_gruu = event.temp_gruu

    def _on_connected(self, event: TransportConnected) -> None:
        if not self._register_wanted:
            return
        if self.config.authentication_factory is not None and self._authenticator is None:
            self._credentials_ready = asyncio.ensure_future(self._prepare_credentials())
            return
        self._reg_input(self.registration.register)

    async def _prepare_credentials(self) -> None:
        """Ask ``authentication_factory`` for credentials (it may be sync or async), then
        register."""
        factory = self.config.authentication_factory
        assert factory is not None
        produced = factory(self)
        if inspect.isawaitable(produced):
            produced = await produced
        self._authenticator = self._as_authenticator(produced)
        if self.transport.connected and self._register_wanted:
            self._reg_input(self.registration.register)

    def _as_authenticator(self, produced: object) -> DigestAuthenticator:
        if isinstance(produced, DigestAuthenticator):
            return produced
        if isinstance(produced, tuple) and len(produced) == 2:
            username, password = produced
            self._logs.add_secret(str(password))
            return DigestAuthenticator(str(username), str(password))
        if isinstance(produced, Mapping):
            username = str(produced.get("username", self.config.authorization_user))
            for secret in ("password", "ha1"):
                if produced.get(secret):
                    self._logs.add_secret(str(produced[secret]))
            password, ha1 = produced.get("password"), produced.get("ha1")
            return DigestAuthenticator(username, password=str(password) if password else None,
                                       ha1=str(ha1) if ha1 else None)
        raise ConfigurationError("authentication_factory", None,
                                 "it must return a DigestAuthenticator, (username, password) "
                                 "or a mapping with username and password or ha1")

    def _on_disconnected(self, event: TransportDisconnected) -> None:
        # Said at warn level: a refused certificate or a dead edge must not go unnoticed; our
        # own stop() is no news.
        if self._started:
            self.log.warn("disconnected", server=event.server, code=event.code,
                          reason=event.reason)
        else:
            self.log.log("disconnected", server=event.server, code=event.code,
                         reason=event.reason)
        if not event.given_up or event.code is not None:
            self._reg_input(self.registration.transport_lost)
            # Decision 4: calls not yet up fail; confirmed calls are told (``disconnected``) but
            # kept, since the media may well survive a signalling reconnect.
            for session in list(self._sessions.values()):
                if session.state not in (InviteState.CONFIRMED, InviteState.TERMINATING,
                                         InviteState.REINVITING, InviteState.REINVITED):
                    session._lost()
            # The notifiers reach us only through the connection that just went.
            for subscription in list(self._subscriptions.values()):
                subscription._lost()

    # -- events ------------------------------------------------------------------------------------

    def on(self, name: str, handler: Callable[[Any], object]) -> None:
        """Call ``handler(event)`` every time event ``name`` happens (see :data:`UA_EVENTS`)."""
        self._events.on(name, handler)

    def off(self, name: str, handler: Callable[[Any], object]) -> bool:
        """Stop calling ``handler`` for ``name``."""
        return self._events.off(name, handler)

    async def wait_for(self, name: str, timeout: float | None = None,
                       predicate: Callable[[Any], bool] | None = None) -> Any:
        """Wait for the next event ``name`` and return it (TimeoutError after ``timeout`` s)."""
        return await self._events.wait_for(name, timeout, predicate)

    def send_frame(self, data: str) -> None:
        """Send one raw frame (a whole SIP message) on the WebSocket, outside any transaction.
        Raises :class:`~sipfsm.InvalidStateError` when not connected.  Low level."""
        self._runner.send(data)

    def _listener_failed(self, event: BusEvent, exc: BaseException) -> None:
        self.log.error("listener failed", event=type(event).__name__, error=repr(exc))

    @staticmethod
    def _tracer(log: Logger) -> Callable[[str, str, str], None]:
        def trace(direction: str, data: str, peer: str) -> None:
            log.trace("sent" if direction == "sent" else "received", data, peer=peer)

        return trace

    def __repr__(self) -> str:
        return f"<UA {self.id} {self.config.uri} {self.transport.state.value}>"

