"""The declarative state machines: pure, sans-I/O, time as an argument.

Each module holds one machine: its states (an ``Enum``), its table (a literal list of
transitions that :mod:`transitions` runs and the diagram generator draws) and a small model
class whose instances carry one machine's state.  :data:`base.MACHINES` lists them all.
"""

from __future__ import annotations

from .base import MACHINES, CancelTimer, Close, Effect, Emit, MachineSpec, Open, Send, StartTimer

__all__ = ["MACHINES", "CancelTimer", "Close", "Effect", "Emit", "MachineSpec", "Open", "Send",
           "StartTimer"]
