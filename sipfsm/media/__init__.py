"""Media for INVITE sessions: the SessionDescriptionHandler contract and two implementations.

* :class:`SessionDescriptionHandler` — what a session asks of its media (see :mod:`.base`);
* :class:`SignallingOnlySDH` — valid SDP offers and answers, no media (load tests, servers);
* :class:`AiortcSDH` — the default: WebRTC audio through aiortc, with RFC 4733 DTMF and
  optional pinning of ICE to given addresses.

``AiortcSDH`` and ``aiortc_factory`` are imported on first use, so that a process that only
needs signalling never loads aiortc, PyAV and OpenSSL bindings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    SDP_CONTENT_TYPE,
    Direction,
    IncompatibleSDP,
    MediaError,
    Modifier,
    SessionDescriptionHandler,
    SessionDescriptionHandlerFactory,
    hold_modifier,
)
from .signalling import SignallingOnlySDH, signalling_only_factory

if TYPE_CHECKING:
    from .aiortc_sdh import AiortcSDH, aiortc_factory

__all__ = [
    "SDP_CONTENT_TYPE",
    "AiortcSDH",
    "Direction",
    "IncompatibleSDP",
    "MediaError",
    "Modifier",
    "SessionDescriptionHandler",
    "SessionDescriptionHandlerFactory",
    "SignallingOnlySDH",
    "aiortc_factory",
    "hold_modifier",
    "signalling_only_factory",
]

_LAZY = {"AiortcSDH", "aiortc_factory"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import aiortc_sdh

        return getattr(aiortc_sdh, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
