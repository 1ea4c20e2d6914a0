"""sipfsm: an asyncio SIP-over-WebSocket user agent built from declarative state machines."""

from __future__ import annotations

from .config import DtmfType, LogConfig, RegisterRefresh, Supported, UAConfig, WsServer
from .errors import ConfigurationError, InvalidStateError, ParseError, SipfsmError

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DtmfType",
    "InvalidStateError",
    "LogConfig",
    "ParseError",
    "RegisterRefresh",
    "SipfsmError",
    "Supported",
    "UAConfig",
    "WsServer",
    "__version__",
]
