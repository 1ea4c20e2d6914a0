"""Typed header values and their parsers (RFC 3261 §20, RFC 3262, RFC 3515, RFC 3891, RFC 6665).

Each parser takes every received value of one header (one string per header line, already
unfolded) and returns one typed value; comma-joined and repeated lines are the same thing to it.
Malformed input raises :class:`ParseError` naming the header; nothing else escapes.  The values
are frozen dataclasses whose ``str()`` is a correct header value.

:data:`HEADER_NAMES` maps every spelling we know (long, compact, lower case) to the canonical
long name, and :data:`TYPED` says which parser reads which header.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ParseError
from . import digest
from .grammar import (
    GEN_VALUE,
    HOST,
    TOKEN,
    TOKEN_CHARS,
    escape_quoted,
    is_token,
    parse_params,
    read_quoted,
    skip_lws,
    unquote_string,
)
from .uri import URI, parse_uri

__all__ = [
    "CANONICAL",
    "COMPACT",
    "TYPED",
    "CSeq",
    "ContentType",
    "Event",
    "NameAddr",
    "OtherCredentials",
    "RAck",
    "Reason",
    "Replaces",
    "SubscriptionState",
    "Via",
    "header_key",
    "parse_name_addr",
    "parse_name_addrs",
    "render_params",
]

# RFC 3261 §7.3.3 and later RFCs' compact forms.
COMPACT: dict[str, str] = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
    "l": "content-length", "m": "contact", "n": "identity-info", "o": "event", "r": "refer-to",
    "s": "subject", "t": "to", "u": "allow-events", "v": "via", "x": "session-expires",
    "y": "identity",
}
# The canonical spelling written for each header key (lower-case long name).
CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
        "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
        "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
        "Identity-Info", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE",
        "Organization", "Path", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
        "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
        "Reject-Contact", "Replaces", "Reply-To", "Request-Disposition", "Require",
        "Retry-After", "Route", "RSeq", "Server", "Service-Route", "Session-Expires", "Subject",
        "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
        "Warning", "WWW-Authenticate",
    )
}
_NAME_CACHE: dict[str, str] = {}
for _key, _name in CANONICAL.items():
    _NAME_CACHE[_name] = _NAME_CACHE[_key] = _key
for _short, _key in COMPACT.items():
    _NAME_CACHE[_short] = _NAME_CACHE[_short.upper()] = _key
_NAME_CACHE_LIMIT = 4096
_NAME_CACHE_LONGEST = 64


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-case long form (``"m"`` → ``"contact"``).

    Raises :class:`ParseError` if ``name`` (trailing white space allowed) is not a token.
    """
    key = _NAME_CACHE.get(name)
    if key is not None:
        return key
    stripped = name.rstrip(" \t")
    if not is_token(stripped):
        raise ParseError(f"invalid header name {name[:40]!r}")
    lowered = stripped.lower()
    key = COMPACT.get(lowered, lowered)
    # Bounded in count and in size: names come from the network.
    if len(_NAME_CACHE) < _NAME_CACHE_LIMIT and len(name) <= _NAME_CACHE_LONGEST:
        _NAME_CACHE[name] = key
    return key


def canonical_name(key: str) -> str:
    """The spelling we write for a header key (unknown headers keep the key's spelling)."""
    return CANONICAL.get(key, key)


def render_params(params: Mapping[str, str | None]) -> str:
    """``;name=value`` for each parameter (values are written as stored)."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _param_text(params: Mapping[str, str | None], name: str) -> str | None:
    value = params.get(name)
    if value is not None and value.startswith('"'):
        return unquote_string(value)
    return value


def _single(values: Sequence[str], header: str) -> str:
    if len(values) != 1:
        raise ParseError("must appear exactly once", header=header)
    return values[0]


def _uint(text: str, header: str, limit: int = 2**32 - 1) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ParseError(f"{text[:40]!r} is not a number", header=header)
    number = bounded_int(text, limit)
    if number is None:
        raise ParseError(f"{text[:40]} exceeds {limit}", header=header)
    return number


def bounded_int(text: str | None, limit: int = 2**32 - 1) -> int | None:
    """``text`` as a number if it is ASCII digits and at most ``limit``, else ``None``.

    The length is checked before converting: ``int()`` refuses strings of more than 4300 digits
    with a ``ValueError`` (and takes quadratic time below that), and a peer chooses the length.
    RFC 4475 §3.1.2.4 lets a receiver treat an overlarge expiry as absent, which is what the
    ``None`` of the parameter properties below means.
    """
    if not text or not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    if len(digits) > len(str(limit)):
        return None
    number = int(digits or "0")
    return number if number <= limit else None


# -- name-addr / addr-spec ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``[display-name] <URI> *(;param)``: From, To, Contact, Route, Refer-To, Referred-By…

    ``params`` holds the header parameters (not the URI's) with values as written, quotes
    included; :meth:`param` gives them unquoted.
    """

    uri: URI
    display_name: str | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        """The unquoted value of a header parameter (``None`` if absent or valueless)."""
        return _param_text(self.params, name.lower())

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From and To)."""
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter, or ``None`` if absent, not a number or over
        2**32-1."""
        return bounded_int(self.params.get("expires"))

    @property
    def q(self) -> float | None:
        """The Contact ``q`` preference, or ``None``."""
        value = self.params.get("q")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def with_params(self, **params: str | None) -> NameAddr:
        """A copy with parameters added or replaced (``tag="x"``)."""
        return NameAddr(self.uri, self.display_name, {**self.params, **params})

    def __str__(self) -> str:
        display = ""
        if self.display_name:
            display = escape_quoted(self.display_name) + " "
        return f"{display}<{self.uri}>{render_params(self.params)}"


_DISPLAY_TOKENS = re.compile(rf"[{TOKEN_CHARS}]+(?:[ \t]+[{TOKEN_CHARS}]+)*")
_ADDR_SPEC_END = re.compile(r"[;, \t]")


def parse_name_addr(text: str, pos: int, header: str) -> tuple[NameAddr, int]:
    """Read one ``(name-addr / addr-spec) *(;param)`` at ``pos``; return it and the end."""
    n = len(text)
    pos = skip_lws(text, pos)
    display: str | None = None
    angle = False
    if pos < n and text[pos] == '"':
        display, pos = read_quoted(text, pos, header)
        pos = skip_lws(text, pos)
        angle = True
    elif pos < n and text[pos] != "<":
        tokens = _DISPLAY_TOKENS.match(text, pos)
        if tokens is not None:
            after = skip_lws(text, tokens.end())
            if after < n and text[after] == "<":
                display, pos, angle = tokens.group(), after, True
    if pos < n and text[pos] == "<":
        end = text.find(">", pos + 1)
        if end < 0:
            raise ParseError("missing '>'", header=header)
        uri = _uri(text[pos + 1 : end], header, allow_headers=True)
        pos = end + 1
    elif angle:
        raise ParseError("display name not followed by '<'", header=header)
    else:
        match = _ADDR_SPEC_END.search(text, pos)
        end = match.start() if match else n
        # RFC 3261 §20.10: a URI with a comma, semicolon or question mark needs angle brackets,
        # so in this form those characters end the URI and '?' cannot occur.
        uri = _uri(text[pos:end], header, allow_headers=False)
        pos = end
    params, pos = parse_params(text, pos, header)
    return NameAddr(uri, display, params), pos


def _uri(text: str, header: str, *, allow_headers: bool) -> URI:
    try:
        return parse_uri(text, allow_headers=allow_headers)
    except ParseError as exc:
        raise ParseError(exc.reason, header=header) from None


def _parse_list(
    values: Sequence[str], header: str, item: Callable[[str, int, str], tuple[Any, int]]
) -> list[Any]:
    out: list[Any] = []
    for text in values:
        pos, n = 0, len(text)
        while True:
            value, pos = item(text, pos, header)
            out.append(value)
            pos = skip_lws(text, pos)
            if pos >= n:
                break
            if text[pos] != ",":
                raise ParseError(f"unexpected {text[pos]!r}", header=header)
            pos += 1
    return out


def parse_name_addrs(values: Sequence[str], header: str) -> tuple[NameAddr, ...]:
    """Every name-addr of a list header (Contact, Route, Record-Route, Path…)."""
    return tuple(_parse_list(values, header, parse_name_addr))


def _parse_one_name_addr(values: Sequence[str], header: str) -> NameAddr:
    text = _single(values, header)
    value, pos = parse_name_addr(text, 0, header)
    if skip_lws(text, pos) != len(text):
        raise ParseError("trailing characters", header=header)
    return value


def _parse_contacts(values: Sequence[str], header: str) -> tuple[NameAddr, ...] | str:
    if len(values) == 1 and values[0].strip() == "*":
        return "*"
    return parse_name_addrs(values, header)


# -- Via ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Via:
    """One via-parm: ``SIP/2.0/WSS host[:port];branch=…;received=…;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (RFC 3261 §8.1.1.7)."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (RFC 3261 §18.2.1)."""
        return self.params.get("received")

    @property
    def rport(self) -> int | bool | None:
        """``None`` without rport, ``True`` for a bare ``rport``, else its number (RFC 3581)."""
        if "rport" not in self.params:
            return None
        value = self.params["rport"]
        return True if value is None else int(value)

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter."""
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter."""
        value = self.params.get("ttl")
        return None if value is None else int(value)

    @property
    def sent_by(self) -> str:
        """``host[:port]``."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{render_params(self.params)}"


# received=2001:db8::9:255 carries an IPv6 address without brackets (RFC 5118 §4.5); tried first,
# and only when no token character follows, so that ordinary token values are read whole.
_VIA_VALUE = rf"(?:[0-9A-Fa-f:.]+(?![{TOKEN_CHARS}])|{GEN_VALUE})"
_VIA_PARAM = rf"[ \t]*;[ \t]*[{TOKEN_CHARS}]+(?:[ \t]*=[ \t]*{_VIA_VALUE})?"
_VIA_PARM = (
    rf"[ \t]*([{TOKEN_CHARS}]+)[ \t]*/[ \t]*([{TOKEN_CHARS}]+)[ \t]*/[ \t]*([{TOKEN_CHARS}]+)"
    rf"[ \t]+({HOST})(?:[ \t]*:[ \t]*([0-9]{{1,5}}))?((?:{_VIA_PARAM})*)[ \t]*"
)
_VIA_ONE = re.compile(_VIA_PARM)
_VIA_PARAM_ONE = re.compile(rf"[ \t]*;[ \t]*([{TOKEN_CHARS}]+)(?:[ \t]*=[ \t]*({_VIA_VALUE}))?")
# The parser checks every Via line on arrival with this one expression: the structure exactly,
# hosts and parameter values by their characters only (the exact grammar is applied when the
# values are read).  It is the hot path of every message, and the loose host class is about
# twice as fast as the label-by-label hostname rule.
_LOOSE_VALUE = rf'(?:[{TOKEN_CHARS}:\[\]]+|"(?:[^"\\\r\n]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*")'
_LOOSE_PARAM = rf"[ \t]*;[ \t]*[{TOKEN_CHARS}]+(?:[ \t]*=[ \t]*{_LOOSE_VALUE})?"
_LOOSE_PARM = (
    rf"[ \t]*[{TOKEN_CHARS}]+[ \t]*/[ \t]*[{TOKEN_CHARS}]+[ \t]*/[ \t]*[{TOKEN_CHARS}]+"
    rf"[ \t]+(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*[0-9]{{1,5}})?"
    rf"(?:{_LOOSE_PARAM})*[ \t]*"
)
VIA_LINE = re.compile(rf"{_LOOSE_PARM}(?:,{_LOOSE_PARM})*")
"""Checks the structure of a whole Via header line (one or more via-parms) in one match."""


def _parse_via(text: str, pos: int, header: str) -> tuple[Via, int]:
    match = _VIA_ONE.match(text, pos)
    if match is None:
        raise ParseError("malformed via-parm", header=header)
    name, version, transport, host, port, raw_params = match.groups()
    if not port_ok(port):
        raise ParseError(f"port {port} out of range", header=header)
    params: dict[str, str | None] = {}
    for param in _VIA_PARAM_ONE.finditer(raw_params):
        params[param.group(1).lower()] = param.group(2)
    rport = params.get("rport")
    ttl = params.get("ttl")
    for number, limit in ((rport, 65535), (ttl, 255)):
        if number is not None:
            _uint(number, header, limit)
    via = Via(transport.upper(), host, int(port) if port else None, params,
              f"{name}/{version}".upper())
    return via, match.end()


def port_ok(port: str | None) -> bool:
    """Whether an optional port string is within 0–65535."""
    return port is None or int(port) <= 65535


def parse_via(values: Sequence[str], header: str = "Via") -> tuple[Via, ...]:
    """Every via-parm of every Via line, top first."""
    return tuple(_parse_list(values, header, _parse_via))


# -- CSeq, RAck, numbers, tokens -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


CSEQ = re.compile(rf"([0-9]+)[ \t]+([{TOKEN_CHARS}]+)")


def parse_cseq_value(text: str, header: str = "CSeq") -> CSeq:
    """Read one CSeq value (sequence number below 2**31 per RFC 3261 §8.1.1.5, up to 2**32-1
    accepted from peers)."""
    match = CSEQ.fullmatch(text)
    if match is None:
        raise ParseError(f"malformed CSeq {text[:40]!r}", header=header)
    return CSeq(_uint(match.group(1), header), match.group(2))


def _parse_cseq(values: Sequence[str], header: str) -> CSeq:
    return parse_cseq_value(_single(values, header), header)


@dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: response-num CSeq-num Method`` (RFC 3262 §7.2)."""

    rseq: int
    cseq: int
    method: str

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


_RACK = re.compile(rf"([0-9]+)[ \t]+([0-9]+)[ \t]+([{TOKEN_CHARS}]+)")


def _parse_rack(values: Sequence[str], header: str) -> RAck:
    match = _RACK.fullmatch(_single(values, header))
    if match is None:
        raise ParseError("malformed RAck", header=header)
    rseq = _uint(match.group(1), header)
    if rseq == 0:
        raise ParseError("RSeq numbers start at 1", header=header)
    return RAck(rseq, _uint(match.group(2), header), match.group(3))


def _int_parser(limit: int, minimum: int = 0) -> Callable[[Sequence[str], str], int]:
    def parse(values: Sequence[str], header: str) -> int:
        number = _uint(_single(values, header), header, limit)
        if number < minimum:
            raise ParseError(f"must be at least {minimum}", header=header)
        return number

    return parse


def _parse_tokens(values: Sequence[str], header: str) -> tuple[str, ...]:
    """A comma list of tokens (Require, Supported, Unsupported, Allow…); may be empty."""
    out: list[str] = []
    for text in values:
        for item in text.split(","):
            item = item.strip(" \t")
            if not item:
                if text.strip(" \t"):
                    raise ParseError("empty list element", header=header)
                continue
            if not is_token(item):
                raise ParseError(f"{item[:40]!r} is not a token", header=header)
            out.append(item)
    return tuple(out)


# callid = word ["@" word]; word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" /
# "'" / "~" / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID = re.compile(rf"{_WORD}(?:@{_WORD})?")


def _parse_call_id(values: Sequence[str], header: str) -> str:
    text = _single(values, header)
    if _CALL_ID.fullmatch(text) is None:
        raise ParseError(f"malformed Call-ID {text[:40]!r}", header=header)
    return text


# -- token + params headers: Content-Type, Event, Subscription-State, Reason, Replaces -----------


def _token_and_params(text: str, header: str, pattern: re.Pattern[str]) -> tuple[
    str, dict[str, str | None]
]:
    match = pattern.match(text, skip_lws(text, 0))
    if match is None:
        raise ParseError(f"malformed value {text[:40]!r}", header=header)
    params, pos = parse_params(text, match.end(), header)
    if skip_lws(text, pos) != len(text):
        raise ParseError("trailing characters", header=header)
    return match.group(), params


@dataclass(frozen=True, slots=True)
class ContentType:
    """``type/subtype *(;param)`` (RFC 3261 §20.15)."""

    type: str
    subtype: str
    params: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def mime(self) -> str:
        """``type/subtype`` in lower case, for comparisons."""
        return f"{self.type}/{self.subtype}".lower()

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{render_params(self.params)}"


_MEDIA = re.compile(rf"[{TOKEN_CHARS}]+[ \t]*/[ \t]*[{TOKEN_CHARS}]+")


def _parse_content_type(values: Sequence[str], header: str) -> ContentType:
    media, params = _token_and_params(_single(values, header), header, _MEDIA)
    kind, _, sub = media.partition("/")
    return ContentType(kind.strip(), sub.strip(), params)


@dataclass(frozen=True, slots=True)
class Event:
    """``Event: package[.template] *(;param)`` (RFC 6665 §8.2.1)."""

    package: str
    params: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def id(self) -> str | None:
        """The ``id`` parameter that tells subscriptions of one package apart."""
        return self.params.get("id")

    def __str__(self) -> str:
        return f"{self.package}{render_params(self.params)}"


def _parse_event(values: Sequence[str], header: str) -> Event:
    package, params = _token_and_params(_single(values, header), header, TOKEN)
    return Event(package, params)


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """``Subscription-State: active;expires=600`` (RFC 6665 §8.2.3)."""

    state: str
    params: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        """The ``reason`` parameter, lower-cased."""
        value = self.params.get("reason")
        return value.lower() if value else None

    @property
    def expires(self) -> int | None:
        """The ``expires`` parameter in seconds (``None``: absent, or not a number ≤ 2**32-1)."""
        return bounded_int(self.params.get("expires"))

    @property
    def retry_after(self) -> int | None:
        """The ``retry-after`` parameter in seconds (``None`` like :attr:`expires`)."""
        return bounded_int(self.params.get("retry-after"))

    def __str__(self) -> str:
        return f"{self.state}{render_params(self.params)}"


def _parse_subscription_state(values: Sequence[str], header: str) -> SubscriptionState:
    state, params = _token_and_params(_single(values, header), header, TOKEN)
    return SubscriptionState(state.lower(), params)


@dataclass(frozen=True, slots=True)
class Reason:
    """``Reason: SIP;cause=200;text="Call completed elsewhere"`` (RFC 3326)."""

    protocol: str
    params: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def cause(self) -> int | None:
        """The ``cause`` parameter as a number (``None``: absent, or not a number ≤ 2**32-1)."""
        return bounded_int(self.params.get("cause"))

    @property
    def text(self) -> str | None:
        """The ``text`` parameter, unquoted."""
        return _param_text(self.params, "text")

    def __str__(self) -> str:
        return f"{self.protocol}{render_params(self.params)}"


def _parse_reason(values: Sequence[str], header: str) -> tuple[Reason, ...]:
    def item(text: str, pos: int, header: str) -> tuple[Reason, int]:
        match = TOKEN.match(text, skip_lws(text, pos))
        if match is None:
            raise ParseError("malformed reason", header=header)
        params, end = parse_params(text, match.end(), header)
        return Reason(match.group(), params), end

    return tuple(_parse_list(values, header, item))


@dataclass(frozen=True, slots=True)
class Replaces:
    """``Replaces: call-id;to-tag=…;from-tag=…[;early-only]`` (RFC 3891 §6.1)."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False
    params: Mapping[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = {k: v for k, v in self.params.items()
                 if k not in ("to-tag", "from-tag", "early-only")}
        text = f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}"
        return text + (";early-only" if self.early_only else "") + render_params(extra)


def parse_replaces_value(text: str, header: str = "Replaces") -> Replaces:
    """Read a Replaces value (also the unescaped ``?Replaces=`` of a Refer-To URI)."""
    call_id, params = _token_and_params(text, header, _CALL_ID)
    to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
    if not to_tag or not from_tag:
        raise ParseError("to-tag and from-tag are required", header=header)
    return Replaces(call_id, to_tag, from_tag, "early-only" in params, params)


def _parse_replaces(values: Sequence[str], header: str) -> Replaces:
    return parse_replaces_value(_single(values, header), header)


def _parse_challenges(values: Sequence[str], header: str) -> tuple[digest.Challenge, ...]:
    try:
        return tuple(digest.parse_challenge(v) for v in values)
    except ParseError as exc:
        raise ParseError(exc.reason, header=header) from None


@dataclass(frozen=True, slots=True)
class OtherCredentials:
    """Authorization credentials of a scheme other than Digest, kept as scheme and parameters
    (a registrar re-challenges them; RFC 4475 §3.3.12)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.scheme} " + ", ".join(f'{k}="{v}"' for k, v in self.params.items())


def _parse_credentials(
    values: Sequence[str], header: str
) -> tuple[digest.Credentials | OtherCredentials, ...]:
    out: list[digest.Credentials | OtherCredentials] = []
    try:
        for value in values:
            scheme, params = digest.split_auth(value, header)
            if scheme.lower() == "digest":
                out.append(digest.parse_credentials(value, header=header))
            else:
                out.append(OtherCredentials(scheme, params))
    except ParseError as exc:
        raise ParseError(exc.reason, header=header) from None
    return tuple(out)


def _parse_text(values: Sequence[str], header: str) -> str:
    return ", ".join(values)


def _quote_check(values: Sequence[str], header: str) -> str:
    # Subject, User-Agent, Server, Organization: free text (TEXT-UTF8 / server-val).
    text = ", ".join(values)
    if any(ch < " " and ch != "\t" for ch in text):
        raise ParseError("control character in text", header=header)
    return text


Parser = Callable[[Sequence[str], str], Any]

TYPED: dict[str, Parser] = {
    "via": parse_via,
    "from": _parse_one_name_addr,
    "to": _parse_one_name_addr,
    "call-id": _parse_call_id,
    "cseq": _parse_cseq,
    "contact": _parse_contacts,
    "route": parse_name_addrs,
    "record-route": parse_name_addrs,
    "path": parse_name_addrs,
    "service-route": parse_name_addrs,
    "refer-to": _parse_one_name_addr,
    "referred-by": _parse_one_name_addr,
    "reply-to": _parse_one_name_addr,
    "max-forwards": _int_parser(255),
    "content-length": _int_parser(2**32 - 1),
    "expires": _int_parser(2**32 - 1),
    "min-expires": _int_parser(2**32 - 1),
    "min-se": _int_parser(2**32 - 1),
    "rseq": _int_parser(2**32 - 1, minimum=1),
    "rack": _parse_rack,
    "content-type": _parse_content_type,
    "require": _parse_tokens,
    "proxy-require": _parse_tokens,
    "supported": _parse_tokens,
    "unsupported": _parse_tokens,
    "allow": _parse_tokens,
    "allow-events": _parse_tokens,
    "event": _parse_event,
    "subscription-state": _parse_subscription_state,
    "reason": _parse_reason,
    "replaces": _parse_replaces,
    "www-authenticate": _parse_challenges,
    "proxy-authenticate": _parse_challenges,
    "authorization": _parse_credentials,
    "proxy-authorization": _parse_credentials,
    "user-agent": _quote_check,
    "server": _quote_check,
    "subject": _quote_check,
}
"""Header key → parser over all of that header's values.  Headers not listed are plain text."""

del _key, _name, _short, _parse_text
