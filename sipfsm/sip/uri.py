"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and their comparison (RFC 3261 §19.1.4).

A :class:`URI` is immutable.  It keeps the text it was parsed from, so a received URI is written
out exactly as it came; a URI built in code is written with the escaping the grammar requires.
Components are stored unescaped: ``sip:%75ser@example.com`` has ``user == "user"``.  Equality
follows RFC 3261 §19.1.4, not string identity, and ``hash`` agrees with it.

Any other scheme (``http:``, ``urn:``, ``isbn:``…) parses as an opaque absolute URI: ``scheme``
and ``opaque`` are set and the SIP components are empty.  Such URIs are legal in many headers,
and a UA answers 416 when one is the Request-URI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from ..errors import ParseError
from .grammar import IPV6_REFERENCE, TOKEN_CHARS, unescape

__all__ = ["URI", "parse_uri"]

_ESC = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER = rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESC})+"
_PASSWORD = rf"(?:[{_UNRESERVED}&=+$,]|{_ESC})*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_HOST = rf"{IPV6_REFERENCE}|(?:{_LABEL}\.)*{_LABEL}\.?"
_PARAMCHAR = rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESC})"
_HNVCHAR = rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})"
_PARAMS = rf"(?:;{_PARAMCHAR}+(?:={_PARAMCHAR}+)?)*"
_HEADERS = rf"{_HNVCHAR}+={_HNVCHAR}*(?:&{_HNVCHAR}+={_HNVCHAR}*)*"

SIP_URI = re.compile(
    rf"(?P<scheme>[Ss][Ii][Pp][Ss]?):"
    rf"(?:(?P<user>{_USER})(?::(?P<password>{_PASSWORD}))?@)?"
    rf"(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?"
    rf"(?P<params>{_PARAMS})(?:\?(?P<headers>{_HEADERS}))?"
)
# tel URIs (RFC 3966): a global (+digits) or local number with visual separators, then params.
_PHONEDIGIT = r"[0-9A-Fa-f*#\-.()]"
TEL_URI = re.compile(
    rf"(?P<scheme>[Tt][Ee][Ll]):(?P<number>\+?{_PHONEDIGIT}+)"
    rf"(?P<params>(?:;[{TOKEN_CHARS}]+(?:=(?:[{_UNRESERVED}\[\]/:&+$]|{_ESC})+)?)*)"
)
# absoluteURI = scheme ":" ( hier-part / opaque-part ), characters from uric.
ABSOLUTE_URI = re.compile(
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+\-.]*):(?P<opaque>(?:[{_UNRESERVED};/?:@&=+$,]|{_ESC})+)"
)

# Characters that may stand unescaped in each component when we write a URI ourselves.
_SAFE_USER = "-_.!~*'()&=+$,;?/"
_SAFE_PASSWORD = "-_.!~*'()&=+$,"
_SAFE_PARAM = "-_.!~*'()[]/:&+$"
_SAFE_HEADER = "-_.!~*'()[]/?:+$"
# RFC 3261 §19.1.4: these parameters must match even when only one URI carries them (a URI
# omitting a component with a default does not match one stating the default explicitly).
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")
_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_TEL_SEPARATORS = str.maketrans("", "", "-.()")


def _split_params(raw: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in raw.split(";")[1:]:
        name, eq, value = item.partition("=")
        params[unescape(name).lower()] = unescape(value) if eq else None
    return params


def _split_headers(raw: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in raw.split("&"):
        name, _, value = item.partition("=")
        headers[unescape(name)] = unescape(value)
    return headers


def _esc(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


class URI:
    """A parsed or constructed URI.  Build one with :func:`parse_uri` or the constructor.

    ``params`` maps lower-cased parameter names to unescaped values (``None`` for a parameter
    without a value, such as ``lr``); ``headers`` maps header names to values.
    """

    __slots__ = ("_key", "_text", "headers", "host", "opaque", "params", "password", "port",
                 "scheme", "user")

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: Mapping[str, str | None]
    headers: Mapping[str, str]
    opaque: str | None
    _text: str | None
    _key: tuple[Any, ...] | None

    def __init__(
        self,
        scheme: str = "sip",
        user: str | None = None,
        host: str = "",
        port: int | None = None,
        params: Mapping[str, str | None] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        password: str | None = None,
        opaque: str | None = None,
        _text: str | None = None,
    ) -> None:
        scheme = scheme.lower()
        if scheme in ("sip", "sips") and not host:
            raise ParseError(f"a {scheme} URI needs a host")
        if port is not None and not 0 <= port <= 65535:
            raise ParseError(f"port {port} is out of range")
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "password", password)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        # Most URIs have no headers and many no parameters: share one empty mapping for them.
        object.__setattr__(self, "params", dict(params) if params else _EMPTY)
        object.__setattr__(self, "headers", dict(headers) if headers else _EMPTY)
        object.__setattr__(self, "opaque", opaque)
        object.__setattr__(self, "_text", _text)
        object.__setattr__(self, "_key", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("URI is immutable; use URI.replace()")

    # -- derived values ---------------------------------------------------------------------

    @property
    def is_sip(self) -> bool:
        """Whether this is a ``sip:`` or ``sips:`` URI."""
        return self.scheme in ("sip", "sips")

    @property
    def hostport(self) -> str:
        """``host[:port]`` as written in a Via sent-by or a Host-like position."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """The address-of-record form ``scheme:user@host`` (no port, parameters or headers)."""
        if not self.is_sip:
            return str(self.replace(params={}))
        user = f"{_esc(self.user, _SAFE_USER)}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or ``None``."""
        value = self.params.get("transport")
        return value.lower() if value else None

    def replace(self, **changes: Any) -> URI:
        """A copy with the given components changed (``user=None`` removes the user part)."""
        fields: dict[str, Any] = {
            "scheme": self.scheme, "user": self.user, "host": self.host, "port": self.port,
            "params": self.params, "headers": self.headers, "password": self.password,
            "opaque": self.opaque,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"unknown URI component(s): {', '.join(sorted(unknown))}")
        fields.update(changes)
        return URI(**fields)

    # -- text -------------------------------------------------------------------------------

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._render()
            object.__setattr__(self, "_text", text)
        return text

    def _render(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            out = f"tel:{self.user or ''}"
        else:
            out = f"{self.scheme}:"
            if self.user is not None:
                out += _esc(self.user, _SAFE_USER)
                if self.password is not None:
                    out += ":" + _esc(self.password, _SAFE_PASSWORD)
                out += "@"
            out += self.hostport
        for name, value in self.params.items():
            out += ";" + _esc(name, _SAFE_PARAM)
            if value is not None:
                out += "=" + _esc(value, _SAFE_PARAM)
        if self.headers:
            out += "?" + "&".join(
                f"{_esc(k, _SAFE_HEADER)}={_esc(v, _SAFE_HEADER)}" for k, v in self.headers.items()
            )
        return out

    def __repr__(self) -> str:
        shown = self if self.password is None else self.replace(password="***")
        return f"URI({str(shown)!r})"

    # -- RFC 3261 §19.1.4 comparison ----------------------------------------------------------

    def _comparison_key(self) -> tuple[Any, ...]:
        key = self._key
        if key is None:
            if self.opaque is not None:
                key = (self.scheme, self.opaque)
            elif self.scheme == "tel":
                number = (self.user or "").translate(_TEL_SEPARATORS).lower()
                key = ("tel", number, frozenset((k, (v or "").lower())
                                                for k, v in self.params.items()))
            else:
                key = (self.scheme, self.user, self.password, self.host.lower(), self.port)
            object.__setattr__(self, "_key", key)
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, URI):
            return NotImplemented
        if self._comparison_key() != other._comparison_key():
            return False
        if not self.is_sip:
            return True
        mine, theirs = self.params, other.params
        for name in mine.keys() | theirs.keys():
            if name in mine and name in theirs:
                a, b = mine[name], theirs[name]
                if (a or "").lower() != (b or "").lower() or (a is None) != (b is None):
                    return False
            elif name in _MUST_MATCH:
                return False
        return {k.lower(): v for k, v in self.headers.items()} == {
            k.lower(): v for k, v in other.headers.items()
        }

    def __hash__(self) -> int:
        # Only what must be equal for equal URIs: parameters may differ between equal URIs.
        return hash(self._comparison_key())

    def __reduce__(self) -> tuple[Any, ...]:
        return (parse_uri, (str(self),))


def parse_uri(text: str, *, allow_headers: bool = True) -> URI:
    """Parse a SIP, SIPS, tel or other absolute URI; raise :class:`ParseError` if it is not one.

    ``allow_headers=False`` refuses ``?header=value`` parts, which RFC 3261 §19.1.1 forbids in a
    Request-URI.
    """
    if not isinstance(text, str):
        raise ParseError("a URI must be text")
    scheme = text[:5].lower()
    if scheme.startswith(("sip:", "sips:")):
        match = SIP_URI.fullmatch(text)
        if match is None:
            raise ParseError(f"malformed SIP URI {text[:80]!r}")
        return _from_sip_match(match, text, allow_headers)
    if scheme.startswith("tel:"):
        tel = TEL_URI.fullmatch(text)
        if tel is None:
            raise ParseError(f"malformed tel URI {text[:80]!r}")
        return URI("tel", tel.group("number"), "", None, _split_params(tel.group("params")),
                   _text=text)
    other = ABSOLUTE_URI.fullmatch(text)
    if other is None:
        raise ParseError(f"malformed URI {text[:80]!r}")
    return URI(other.group("scheme"), opaque=other.group("opaque"), _text=text)


def _from_sip_match(match: re.Match[str], text: str, allow_headers: bool) -> URI:
    raw_headers = match.group("headers")
    if raw_headers is not None and not allow_headers:
        raise ParseError("a Request-URI cannot carry headers")
    host = match.group("host")
    if host.startswith("[") and not _is_ipv6(host[1:-1]):
        raise ParseError(f"malformed IPv6 reference {host[:80]!r}")
    port = match.group("port")
    user = match.group("user")
    password = match.group("password")
    raw_params = match.group("params")
    return URI(
        match.group("scheme"),
        unescape(user) if user is not None else None,
        host,
        int(port) if port is not None else None,
        _split_params(raw_params) if raw_params else None,
        _split_headers(raw_headers) if raw_headers else None,
        password=unescape(password) if password is not None else None,
        _text=text,
    )


def _is_ipv6(text: str) -> bool:
    """IPv6address per RFC 4291, also tolerating the RFC 3261 ABNF's ``:::`` before a trailing
    IPv4 part (RFC 5118 §4.9)."""
    if text.count("::") > 1:
        return False
    pieces = text.split(":")
    if "." in pieces[-1]:
        quads = pieces[-1].split(".")
        if len(quads) != 4 or not all(q.isascii() and q.isdigit() and len(q) <= 3 and int(q) < 256
                                      for q in quads):
            return False
        pieces = [*pieces[:-1], "0", "0"]
    compressed = "" in pieces[1:-1] or text.startswith("::") or text.endswith("::")
    groups = [p for p in pieces if p]
    if len(groups) > 8 or (not compressed and len(pieces) != 8):
        return False
    return all(len(g) <= 4 for g in groups)
