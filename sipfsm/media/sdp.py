"""A small, forgiving SDP (RFC 4566) model for offer/answer work on text.

The handlers need to read and rewrite a few things in SDP they did not write (a browser's offer,
aiortc's output): directions, codecs, ICE candidates, telephone-event formats.  A full parser
would reject what real peers send; this one keeps every line it does not understand, in order,
so that ``str(SessionDescription.parse(text))`` gives the same lines back (with CRLF endings).

A description is its session-level lines plus one :class:`MediaSection` per ``m=`` line.
Attributes are looked up by name; editing methods change the lines in place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Final, cast

from .base import DIRECTIONS, Direction, IncompatibleSDP

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Codec",
    "MediaSection",
    "SessionDescription",
    "candidate_address",
    "is_mdns_name",
    "normalise_address",
]

TELEPHONE_EVENT: Final = "telephone-event"

STATIC_PAYLOAD_TYPES: Final[dict[int, tuple[str, int, int]]] = {
    # RFC 3551 §6, the audio formats a peer may list without an rtpmap
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    13: ("CN", 8000, 1),
    18: ("G729", 8000, 1),
}


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload format of a media section: ``a=rtpmap:<pt> <name>/<rate>[/<channels>]``."""

    pt: int
    name: str
    rate: int
    channels: int = 1
    fmtp: str | None = None

    def same_format(self, other: Codec) -> bool:
        """Same encoding (name case-insensitively, clock rate, channels); PTs may differ."""
        return (self.name.lower(), self.rate, self.channels) == (
            other.name.lower(), other.rate, other.channels)

    @property
    def is_telephone_event(self) -> bool:
        """Whether this is RFC 4733 ``telephone-event``."""
        return self.name.lower() == TELEPHONE_EVENT

    @property
    def is_media(self) -> bool:
        """Whether this format carries audio (not telephone-event, not comfort noise, not RED)."""
        return self.name.lower() not in (TELEPHONE_EVENT, "cn", "red", "rtx", "ulpfec")

    def rtpmap(self) -> str:
        """The ``a=rtpmap`` line."""
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"a=rtpmap:{self.pt} {self.name}/{self.rate}{suffix}"


def _attr_name(line: str) -> tuple[str, str | None]:
    body = line[2:]
    name, colon, value = body.partition(":")
    return name, (value if colon else None)


@dataclass(slots=True)
class MediaSection:
    """An ``m=`` line and the lines after it, up to the next ``m=``."""

    kind: str
    port: int
    proto: str
    fmts: list[str]
    lines: list[str] = field(default_factory=list)

    @classmethod
    def parse_m_line(cls, line: str) -> MediaSection:
        """Parse ``m=<media> <port>[/<n>] <proto> <fmt> ...``."""
        parts = line[2:].split()
        if len(parts) < 3:
            raise IncompatibleSDP(f"malformed media line {line!r}")
        try:
            port = int(parts[1].split("/", 1)[0])
        except ValueError:
            raise IncompatibleSDP(f"malformed port in media line {line!r}") from None
        return cls(kind=parts[0], port=port, proto=parts[2], fmts=parts[3:])

    @property
    def m_line(self) -> str:
        """The ``m=`` line as it stands."""
        return " ".join(["m=" + self.kind, str(self.port), self.proto, *self.fmts])

    @property
    def rejected(self) -> bool:
        """Whether the stream is rejected or disabled (port 0, RFC 3264 §6)."""
        return self.port == 0

    def attributes(self, name: str) -> list[str]:
        """The values of every ``a=<name>:<value>`` line (``""`` for a flag attribute)."""
        found = []
        for line in self.lines:
            if line.startswith("a="):
                attr, value = _attr_name(line)
                if attr == name:
                    found.append(value or "")
        return found

    def has_attribute(self, name: str) -> bool:
        """Whether an ``a=<name>`` or ``a=<name>:...`` line is present."""
        return any(line.startswith("a=") and _attr_name(line)[0] == name for line in self.lines)

    def remove_attributes(self, name: str) -> None:
        """Drop every ``a=<name>`` line."""
        self.lines = [line for line in self.lines
                      if not (line.startswith("a=") and _attr_name(line)[0] == name)]

    def add_attribute(self, line: str) -> None:
        """Append an ``a=`` line at the end of the section."""
        self.lines.append(line)

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, if there is one."""
        for line in self.lines:
            if line[2:] in DIRECTIONS and line.startswith("a="):
                return cast(Direction, line[2:])
        return None

    def set_direction(self, direction: Direction) -> None:
        """Replace (or add, before the first ``a=`` line) the media-level direction."""
        for i, line in enumerate(self.lines):
            if line.startswith("a=") and line[2:] in DIRECTIONS:
                self.lines[i] = "a=" + direction
                return
        first_attr = next((i for i, line in enumerate(self.lines) if line.startswith("a=")),
                          len(self.lines))
        self.lines.insert(first_attr, "a=" + direction)

    def codecs(self) -> list[Codec]:
        """The formats of the ``m=`` line, in its order, with rtpmap and fmtp applied.

        A dynamic payload type without an ``a=rtpmap`` is skipped (it cannot be matched).
        """
        maps: dict[int, tuple[str, int, int]] = {}
        fmtps: dict[int, str] = {}
        for value in self.attributes("rtpmap"):
            pt_text, _, encoding = value.partition(" ")
            bits = encoding.strip().split("/")
            try:
                pt = int(pt_text)
                rate = int(bits[1]) if len(bits) > 1 else 8000
                channels = int(bits[2]) if len(bits) > 2 and bits[2] else 1
            except ValueError:
                continue
            maps[pt] = (bits[0], rate, channels)
        for value in self.attributes("fmtp"):
            pt_text, _, params = value.partition(" ")
            if pt_text.isdigit():
                fmtps[int(pt_text)] = params.strip()
        codecs = []
        for fmt in self.fmts:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            known = maps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if known is not None:
                codecs.append(Codec(pt, known[0], known[1], known[2], fmtps.get(pt)))
        return codecs

    def add_codecs(self, codecs: Iterable[Codec]) -> None:
        """Append formats: to the ``m=`` line, and their rtpmap/fmtp after the last rtpmap."""
        new = [c for c in codecs if str(c.pt) not in self.fmts]
        if not new:
            return
        self.fmts.extend(str(c.pt) for c in new)
        extra = []
        for codec in new:
            extra.append(codec.rtpmap())
            if codec.fmtp:
                extra.append(f"a=fmtp:{codec.pt} {codec.fmtp}")
        last = max((i for i, line in enumerate(self.lines)
                    if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))), default=None)
        at = len(self.lines) if last is None else last + 1
        self.lines[at:at] = extra

    def candidate_lines(self) -> list[str]:
        """The ``a=candidate:`` lines."""
        return [line for line in self.lines if line.startswith("a=candidate:")]

    def __str__(self) -> str:
        return "\r\n".join([self.m_line, *self.lines]) + "\r\n"


def candidate_address(candidate_line: str) -> str | None:
    """The connection address of an ``a=candidate:`` line (RFC 8839 §5.1), or ``None``."""
    fields = candidate_line.split()
    return fields[4] if len(fields) >= 8 else None


def is_mdns_name(address: str) -> bool:
    """Whether a candidate address is an mDNS name (``<uuid>.local``), not an IP address."""
    return address.lower().endswith(".local")


def normalise_address(address: str) -> str:
    """An IP address in its canonical text form (``::0001`` → ``::1``); names unchanged."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


@dataclass(slots=True)
class SessionDescription:
    """Session-level lines plus the media sections, in order."""

    session_lines: list[str]
    media: list[MediaSection]

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        """Split SDP text into sections; raise :class:`IncompatibleSDP` if it is not SDP."""
        lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
        lines = [line for line in lines if line]
        if not lines or not lines[0].startswith("v="):
            raise IncompatibleSDP("not an SDP body (no v= line first)")
        session: list[str] = []
        media: list[MediaSection] = []
        for line in lines:
            if len(line) < 2 or line[1] != "=":
                raise IncompatibleSDP(f"malformed SDP line {line!r}")
            if line.startswith("m="):
                media.append(MediaSection.parse_m_line(line))
            elif media:
                media[-1].lines.append(line)
            else:
                session.append(line)
        return cls(session, media)

    @property
    def session_direction(self) -> Direction | None:
        """The session-level direction attribute, if any."""
        for line in self.session_lines:
            if line.startswith("a=") and line[2:] in DIRECTIONS:
                return cast(Direction, line[2:])
        return None

    def direction_of(self, section: MediaSection) -> Direction:
        """The direction in force for ``section``: its own, the session's, or ``sendrecv``."""
        return section.direction or self.session_direction or "sendrecv"

    def session_value(self, letter: str) -> str | None:
        """The value of the first session-level ``<letter>=`` line."""
        prefix = letter + "="
        return next((line[2:] for line in self.session_lines if line.startswith(prefix)), None)

    def first_audio(self) -> MediaSection | None:
        """The first audio section that is not rejected."""
        return next((m for m in self.media if m.kind == "audio" and not m.rejected), None)

    def filter_candidates(self, allowed: Collection[str]) -> list[str]:
        """Drop every ``a=candidate`` whose address is not in ``allowed``; return the dropped.

        mDNS names never match (resolving one would send multicast queries).
        """
        allowed_set = {normalise_address(a) for a in allowed}
        dropped: list[str] = []
        for section in self.media:
            kept = []
            for line in section.lines:
                if line.startswith("a=candidate:"):
                    address = candidate_address(line)
                    if address is None or normalise_address(address) not in allowed_set:
                        dropped.append(line)
                        continue
                kept.append(line)
            section.lines = kept
        return dropped

    def share_candidates(self) -> None:
        """Give every live section without candidates those of the first section that has some.

        Under BUNDLE every section rides one transport, and some peers list the candidates in
        the first section only; aiortc, however, reads them from the *last* section of a
        transport, and would then see none.
        """
        donor = next((m for m in self.media if not m.rejected and m.candidate_lines()), None)
        if donor is None:
            return
        for section in self.media:
            if not section.rejected and not section.candidate_lines():
                section.lines.extend(donor.candidate_lines())

    def mark_candidates_complete(self) -> None:
        """Add ``a=end-of-candidates`` where missing: over SIP every description is complete.

        SIP carries one offer and one answer, each gathered in full (no trickle), so the
        candidates listed are all there will be; saying so lets ICE fail fast instead of
        waiting for candidates that never come.
        """
        for section in self.media:
            if not section.rejected and not section.has_attribute("end-of-candidates"):
                section.add_attribute("a=end-of-candidates")

    def __str__(self) -> str:
        return "\r\n".join(self.session_lines) + "\r\n" + "".join(str(m) for m in self.media)
