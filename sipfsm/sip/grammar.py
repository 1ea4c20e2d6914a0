"""Character classes and small scanners of the RFC 3261 §25 grammar.

Everything here is a compiled regular expression or a function over ``(text, pos)`` that returns
what it read and the position after it.  The header parsers in :mod:`sipfsm.sip.headers` are built
from these pieces; keeping the ABNF in one place makes the strictness of the whole parser easy to
audit against RFC 3261 §25.1.

Header values reach these scanners already unfolded (every folded line break has become one SP,
as RFC 3261 §7.3.1 allows), so linear white space is just ``[ \\t]*`` here.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from ..errors import ParseError

__all__ = [
    "GEN_VALUE",
    "HOST",
    "IPV6_REFERENCE",
    "LWS",
    "QUOTED_STRING",
    "TOKEN",
    "escape_quoted",
    "is_token",
    "parse_params",
    "read_quoted",
    "skip_lws",
    "unescape",
    "unquote_string",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN = re.compile(f"[{TOKEN_CHARS}]+")
_TOKEN_FULL = re.compile(f"[{TOKEN_CHARS}]+")

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE; qdtext excludes DQUOTE and "\";
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F).  UTF8-NONASCII is allowed in qdtext.
QUOTED_STRING = re.compile(r'"(?:[^"\\\r\n]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"')
_QUOTED_PAIR = re.compile(r"\\([\x00-\x09\x0b\x0c\x0e-\x7f])")

LWS = re.compile(r"[ \t]*")

# IPv6reference = "[" IPv6address "]".  RFC 5118 §4.9 asks parsers to tolerate the three-colon
# form that RFC 3261's ABNF bug allows, so the inside is checked loosely here and exactly by
# :func:`is_ipv6_reference` where it matters.
IPV6_REFERENCE = r"\[[0-9A-Fa-f:.]+\]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
HOSTNAME = rf"(?:{_LABEL}\.)*{_LABEL}\.?"
HOST = rf"(?:{IPV6_REFERENCE}|{HOSTNAME})"
_HOST_FULL = re.compile(HOST)

# gen-value = token / host / quoted-string
GEN_VALUE = rf"(?:[{TOKEN_CHARS}]+|{IPV6_REFERENCE}|{QUOTED_STRING.pattern})"
_PARAM = re.compile(rf"[ \t]*;[ \t]*([{TOKEN_CHARS}]+)(?:[ \t]*=[ \t]*({GEN_VALUE}))?")


def is_token(text: str) -> bool:
    """Whether ``text`` is a non-empty RFC 3261 token."""
    return _TOKEN_FULL.fullmatch(text) is not None


def is_host(text: str) -> bool:
    """Whether ``text`` is a host: hostname, IPv4 address or IPv6 reference."""
    return _HOST_FULL.fullmatch(text) is not None


def skip_lws(text: str, pos: int) -> int:
    """The position of the first character at or after ``pos`` that is not SP or HTAB."""
    n = len(text)
    while pos < n and text[pos] in " \t":
        pos += 1
    return pos


def read_quoted(text: str, pos: int, header: str | None = None) -> tuple[str, int]:
    """Read the quoted-string at ``pos``; return its unescaped content and the end position."""
    match = QUOTED_STRING.match(text, pos)
    if match is None:
        raise ParseError("unterminated or malformed quoted-string", header=header)
    return unquote_string(match.group()), match.end()


def unquote_string(quoted: str) -> str:
    """The content of a quoted-string, quotes removed and quoted-pairs resolved."""
    inner = quoted[1:-1]
    return _QUOTED_PAIR.sub(r"\1", inner) if "\\" in inner else inner


def escape_quoted(text: str) -> str:
    """``text`` as a quoted-string: DQUOTE and backslash escaped, CR/LF refused."""
    if "\r" in text or "\n" in text:
        raise ParseError("a quoted-string cannot hold CR or LF")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unescape(text: str) -> str:
    """Resolve %HEX escapes (RFC 3261 §19.1.2), once; bytes that are not UTF-8 survive as
    surrogates so that the value still round-trips."""
    return unquote(text, errors="surrogateescape") if "%" in text else text


def parse_params(
    text: str, pos: int, header: str | None = None, stop: str = ""
) -> tuple[dict[str, str | None], int]:
    """Read ``*( SEMI generic-param )`` from ``pos``.

    Names are lower-cased (they compare case-insensitively); quoted values keep their quotes so
    that serialisation gives back what was received.  Reading stops at the first character that
    does not start another parameter; the caller decides whether that is legal.
    """
    params: dict[str, str | None] = {}
    n = len(text)
    while True:
        match = _PARAM.match(text, pos)
        if match is None:
            probe = skip_lws(text, pos)
            if probe < n and text[probe] == ";":
                raise ParseError("malformed parameter", header=header)
            return params, pos
        params[match.group(1).lower()] = match.group(2)
        pos = match.end()
