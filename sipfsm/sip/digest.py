"""HTTP Digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Three layers, none of which does I/O:

* header values: :func:`parse_challenge` and :class:`Challenge` for WWW-Authenticate and
  Proxy-Authenticate (RFC 3261 §20.44, §20.27), :func:`parse_credentials` and
  :class:`Credentials` for Authorization and Proxy-Authorization (RFC 3261 §20.7, §20.28);
* arithmetic: :func:`ha1` and :func:`compute_response` (RFC 7616 §3.4.1–§3.4.3);
* roles: :class:`DigestAuthenticator` answers challenges for a UAC; :func:`make_challenge` and
  :func:`verify` let a test registrar issue and check them.

A password or an HA1 is a secret: no exception, ``repr`` or ``str`` made here contains one.  The
response hash travels in clear, so it is not one.

Header values reach this module unfolded (RFC 3261 §7.3.1), as in :mod:`sipfsm.sip.grammar`, so
linear white space is just SP and HTAB.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Final

from ..errors import ConfigurationError, ParseError, SipfsmError

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "Credentials",
    "DigestAuthenticator",
    "DigestError",
    "choose_challenge",
    "compute_response",
    "ha1",
    "make_challenge",
    "parse_challenge",
    "parse_credentials",
    "split_auth",
    "verify",
]


class DigestError(SipfsmError):
    """A Digest computation cannot be made: unsupported algorithm or qop, missing cnonce, a
    malformed field in a :class:`Challenge` or :class:`Credentials` built in code.

    The message may name a parameter and its public value; never a password or an HA1.
    """


# --- Grammar: RFC 3261 §25.1 (challenge, credentials, auth-param) -------------------------------

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
# quoted-string: qdtext is all but DQUOTE, "\" and CR/LF; quoted-pair = "\" %x00-09/0B-0C/0E-7F.
_QUOTED = r'"(?:[^"\\\r\n]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
_TOKEN_RE = re.compile(_TOKEN)
_SCHEME_RE = re.compile(rf"[ \t]*({_TOKEN})(?:[ \t]+|\Z)")
_PARAM_RE = re.compile(rf"({_TOKEN})[ \t]*=[ \t]*({_TOKEN}|{_QUOTED})[ \t]*")
_COMMA_RE = re.compile(r",[ \t]*")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
# qdtext excludes the controls (HTAB aside), so a sender escapes them; CR and LF cannot travel.
_MUST_ESCAPE_RE = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")


def _quote(value: str) -> str:
    return '"' + _MUST_ESCAPE_RE.sub(lambda m: "\\" + m.group(), value) + '"'


def _token_or_quote(value: str) -> str:
    # A value that is not a token (a quoted algorithm from a sloppy peer, an unknown parameter)
    # is quoted even where RFC 7616 wants a token: surviving the round trip matters more.
    return value if _TOKEN_RE.fullmatch(value) else _quote(value)


# RFC 7616 §3.3, §3.4: these are quoted-strings, and so is a challenge's qop list; algorithm,
# stale, userhash, nc and the credentials' single qop are tokens "for historical reasons".
_QUOTED_NAMES: Final = frozenset(
    {"realm", "domain", "nonce", "opaque", "username", "uri", "response", "cnonce"}
)


def _render(obj: Challenge | Credentials) -> str:
    """The header value: the fields in declaration order (absent ones left out), then params."""
    parts = []
    for field in fields(obj):
        value = getattr(obj, field.name)
        if field.name in ("scheme", "params") or value is None or value is False or value == ():
            continue
        if isinstance(value, bool):
            parts.append(f"{field.name}=true")
        elif isinstance(value, tuple):  # a challenge's qop options
            parts.append(f"{field.name}={_quote(','.join(value))}")
        elif field.name in _QUOTED_NAMES:
            parts.append(f"{field.name}={_quote(value)}")
        else:
            parts.append(f"{field.name}={_token_or_quote(value)}")
    parts += (f"{name}={_token_or_quote(value)}" for name, value in obj.params)
    return f"{obj.scheme} {', '.join(parts)}" if parts else obj.scheme


def split_auth(value: str, header: str = "Authorization") -> tuple[str, dict[str, str]]:
    """Read ``auth-scheme LWS auth-param *(COMMA auth-param)``; names lower-cased, values
    unquoted.  Zero parameters are allowed so that ``Negotiate``-style schemes still parse."""
    match = _SCHEME_RE.match(value)
    if match is None:
        raise ParseError("expected an auth-scheme", header=header)
    scheme, pos = match.group(1), match.end()
    params: dict[str, str] = {}
    while pos < len(value):
        if params:
            comma = _COMMA_RE.match(value, pos)
            if comma is None:
                raise ParseError(f"expected ',' at offset {pos}", header=header)
            pos = comma.end()
        param = _PARAM_RE.match(value, pos)
        if param is None:
            raise ParseError(f"malformed auth-param at offset {pos}", header=header)
        name, raw = param.group(1).lower(), param.group(2)
        # RFC 7235 §2.1: names compare case-insensitively and each occurs at most once.
        if name in params:
            raise ParseError(f"duplicate parameter {name!r}", header=header)
        params[name] = _QUOTED_PAIR_RE.sub(r"\1", raw[1:-1]) if raw[0] == '"' else raw
        pos = param.end()
    return scheme, params


def _validate(obj: Challenge | Credentials) -> None:
    """Refuse what ``str()`` could not write back as it is, or what would inject a header."""
    known = {f.name for f in fields(obj)} - {"scheme", "params"}
    texts = [v for v in (getattr(obj, name) for name in known) if isinstance(v, str)]
    if not _TOKEN_RE.fullmatch(obj.scheme):
        raise DigestError("the auth-scheme must be a token")
    if any("\r" in text or "\n" in text for text in (*texts, *(v for _, v in obj.params))):
        raise DigestError("a parameter value contains CR or LF")
    extra = [name for name, _ in obj.params]
    if len(set(extra)) != len(extra) or not all(
        _TOKEN_RE.fullmatch(name) and name == name.lower() and name not in known for name in extra
    ):
        raise DigestError("extra parameter names must be distinct, new, lower-case tokens")


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """One challenge of a WWW-Authenticate or Proxy-Authenticate header (RFC 3261 §20.44,
    §25.1; RFC 7616 §3.3).

    Absent parameters are ``None``; an absent ``qop`` is ``()`` and an absent ``stale`` is
    False (RFC 7616 §3.3: anything but a case-insensitive "true" means false).  ``algorithm``
    keeps the server's spelling because credentials echo it; ``None`` means MD5.  ``params``
    holds the parameters this module does not interpret (``charset``, ``userhash``…), names
    lower-cased, in received order.  Other schemes parse as well, so a caller can skip them.
    """

    scheme: str = "Digest"
    realm: str | None = None
    nonce: str | None = None
    opaque: str | None = None
    algorithm: str | None = None
    qop: tuple[str, ...] = ()
    stale: bool = False
    domain: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _validate(self)
        if not all(_TOKEN_RE.fullmatch(option) for option in self.qop):
            raise DigestError("every qop option must be a token")
        if self.is_digest and (self.realm is None or self.nonce is None):
            raise DigestError("a Digest challenge needs realm and nonce")

    @property
    def is_digest(self) -> bool:
        """Whether the scheme is Digest (schemes compare case-insensitively, RFC 7235 §2.1)."""
        return self.scheme.lower() == "digest"

    def __str__(self) -> str:
        return _render(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """The Digest answer of an Authorization or Proxy-Authorization header (RFC 3261 §20.7,
    §25.1; RFC 7616 §3.4).

    ``nc`` is kept as the eight hex digits received, because the response hash covers that exact
    text.  ``params`` holds the uninterpreted parameters, as in :class:`Challenge`.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    scheme: str = "Digest"
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    userhash: bool = False
    params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _validate(self)
        if self.scheme.lower() != "digest":
            raise DigestError(f"credentials scheme {self.scheme!r} is not Digest")
        if self.nc is not None and not _NC_RE.fullmatch(self.nc):
            raise DigestError("nc must be eight hex digits (RFC 3261 §25.1 nc-value)")

    def __str__(self) -> str:
        return _render(self)


# The parameters each class keeps, unchanged, in a ``str`` field of the same name.
_CHALLENGE_TEXTS: Final = ("realm", "nonce", "opaque", "algorithm", "domain")
_CREDENTIALS_REQUIRED: Final = ("username", "realm", "nonce", "uri", "response")
_CREDENTIALS_TEXTS: Final = (*_CREDENTIALS_REQUIRED, "algorithm", "cnonce", "opaque", "qop", "nc")


def parse_challenge(value: str, *, header: str = "WWW-Authenticate") -> Challenge:
    """Parse a WWW-Authenticate or Proxy-Authenticate value; raise :class:`ParseError` on any
    grammar fault, and nothing else, whatever ``value`` holds."""
    scheme, params = split_auth(value, header)
    texts = {name: params.pop(name) for name in _CHALLENGE_TEXTS if name in params}
    options = [option.strip(" \t") for option in params.pop("qop", "").split(",")]
    stale = params.pop("stale", "").lower() == "true"
    try:
        return Challenge(
            scheme=scheme,
            qop=tuple(option for option in options if option),
            stale=stale,
            params=tuple(params.items()),
            **texts,
        )
    except DigestError as exc:
        raise ParseError(str(exc), header=header) from None


def parse_credentials(value: str, *, header: str = "Authorization") -> Credentials:
    """Parse an Authorization or Proxy-Authorization value carrying Digest credentials; raise
    :class:`ParseError` for another scheme, a missing mandatory parameter or a grammar fault."""
    scheme, params = split_auth(value, header)
    missing = [name for name in _CREDENTIALS_REQUIRED if name not in params]
    if missing:
        raise ParseError(f"missing {', '.join(missing)}", header=header)
    texts = {name: params.pop(name) for name in _CREDENTIALS_TEXTS if name in params}
    userhash = params.pop("userhash", "").lower() == "true"
    try:
        return Credentials(scheme=scheme, userhash=userhash, params=tuple(params.items()), **texts)
    except DigestError as exc:
        raise ParseError(str(exc), header=header) from None


# --- Arithmetic: RFC 7616 §3.4.1–§3.4.3 (RFC 2617 §3.2.2) ---------------------------------------


def _hexdigest(name: str, data: bytes) -> str:
    return hashlib.new(name, data).hexdigest()


def _hashers() -> dict[str, Callable[[bytes], str]]:
    table: dict[str, Callable[[bytes], str]] = {}
    for label, name in (("SHA-512-256", "sha512_256"), ("SHA-256", "sha256"), ("MD5", "md5")):
        try:
            hashlib.new(name, b"")
        except ValueError:  # not in this OpenSSL build, or refused in FIPS mode
            continue
        table[label] = partial(_hexdigest, name)
    return table


_HASHERS: Final = _hashers()
#: The algorithm names this build can compute, strongest first (RFC 8760 §2 preference order).
ALGORITHMS: Final = tuple(f"{base}{sess}" for base in _HASHERS for sess in ("", "-sess"))
_SUPPORTED: Final = frozenset(name.upper() for name in ALGORITHMS)


def _hash_for(algorithm: str | None) -> tuple[Callable[[bytes], str], bool]:
    """The hash H and whether the algorithm is a ``-sess`` variant; absent means MD5
    (RFC 7616 §3.3).  Names compare case-insensitively."""
    name = (algorithm or "MD5").upper()
    session = name.endswith("-SESS")
    hasher = _HASHERS.get(name.removesuffix("-SESS"))
    if hasher is None:
        raise DigestError(f"unsupported algorithm {algorithm!r}")
    return hasher, session


def _b(text: str) -> bytes:
    # RFC 7616 §3.4.5 hashes UTF-8; surrogateescape gives back the raw bytes of a value that was
    # decoded that way.  The exception is replaced because its .object may hold the password.
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise DigestError("a value cannot be encoded as UTF-8") from None


def ha1(
    *,
    username: str,
    realm: str,
    password: str | None = None,
    precomputed: str | None = None,
    algorithm: str | None = None,
    nonce: str = "",
    cnonce: str = "",
) -> str:
    """H(A1) of RFC 7616 §3.4.2: ``H(username:realm:password)``, and for a ``-sess`` algorithm
    ``H(H(username:realm:password):nonce:cnonce)``.

    Give exactly one of ``password`` and ``precomputed``, the stored ``H(username:realm:password)``
    a registrar keeps instead of the password (username and realm are then unused).
    """
    hasher, session = _hash_for(algorithm)
    if (password is None) == (precomputed is None):
        raise ConfigurationError("password", None, "give exactly one of password and precomputed")
    if precomputed is None:
        base = hasher(_b(f"{username}:{realm}:{password}"))
    elif len(precomputed) != len(hasher(b"")):
        # An MD5 HA1 offered to a SHA-256 challenge can only give a wrong answer; say why.
        raise DigestError(f"the precomputed HA1 is not an {algorithm or 'MD5'} hash")
    else:
        base = precomputed.lower()
    if not session:
        return base
    if not cnonce:
        raise DigestError(f"algorithm {algorithm!r} needs a cnonce")
    return hasher(_b(f"{base}:{nonce}:{cnonce}"))


def compute_response(
    *,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str | None = None,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 from an :func:`ha1` result.

    A2 is ``method:uri``, or ``method:uri:H(body)`` for ``qop=auth-int`` (RFC 7616 §3.4.3;
    ``body`` is the raw message body, RFC 3261 §22.4).  Without qop the response is the RFC 2069
    form ``H(HA1:nonce:HA2)``; with one it is ``H(HA1:nonce:nc:cnonce:qop:HA2)``.
    """
    hasher, _ = _hash_for(algorithm)
    kind = None if qop is None else qop.lower()
    if kind == "auth-int":
        a2 = f"{method}:{uri}:{hasher(body)}"
    elif kind in (None, "auth"):
        a2 = f"{method}:{uri}"
    else:
        raise DigestError(f"unsupported qop {qop!r}")
    ha2 = hasher(_b(a2))
    if qop is None:
        return hasher(_b(f"{ha1}:{nonce}:{ha2}"))
    if nc is None or cnonce is None:
        raise DigestError(f"qop={qop} needs nc and cnonce")
    return hasher(_b(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


def _response_for(
    credentials: Credentials,
    method: str,
    password: str | None,
    precomputed: str | None,
    body: bytes,
) -> str:
    """The response ``credentials`` must carry, from every field but ``response`` itself."""
    key = ha1(
        username=credentials.username,
        realm=credentials.realm,
        password=password,
        precomputed=precomputed,
        algorithm=credentials.algorithm,
        nonce=credentials.nonce,
        cnonce=credentials.cnonce or "",
    )
    return compute_response(
        ha1=key,
        nonce=credentials.nonce,
        method=method,
        uri=credentials.uri,
        algorithm=credentials.algorithm,
        qop=credentials.qop,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
        body=body,
    )


# --- Roles: UAC (RFC 3261 §22.2, §22.3) and a test registrar (RFC 3261 §22.4) -------------------


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The first Digest challenge whose algorithm this build supports, or None.

    RFC 8760 §2: a server lists its challenges in order of preference and a UAC answers the
    topmost one it supports.
    """
    for challenge in challenges:
        if challenge.is_digest and (challenge.algorithm or "MD5").upper() in _SUPPORTED:
            return challenge
    return None


def _choose_qop(offered: tuple[str, ...]) -> str | None:
    if not offered:
        return None  # RFC 2069 compatibility: the server asked for no qop
    lowered = {option.lower() for option in offered}
    # auth-int binds the credentials to the exact body bytes, which breaks as soon as anything on
    # the path rewrites the body, so it is chosen only when the server offers nothing else.
    for choice in ("auth", "auth-int"):
        if choice in lowered:
            return choice
    raise DigestError(f"no supported qop among {offered!r}")


class DigestAuthenticator:
    """Answers Digest challenges for one account (RFC 3261 §22.2, §22.3; RFC 7616 §3.4).

    Give the password, or the HA1 (``H(username:realm:password)``) that provisioning handed out
    instead; an HA1 only fits the realm and hash it was made with.  The authenticator counts,
    per nonce, the requests it signed with that nonce, so ``nc`` runs 00000001, 00000002, …;
    a nonce it has not seen (e.g. after ``stale=true``) starts again at 00000001.
    """

    # A UA answers a registrar and one or two proxies at once; keeping a few nonces lets it go
    # back and forth between them without ever reusing an nc, and bounds the memory.
    _MAX_NONCES: Final = 16

    __slots__ = ("_counts", "_ha1", "_password", "_username")

    def __init__(
        self, username: str, password: str | None = None, *, ha1: str | None = None
    ) -> None:
        if (password is None) == (ha1 is None):
            raise ConfigurationError("password", None, "give exactly one of password and ha1")
        self._username = username
        self._password = password
        self._ha1 = ha1
        self._counts: dict[str, int] = {}

    @property
    def username(self) -> str:
        """The username sent in the credentials."""
        return self._username

    def __repr__(self) -> str:
        secret = "password" if self._password is not None else "ha1"
        return f"DigestAuthenticator(username={self._username!r}, {secret}=<hidden>)"

    def _next_nc(self, nonce: str) -> str:
        count = self._counts.pop(nonce, 0) + 1
        self._counts[nonce] = count  # re-inserted last: the dict runs least recently used first
        if len(self._counts) > self._MAX_NONCES:
            del self._counts[next(iter(self._counts))]
        return f"{count:08x}"

    def authorize(
        self, challenge: Challenge, method: str, uri: str, body: bytes = b""
    ) -> Credentials:
        """Credentials answering ``challenge`` for a ``method`` request to ``uri`` (the
        Request-URI, RFC 3261 §22.4) whose body is ``body``.

        Raises :class:`DigestError` for another scheme, an unsupported algorithm or no usable
        qop; the nonce count only advances when credentials are actually produced.
        """
        if not challenge.is_digest or challenge.realm is None or challenge.nonce is None:
            raise DigestError(f"cannot answer a {challenge.scheme} challenge")
        _, session = _hash_for(challenge.algorithm)
        qop = _choose_qop(challenge.qop)
        # 128 bits from the OS CSPRNG; RFC 7616 §3.4 wants the cnonce unpredictable.
        cnonce = secrets.token_hex(16) if qop is not None or session else None
        nc = self._next_nc(challenge.nonce) if qop is not None else None
        unsigned = Credentials(
            username=self._username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response="",
            algorithm=challenge.algorithm,
            cnonce=cnonce,
            opaque=challenge.opaque,
            qop=qop,
            nc=nc,
        )
        response = _response_for(unsigned, method, self._password, self._ha1, body)
        return replace(unsigned, response=response)


def make_challenge(
    realm: str,
    *,
    algorithm: str = "MD5",
    qop: Sequence[str] = ("auth",),
    stale: bool = False,
    opaque: str | None = None,
) -> Challenge:
    """A fresh Digest challenge with a random 192-bit nonce (RFC 7616 §3.3).

    Raises :class:`DigestError` for an algorithm or qop that :func:`verify` could not check.
    """
    _hash_for(algorithm)
    if any(option.lower() not in ("auth", "auth-int") for option in qop):
        raise DigestError(f"unsupported qop among {tuple(qop)!r}")
    return Challenge(
        realm=realm,
        nonce=secrets.token_urlsafe(24),
        opaque=opaque,
        algorithm=algorithm,
        qop=tuple(qop),
        stale=stale,
    )


def verify(
    credentials: Credentials,
    method: str,
    *,
    password: str | None = None,
    ha1: str | None = None,
    body: bytes = b"",
) -> bool:
    """Whether ``credentials`` carry the right response for a ``method`` request with ``body``.

    Give exactly one of ``password`` and ``ha1`` (the stored ``H(username:realm:password)``).
    Only the hash is checked, in constant time: the caller still checks that the nonce is one it
    issued and is fresh, that realm, algorithm and qop are what it offered, that ``uri`` is the
    Request-URI and that ``nc`` grows (RFC 3261 §22.4, RFC 7616 §3.4).  Anything that cannot be
    computed (unknown algorithm or qop, qop without nc or cnonce) is a mismatch, not an error,
    because these fields come from the network.
    """
    if (password is None) == (ha1 is None):
        raise ConfigurationError("password", None, "give exactly one of password and ha1")
    try:
        expected = _response_for(credentials, method, password, ha1, body)
    except DigestError:
        return False
    received = credentials.response.encode("utf-8", "replace").lower()
    return hmac.compare_digest(expected.encode(), received)
