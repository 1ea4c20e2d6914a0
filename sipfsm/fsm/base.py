"""What every machine shares: effects, the model base class, and the machine registry.

How a machine is written (the pattern every module in this package follows):

* States are an ``Enum``; the transitions are one literal table of ``transitions`` dicts.
* :func:`define` builds one :class:`transitions.Machine` per machine *type* from that table,
  shared by every instance (``model=None``, ``auto_transitions=False``, ``send_event=True``),
  and records it in :data:`MACHINES` for the diagrams.  Instances are small ``__slots__``
  objects deriving from :class:`Model`; the shared machine is never given them with
  ``add_model`` (nothing to leak), triggers are fired through :meth:`Model._fire`.
* Callbacks named in the table are model methods.  They never do I/O: they append
  :class:`Effect` objects (open a socket, send a frame, start or cancel a timer, emit a bus
  event) that the asyncio adapters in :mod:`sipfsm.aio` carry out once the trigger returns.
  A callback never fires another trigger; follow-ups arrive later as inputs or bus events.
* Time is an argument of every input (``now``, seconds on a monotonic clock); timers are
  effects with absolute deadlines, and firing one is an input like any other.
* Every transition is logged as one structured event (machine, id, source, trigger, dest).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from transitions import EventData, Machine, MachineError

from ..events import BusEvent
from ..sip.message import Request, Response

__all__ = [
    "MACHINES",
    "SYSTEM_RANDOM",
    "CancelTimer",
    "Close",
    "Command",
    "Effect",
    "Emit",
    "MachineSpec",
    "Model",
    "NullLog",
    "Open",
    "Send",
    "StartTimer",
    "TransitionLog",
    "Transmit",
    "define",
]


# -- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """Open WebSocket number ``socket`` to ``url`` (subprotocol ``sip``)."""

    socket: int
    url: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close WebSocket number ``socket``."""

    socket: int
    code: int = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` as one text frame on WebSocket number ``socket``."""

    socket: int
    data: str


@dataclass(frozen=True, slots=True)
class Transmit:
    """Hand SIP ``message`` to the transport (the UA core serialises and sends it)."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Arm (or re-arm) timer ``name`` to fire at monotonic time ``at``."""

    name: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Disarm timer ``name`` if it is armed."""

    name: str


@dataclass(frozen=True, slots=True)
class Command:
    """Ask the machine's adapter to do ``name`` with ``args`` (e.g. build and send a REGISTER):
    work that needs more than the machine knows, described, not done, by the machine."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Emit:
    """Publish ``event`` on the bus."""

    event: BusEvent


Effect = Open | Close | Send | Transmit | StartTimer | CancelTimer | Command | Emit


# -- logging seam ------------------------------------------------------------------------------


class TransitionLog(Protocol):
    """What a model needs from a logger (``sipfsm.logging.Logger`` provides it)."""

    def transition(self, *, machine: str, id: str, source: str, trigger: str, dest: str,
                   **kw: Any) -> None: ...


class NullLog:
    """A :class:`TransitionLog` that drops everything (the default for bare models)."""

    def transition(self, *, machine: str, id: str, source: str, trigger: str, dest: str,
                   **kw: Any) -> None:
        """Drop the transition."""


_NULL_LOG = NullLog()


# -- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """One machine type: its name, states, table and the shared ``transitions`` machine."""

    name: str
    states: type[enum.Enum]
    initial: enum.Enum
    table: Sequence[dict[str, Any]]
    machine: Machine


SYSTEM_RANDOM = random.SystemRandom()
"""The default source of jitter and tie-breaking: the OS's, and stateless (a ``random.Random``
per machine would cost 2.5 KB of Mersenne-Twister state each).  Tests pass seeded generators."""

MACHINES: dict[str, MachineSpec] = {}
"""Every machine type defined so far, by name (filled at import time, read-only after)."""

TransitionObserver = Callable[[str, str, str, str], None]
_observers: list[TransitionObserver] = []


def observe_transitions(observer: TransitionObserver) -> Callable[[], None]:
    """Call ``observer(machine, source, trigger, dest)`` on every transition of every machine
    (the test suite uses this to count which declared transitions were exercised).  Returns a
    function that removes the observer."""
    _observers.append(observer)
    return lambda: _observers.remove(observer)


def define(
    name: str, states: type[enum.Enum], table: Sequence[dict[str, Any]], initial: enum.Enum
) -> MachineSpec:
    """Build the shared machine of one type from its table and register it."""
    machine = Machine(
        model=None,
        states=states,
        transitions=list(table),
        initial=initial,
        auto_transitions=False,
        send_event=True,
        after_state_change="_after_transition",
    )
    spec = MachineSpec(name, states, initial, table, machine)
    MACHINES[name] = spec
    return spec


# -- the model base class ----------------------------------------------------------------------


class Model:
    """Base of every machine instance: current state, pending effects, id and logger."""

    __slots__ = ("effects", "id", "log", "state")

    SPEC: ClassVar[MachineSpec]

    state: enum.Enum
    effects: list[Effect]
    id: str
    log: TransitionLog

    def __init__(self, id: str, log: TransitionLog | None = None) -> None:
        self.state = self.SPEC.initial
        self.effects = []
        self.id = id
        self.log = log if log is not None else _NULL_LOG

    def _fire(self, trigger: str, **kwargs: Any) -> bool:
        """Fire ``trigger``; False if the table has no transition for it in this state (or
        every candidate's conditions failed)."""
        try:
            return bool(self.SPEC.machine.events[trigger].trigger(self, **kwargs))
        except MachineError:
            return False

    def can(self, trigger: str) -> bool:
        """Whether the table lists ``trigger`` from the current state (conditions aside)."""
        event = self.SPEC.machine.events.get(trigger)
        return event is not None and self.state.name in event.transitions

    def take_effects(self) -> list[Effect]:
        """Hand over the pending effects and forget them."""
        effects, self.effects = self.effects, []
        return effects

    def _after_transition(self, event: EventData) -> None:
        transition = event.transition
        assert transition is not None and event.event is not None
        dest = transition.dest if transition.dest is not None else transition.source
        trigger = event.event.name
        self.log.transition(machine=self.SPEC.name, id=self.id, source=transition.source,
                            trigger=trigger, dest=dest)
        for observer in _observers:
            observer(self.SPEC.name, transition.source, trigger, dest)
