"""The SessionDescriptionHandler contract between an INVITE session and its media.

Theory of operation
-------------------
An INVITE session never touches media (PJSIP's rule: "the INVITE session does NOT manage
media").  When it needs an offer or an answer it asks its *session description handler* (SDH)
for one, and when the peer's SDP arrives it hands the body over; the SDH decides on its own
whether a body is an offer or an answer from where it stands in the RFC 3264 exchange:

* ``get_description()`` with a remote offer pending produces the answer, and the negotiation is
  complete; otherwise it produces an offer (initial or re-INVITE) and waits for the answer.
* ``set_description(body)`` with a local offer outstanding takes ``body`` as the answer;
  otherwise ``body`` is an offer, to be answered by the next ``get_description()``.

This mirrors SIP.js 0.10's interface (``getDescription``, ``setDescription``,
``hasDescription``, ``holdModifier``, ``sendDtmf``, ``close``, ``getDirection``) in snake_case.
*Modifiers* are plain functions from SDP text to SDP text, applied in order to every
description the SDH produces (before the SDH commits to it) and to every description it is
given (before it is used); :func:`hold_modifier` is the one the session uses for hold.

An SDP the handler cannot use raises :class:`IncompatibleSDP` (the session answers 488 with
cause ``Incompatible SDP``); any other media failure raises :class:`MediaError` (480, cause
``WebRTC Error``, as SIP.js did).  Both carry the status and cause, so the session need not know
which SDH it talks to.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable

from ..causes import Cause
from ..errors import ConfigurationError, SipfsmError

__all__ = [
    "DIRECTIONS",
    "SDP_CONTENT_TYPE",
    "Direction",
    "IncompatibleSDP",
    "MediaError",
    "Modifier",
    "SessionDescriptionHandler",
    "SessionDescriptionHandlerFactory",
    "and_direction",
    "apply_modifiers",
    "check_options",
    "hold_modifier",
    "is_sdp_content_type",
    "reverse_direction",
]

SDP_CONTENT_TYPE: Final = "application/sdp"

Direction: TypeAlias = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
"""An RFC 3264 media direction, always from the point of view of the side that wrote it."""

DIRECTIONS: Final[tuple[Direction, ...]] = ("inactive", "sendonly", "recvonly", "sendrecv")
"""Ordered so that the index is a bit set: bit 0 = may send, bit 1 = may receive."""

Modifier: TypeAlias = Callable[[str], str]
"""A function that rewrites an SDP body (text in, text out); see :func:`hold_modifier`."""


class MediaError(SipfsmError):
    """The media layer failed (ICE, DTLS, a device, an internal error).

    ``status`` is the final response an INVITE server should send (SIP.js used 480) and
    ``cause`` the session's termination cause.
    """

    status: int = 480
    cause: Cause = Cause.WEBRTC_ERROR

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IncompatibleSDP(MediaError):
    """A session description cannot be used: unparseable, no usable media, no common codec.

    Answer 488 (Not Acceptable Here); the session ends with cause ``Incompatible SDP``.
    """

    status = 488
    cause = Cause.INCOMPATIBLE_SDP


@runtime_checkable
class SessionDescriptionHandler(Protocol):
    """What an INVITE session needs from its media: SDP offers and answers, hold, DTMF.

    Implementations: :class:`~sipfsm.media.SignallingOnlySDH` (valid SDP, no media) and
    :class:`~sipfsm.media.AiortcSDH` (WebRTC audio through aiortc, the default).
    """

    @property
    def direction(self) -> Direction | None:
        """The negotiated local direction (``None`` until an offer/answer exchange completes).

        ``sendonly`` means we send and do not receive: we put the peer on hold, or the peer
        holds us with ``recvonly``.  ``recvonly`` means the peer put us on hold.
        """
        ...

    async def get_description(
        self, options: Mapping[str, Any] | None = None, modifiers: Sequence[Modifier] = ()
    ) -> tuple[str, str]:
        """Produce our offer or answer; return ``(body, content_type)``.

        Raises :class:`IncompatibleSDP` or :class:`MediaError`; after a failure the handler
        stays usable (it rolls back to where it was).
        """
        ...

    async def set_description(
        self,
        body: str,
        options: Mapping[str, Any] | None = None,
        modifiers: Sequence[Modifier] = (),
    ) -> None:
        """Take the peer's offer or answer.  Raises :class:`IncompatibleSDP`/:class:`MediaError`."""
        ...

    def has_description(self, content_type: str) -> bool:
        """Whether a body of ``content_type`` is a session description this handler reads."""
        ...

    def hold_modifier(self, sdp: str) -> str:
        """The modifier a session appends for hold (see :func:`hold_modifier`)."""
        ...

    def send_dtmf(self, tones: str, *, duration: int = 100, inter_tone_gap: int = 70) -> bool:
        """Queue RFC 4733 tones; return ``False`` when the media path cannot carry them.

        ``False`` (telephone-event not negotiated, not sending, no media) tells the session to
        fall back to SIP INFO.  Invalid ``tones`` raise :class:`ValueError`.
        """
        ...

    async def close(self) -> None:
        """Release everything: sockets, tasks, threads, files.  Idempotent."""
        ...


SessionDescriptionHandlerFactory: TypeAlias = Callable[
    [Any, Mapping[str, Any] | None], SessionDescriptionHandler
]
"""``factory(session, options) -> SessionDescriptionHandler``.

``options`` is the UA's ``session_description_handler_factory_options`` (``None`` when unset).
"""


# -- helpers shared by the implementations ---------------------------------------------------


def is_sdp_content_type(content_type: str) -> bool:
    """Whether a Content-Type value is ``application/sdp`` (case and parameters ignored)."""
    return content_type.split(";", 1)[0].strip().lower() == SDP_CONTENT_TYPE


def reverse_direction(direction: Direction) -> Direction:
    """The direction as the other side sees it (``sendonly`` <-> ``recvonly``)."""
    return DIRECTIONS[((DIRECTIONS.index(direction) & 1) << 1)
                      | ((DIRECTIONS.index(direction) >> 1) & 1)]


def and_direction(a: Direction, b: Direction) -> Direction:
    """Only what both allow: ``and_direction("sendrecv", "recvonly") == "recvonly"``."""
    return DIRECTIONS[DIRECTIONS.index(a) & DIRECTIONS.index(b)]


_HELD: Final[dict[str, str]] = {
    "sendrecv": "sendonly",
    "sendonly": "sendonly",
    "recvonly": "inactive",
    "inactive": "inactive",
}
_DIRECTION_ATTRS: Final = frozenset(f"a={d}" for d in DIRECTIONS)


def hold_modifier(sdp: str) -> str:
    """Put every media stream on hold, RFC 3264 §8.4: sendrecv→sendonly, recvonly→inactive.

    ``sendonly`` and ``inactive`` stay as they are.  A media section without a direction
    attribute gets one (the session-level direction, held, or ``a=sendonly`` for the default
    ``sendrecv``), placed before its first ``a=`` line so that RFC 4566's line order holds.
    Rejected streams (port 0) are left alone.  Line endings are normalised to CRLF.
    """
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    out: list[str] = []
    session_direction = "sendrecv"
    in_media = False
    media_rejected = False
    media_has_direction = False
    insert_at: int | None = None  # where a missing media-level direction goes

    def close_section() -> None:
        if in_media and not media_rejected and not media_has_direction:
            at = len(out) if insert_at is None else insert_at
            out.insert(at, "a=" + _HELD[session_direction])

    for line in lines:
        if line.startswith("m="):
            close_section()
            in_media = True
            parts = line[2:].split()
            media_rejected = len(parts) > 1 and parts[1] == "0"
            media_has_direction = False
            insert_at = None
            out.append(line)
            continue
        if line in _DIRECTION_ATTRS:
            direction = line[2:]
            if in_media:
                media_has_direction = True
                out.append(line if media_rejected else "a=" + _HELD[direction])
            else:
                session_direction = direction
                out.append("a=" + _HELD[direction])
            continue
        if in_media and insert_at is None and line.startswith("a="):
            insert_at = len(out)
        out.append(line)
    close_section()
    return "\r\n".join(out) + "\r\n"


def apply_modifiers(sdp: str, modifiers: Sequence[Modifier]) -> str:
    """Run ``modifiers`` in order over ``sdp``; each must return SDP text."""
    for modifier in modifiers:
        sdp = modifier(sdp)
        if not isinstance(sdp, str):
            raise TypeError(f"modifier {modifier!r} returned {type(sdp).__name__}, not str")
    return sdp


def check_options(
    options: Mapping[str, Any] | None, known: Collection[str], owner: str
) -> dict[str, Any]:
    """Validate option names strictly (decision 1): an unknown key raises, with a suggestion.

    Returns a plain dict without the ``None`` values (``None`` means "use the default").
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigurationError("session_description_handler_factory_options", options,
                                 f"{owner} options must be a mapping")
    for key in options:
        if key not in known:
            message = f"unknown {owner} option {key!r}"
            close = difflib.get_close_matches(str(key), list(known), n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
            raise ConfigurationError(str(key), None, message=message)
    return {key: value for key, value in options.items() if value is not None}
