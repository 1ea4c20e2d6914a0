"""The REFER notifier machine: the implicit subscription a REFER we accept creates (RFC 3515
§2.4.4, RFC 6665), seen from the side that follows the REFER.

Theory of operation
-------------------
A REFER arrives PENDING: the application (or, with no listener, the UA) decides, within
``DECIDE`` seconds (after which it is refused 603 — a REFER's transaction must not wait
forever).  ``reject`` answers it (603 by default) and that is all.  ``accept`` answers 202 and
at once sends the first NOTIFY, ``SIP/2.0 100 Trying`` with ``Subscription-State:
active;expires=N`` (ACTIVE, decision 10); the subscription's ``expires`` timer runs.  The
outcome of the referred call — its final status, 2xx or not — is reported in one NOTIFY with
``Subscription-State: terminated;reason=noresource`` (TERMINATED).  Should the call still be
undecided when the subscription expires, the last NOTIFY says ``terminated;reason=timeout``.
A NOTIFY that fails (481, 408, a lost connection) ends the subscription without another one.

So an accepted REFER ends with exactly one terminal NOTIFY, unless a NOTIFY failed on the way;
the hypothesis test of this machine checks that after every step.

Every NOTIFY body is a ``message/sipfrag;version=2.0`` status line; the adapter
(:mod:`sipfsm.refer`) writes it in the dialog, with the dialog's CSeq and ``Event:
refer;id=<the REFER's CSeq>``.

Timers: ``decide``, ``expires``.
"""

from __future__ import annotations

import enum
from typing import Any

from .base import CancelTimer, Command, Model, StartTimer, TransitionLog, define

__all__ = ["DECIDE", "EXPIRES", "ReferNotifier", "ReferState"]

DECIDE = 32.0
"""Seconds the application has to accept or reject a REFER (64·T1: the referrer's REFER
transaction gives up then anyway)."""

EXPIRES = 300
"""Seconds the implicit subscription lasts (``Subscription-State: active;expires=…``)."""


class ReferState(enum.Enum):
    """Where the implicit subscription is."""

    PENDING = "pending"
    """The REFER is received; accept or reject has not been decided."""
    ACTIVE = "active"
    """Accepted: 202 sent, ``100 Trying`` notified; the referred call is under way."""
    TERMINATED = "terminated"
    """Rejected, or its final NOTIFY sent, or a NOTIFY failed."""


R = ReferState

TABLE: list[dict[str, Any]] = [
    {"trigger": "accept", "source": R.PENDING, "dest": R.ACTIVE, "after": "_accepted"},
    {"trigger": "reject", "source": R.PENDING, "dest": R.TERMINATED, "after": "_rejected"},
    {"trigger": "undecided", "source": R.PENDING, "dest": R.TERMINATED, "after": "_rejected"},
    {"trigger": "final", "source": R.ACTIVE, "dest": R.TERMINATED, "after": "_final"},
    {"trigger": "expire", "source": R.ACTIVE, "dest": R.TERMINATED, "after": "_expired"},
    {"trigger": "notify_failed", "source": R.ACTIVE, "dest": R.TERMINATED,
     "after": "_notify_failed"},
]
"""The REFER notifier machine."""


class ReferNotifier(Model):
    """One accepted-or-not REFER's subscription (sans-I/O)."""

    __slots__ = ("expires",)

    state: ReferState

    def __init__(self, id: str, *, expires: int = EXPIRES,
                 log: TransitionLog | None = None) -> None:
        super().__init__(id, log)
        self.expires = expires

    def start(self, now: float, decide: float = DECIDE) -> None:
        """The REFER arrived: the decision is due within ``decide`` seconds."""
        self.effects.append(StartTimer("decide", now + decide))

    def input(self, trigger: str, now: float, **kwargs: Any) -> bool:
        """``accept``, ``reject`` (``status``), ``final`` (``status``, ``reason``),
        ``notify_failed``; False when the state does not allow it."""
        return self._fire(trigger, now=now, **kwargs)

    def timer_fired(self, name: str, now: float) -> None:
        """The ``decide`` or the subscription's ``expires`` timer fell due."""
        if name == "expires":
            self._fire("expire", now=now)
        elif name == "decide":
            self._fire("undecided", now=now)

    # -- actions -----------------------------------------------------------------------------------

    def _accepted(self, event: Any) -> None:
        self.effects.append(CancelTimer("decide"))
        self.effects.append(Command("respond", {"status": 202}))
        self.effects.append(Command("notify", {"status": 100, "reason": "Trying",
                                               "state": f"active;expires={self.expires}"}))
        self.effects.append(StartTimer("expires", event.kwargs["now"] + self.expires))

    def _rejected(self, event: Any) -> None:
        self.effects.append(CancelTimer("decide"))
        self.effects.append(Command("respond", {"status": event.kwargs.get("status", 603)}))

    def _final(self, event: Any) -> None:
        self.effects.append(CancelTimer("expires"))
        self.effects.append(Command("notify", {"status": event.kwargs["status"],
                                               "reason": event.kwargs.get("reason", ""),
                                               "state": "terminated;reason=noresource"}))

    def _expired(self, event: Any) -> None:
        self.effects.append(Command("notify", {"status": 100, "reason": "Trying",
                                               "state": "terminated;reason=timeout"}))

    def _notify_failed(self, event: Any) -> None:
        self.effects.append(CancelTimer("expires"))


ReferNotifier.SPEC = define("refer", ReferState, TABLE, R.PENDING)
