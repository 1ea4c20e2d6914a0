"""UA configuration: every SIP.js 0.10 ``SIP.UA`` parameter, in snake_case, validated strictly.

Theory of operation
-------------------
:class:`UAConfig` is an immutable record of normalised values.  Its constructor takes the
parameters as keywords (``UAConfig(uri="alice@example.com", ws_servers="wss://edge")``), runs
every value through the checker of its row in :data:`_PARAMETERS` and stores what the checker
returns: a :class:`~sipfsm.sip.URI` for ``uri``, a tuple of :class:`WsServer` for
``ws_servers``, enums for ``dtmf_type``/``rel100``/``replaces``…  :meth:`UAConfig.from_sipjs`
takes a SIP.js configuration object with its camelCase keys instead.

The rules are SIP.js 0.10's (``UA.prototype.loadConfig``) with the sipfsm decisions on top:

* a wrong type, range or enum value raises :class:`~sipfsm.ConfigurationError` naming the
  parameter; SIP.js silently coerced ``rel100``, ``replaces``, ``dtmfType`` and ``log`` — we
  do not, and numbers must be real ``int`` values (``"600"``, ``1.5`` and ``True`` are refused);
* an unknown key raises too, with a close-match suggestion (SIP.js ignored it);
* ``None`` means "use the default"; nothing else does (SIP.js also skipped ``""`` and ``[]``);
* the caller's objects are never mutated (SIP.js wrote ``sip_uri``/``status`` into them);
* the password never appears in a message, a ``repr`` or :meth:`UAConfig.describe`.

Derived defaults (``authorization_user``, ``registrar_server``) are computed from ``uri`` once,
at construction.  ``dataclasses.replace`` re-validates, but passes the old derived values on:
replace those too when changing ``uri``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, TypedDict, TypeVar, Unpack, cast

from .errors import ConfigurationError, ParseError
from .sip.grammar import HOST, is_host
from .sip.message import MAX_HEADERS, MAX_LINE_LENGTH, MAX_MESSAGE_SIZE
from .sip.uri import URI, parse_uri

__all__ = [
    "SIPJS_NAMES",
    "DtmfType",
    "Limits",
    "LogConfig",
    "RegisterRefresh",
    "Supported",
    "UAConfig",
    "UAParams",
    "WsServer",
]


class DtmfType(StrEnum):
    """How ``Session.dtmf()`` sends tones (SIP.js ``dtmfType``)."""

    INFO = "info"  #: SIP INFO requests carrying ``application/dtmf-relay``
    RTP = "rtp"  #: RFC 4733 telephone-events in the media stream, falling back to INFO


class Supported(StrEnum):
    """How much of an extension (``rel100``, ``replaces``) the UA asks for or accepts."""

    REQUIRED = "required"  #: ``Require: <tag>`` on outgoing INVITEs
    SUPPORTED = "supported"  #: ``<tag>`` listed in ``Supported:``
    UNSUPPORTED = "none"  #: not offered (SIP.js spells it ``'none'``)


class RegisterRefresh(StrEnum):
    """When a REGISTER is refreshed (decision 6); a percentage of expires is the third choice."""

    JITTERED = "jittered"  #: JsSIP 3: uniform in [expires/2, expires − 32] if expires > 64
    SIPJS = "sipjs"  #: SIP.js 0.10: 3 s before the binding expires, no jitter


_E = TypeVar("_E", bound=StrEnum)

_LOG_LEVELS: Final[Mapping[str, int]] = MappingProxyType(
    {"error": 0, "warn": 1, "log": 2, "debug": 3}
)
# Control characters cannot stand in a header value (User-Agent) or, unescaped, in a
# quoted-string (display name, Digest username); HTAB is the one that may.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# ``[sip:]user:password@``: the deprecated password part of a SIP URI (RFC 3261 §19.1.1).
_USERINFO_PASSWORD = re.compile(r"^((?:sips?:)?+[^:@]*):[^@]*@", re.IGNORECASE)
# Lone surrogates (from surrogateescape decoding) cannot be encoded as UTF-8 on the wire.
_SURROGATE = re.compile("[\ud800-\udfff]")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_WS_AUTHORITY = re.compile(rf"(?P<host>{HOST})(?::(?P<port>[0-9]{{1,5}}))?")
# What may follow the authority of a ws:// URI (RFC 6455 §3): an optional path and query.
_WS_RESOURCE = re.compile(r"(?:/[\w\-.~!$&'()*+,;=:@/%]*)?(?:\?[\w\-.~!$&'()*+,;=:@/?%]*)?",
                          re.ASCII)
_REFRESH_NAMES: Final = frozenset(policy.value for policy in RegisterRefresh)
_BASE32 = "0123456789abcdefghijklmnopqrstuv"
_MAX_EXPIRES = 2**32 - 1  # RFC 3261 §20.19: Expires is at most 2**32 - 1 seconds


# -- the records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WsServer:
    """One WebSocket server (RFC 7118) the transport may connect to."""

    ws_uri: str
    """The ``ws://`` or ``wss://`` URI opened with sub-protocol ``sip`` (scheme lower-cased)."""
    weight: int
    """Selection preference: the highest weight is tried first, equal weights in random order."""
    sip_uri: URI
    """``sip:HOST[:PORT];transport=ws;lr``: the preloaded Route when ``use_preloaded_route``."""

    @property
    def transport(self) -> str:
        """The Via transport token: ``WSS`` for a ``wss://`` server, else ``WS``."""
        return "WSS" if self.ws_uri.startswith("wss:") else "WS"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """SIP.js's ``log`` object.  Values are checked on construction."""

    builtin_enabled: bool = True
    """Whether sipfsm prints its own log lines (``connector`` is called either way)."""
    level: int = 2
    """0 error, 1 warn, 2 log, 3 debug; the names are accepted too and stored as the number."""
    connector: Callable[..., object] | None = None
    """Called for every line that passes ``level``, like SIP.js's
    ``connector(level, category, label, content)``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "builtin_enabled",
                           _boolean("log.builtin_enabled", self.builtin_enabled))
        object.__setattr__(self, "level", _log_level("log.level", self.level))
        object.__setattr__(self, "connector", _optional_callable("log.connector", self.connector))


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How much a server may make the UA read: the safeguards against a hostile or broken peer.

    Not SIP.js parameters: given to :class:`~sipfsm.ua.UA` as its keyword-only ``limits``.
    Every value is a positive ``int``; the defaults are far above what real SIP traffic needs.

    *An oversized message* (over ``max_message_size``, within ``max_frame_size``) is refused
    without touching the connection: a request whose header section can still be read is
    answered 413, anything else is dropped (and logged).  *An oversized frame* (over
    ``max_frame_size``) cannot be skipped without reading it, so aiohttp closes the WebSocket
    (1009, message too big); that is an ordinary dropped connection: the transport reconnects
    after ``connection_recovery_min_interval`` and the UA registers again, and a confirmed call
    is kept (decision 4).  Too many header lines or an overlong line: answered 400 when the
    request's Via, From, To, Call-ID and CSeq can be read on their own, else dropped.
    """

    max_message_size: int = MAX_MESSAGE_SIZE
    """The largest SIP message accepted, in octets (256 KiB)."""
    max_frame_size: int = 1 << 20
    """The largest WebSocket frame read at all, in octets (1 MiB); at least
    ``max_message_size``."""
    max_headers: int = MAX_HEADERS
    """The most header lines a message may have (256), continuation lines included."""
    max_line_length: int = MAX_LINE_LENGTH
    """The longest start or header line accepted, in characters (8192)."""

    def __post_init__(self) -> None:
        for item in fields(self):
            object.__setattr__(self, item.name, _positive(f"limits.{item.name}",
                                                          getattr(self, item.name)))
        if self.max_frame_size < self.max_message_size:
            raise ConfigurationError("limits.max_frame_size", self.max_frame_size,
                                     f"must be at least max_message_size "
                                     f"({self.max_message_size})")

    def parse_options(self) -> dict[str, int]:
        """The keyword arguments of :func:`~sipfsm.sip.parse` that apply these limits."""
        return {"max_size": self.max_message_size, "max_headers": self.max_headers,
                "max_line_length": self.max_line_length}


class UAParams(TypedDict, total=False):
    """The accepted input forms of every :class:`UAConfig` parameter (``None``: the default)."""

    uri: str | URI | None
    ws_servers: (str | WsServer | Mapping[str, object]
                 | Sequence[str | WsServer | Mapping[str, object]] | None)
    allow_legacy_notifications: bool | None
    allow_out_of_dialog_refers: bool | None
    authentication_factory: Callable[..., object] | None
    authorization_user: str | None
    autostart: bool | None
    connection_recovery_max_interval: int | None
    connection_recovery_min_interval: int | None
    display_name: str | None
    dtmf_type: DtmfType | str | None
    hack_ip_in_contact: bool | str | None
    hack_via_tcp: bool | None
    hack_wss_in_transport: bool | None
    instance_id: str | uuid.UUID | None
    keep_alive_interval: int | None
    log: LogConfig | Mapping[str, object] | None
    no_answer_timeout: int | None
    password: str | None
    register: bool | None
    register_expires: int | None
    register_refresh: RegisterRefresh | str | int | None
    registrar_server: str | URI | None
    rel100: Supported | str | None
    replaces: Supported | str | None
    session_description_handler_factory: Callable[..., object] | None
    session_description_handler_factory_options: Mapping[str, object] | None
    trace_sip: bool | None
    use_preloaded_route: bool | None
    user_agent_string: str | None
    ws_server_max_reconnection: int | None
    ws_server_reconnection_timeout: int | None


@dataclass(frozen=True, slots=True, kw_only=True, init=False, repr=False)
class UAConfig:
    """Every SIP.js 0.10 ``SIP.UA`` parameter, validated and normalised; immutable.

    ``UAConfig(**params)`` takes the snake_case names with any form :class:`UAParams` lists and
    raises :class:`~sipfsm.ConfigurationError` naming the first bad parameter; ``None`` selects
    the default.  :meth:`from_sipjs` takes SIP.js's camelCase names.  Times are in seconds.
    """

    uri: URI
    """Address of record (From, To of REGISTER); ``sip:`` is prepended when missing and a user
    part is required.  Default ``sip:anonymous.<6 random>@anonymous.invalid``."""
    ws_servers: tuple[WsServer, ...]
    """The WebSocket servers, in the order given.  Required: there is no default."""
    allow_legacy_notifications: bool
    """Out-of-dialog NOTIFY: answer 200 and emit ``notify`` if a listener exists, else 481."""
    allow_out_of_dialog_refers: bool
    """Out-of-dialog REFER: False answers 405; True emits ``out_of_dialog_refer_requested``."""
    authentication_factory: Callable[..., object] | None
    """Builds the authenticator of each request sender; ``None``: the built-in digest one."""
    authorization_user: str
    """Digest ``username``; default the user part of ``uri``."""
    autostart: bool
    """Start (connect, and register if ``register``) as soon as the UA is created."""
    connection_recovery_max_interval: int
    """Ceiling of the recovery backoff after every server failed (decision 3 caps, not wraps)."""
    connection_recovery_min_interval: int
    """Unit of the recovery backoff: delay = k × min, k uniform in [1, 2^attempt]."""
    display_name: str
    """Display name of From (and To of REGISTER), escaped as a quoted-string; "" for none."""
    dtmf_type: DtmfType
    """How ``Session.dtmf()`` sends tones."""
    hack_ip_in_contact: bool | str
    """Via sent-by and Contact host: False a random ``.invalid`` name, True a random TEST-NET
    address (192.0.2.x), or the host given."""
    hack_via_tcp: bool
    """Write ``TCP`` as the Via transport of our requests."""
    hack_wss_in_transport: bool
    """Write ``;transport=wss`` in Contact URIs instead of ``;transport=ws`` (Via unchanged)."""
    instance_id: str
    """The ``+sip.instance`` UUID (lower-case, without ``uuid:``); default random."""
    keep_alive_interval: int
    """Seconds between CRLF keep-alive pings (RFC 5626 §4.4.1), 0 for none."""
    log: LogConfig
    """sipfsm's own log output."""
    no_answer_timeout: int
    """An incoming INVITE not answered in this time gets 408 and fails with 'No Answer'."""
    password: str | None
    """Digest password; never shown (``repr``, errors and :meth:`describe` hide it)."""
    register: bool
    """Register on every transport connect."""
    register_expires: int
    """Requested binding lifetime (Contact ``expires`` and ``Expires``)."""
    register_refresh: RegisterRefresh | int
    """When a binding is refreshed: a :class:`RegisterRefresh` or a percentage (50–99) of the
    granted expires; see :meth:`register_refresh_delay`."""
    registrar_server: URI
    """REGISTER Request-URI; default ``uri`` without its user and parameters."""
    rel100: Supported
    """Reliable provisional responses (RFC 3262)."""
    replaces: Supported
    """The Replaces header (RFC 3891)."""
    session_description_handler_factory: Callable[..., object] | None
    """Builds each session's media handler; ``None``: the built-in aiortc one."""
    session_description_handler_factory_options: Mapping[str, object] = field(hash=False)
    """Passed to the factory unchanged (a shallow copy of what was given)."""
    trace_sip: bool
    """Log every SIP message sent and received."""
    use_preloaded_route: bool
    """Add the server's ``sip_uri`` as a Route to out-of-dialog requests."""
    user_agent_string: str
    """The ``User-Agent`` of every request and response; default ``sipfsm/<version>``."""
    ws_server_max_reconnection: int
    """Reconnect attempts to a server whose established connection dropped."""
    ws_server_reconnection_timeout: int
    """Seconds between those attempts (the first one is immediate)."""

    def __init__(self, **params: Unpack[UAParams]) -> None:
        for name, value in _validate(cast(Mapping[str, object], params)).items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_sipjs(cls, configuration: Mapping[str, object]) -> UAConfig:
        """Build from a SIP.js configuration object: camelCase keys (``wsServers``,
        ``traceSip``, ``log: {builtinEnabled, …}``…); snake_case keys are accepted too, but
        not both spellings of one parameter.  Nested handler options are passed on unchanged.
        """
        if not isinstance(configuration, Mapping):
            raise TypeError(f"a configuration mapping is expected, not {type(configuration)}")
        params = _from_camel(configuration, _SNAKE_BY_CAMEL, _PARAMETERS)
        log = params.get("log")
        if isinstance(log, Mapping):
            params["log"] = _from_camel(log, _LOG_SNAKE_BY_CAMEL,
                                        ("builtin_enabled", "level", "connector"), "log.")
        return cls(**cast(dict[str, Any], params))

    def register_refresh_delay(self, expires: int, uniform: float) -> float:
        """Seconds from a successful REGISTER to its refresh, per ``register_refresh``.

        ``expires`` is the lifetime the registrar granted; ``uniform`` a random number in
        [0, 1) drawn by the caller, so that tests can fix it.  Short lifetimes never give a
        delay under half of ``expires``: a 4 s binding must not be refreshed in a busy loop.
        """
        policy = self.register_refresh
        if isinstance(policy, int):
            return expires * policy / 100
        if policy is RegisterRefresh.SIPJS:
            return max(expires - 3, expires / 2)
        if expires > 64:
            return expires / 2 + uniform * (expires / 2 - 32)
        return max(expires - 5, expires / 2)

    def as_dict(self) -> dict[str, object]:
        """The effective configuration as JSON-friendly values; the password is ``NOT SHOWN``."""
        return {f.name: _plain(f.name, getattr(self, f.name)) for f in fields(self)}

    def describe(self) -> str:
        """The effective configuration as SIP.js logs it after validation, one line each."""
        lines = ["configuration parameters after validation:"]
        for name, value in self.as_dict().items():
            lines.append(f"· {name}: {'NOT SHOWN' if name == 'password' else _json(value)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            text = "<hidden>" if f.name == "password" and value is not None else repr(value)
            shown.append(f"{f.name}={text}")
        return f"UAConfig({', '.join(shown)})"


# -- checkers: (parameter name, value) -> normalised value, or ConfigurationError ------------------


def _boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(name, value, "must be True or False")
    return value


def _integer(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    # bool is an int subclass, but ``register_expires=True`` is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(name, value, "must be an integer")
    if value < minimum:
        raise ConfigurationError(name, value, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(name, value, f"must be at most {maximum}")
    return int(value)


def _positive(name: str, value: object) -> int:
    return _integer(name, value, 1)


def _non_negative(name: str, value: object) -> int:
    return _integer(name, value, 0)


def _expires(name: str, value: object) -> int:
    return _integer(name, value, 1, _MAX_EXPIRES)


def _optional_callable(name: str, value: object) -> Callable[..., object] | None:
    if value is not None and not callable(value):
        raise ConfigurationError(name, value, "must be callable")
    return value


def _callable(name: str, value: object) -> Callable[..., object]:
    if not callable(value):
        raise ConfigurationError(name, value, "must be callable")
    return value


def _enum(kind: type[_E]) -> Callable[[str, object], _E]:
    """A checker taking a member of ``kind`` or its value as a string, in any case."""
    choices = ", ".join(repr(member.value) for member in kind)

    def check(name: str, value: object) -> _E:
        if isinstance(value, kind):
            return value
        if isinstance(value, str):
            try:
                return kind(value.lower())
            except ValueError:
                pass
        raise ConfigurationError(name, value, f"must be one of {choices}")

    return check


def _text(name: str, value: object, *, empty: bool) -> str:
    """A string that goes on the wire: no control characters, encodable as UTF-8."""
    if not isinstance(value, str):
        raise ConfigurationError(name, value, "must be a string")
    if _CONTROL.search(value):
        raise ConfigurationError(name, value, "must not contain CR, LF or control characters")
    if _SURROGATE.search(value):
        raise ConfigurationError(name, value, "must be valid Unicode text (no lone surrogates)")
    if not value and not empty:
        raise ConfigurationError(name, value, "must not be empty (None selects the default)")
    return value


def _display_name(name: str, value: object) -> str:
    return _text(name, value, empty=True)


def _non_empty_text(name: str, value: object) -> str:
    return _text(name, value, empty=False)


def _password(name: str, value: object) -> str:
    # The value is never passed to ConfigurationError: its message must not show it.
    if not isinstance(value, str):
        raise ConfigurationError(name, None, "must be a string")
    if _SURROGATE.search(value):
        raise ConfigurationError(name, None, "must be valid Unicode text (no lone surrogates)")
    return value


def _is_host(text: str) -> bool:
    """A hostname, an IPv4 address or a well-formed IPv6 reference (``[::1]``)."""
    if not is_host(text):
        return False
    if text.startswith("["):
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            return False
    return True


def _hide_password(value: object) -> object:
    """``value`` as an error may show it: a ``user:password@`` part is masked."""
    if isinstance(value, str):
        return _USERINFO_PASSWORD.sub(r"\1:***@", value, count=1)
    if isinstance(value, URI) and value.password is not None:
        return str(value.replace(password="***"))
    return value


def _sip_uri(name: str, value: object) -> URI:
    """A ``sip:``/``sips:`` URI from a URI or a string (``sip:`` prepended when missing)."""
    shown = _hide_password(value)
    if isinstance(value, URI):
        uri = value
    elif isinstance(value, str):
        text = value if value[:5].lower().startswith(("sip:", "sips:")) else "sip:" + value
        try:
            parsed: URI | ParseError = parse_uri(text)
        except ParseError as exc:
            parsed = exc
        if isinstance(parsed, ParseError):
            if shown != value:  # the parser's reason quotes the text, password and all
                raise ConfigurationError(name, shown, "not a SIP URI")
            raise ConfigurationError(name, value, f"not a SIP URI ({parsed.reason})") from parsed
        uri = parsed
    else:
        raise ConfigurationError(name, value, "must be a SIP URI (a string or a URI)")
    if uri.password is not None:
        raise ConfigurationError(name, shown, "must not carry a password; use the 'password' "
                                              "parameter")
    if not uri.is_sip:
        raise ConfigurationError(name, shown, "must be a sip: or sips: URI")
    if uri.headers:
        raise ConfigurationError(name, shown, "must not carry URI headers ('?name=value')")
    return uri


def _uri(name: str, value: object) -> URI:
    uri = _sip_uri(name, value)
    if uri.user is None:
        raise ConfigurationError(name, value, "needs a user part (user@host)")
    if _CONTROL.search(uri.user):
        # %0D%0A is legal in a URI, but the user part is also the default Digest username,
        # which is written unescaped inside a quoted-string.
        raise ConfigurationError(name, value, "the user part must not hold control characters")
    return uri


def _registrar_server(name: str, value: object) -> URI:
    uri = _sip_uri(name, value)
    if uri.user is not None:
        raise ConfigurationError(name, value, "must not have a user part")
    return uri


def _instance_id(name: str, value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise ConfigurationError(name, value, "must be a UUID string")
    text = value
    for prefix in ("urn:uuid:", "uuid:"):
        if text[: len(prefix)].lower() == prefix:
            text = text[len(prefix) :]
            break
    if _UUID.fullmatch(text) is None:
        raise ConfigurationError(name, value, "must be a UUID (8-4-4-4-12 hex digits)")
    return text.lower()


def _hack_ip_in_contact(name: str, value: object) -> bool | str:
    if isinstance(value, bool) or (isinstance(value, str) and _is_host(value)):
        return value
    raise ConfigurationError(name, value, "must be True, False or a host name or IP address")


def _log(name: str, value: object) -> LogConfig:
    if isinstance(value, LogConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(name, value, "must be a LogConfig or a mapping")
    keys = ("builtin_enabled", "level", "connector")
    given: dict[str, Any] = {}
    for key, item in value.items():
        if key not in keys:
            spelling = {f"{name}.{c}": f"{name}.{s}" for c, s in _LOG_SNAKE_BY_CAMEL.items()}
            raise _unknown(f"{name}.{key}", (f"{name}.{k}" for k in keys), spelling)
        if item is not None:
            given[key] = item
    return LogConfig(**given)


def _log_level(name: str, value: object) -> int:
    if isinstance(value, str) and value.lower() in _LOG_LEVELS:
        return _LOG_LEVELS[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
        return int(value)
    raise ConfigurationError(name, value, "must be 0-3 or 'error', 'warn', 'log', 'debug'")


def _register_refresh(name: str, value: object) -> RegisterRefresh | int:
    if isinstance(value, int) and not isinstance(value, bool):
        return _integer(name, value, 50, 99)
    if isinstance(value, RegisterRefresh):
        return value
    if isinstance(value, str) and value.lower() in _REFRESH_NAMES:
        return RegisterRefresh(value.lower())
    raise ConfigurationError(
        name, value, "must be 'jittered', 'sipjs' or a percentage of expires from 50 to 99"
    )


def _options(name: str, value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ConfigurationError(name, value, "must be a mapping with string keys")
    # A shallow copy: the caller's dict stays theirs, and ours does not change under us.  A plain
    # dict (not a MappingProxyType) so that copy.deepcopy, pickle and dataclasses.asdict work.
    return dict(value)


def _ws_servers(name: str, value: object) -> tuple[WsServer, ...]:
    items: Sequence[object]
    if isinstance(value, str | WsServer | Mapping):
        items = [value]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ConfigurationError(
            name, value, "must be a ws:// or wss:// URI, or a list of URIs and "
            "{'ws_uri': ..., 'weight': ...} mappings"
        )
    if not items:
        raise ConfigurationError(name, value, "needs at least one server")
    return tuple(_ws_server(name, item, index) for index, item in enumerate(items))


def _ws_server(name: str, item: object, index: int) -> WsServer:
    where = f"server {index}"
    weight: object = 0
    if isinstance(item, WsServer):
        ws_uri, weight = item.ws_uri, item.weight
    elif isinstance(item, str):
        ws_uri = item
    elif isinstance(item, Mapping):
        for key in item:
            if key not in ("ws_uri", "weight"):
                raise ConfigurationError(
                    name, item, f"{where}: unknown key {key!r} (a server has 'ws_uri' and 'weight')"
                )
        if item.get("ws_uri") is None:
            raise ConfigurationError(name, item, f"{where}: 'ws_uri' is missing")
        ws_uri = item["ws_uri"]
        if item.get("weight") is not None:
            weight = item["weight"]
    else:
        raise ConfigurationError(name, item, f"{where}: must be a URI string or a mapping")
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise ConfigurationError(name, item, f"{where}: weight must be an integer >= 0")
    return _ws_server_from(name, ws_uri, int(weight))


def _ws_server_from(name: str, ws_uri: object, weight: int) -> WsServer:
    """Validate ``ws_uri`` (schemes ``ws`` and ``wss`` only) and derive the SIP route URI."""
    if not isinstance(ws_uri, str):
        raise ConfigurationError(name, ws_uri, "a server URI must be a string")
    scheme, separator, rest = ws_uri.partition("://")
    if not separator or scheme.lower() not in ("ws", "wss"):
        raise ConfigurationError(name, ws_uri, "the scheme must be ws:// or wss://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, resource = rest[:end], rest[end:]
    if "@" in authority:
        # user:password@ would otherwise be shown by every log line that names the server.
        raise ConfigurationError(name, None, "credentials in a WebSocket URI are not supported")
    match = _WS_AUTHORITY.fullmatch(authority)
    if match is None or not _is_host(match["host"]):
        raise ConfigurationError(name, ws_uri, "malformed host or port")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 1 <= port <= 65535:
        raise ConfigurationError(name, ws_uri, "port out of range")
    if _WS_RESOURCE.fullmatch(resource) is None:
        raise ConfigurationError(name, ws_uri, "malformed path or query (or a fragment)")
    # The edge's Route always says transport=ws, for wss too (SIP.js and JsSIP alike).
    sip_uri = URI("sip", None, match["host"], port, {"transport": "ws", "lr": None})
    return WsServer(ws_uri=f"{scheme.lower()}://{rest}", weight=weight, sip_uri=sip_uri)


# -- the table: one row per parameter, in the order they are checked -------------------------------


@dataclass(frozen=True, slots=True)
class _Param:
    """One row of the table: the checker, and either a fixed or a computed default."""

    check: Callable[[str, object], object]
    default: object = None
    derive: Callable[[Mapping[str, object]], object] | None = None


def _anonymous_uri(_: Mapping[str, object]) -> URI:
    token = "".join(secrets.choice(_BASE32) for _ in range(6))
    return URI("sip", f"anonymous.{token}", "anonymous.invalid")


def _no_ws_servers(_: Mapping[str, object]) -> object:
    # SIP.js fell back to OnSIP's public edge; we never contact a third party by default.
    raise _error("ws_servers", "missing parameter 'ws_servers': give at least one ws:// or "
                               "wss:// URI of your SIP edge")


def _default_authorization_user(values: Mapping[str, object]) -> str:
    return cast(str, cast(URI, values["uri"]).user)


def _default_registrar(values: Mapping[str, object]) -> URI:
    # JsSIP's rule: the uri without user and parameters (SIP.js kept the parameters).
    return cast(URI, values["uri"]).replace(user=None, params={}, headers={})


def _default_instance_id(_: Mapping[str, object]) -> str:
    return str(uuid.uuid4())


def _default_user_agent(_: Mapping[str, object]) -> str:
    from . import __version__  # read at call time: sipfsm/__init__ imports this module

    return f"sipfsm/{__version__}"


class _Frozen(Mapping[str, object]):
    """A read-only mapping that still copies and pickles (``MappingProxyType`` does neither)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, object]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __reduce__(self) -> tuple[type[_Frozen], tuple[dict[str, object]]]:
        return (_Frozen, (self._data,))

    def __repr__(self) -> str:
        return repr(self._data)


# One read-only default shared by every UA that gives no options (ten thousand UAs, one copy).
_DEFAULT_SDH_OPTIONS: Final[Mapping[str, object]] = _Frozen({
    "constraints": _Frozen({}), "peer_connection_options": _Frozen({})})


def _default_sdh_options(_: Mapping[str, object]) -> Mapping[str, object]:
    return _DEFAULT_SDH_OPTIONS


# The order matters only for derived defaults: ``uri`` comes before what is derived from it.
_PARAMETERS: Final[Mapping[str, _Param]] = MappingProxyType({
    "uri": _Param(_uri, derive=_anonymous_uri),
    "ws_servers": _Param(_ws_servers, derive=_no_ws_servers),
    "allow_legacy_notifications": _Param(_boolean, False),
    "allow_out_of_dialog_refers": _Param(_boolean, False),
    "authentication_factory": _Param(_callable, None),
    "authorization_user": _Param(_non_empty_text, derive=_default_authorization_user),
    "autostart": _Param(_boolean, True),
    "connection_recovery_max_interval": _Param(_positive, 30),
    "connection_recovery_min_interval": _Param(_positive, 2),
    "display_name": _Param(_display_name, ""),
    "dtmf_type": _Param(_enum(DtmfType), DtmfType.INFO),
    "hack_ip_in_contact": _Param(_hack_ip_in_contact, False),
    "hack_via_tcp": _Param(_boolean, False),
    "hack_wss_in_transport": _Param(_boolean, False),
    "instance_id": _Param(_instance_id, derive=_default_instance_id),
    "keep_alive_interval": _Param(_non_negative, 0),
    "log": _Param(_log, LogConfig()),
    "no_answer_timeout": _Param(_positive, 60),
    "password": _Param(_password, None),
    "register": _Param(_boolean, True),
    "register_expires": _Param(_expires, 600),
    "register_refresh": _Param(_register_refresh, RegisterRefresh.JITTERED),
    "registrar_server": _Param(_registrar_server, derive=_default_registrar),
    "rel100": _Param(_enum(Supported), Supported.UNSUPPORTED),
    "replaces": _Param(_enum(Supported), Supported.UNSUPPORTED),
    "session_description_handler_factory": _Param(_callable, None),
    "session_description_handler_factory_options": _Param(
        _options, derive=_default_sdh_options),
    "trace_sip": _Param(_boolean, False),
    "use_preloaded_route": _Param(_boolean, False),
    "user_agent_string": _Param(_non_empty_text, derive=_default_user_agent),
    "ws_server_max_reconnection": _Param(_positive, 3),
    "ws_server_reconnection_timeout": _Param(_positive, 4),
})

#: snake_case parameter name -> the camelCase name SIP.js 0.10 uses (``registerRefresh`` is ours).
SIPJS_NAMES: Final[Mapping[str, str]] = MappingProxyType({
    name: re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name) for name in _PARAMETERS
})
_SNAKE_BY_CAMEL: Final[Mapping[str, str]] = MappingProxyType(
    {camel: snake for snake, camel in SIPJS_NAMES.items() if camel != snake}
)
_LOG_SNAKE_BY_CAMEL: Final[Mapping[str, str]] = MappingProxyType(
    {"builtinEnabled": "builtin_enabled"}
)


# -- validation ------------------------------------------------------------------------------------


def _validate(params: Mapping[str, object]) -> dict[str, object]:
    """Check every parameter; return the normalised value of each, defaults filled in."""
    for name in params:
        if name not in _PARAMETERS:
            raise _unknown(name, _PARAMETERS, _SNAKE_BY_CAMEL)
    values: dict[str, object] = {}
    for name, row in _PARAMETERS.items():
        given = params.get(name)
        if given is not None:
            values[name] = row.check(name, given)
        elif row.derive is not None:
            values[name] = row.derive(values)
        else:
            values[name] = row.default
    low = cast(int, values["connection_recovery_min_interval"])
    high = cast(int, values["connection_recovery_max_interval"])
    if high < low:
        raise ConfigurationError("connection_recovery_max_interval", high,
                                 f"must not be below connection_recovery_min_interval ({low})")
    return values


def _from_camel(mapping: Mapping[Any, object], snake_by_camel: Mapping[str, str],
                known: Iterable[str], prefix: str = "") -> dict[str, object]:
    """Rename SIP.js camelCase keys to snake_case; refuse unknown keys and double spellings."""
    names = list(known)
    out: dict[str, object] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise _error(prefix + repr(key), f"parameter names must be strings, not {key!r}")
        name = snake_by_camel.get(key, key)
        if name not in names:
            raise _unknown(prefix + key, [prefix + n for n in (*names, *snake_by_camel)], {})
        if name in out:
            camel = next(c for c, s in snake_by_camel.items() if s == name)
            raise _error(prefix + name, f"both {prefix + camel!r} and {prefix + name!r} are "
                                        "given; use one spelling")
        out[name] = value
    return out


def _plain(name: str, value: object) -> object:
    """``value`` as JSON-friendly data for :meth:`UAConfig.as_dict`."""
    if name == "password":
        return "NOT SHOWN"
    if isinstance(value, URI):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(name, item) for item in value]
    if isinstance(value, WsServer):
        return {"ws_uri": value.ws_uri, "weight": value.weight, "sip_uri": str(value.sip_uri)}
    if isinstance(value, LogConfig):
        return {"builtin_enabled": value.builtin_enabled, "level": value.level,
                "connector": _plain("connector", value.connector)}
    if isinstance(value, Mapping):
        return {key: dict(item) if isinstance(item, _Frozen) else item
                for key, item in value.items()}
    if isinstance(value, StrEnum):
        return value.value
    if callable(value):
        return getattr(value, "__qualname__", repr(value))
    return value


def _json(value: object) -> str:
    try:
        return json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):  # odd keys or cycles in the opaque handler options
        return repr(value)


def _error(parameter: str, message: str) -> ConfigurationError:
    """A :class:`ConfigurationError` with no value to show (unknown or missing keys): its own
    "invalid value … for parameter …" wording would print ``NOT SHOWN`` as if it were secret."""
    return ConfigurationError(parameter, None, message, message=message)


def _unknown(name: str, known: Iterable[str], spelling: Mapping[str, str]) -> ConfigurationError:
    """Unknown ``name``: suggest its snake_case form if it is a camelCase name we know
    (``spelling`` maps those), else the closest of ``known``."""
    message = f"unknown parameter {name!r}"
    if name in spelling:
        return _error(name, f"{message}; did you mean {spelling[name]!r}? (SIP.js's camelCase "
                            "names are for UAConfig.from_sipjs)")
    close = difflib.get_close_matches(name, list(known), n=1)
    return _error(name, f"{message}; did you mean {close[0]!r}?" if close else message)
