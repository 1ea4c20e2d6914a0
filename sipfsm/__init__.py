"""sipfsm: an asyncio SIP-over-WebSocket user agent built from declarative state machines."""

from __future__ import annotations

from .errors import ConfigurationError, InvalidStateError, ParseError, SipfsmError

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "InvalidStateError",
    "ParseError",
    "SipfsmError",
    "__version__",
]
