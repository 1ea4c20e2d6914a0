"""SIP requests and responses: framing, lazy header access and serialisation (RFC 3261 §7).

Theory of operation
-------------------
:func:`parse` does the least work that lets a UA act on a message safely:

* it frames the message (the empty line, then ``Content-Length`` octets of body, or the rest of
  the frame when there is no ``Content-Length``, as RFC 7118 §5.2 allows over WebSocket);
* it checks the start line completely: the method token, the Request-URI (SIP, SIPS and tel URIs
  by their grammar, other schemes as absolute URIs), the version (``SIP/2.0``, else 505) and the
  status code;
* it splits the header section into ``(key, name, value)`` triples, unfolding continuation lines
  and resolving compact names, and checks each name is a token;
* it parses the headers that every transaction needs before anything else can happen: ``CSeq``
  (number below 2**32, method equal to the request's) and every ``Via`` line (validated by one
  regular expression, turned into objects only when asked for).

Everything else is parsed on first access and cached: ``msg.contact`` parses the Contact values
then, and raises :class:`ParseError` then if they are malformed.  :meth:`Message.parse_all` parses
every header the library understands, for callers that want a strict check up front.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Generic, TypeVar, overload

from ..errors import ParseError
from . import digest
from .grammar import is_token
from .headers import (
    _NAME_CACHE,
    CSEQ,
    TYPED,
    VIA_LINE,
    ContentType,
    CSeq,
    Event,
    NameAddr,
    OtherCredentials,
    RAck,
    Reason,
    Replaces,
    SubscriptionState,
    Via,
    canonical_name,
    header_key,
)
from .uri import SIP_URI, URI, parse_uri

__all__ = [
    "MAX_HEADERS",
    "MAX_LINE_LENGTH",
    "MAX_MESSAGE_SIZE",
    "Headers",
    "Message",
    "Request",
    "Response",
    "parse",
]

T = TypeVar("T")
_SIP_VERSION = "SIP/2.0"


class Headers:
    """The header fields of a message, in order, with case-insensitive, compact-aware lookup.

    ``get``/``get_all`` return values as text; the typed properties of :class:`Message` parse
    them.  Internally two parallel lists: the lookup key of each line (lower-case long name) and
    the line itself, exactly as received (after unfolding) or as :meth:`add` wrote it.  Values
    are cut out of their lines only when read, which is what keeps :func:`parse` cheap.
    """

    __slots__ = ("_cache", "_keys", "_lines")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._keys: list[str] = []
        self._lines: list[str] = []
        self._cache: dict[str, Any] = {}
        for name, value in fields:
            self.add(name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any spelling), or ``default``."""
        key = header_key(name)
        keys = self._keys
        return _value(self._lines[keys.index(key)]) if key in keys else default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, one per header line, in order."""
        key = header_key(name)
        return [_value(line) for k, line in zip(self._keys, self._lines, strict=True) if k == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._keys

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """``(name, value)`` for every line, names as written."""
        for line in self._lines:
            name, _, value = line.partition(":")
            yield name.rstrip(" \t"), value.strip(" \t")

    def __len__(self) -> int:
        return len(self._lines)

    def keys(self) -> list[str]:
        """The lookup key of every header line, in order."""
        return list(self._keys)

    def count(self, name: str) -> int:
        """How many lines header ``name`` has."""
        return self._keys.count(header_key(name))

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append a header line (``first=True`` puts it on top, as a new Via or Route must be)."""
        key = header_key(name)
        value = str(value)
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} value cannot contain CR or LF")
        written = canonical_name(key) if name.lower() == key else name.rstrip(" \t")
        line = f"{written}: {value}"
        if first:
            self._keys.insert(0, key)
            self._lines.insert(0, line)
        else:
            self._keys.append(key)
            self._lines.append(line)
        self._cache.pop(key, None)

    def set(self, name: str, value: str) -> None:
        """Replace every line of header ``name`` by one line with ``value``, keeping the place
        of the first line (or appending when there was none)."""
        key = header_key(name)
        keys = self._keys
        if key not in keys:
            self.add(name, value)
            return
        at = keys.index(key)
        self.remove(name)
        self.add(name, value)
        self._keys.insert(at, self._keys.pop())
        self._lines.insert(at, self._lines.pop())

    def remove(self, name: str) -> int:
        """Remove every line of header ``name``; return how many there were."""
        key = header_key(name)
        kept = [(k, line) for k, line in zip(self._keys, self._lines, strict=True) if k != key]
        removed = len(self._keys) - len(kept)
        self._keys = [k for k, _ in kept]
        self._lines = [line for _, line in kept]
        self._cache.pop(key, None)
        return removed

    def copy(self) -> Headers:
        """An independent copy."""
        headers = Headers()
        headers._keys = list(self._keys)
        headers._lines = list(self._lines)
        return headers

    def typed(self, key: str) -> Any:
        """The parsed value of header ``key`` (see :data:`headers.TYPED`), ``None`` if absent."""
        cache = self._cache
        if key in cache:
            return cache[key]
        if key not in self._keys:
            parsed = None
        else:
            values = [_value(line) for k, line in zip(self._keys, self._lines, strict=True)
                      if k == key]
            parsed = TYPED[key](values, canonical_name(key))
        cache[key] = parsed
        return parsed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._keys == other._keys and [_raw_value(x) for x in self._lines] == [
            _raw_value(x) for x in other._lines
        ]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


def _raw_value(line: str) -> str:
    return line.partition(":")[2].strip(" \t")


def _value(line: str) -> str:
    """The value of a header line.  A line can reach here without a colon only if it was
    nothing but a known header name; that is malformed, and reported when it is read."""
    name, colon, value = line.partition(":")
    if not colon:
        raise ParseError("header line without a colon", header=name[:40])
    return value.strip(" \t")


class _Header(Generic[T]):
    """A typed, cached, read-only view of one header on :class:`Message`."""

    __slots__ = ("doc", "key")

    def __init__(self, key: str, doc: str) -> None:
        self.key = key
        self.doc = doc

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _Header[T]: ...
    @overload
    def __get__(self, obj: Message, owner: type[Any]) -> T: ...
    def __get__(self, obj: Message | None, owner: type[Any]) -> _Header[T] | T:
        if obj is None:
            return self
        value: T = obj.headers.typed(self.key)
        return value


class _ListHeader(_Header[tuple[T, ...]]):
    """Like :class:`_Header`, but an absent header reads as an empty tuple."""

    __slots__ = ()

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _ListHeader[T]: ...
    @overload
    def __get__(self, obj: Message, owner: type[Any]) -> tuple[T, ...]: ...
    def __get__(self, obj: Message | None, owner: type[Any]) -> _ListHeader[T] | tuple[T, ...]:
        if obj is None:
            return self
        value: tuple[T, ...] | None = obj.headers.typed(self.key)
        return () if value is None else value


class Message:
    """What requests and responses share: headers, body and typed header access."""

    __slots__ = ("body", "headers")

    version: ClassVar[str] = _SIP_VERSION
    """The protocol version: always ``SIP/2.0`` (others are refused with 505 by :func:`parse`)."""
    headers: Headers
    body: bytes

    via: _ListHeader[Via] = _ListHeader("via", "Via values, top first.")
    from_: _Header[NameAddr | None] = _Header("from", "The From header.")
    to: _Header[NameAddr | None] = _Header("to", "The To header.")
    call_id: _Header[str | None] = _Header("call-id", "The Call-ID.")
    cseq: _Header[CSeq | None] = _Header("cseq", "The CSeq.")
    route: _ListHeader[NameAddr] = _ListHeader("route", "Route values, in order.")
    record_route: _ListHeader[NameAddr] = _ListHeader("record-route", "Record-Route values.")
    path: _ListHeader[NameAddr] = _ListHeader("path", "Path values (RFC 3327).")
    service_route: _ListHeader[NameAddr] = _ListHeader("service-route", "Service-Route values.")
    max_forwards: _Header[int | None] = _Header("max-forwards", "Max-Forwards.")
    content_length: _Header[int | None] = _Header("content-length", "Content-Length.")
    content_type: _Header[ContentType | None] = _Header("content-type", "Content-Type.")
    expires: _Header[int | None] = _Header("expires", "Expires in seconds.")
    min_expires: _Header[int | None] = _Header("min-expires", "Min-Expires in seconds.")
    require: _ListHeader[str] = _ListHeader("require", "Require option tags.")
    proxy_require: _ListHeader[str] = _ListHeader("proxy-require", "Proxy-Require option tags.")
    supported: _ListHeader[str] = _ListHeader("supported", "Supported option tags.")
    unsupported: _ListHeader[str] = _ListHeader("unsupported", "Unsupported option tags.")
    allow: _ListHeader[str] = _ListHeader("allow", "Allowed methods.")
    allow_events: _ListHeader[str] = _ListHeader("allow-events", "Allow-Events packages.")
    rseq: _Header[int | None] = _Header("rseq", "RSeq (RFC 3262).")
    rack: _Header[RAck | None] = _Header("rack", "RAck (RFC 3262).")
    event: _Header[Event | None] = _Header("event", "Event (RFC 6665).")
    subscription_state: _Header[SubscriptionState | None] = _Header(
        "subscription-state", "Subscription-State (RFC 6665).")
    refer_to: _Header[NameAddr | None] = _Header("refer-to", "Refer-To (RFC 3515).")
    referred_by: _Header[NameAddr | None] = _Header("referred-by", "Referred-By (RFC 3892).")
    replaces: _Header[Replaces | None] = _Header("replaces", "Replaces (RFC 3891).")
    reason: _ListHeader[Reason] = _ListHeader("reason", "Reason values (RFC 3326).")
    www_authenticate: _ListHeader[digest.Challenge] = _ListHeader(
        "www-authenticate", "WWW-Authenticate challenges.")
    proxy_authenticate: _ListHeader[digest.Challenge] = _ListHeader(
        "proxy-authenticate", "Proxy-Authenticate challenges.")
    authorization: _ListHeader[digest.Credentials | OtherCredentials] = _ListHeader(
        "authorization", "Authorization credentials.")
    proxy_authorization: _ListHeader[digest.Credentials | OtherCredentials] = _ListHeader(
        "proxy-authorization", "Proxy-Authorization credentials.")
    user_agent: _Header[str | None] = _Header("user-agent", "User-Agent text.")
    server: _Header[str | None] = _Header("server", "Server text.")
    subject: _Header[str | None] = _Header("subject", "Subject text.")

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] | None = None,
                 body: bytes | str = b"") -> None:
        self.headers = headers.copy() if isinstance(headers, Headers) else Headers(headers or ())
        # A message built here always states its length, whatever the headers given said.
        self.set_body(body)

    @property
    def top_via(self) -> Via | None:
        """The first Via value: the one that names this hop's transaction."""
        vias = self.via
        return vias[0] if vias else None

    @property
    def contact(self) -> tuple[NameAddr, ...]:
        """Contact values (empty for ``Contact: *``; see :attr:`contact_is_star`)."""
        value = self.headers.typed("contact")
        return value if isinstance(value, tuple) else ()

    @property
    def contact_is_star(self) -> bool:
        """Whether the Contact is the wildcard ``*`` of a REGISTER that removes every binding."""
        return bool(self.headers.typed("contact") == "*")

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def compact(self) -> None:
        """Forget the parsed header values (they are parsed again if read): for a message kept
        only in case it is needed, such as the INVITE of a transaction lingering in Timer L."""
        if self.headers._cache:
            self.headers._cache = {}

    def parse_all(self) -> None:
        """Parse every header sipfsm understands; raise :class:`ParseError` on the first bad one.

        After this returns, every typed property reads without error.
        """
        for key in dict.fromkeys(self.headers.keys()):
            if key in TYPED:
                self.headers.typed(key)

    def set_body(self, body: bytes | str, content_type: str | None = None) -> None:
        """Replace the body and keep Content-Length (and optionally Content-Type) in step."""
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        if content_type is not None:
            self.headers.set("Content-Type", content_type)
        self.headers.set("Content-Length", str(len(self.body)))

    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self._start_line()]
        lines.extend(self.headers._lines)
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __str__(self) -> str:
        return bytes(self).decode("utf-8", "replace")


class Request(Message):
    """A SIP request.  ``uri`` is parsed on first access; the start line was checked by
    :func:`parse` already."""

    __slots__ = ("_uri", "_uri_text", "method")

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes | str = b"",
    ) -> None:
        super().__init__(headers, body)
        if not is_token(method):
            raise ParseError(f"invalid method {method[:40]!r}")
        self.method = method
        if isinstance(uri, URI):
            self._uri: URI | None = uri
            self._uri_text = str(uri)
        else:
            self._uri = None
            self._uri_text = uri

    @property
    def uri(self) -> URI:
        """The Request-URI."""
        uri = self._uri
        if uri is None:
            uri = self._uri = parse_uri(self._uri_text, allow_headers=False)
        return uri

    @uri.setter
    def uri(self, value: URI) -> None:
        self._uri = value
        self._uri_text = str(value)

    def _start_line(self) -> str:
        return f"{self.method} {self._uri_text} {self.version}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (self.method, self._uri_text, self.headers, self.body) == (
            other.method, other._uri_text, other.headers, other.body)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        headers = self.headers
        keys = headers._keys
        call_id = _raw_value(headers._lines[keys.index("call-id")]) if "call-id" in keys else None
        return f"<Request {self.method} {self._uri_text} call-id={call_id}>"  # never raises


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason_phrase", "status_code")

    def __init__(
        self,
        status_code: int,
        reason_phrase: str = "",
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes | str = b"",
    ) -> None:
        super().__init__(headers, body)
        if not 100 <= status_code <= 699:
            raise ParseError(f"status code {status_code} is outside 100-699")
        if "\r" in reason_phrase or "\n" in reason_phrase:
            raise ParseError("reason phrase cannot contain CR or LF")
        self.status_code = status_code
        self.reason_phrase = reason_phrase

    @property
    def is_provisional(self) -> bool:
        """1xx."""
        return self.status_code < 200

    @property
    def is_success(self) -> bool:
        """2xx."""
        return 200 <= self.status_code < 300

    def _start_line(self) -> str:
        return f"{self.version} {self.status_code} {self.reason_phrase}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (self.status_code, self.reason_phrase, self.headers, self.body) == (
            other.status_code, other.reason_phrase, other.headers, other.body)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response {self.status_code} {self.reason_phrase}>"


# -- parsing ------------------------------------------------------------------------------------

MAX_MESSAGE_SIZE = 1 << 18
"""The default ``max_size`` of :func:`parse`: 256 KiB, far above any SIP message an edge relays."""
MAX_HEADERS = 256
"""The default ``max_headers`` of :func:`parse` (a real message has a few dozen lines)."""
MAX_LINE_LENGTH = 8192
"""The default ``max_line_length`` of :func:`parse`, in characters."""
_VIA_LINE_MATCH = VIA_LINE.fullmatch
_new = object.__new__
_COMMON_METHODS = frozenset({"ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY",
                             "OPTIONS", "PRACK", "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE",
                             "UPDATE"})
# Request-URIs already found valid; bounded, because they come from the network.
_VALID_SIP_RURIS: dict[str, None] = {}
_RURI_CACHE_LIMIT = 1024
_RURI_CACHE_LONGEST = 256  # a peer's long URIs must not pin megabytes
_CSEQ_MATCH = CSEQ.fullmatch


def parse(data: bytes | str, *, max_size: int = MAX_MESSAGE_SIZE, max_headers: int = MAX_HEADERS,
          max_line_length: int = MAX_LINE_LENGTH) -> Request | Response:
    """Parse one SIP message; raise :class:`ParseError`, and nothing else, if it is malformed.

    ``data`` is one whole message (one WebSocket frame, RFC 7118 §5.2).  A ``str`` is encoded as
    UTF-8 first, since ``Content-Length`` counts octets.

    The limits bound the work a peer can make us do: a message over ``max_size`` octets is
    refused with status 413; one with more than ``max_headers`` header lines (continuation lines
    count), or a start or header line longer than ``max_line_length`` characters (a folded
    line: once unfolded), with 400.
    """
    # This function is the hot path of the whole library (every frame goes through it), so it
    # is written flat: no helper calls on the common path, C-level string methods throughout.
    try:
        if type(data) is not bytes:
            if isinstance(data, str):
                data = data.encode("utf-8", "surrogateescape")
            elif isinstance(data, bytearray | memoryview):
                data = bytes(data)
            else:
                raise ParseError(f"expected bytes or str, not {type(data).__name__}")
        if len(data) > max_size:
            raise ParseError(f"message larger than {max_size} octets", status=413)
        if data[:1] == b"\r":  # RFC 3261 §7.5: ignore CRLFs before the start line
            data = data.lstrip(b"\r\n")
        end = data.find(b"\r\n\r\n")
        if end < 0:
            raise ParseError("no empty line ends the header section")
        head = data[:end].decode("utf-8")
        start, crlf, block = head.partition("\r\n")
        raw = block.split("\r\n") if crlf else []
        if len(raw) > max_headers:
            raise ParseError(f"more than {max_headers} header lines")
        if len(head) > max_line_length and (len(start) > max_line_length or any(
                len(line) > max_line_length for line in raw)):  # only long heads are scanned
            raise ParseError(f"a line longer than {max_line_length} characters")
        # Every CRLF went into the split; any CR or LF left is a bare one.  (Joining and
        # searching runs at memchr speed, several times faster than counting.)
        rest = "".join(raw)
        if "\r" in rest or "\n" in rest or "\r" in start or "\n" in start:
            raise ParseError("bare CR or LF in the header section")
        known = _NAME_CACHE.get
        # Known names are the common case.  Anything else (an unknown name, a name with trailing
        # white space, a continuation line, a line without a colon) takes the checked path.  A
        # line that is only a known name, without a colon, passes here and fails when read.
        keys: list[str] = [known(line.partition(":")[0]) for line in raw]  # type: ignore[misc]
        if None in keys:
            if any(line[:1] in (" ", "\t") for line in raw):
                raw = _unfold(raw)
                if len(head) > max_line_length and any(
                        len(line) > max_line_length for line in raw):  # as it would be written
                    raise ParseError(f"a folded line longer than {max_line_length} characters")
            keys = [_checked_key(line) for line in raw]

        body_start = end + 4
        try:
            value = raw[keys.index("content-length")].partition(":")[2].strip(" \t")
        except ValueError:
            body = data[body_start:]  # no Content-Length: the frame ends the body (RFC 7118)
        else:
            if not (value.isascii() and value.isdigit()):
                raise ParseError(f"invalid Content-Length {value[:40]!r}")
            length = int(value)
            if length > len(data) - body_start:
                raise ParseError("Content-Length exceeds the octets received")
            body = data[body_start : body_start + length]

        vias = keys.count("via")
        at = -1
        while vias:
            at = keys.index("via", at + 1)
            value = raw[at].partition(":")[2].strip(" \t")
            if _VIA_LINE_MATCH(value) is None:
                raise ParseError(f"malformed value {value[:60]!r}", header="Via")
            vias -= 1

        headers = _new(Headers)
        headers._keys = keys
        headers._lines = raw
        headers._cache = {}
        message: Request | Response
        method: str | None = None
        if start[:4] == "SIP/":
            message = _response(start, headers, body)
        else:
            message = _request(start, headers, body)
            method = message.method
        try:
            value = raw[keys.index("cseq")].partition(":")[2].strip(" \t")
        except ValueError:
            return message  # a request without CSeq is check_request's to answer (400)
        number, _, cseq_method = value.partition(" ")
        if not (number.isascii() and number.isdigit() and cseq_method in _COMMON_METHODS):
            cseq = _CSEQ_MATCH(value)  # the exact rule, for unusual spacing or methods
            if cseq is None:
                raise ParseError(f"malformed CSeq {value[:40]!r}", header="CSeq")
            number, cseq_method = cseq.groups()
        if len(number) > 9 and int(number) > 2**32 - 1:
            raise ParseError(f"{number[:40]} exceeds {2**32 - 1}", header="CSeq")
        if method is not None and cseq_method != method:
            raise ParseError("CSeq method differs from the request method", header="CSeq")
        return message
    except ParseError:
        raise
    except (UnicodeError, ValueError, TypeError, IndexError, OverflowError) as exc:
        # Every fault the grammar knows raises ParseError; anything else is malformed input
        # that slipped past a check, and must still come out as a ParseError.
        raise ParseError(f"malformed message ({type(exc).__name__})") from None


def _checked_key(line: str) -> str:
    name, colon, _ = line.partition(":")
    if not colon:
        raise ParseError(f"header line without a colon: {name[:40]!r}")
    return header_key(name)


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines to the line before them with a single SP (RFC 3261 §7.3.1)."""
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not out:
                raise ParseError("continuation line before the first header")
            out[-1] = out[-1].rstrip(" \t") + " " + line.lstrip(" \t")
        else:
            out.append(line)
    return out


def _version(text: str) -> None:
    """Accept ``SIP/2.0`` in any case (ABNF literals are case-insensitive); refuse the rest."""
    if text.upper() == _SIP_VERSION:
        return
    name, slash, number = text.partition("/")
    major, dot, minor = number.partition(".")
    if name.upper() == "SIP" and slash and dot and major.isdigit() and minor.isdigit():
        raise ParseError(f"SIP version {text[:20]!r} is not supported", status=505)
    raise ParseError(f"malformed SIP version {text[:20]!r}")


def _request(start: str, headers: Headers, body: bytes) -> Request:
    parts = start.split(" ")
    if len(parts) != 3:
        raise ParseError("the request line must be 'Method SP Request-URI SP SIP-Version'")
    method, uri_text, version = parts
    if method not in _COMMON_METHODS and not is_token(method):
        raise ParseError(f"invalid method {method[:40]!r}")
    if version != _SIP_VERSION:
        _version(version)
    request = _new(Request)
    request.headers = headers
    request.body = body
    request.method = method
    request._uri_text = uri_text
    request._uri = None
    if uri_text not in _VALID_SIP_RURIS:
        _check_request_uri(request, uri_text)
    return request


def _check_request_uri(request: Request, uri_text: str) -> None:
    """Validate the Request-URI; remember SIP URIs that passed, since a UA sees the same few
    (its own contact and AoR) over and over."""
    if uri_text[:4].lower() == "sip:" or uri_text[:5].lower() == "sips:":
        match = SIP_URI.fullmatch(uri_text)
        port = match.group("port") if match is not None else None
        if (match is None or match.group("headers") is not None or match.group("host")[0] == "["
                or (port is not None and int(port) > 65535)):
            # Errors get the precise message; IPv6 references get their exact check.
            request._uri = parse_uri(uri_text, allow_headers=False)
            return
        if len(_VALID_SIP_RURIS) < _RURI_CACHE_LIMIT and len(uri_text) <= _RURI_CACHE_LONGEST:
            _VALID_SIP_RURIS[uri_text] = None
    else:
        request._uri = parse_uri(uri_text, allow_headers=False)


def _response(start: str, headers: Headers, body: bytes) -> Response:
    version, _, rest = start.partition(" ")
    if version != _SIP_VERSION:
        _version(version)
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not "100" <= code <= "699":
        raise ParseError(f"invalid status code {code[:20]!r}")
    response = _new(Response)
    response.headers = headers
    response.body = body
    response.status_code = int(code)
    response.reason_phrase = reason
    return response
