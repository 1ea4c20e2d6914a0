"""The SIP grammar: URIs, headers, requests and responses, digest authentication.

Pure and synchronous: nothing here does I/O or touches an event loop.  :func:`parse` turns any
input into a :class:`Request`, a :class:`Response`, or a :class:`~sipfsm.ParseError` carrying the
status a UAS should answer with; ``bytes(message)`` serialises.
"""

from __future__ import annotations

from ..errors import ParseError
from .check import Rejection, check_request, check_response
from .headers import (
    ContentType,
    CSeq,
    Event,
    NameAddr,
    RAck,
    Reason,
    Replaces,
    SubscriptionState,
    Via,
    parse_name_addr,
)
from .message import Headers, Message, Request, Response, parse
from .uri import URI, parse_uri

__all__ = [
    "URI",
    "CSeq",
    "ContentType",
    "Event",
    "Headers",
    "Message",
    "NameAddr",
    "ParseError",
    "RAck",
    "Reason",
    "Rejection",
    "Replaces",
    "Request",
    "Response",
    "SubscriptionState",
    "Via",
    "check_request",
    "check_response",
    "parse",
    "parse_name_addr",
    "parse_uri",
]
