"""A session description handler that negotiates SDP and carries no media.

For load tests and servers (a registrar that answers calls, the benchmark's UAS): it writes
valid RFC 4566 offers and RFC 3264 answers for one audio stream (PCMU, PCMA and
telephone-event by default) but opens no socket and sends nothing.

Answering an offer (RFC 3264 §6):

* the answer has exactly as many ``m=`` lines as the offer, in the same order;
* the first audio stream with an RTP/AVP(F) profile and a codec in common is accepted: the
  common codecs keep the offer's order and payload types, telephone-event is kept at the clock
  rates of the accepted codecs, and the direction is the offer's reversed (``sendonly`` →
  ``recvonly``), limited by our own;
* every other stream is rejected with port 0, its formats listed as offered;
* no acceptable audio stream → :class:`~sipfsm.media.IncompatibleSDP` (the session answers 488).

The origin's session version (``o=`` third field) goes up by one whenever a description we write
differs from the previous one, and stays put when it does not (RFC 3264 §8).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ..errors import ConfigurationError, InvalidStateError
from .base import (
    SDP_CONTENT_TYPE,
    Direction,
    IncompatibleSDP,
    Modifier,
    and_direction,
    apply_modifiers,
    check_options,
    hold_modifier,
    is_sdp_content_type,
    reverse_direction,
)
from .sdp import TELEPHONE_EVENT, Codec, MediaSection, SessionDescription

__all__ = ["SignallingOnlySDH", "signalling_only_factory"]

# The formats we can advertise, by name: (payload type, clock rate, channels).
_FORMATS: Final[dict[str, tuple[int, int, int]]] = {
    "pcmu": (0, 8000, 1),
    "pcma": (8, 8000, 1),
    "g722": (9, 8000, 1),
    "opus": (111, 48000, 2),
}
_SPELLING: Final = {"pcmu": "PCMU", "pcma": "PCMA", "g722": "G722", "opus": "opus"}
_AVP_PROFILES: Final = frozenset({"RTP/AVP", "RTP/AVPF"})
_TE_PT: Final[dict[int, int]] = {8000: 101, 48000: 110}  # our telephone-event PT per clock rate

DirectionCallback = Callable[[Direction, Direction], object]


class SignallingOnlySDH:
    """SDP offer/answer without media.  Options (all optional):

    ``address``
        The address written in ``o=`` and ``c=`` (default ``127.0.0.1``; IPv6 works).
    ``port``
        The audio port advertised (default 9, the discard port: nothing listens).
    ``codecs``
        Audio codec names in order of preference, from PCMU, PCMA, G722, opus
        (default ``("PCMU", "PCMA")``).
    ``telephone_event``
        Offer and accept RFC 4733 telephone-event (default ``True``).
    ``ptime``
        Packetisation time in ms written as ``a=ptime`` (default 20).
    ``direction``
        What we are willing to do at most (default ``sendrecv``); hold comes on top of it.
    ``on_direction``
        ``callback(local_direction, remote_direction)`` when a negotiation changes either (an
        exception it raises is logged, never passed on: the negotiation has happened).
    ``logger``
        An object with ``debug(event, **fields)`` and ``warn(event, **fields)``, e.g. a
        :class:`sipfsm.logging.Logger`.
    """

    OPTIONS: Final = frozenset({"address", "port", "codecs", "telephone_event", "ptime",
                                "direction", "on_direction", "logger"})

    hold_modifier = staticmethod(hold_modifier)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        opts = check_options(options, self.OPTIONS, "signalling-only SDH")
        self._address: str = _check_str(opts, "address", "127.0.0.1")
        self._port: int = _check_int(opts, "port", 9, 1, 65535)
        self._ptime: int = _check_int(opts, "ptime", 20, 1, 1000)
        self._telephone_event = bool(opts.get("telephone_event", True))
        names = opts.get("codecs", ("PCMU", "PCMA"))
        if isinstance(names, str) or not names or any(
                not isinstance(n, str) or n.lower() not in _FORMATS for n in names):
            raise ConfigurationError("codecs", names, "a non-empty list from PCMU, PCMA, G722, "
                                                      "opus")
        self._codecs = [Codec(_FORMATS[n.lower()][0], _SPELLING[n.lower()],
                              _FORMATS[n.lower()][1], _FORMATS[n.lower()][2])
                        for n in dict.fromkeys(n.lower() for n in names)]
        base = opts.get("direction", "sendrecv")
        if base not in ("sendrecv", "sendonly", "recvonly", "inactive"):
            raise ConfigurationError("direction", base, "one of sendrecv, sendonly, recvonly, "
                                                        "inactive")
        self._base_direction: Direction = base
        self._on_direction: DirectionCallback | None = opts.get("on_direction")
        if self._on_direction is not None and not callable(self._on_direction):
            raise ConfigurationError("on_direction", self._on_direction, "a callable")
        self._log: Any = opts.get("logger")
        self._session_id = str(secrets.randbelow(2**62) + 1)
        self._version = secrets.randbelow(2**31)
        self._last_body: str | None = None  # what we last wrote, without the o= line
        self._local_offer: SessionDescription | None = None  # sent, awaiting the answer
        self._remote_offer: SessionDescription | None = None  # received, awaiting our answer
        self._local: str | None = None
        self._remote: str | None = None
        self._direction: Direction | None = None
        self._remote_direction: Direction | None = None
        self._closed = False

    # -- the SessionDescriptionHandler interface ---------------------------------------------

    @property
    def direction(self) -> Direction | None:
        """The negotiated local direction (``None`` before the first complete exchange)."""
        return self._direction

    @property
    def remote_direction(self) -> Direction | None:
        """The direction the peer wrote for the audio stream in its last description."""
        return self._remote_direction

    @property
    def local_description(self) -> str | None:
        """The last SDP we produced."""
        return self._local

    @property
    def remote_description(self) -> str | None:
        """The last SDP we were given."""
        return self._remote

    async def get_description(
        self, options: Mapping[str, Any] | None = None, modifiers: Sequence[Modifier] = ()
    ) -> tuple[str, str]:
        """Our answer if an offer is pending, else a new offer (initial or re-INVITE)."""
        self._check_open()
        if self._remote_offer is not None:
            description = self._answer(self._remote_offer)
        else:
            description = self._offer()
        body = self._stamp(apply_modifiers(str(description), modifiers))
        parsed = SessionDescription.parse(body)
        if self._remote_offer is not None:
            offer = self._remote_offer
            index = next((i for i, m in enumerate(parsed.media)
                          if m.kind == "audio" and not m.rejected), None)
            if index is None or index >= len(offer.media):  # a modifier broke the answer
                raise IncompatibleSDP("the answer has no accepted audio stream")
            self._remote_offer = None
            self._negotiated(parsed.direction_of(parsed.media[index]),
                             offer.direction_of(offer.media[index]))
        else:
            self._local_offer = parsed
        self._local = body
        return body, SDP_CONTENT_TYPE

    async def set_description(
        self,
        body: str,
        options: Mapping[str, Any] | None = None,
        modifiers: Sequence[Modifier] = (),
    ) -> None:
        """The peer's answer if we have an offer out, else the peer's offer."""
        self._check_open()
        remote = SessionDescription.parse(apply_modifiers(body, modifiers))
        if self._local_offer is not None:
            self._take_answer(self._local_offer, remote)
            self._local_offer = None
        else:
            self._answer(remote)  # raises IncompatibleSDP now, not when we answer
            self._remote_offer = remote
        self._remote = str(remote)

    def has_description(self, content_type: str) -> bool:
        """``application/sdp`` only."""
        return is_sdp_content_type(content_type)

    def send_dtmf(self, tones: str, *, duration: int = 100, inter_tone_gap: int = 70) -> bool:
        """No media, so no RFC 4733 events: always ``False`` (the session falls back to INFO)."""
        return False

    async def close(self) -> None:
        """Forget the negotiation; later calls raise :class:`~sipfsm.InvalidStateError`."""
        self._closed = True
        self._local_offer = self._remote_offer = None

    # -- offer/answer -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidStateError("the session description handler is closed")

    def _session_lines(self) -> list[str]:
        family = "IP6" if ":" in self._address else "IP4"
        return [
            "v=0",
            f"o=- {self._session_id} 0 IN {family} {self._address}",  # version: see _stamp
            "s=-",
            f"c=IN {family} {self._address}",
            "t=0 0",
        ]

    def _offer(self) -> SessionDescription:
        codecs = list(self._codecs)
        if self._telephone_event:
            for rate in dict.fromkeys(c.rate for c in self._codecs):
                codecs.append(Codec(_TE_PT[rate], TELEPHONE_EVENT, rate, 1, "0-16"))
        section = MediaSection("audio", self._port, "RTP/AVP", [])
        section.add_codecs(codecs)
        section.add_attribute(f"a=ptime:{self._ptime}")
        section.add_attribute("a=" + self._base_direction)
        return SessionDescription(self._session_lines(), [section])

    def _answer(self, offer: SessionDescription) -> SessionDescription:
        if not offer.media:
            raise IncompatibleSDP("the offer has no media stream")
        sections: list[MediaSection] = []
        accepted = False
        for offered in offer.media:
            common = [] if accepted else self._common_codecs(offered)
            if not common:
                sections.append(MediaSection(offered.kind, 0, offered.proto,
                                             list(offered.fmts) or ["0"]))
                continue
            accepted = True
            section = MediaSection("audio", self._port, offered.proto, [])
            section.add_codecs(common)
            section.add_attribute(f"a=ptime:{self._ptime}")
            direction = and_direction(reverse_direction(offer.direction_of(offered)),
                                      self._base_direction)
            section.add_attribute("a=" + direction)
            sections.append(section)
        if not accepted:
            raise IncompatibleSDP("no audio stream of the offer has a codec in common with "
                                  + ", ".join(c.name for c in self._codecs))
        return SessionDescription(self._session_lines(), sections)

    def _common_codecs(self, offered: MediaSection) -> list[Codec]:
        """The offered formats we support, in the offer's order, with its payload types."""
        if offered.kind != "audio" or offered.rejected or offered.proto not in _AVP_PROFILES:
            return []
        codecs = offered.codecs()
        common = [c for c in codecs if c.is_media and any(c.same_format(o) for o in self._codecs)]
        if common and self._telephone_event:
            rates = {c.rate for c in common}
            common += [c for c in codecs if c.is_telephone_event and c.rate in rates]
        return common

    def _take_answer(self, offer: SessionDescription, answer: SessionDescription) -> None:
        if len(answer.media) != len(offer.media):
            raise IncompatibleSDP(f"the answer has {len(answer.media)} media streams, "
                                  f"the offer had {len(offer.media)}")
        for offered, answered in zip(offer.media, answer.media, strict=True):
            if offered.rejected or answered.rejected or offered.kind != "audio":
                continue
            ours = offered.codecs()
            if any(c.is_media and any(c.same_format(o) for o in ours) for c in answered.codecs()):
                self._negotiated(and_direction(offer.direction_of(offered),
                                               reverse_direction(answer.direction_of(answered))),
                                 answer.direction_of(answered))
                return
        raise IncompatibleSDP("the answer accepts no audio stream with a codec we offered")

    def _negotiated(self, local: Direction, remote: Direction) -> None:
        changed = (local, remote) != (self._direction, self._remote_direction)
        self._direction, self._remote_direction = local, remote
        if changed and self._on_direction is not None:
            try:
                self._on_direction(local, remote)
            except Exception as exc:
                if self._log is not None:
                    self._log.warn("on_direction_failed", error=repr(exc))

    def _stamp(self, body: str) -> str:
        """Write the session version into ``o=``: +1 if the body changed since the last one."""
        lines = body.replace("\r\n", "\n").split("\n")
        index = next((i for i, line in enumerate(lines) if line.startswith("o=")), None)
        if index is None:
            return body
        fields = lines[index][2:].split()
        rest = "\n".join(lines[:index] + lines[index + 1:])
        if rest != self._last_body:
            self._version += 1
            self._last_body = rest
        if len(fields) == 6:
            fields[2] = str(self._version)
            lines[index] = "o=" + " ".join(fields)
        return "\r\n".join(line for line in lines if line) + "\r\n"


def _check_str(opts: Mapping[str, Any], name: str, default: str) -> str:
    value = opts.get(name, default)
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ConfigurationError(name, value, "a non-empty string without spaces")
    return value


def _check_int(opts: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = opts.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(name, value, f"an integer in [{low}, {high}]")
    return value


def signalling_only_factory(
    session: object, options: Mapping[str, Any] | None = None
) -> SignallingOnlySDH:
    """A :data:`~sipfsm.media.SessionDescriptionHandlerFactory` for :class:`SignallingOnlySDH`."""
    return SignallingOnlySDH(options)
