"""The exceptions sipfsm raises.

Every error a user can meet derives from :class:`SipfsmError`, so ``except sipfsm.SipfsmError``
catches them all.  Remote input that breaks the grammar raises :class:`ParseError`, which carries
the status a UAS should answer with; local API misuse raises :class:`InvalidStateError`.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "InvalidStateError", "ParseError", "SipfsmError"]


class SipfsmError(Exception):
    """Base class of every exception raised by sipfsm."""


class ParseError(SipfsmError, ValueError):
    """A SIP message (or a part of one) does not follow the grammar.

    ``reason`` says what is wrong in words fit for a log line or a reason phrase; ``status`` is
    the final response a UAS should send if the message was a request (400 unless the fault calls
    for another code, e.g. 505 for an unsupported SIP version).  ``header`` names the header at
    fault, when there is one.
    """

    def __init__(self, reason: str, *, status: int = 400, header: str | None = None) -> None:
        super().__init__(reason if header is None else f"{header}: {reason}")
        self.reason = reason
        self.status = status
        self.header = header


class ConfigurationError(SipfsmError, ValueError):
    """A configuration parameter has a wrong type, range or value.

    ``parameter`` is the snake_case name; ``value`` is the offending value (``None`` for secrets,
    which never appear in the message).  ``message`` replaces the standard wording where there is
    no value to show (an unknown or missing parameter).
    """

    def __init__(
        self, parameter: str, value: object, reason: str = "", *, message: str | None = None
    ) -> None:
        if message is None:
            shown = "NOT SHOWN" if value is None else repr(value)
            message = f"invalid value {shown} for parameter {parameter!r}"
            if reason:
                message += f": {reason}"
        super().__init__(message)
        self.parameter = parameter
        self.value = value
        self.reason = reason


class InvalidStateError(SipfsmError, RuntimeError):
    """A method was called in a state where it is not allowed (local API misuse)."""
