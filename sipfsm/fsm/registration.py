"""The registration machine: one UA's binding at its registrar (RFC 3261 §10, RFC 5626, RFC 5627).

Theory of operation
-------------------
The machine decides *when* to send a REGISTER and *what its outcome means*; building the
request, answering digest challenges (once per challenge, once more for ``stale=true``) and the
client transaction belong to the UA core, which reports back one final outcome per REGISTER:
:meth:`Registration.response` or :meth:`Registration.failed`.  Only one REGISTER is ever in
flight: a ``register()`` while one is pending is a no-op, an ``unregister()`` while one is
pending is remembered and sent when it completes.

*The lifetime granted* is read from our own binding in the 2xx (matched by ``+sip.instance``
and ``reg-id``, then by URI), then from the ``Expires`` header, then is what we asked for
(decision 6).  A 2xx that does not list our binding with a lifetime above zero is a failure.

*Refresh* happens after :meth:`UAConfig.register_refresh_delay` (jittered by default); a
refresh that fails leaves the binding counted until it expires, emits ``registration_failed``,
and tries again halfway to the expiry (at most 32 s later): ``is_registered()`` is never true
past the expiry.  *423 Interval Too Brief* adopts ``Min-Expires`` and retries at once.

*A lost connection* ends the registration on our side: ``unregistered`` (cause ``Connection
Error``) if we were registered, ``registration_failed`` if a REGISTER was in flight.  The UA
registers again when the transport reconnects (``register=True``).

Outputs: :class:`~sipfsm.fsm.base.Command` ``"send_register"`` with ``expires`` and ``star``
(``Contact: *``), bus events, and the ``refresh`` and ``expire`` timers.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Any

from ..causes import Cause, cause_for_status
from ..events import Registered, RegistrationFailed, Unregistered
from ..sip.message import Response
from ..sip.uri import URI
from .base import (
    SYSTEM_RANDOM,
    CancelTimer,
    Command,
    Emit,
    Model,
    StartTimer,
    TransitionLog,
    define,
)

__all__ = ["Registration", "RegistrationState", "granted_expires"]


class RegistrationState(enum.Enum):
    """Where the binding is."""

    UNREGISTERED = "unregistered"
    """No binding of ours is known to exist."""
    REGISTERING = "registering"
    """A REGISTER is in flight and we are not registered."""
    REGISTERED = "registered"
    """The registrar holds our binding; the refresh and expire timers run."""
    REFRESHING = "refreshing"
    """Registered, with a refreshing REGISTER in flight."""
    UNREGISTERING = "unregistering"
    """A REGISTER with ``Expires: 0`` is in flight."""


S = RegistrationState
_IN_FLIGHT = [S.REGISTERING, S.REFRESHING, S.UNREGISTERING]

TABLE: list[dict[str, Any]] = [
    {"trigger": "register", "source": S.UNREGISTERED, "dest": S.REGISTERING, "after": "_send"},
    {"trigger": "register", "source": S.REGISTERED, "dest": S.REFRESHING, "after": "_send"},
    {"trigger": "register", "source": S.UNREGISTERING, "dest": None, "after": "_then_register"},
    {"trigger": "unregister", "source": [S.REGISTERED, S.UNREGISTERED], "dest": S.UNREGISTERING,
     "conditions": "_worth_unregistering", "after": "_send_unregister"},
    {"trigger": "unregister", "source": [S.REGISTERING, S.REFRESHING], "dest": None,
     "after": "_then_unregister"},
    # A 2xx.
    {"trigger": "ok", "source": [S.REGISTERING, S.REFRESHING], "dest": S.REGISTERED,
     "conditions": "_granted", "after": "_registered"},
    {"trigger": "ok", "source": S.REGISTERING, "dest": S.UNREGISTERED, "after": "_not_kept"},
    {"trigger": "ok", "source": S.REFRESHING, "dest": S.REGISTERED, "after": "_refresh_failed"},
    {"trigger": "ok", "source": S.UNREGISTERING, "dest": S.UNREGISTERED, "after": "_unregistered"},
    # 423 with a Min-Expires above what we asked: ask again at once.
    {"trigger": "too_brief", "source": [S.REGISTERING, S.REFRESHING], "dest": None,
     "after": "_send_again"},
    {"trigger": "too_brief", "source": S.UNREGISTERING, "dest": S.UNREGISTERED,
     "after": "_unregistered"},
    # Any other final failure, a timeout, or a transport error on the REGISTER.
    {"trigger": "rejected", "source": S.REGISTERING, "dest": S.UNREGISTERED, "after": "_failed"},
    {"trigger": "rejected", "source": S.REFRESHING, "dest": S.REGISTERED,
     "after": "_refresh_failed"},
    {"trigger": "rejected", "source": S.UNREGISTERING, "dest": S.UNREGISTERED,
     "after": "_unregistered"},
    {"trigger": "transport_lost", "source": [S.REGISTERED, S.REFRESHING, S.UNREGISTERING],
     "dest": S.UNREGISTERED, "after": "_lost"},
    {"trigger": "transport_lost", "source": S.REGISTERING, "dest": S.UNREGISTERED,
     "after": "_failed"},
    {"trigger": "refresh", "source": S.REGISTERED, "dest": S.REFRESHING, "after": "_send"},
    {"trigger": "expire", "source": S.REGISTERED, "dest": S.UNREGISTERED, "after": "_expired"},
    {"trigger": "expire", "source": S.REFRESHING, "dest": S.REGISTERING, "after": "_expired"},
]
"""The registration machine.  ``dest: None`` is an internal transition."""


def granted_expires(response: Response, contact: URI, instance: str | None, reg_id: int,
                    asked: int) -> int:
    """The lifetime the registrar granted us: our binding's ``expires``, then the ``Expires``
    header, then ``asked``; 0 when the 2xx lists bindings but not ours."""
    contacts = response.contact
    ours = None
    if instance is not None:
        wanted = f"<urn:uuid:{instance}>"
        ours = next((c for c in contacts if c.param("+sip.instance") == wanted
                     and c.params.get("reg-id") == str(reg_id)), None)
    if ours is None:
        ours = next((c for c in contacts if c.uri.user == contact.user
                     and c.uri.host.lower() == contact.host.lower()), None)
    if ours is not None and ours.expires is not None:
        return ours.expires
    if contacts and ours is None:
        return 0
    if response.expires is not None:
        return response.expires
    return asked


class Registration(Model):
    """One UA's registration (sans-I/O).  Carry out :meth:`take_effects` after each input."""

    __slots__ = ("_asked", "_expires_at", "_next", "_random", "contact", "expires", "instance",
                 "refresh_delay", "reg_id")

    state: RegistrationState

    def __init__(
        self,
        *,
        expires: int,
        contact: URI,
        instance: str | None,
        refresh_delay: Callable[[int, float], float],
        reg_id: int = 1,
        rng: random.Random | None = None,
        id: str = "registration",
        log: TransitionLog | None = None,
    ) -> None:
        super().__init__(id, log)
        self.expires = expires
        self.contact = contact
        self.instance = instance
        self.reg_id = reg_id
        self.refresh_delay = refresh_delay
        self._random = rng or SYSTEM_RANDOM
        self._asked = expires
        self._next: str | None = None  # "register" or "unregister" once the pending one ends
        self._expires_at = 0.0

    @property
    def registered(self) -> bool:
        """Whether our binding is counted as alive."""
        return self.state in (S.REGISTERED, S.REFRESHING)

    # -- inputs ------------------------------------------------------------------------------------

    def register(self, now: float) -> None:
        """Register (or refresh now).  A no-op while a REGISTER is in flight."""
        self._fire("register", now=now)

    def unregister(self, now: float, *, all: bool = False) -> None:
        """Remove our binding (``all``: every binding of the AoR, ``Contact: *``)."""
        self._fire("unregister", now=now, all=all)

    def response(self, response: Response, now: float) -> None:
        """The final response to our REGISTER (after any digest retry)."""
        status = response.status_code
        if 200 <= status < 300:
            self._fire("ok", now=now, response=response)
        elif status == 423 and (response.min_expires or 0) > self._asked:
            self._fire("too_brief", now=now, response=response)
        else:
            cause = Cause.SIP_FAILURE_CODE if status == 423 else cause_for_status(status)
            self._fire("rejected", now=now, response=response, cause=cause)

    def failed(self, cause: Cause, now: float) -> None:
        """Our REGISTER got no response: ``Request Timeout`` or ``Connection Error``."""
        self._fire("rejected", now=now, response=None, cause=cause)

    def transport_lost(self, now: float) -> None:
        """The WebSocket dropped: our binding is no longer reachable through it."""
        self._fire("transport_lost", now=now, response=None, cause=Cause.CONNECTION_ERROR)

    def timer_fired(self, name: str, now: float) -> None:
        """Timer ``refresh`` or ``expire`` fell due."""
        if name in ("refresh", "expire"):
            self._fire(name, now=now)

    # -- conditions ------------------------------------------------------------------------------

    def _worth_unregistering(self, event: Any) -> bool:
        return self.state is S.REGISTERED or bool(event.kwargs.get("all"))

    def _granted(self, event: Any) -> bool:
        return self._grant(event) > 0

    def _grant(self, event: Any) -> int:
        return granted_expires(event.kwargs["response"], self.contact, self.instance,
                               self.reg_id, self._asked)

    # -- actions ---------------------------------------------------------------------------------

    def _send(self, event: Any) -> None:
        self._asked = self.expires
        self.effects.append(CancelTimer("refresh"))
        self.effects.append(Command("send_register", {"expires": self.expires, "star": False}))

    def _send_again(self, event: Any) -> None:
        minimum = event.kwargs["response"].min_expires
        self.expires = minimum
        self._send(event)

    def _send_unregister(self, event: Any) -> None:
        self._next = None
        self._cancel()
        self.effects.append(Command("send_register",
                                    {"expires": 0, "star": bool(event.kwargs.get("all"))}))

    def _then_register(self, event: Any) -> None:
        self._next = "register"

    def _then_unregister(self, event: Any) -> None:
        self._next = "unregister"

    def _cancel(self) -> None:
        self.effects.append(CancelTimer("refresh"))
        self.effects.append(CancelTimer("expire"))

    def _registered(self, event: Any) -> None:
        now, response = event.kwargs["now"], event.kwargs["response"]
        granted = self._grant(event)
        refresh = event.transition.source == S.REFRESHING.name
        self._expires_at = now + granted
        delay = self.refresh_delay(granted, self._random.random())
        self.effects.append(StartTimer("refresh", now + delay))
        self.effects.append(StartTimer("expire", self._expires_at))
        ours = _our_binding(response, self)
        self.effects.append(Emit(Registered(
            response=response, expires=granted, refresh=refresh,
            pub_gruu=ours[0] if ours else None, temp_gruu=ours[1] if ours else None)))
        self._follow_up(now)

    def _not_kept(self, event: Any) -> None:
        self.effects.append(Emit(RegistrationFailed(response=event.kwargs["response"],
                                                    cause=Cause.SIP_FAILURE_CODE)))
        self._follow_up(event.kwargs["now"])

    def _refresh_failed(self, event: Any) -> None:
        now = event.kwargs["now"]
        cause = event.kwargs.get("cause") or Cause.SIP_FAILURE_CODE
        self.effects.append(Emit(RegistrationFailed(response=event.kwargs.get("response"),
                                                    cause=cause)))
        retry = min(max((self._expires_at - now) / 2, 1.0), 32.0)
        self.effects.append(StartTimer("refresh", now + retry))
        self._follow_up(now)

    def _failed(self, event: Any) -> None:
        self._cancel()
        self.effects.append(Emit(RegistrationFailed(response=event.kwargs.get("response"),
                                                    cause=event.kwargs["cause"])))
        self._next = None

    def _unregistered(self, event: Any) -> None:
        self._cancel()
        response = event.kwargs.get("response")
        cause = event.kwargs.get("cause")
        self.effects.append(Emit(Unregistered(response=response, cause=cause)))
        self._follow_up(event.kwargs["now"])

    def _lost(self, event: Any) -> None:
        self._cancel()
        self._next = None
        self.effects.append(Emit(Unregistered(response=None, cause=Cause.CONNECTION_ERROR)))

    def _expired(self, event: Any) -> None:
        self.effects.append(CancelTimer("refresh"))
        self.effects.append(Emit(Unregistered(response=None, cause=Cause.EXPIRES)))

    def _follow_up(self, now: float) -> None:
        """Send what was asked for while the previous REGISTER was in flight.  Fired after the
        current transition completes, through the queued effects: the machine never fires a
        trigger from inside a callback."""
        follow, self._next = self._next, None
        if follow is not None:
            self.effects.append(Command("follow_up", {"input": follow}))


def _our_binding(response: Response, registration: Registration) -> tuple[URI | None,
                                                                          URI | None] | None:
    from ..sip.uri import parse_uri

    for contact in response.contact:
        if registration.instance is not None and contact.param("+sip.instance") != \
                f"<urn:uuid:{registration.instance}>":
            continue
        pub, temp = contact.param("pub-gruu"), contact.param("temp-gruu")
        try:
            return (parse_uri(pub) if pub else None, parse_uri(temp) if temp else None)
        except ValueError:
            return None
    return None


Registration.SPEC = define("registration", RegistrationState, TABLE, S.UNREGISTERED)
