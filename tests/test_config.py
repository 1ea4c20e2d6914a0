"""Tests of sipfsm.config: every UA parameter's default, accepted forms and rejections.

The defaults and accepted forms are SIP.js 0.10's (reference §1.2) unless a sipfsm decision says
otherwise; each rejection must name the parameter at fault, and the password must never show.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sipfsm
from sipfsm import (
    ConfigurationError,
    DtmfType,
    LogConfig,
    RegisterRefresh,
    SipfsmError,
    Supported,
    UAConfig,
    WsServer,
)
from sipfsm.config import SIPJS_NAMES, UAParams
from sipfsm.sip import URI, parse_uri

WS = "wss://edge.example.com"
SECRET = "hunter2-Sw0rdfish-§"


def make(**params: Any) -> UAConfig:
    """A config with a WebSocket server unless the test gives ``ws_servers`` itself."""
    return UAConfig(**{"ws_servers": WS, **params})


def rejected(parameter: str, **params: Any) -> ConfigurationError:
    """The error raised for ``params``, after checking that it names ``parameter``."""
    with pytest.raises(ConfigurationError) as info:
        make(**params)
    assert info.value.parameter == parameter, str(info.value)
    return info.value


def messages(error: BaseException) -> str:
    """Everything an error can show: its text, repr, args and chained causes."""
    parts = [str(error), repr(error), repr(error.args)]
    if isinstance(error, ConfigurationError):
        parts += [repr(error.value), error.reason]
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            parts.append(messages(linked))
    return "\n".join(parts)


def factory(*args: object) -> object:
    """A stand-in for an authentication or media-handler factory."""
    return args


# --- the parameter list ---------------------------------------------------------------------------

BRIEF_PARAMETERS = {
    "uri", "ws_servers", "allow_legacy_notifications", "allow_out_of_dialog_refers",
    "authentication_factory", "authorization_user", "autostart",
    "connection_recovery_max_interval", "connection_recovery_min_interval", "display_name",
    "dtmf_type", "hack_ip_in_contact", "hack_via_tcp", "hack_wss_in_transport", "instance_id",
    "log", "no_answer_timeout", "password", "register", "register_expires", "registrar_server",
    "rel100", "replaces", "session_description_handler_factory",
    "session_description_handler_factory_options", "trace_sip", "use_preloaded_route",
    "user_agent_string", "ws_server_max_reconnection", "ws_server_reconnection_timeout",
    "keep_alive_interval", "register_refresh",
}
FIELDS = [f.name for f in dataclasses.fields(UAConfig)]

# The camelCase names of SIP.js 0.10's UA configuration (its docs page and UA.js checkers).
SIPJS_CAMEL = {
    "uri", "wsServers", "allowLegacyNotifications", "allowOutOfDialogRefers",
    "authenticationFactory", "authorizationUser", "autostart", "connectionRecoveryMaxInterval",
    "connectionRecoveryMinInterval", "displayName", "dtmfType", "hackIpInContact", "hackViaTcp",
    "hackWssInTransport", "instanceId", "keepAliveInterval", "log", "noAnswerTimeout",
    "password", "register", "registerExpires", "registrarServer", "rel100", "replaces",
    "sessionDescriptionHandlerFactory", "sessionDescriptionHandlerFactoryOptions", "traceSip",
    "usePreloadedRoute", "userAgentString", "wsServerMaxReconnection",
    "wsServerReconnectionTimeout",
}


def test_every_parameter_is_a_field_a_typed_keyword_and_has_a_sipjs_name() -> None:
    assert set(FIELDS) == BRIEF_PARAMETERS
    assert set(UAParams.__annotations__) == BRIEF_PARAMETERS
    assert set(SIPJS_NAMES) == BRIEF_PARAMETERS
    assert set(SIPJS_NAMES.values()) == SIPJS_CAMEL | {"registerRefresh"}


@pytest.mark.parametrize(
    ("snake", "camel"),
    [
        ("ws_servers", "wsServers"),
        ("hack_ip_in_contact", "hackIpInContact"),
        ("session_description_handler_factory_options", "sessionDescriptionHandlerFactoryOptions"),
        ("rel100", "rel100"),
        ("uri", "uri"),
        ("user_agent_string", "userAgentString"),
        ("ws_server_reconnection_timeout", "wsServerReconnectionTimeout"),
    ],
)
def test_sipjs_names_table(snake: str, camel: str) -> None:
    assert SIPJS_NAMES[snake] == camel


def test_exported_from_the_package() -> None:
    for name in ("UAConfig", "DtmfType", "Supported", "LogConfig", "WsServer"):
        assert name in sipfsm.__all__
        assert getattr(sipfsm, name) is getattr(sipfsm.config, name)


# --- defaults -------------------------------------------------------------------------------------

FIXED_DEFAULTS: list[tuple[str, object]] = [
    ("allow_legacy_notifications", False),
    ("allow_out_of_dialog_refers", False),
    ("authentication_factory", None),
    ("autostart", True),
    ("connection_recovery_max_interval", 30),
    ("connection_recovery_min_interval", 2),
    ("display_name", ""),
    ("dtmf_type", DtmfType.INFO),
    ("hack_ip_in_contact", False),
    ("hack_via_tcp", False),
    ("hack_wss_in_transport", False),
    ("keep_alive_interval", 0),
    ("log", LogConfig(builtin_enabled=True, level=2, connector=None)),
    ("no_answer_timeout", 60),
    ("password", None),
    ("register", True),
    ("register_expires", 600),
    ("register_refresh", RegisterRefresh.JITTERED),
    ("rel100", Supported.UNSUPPORTED),
    ("replaces", Supported.UNSUPPORTED),
    ("session_description_handler_factory", None),
    ("session_description_handler_factory_options",
     {"constraints": {}, "peer_connection_options": {}}),
    ("trace_sip", False),
    ("use_preloaded_route", False),
    ("user_agent_string", f"sipfsm/{sipfsm.__version__}"),
    ("ws_server_max_reconnection", 3),
    ("ws_server_reconnection_timeout", 4),
]


@pytest.mark.parametrize(("name", "default"), FIXED_DEFAULTS)
def test_fixed_defaults(name: str, default: object) -> None:
    assert getattr(make(), name) == default


@pytest.mark.parametrize(("name", "default"), FIXED_DEFAULTS)
def test_none_selects_the_default(name: str, default: object) -> None:
    assert getattr(make(**{name: None}), name) == default


def test_default_uri_is_anonymous_and_random() -> None:
    first, second = make().uri, make(uri=None).uri
    for uri in (first, second):
        assert re.fullmatch(r"sip:anonymous\.[0-9a-v]{6}@anonymous\.invalid", str(uri))
        assert uri.user is not None
        assert uri.host == "anonymous.invalid"
    assert first != second


def test_default_authorization_user_and_registrar_follow_the_uri() -> None:
    config = make(uri="sip:alice@example.com:5070;transport=ws;user=phone")
    assert config.authorization_user == "alice"
    # The uri without its user and parameters (JsSIP's rule; SIP.js kept the parameters).
    assert str(config.registrar_server) == "sip:example.com:5070"
    anonymous = make()
    assert anonymous.authorization_user == anonymous.uri.user
    assert str(anonymous.registrar_server) == "sip:anonymous.invalid"
    assert str(make(uri="sips:bob@example.org").registrar_server) == "sips:example.org"


def test_default_instance_id_is_a_random_uuid4() -> None:
    first, second = make().instance_id, make(instance_id=None).instance_id
    assert uuid.UUID(first).version == 4
    assert str(uuid.UUID(first)) == first
    assert first != second


def test_default_handler_options_are_read_only_so_sharing_them_is_safe() -> None:
    first, second = make(), make()
    options = first.session_description_handler_factory_options
    assert options == second.session_description_handler_factory_options
    assert options == {"constraints": {}, "peer_connection_options": {}}
    with pytest.raises(TypeError):
        options["constraints"] = {"audio": True}  # type: ignore[index]
    with pytest.raises(TypeError):
        options["constraints"]["audio"] = True  # type: ignore[index]


def test_ws_servers_has_no_default() -> None:
    for params in ({}, {"ws_servers": None}):
        with pytest.raises(ConfigurationError) as info:
            UAConfig(**params)
        assert info.value.parameter == "ws_servers"
        assert str(info.value).startswith("missing parameter 'ws_servers'")


# --- uri ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("alice@example.com", "sip:alice@example.com"),
        ("sip:alice@example.com", "sip:alice@example.com"),
        ("sips:alice@example.com", "sips:alice@example.com"),
        ("alice@example.com:5080;user=phone", "sip:alice@example.com:5080;user=phone"),
        ("sip:%61lice@[2001:db8::1]", "sip:%61lice@[2001:db8::1]"),
        (URI("sip", "carol", "example.net"), "sip:carol@example.net"),
    ],
)
def test_uri_accepted_forms(given: str | URI, expected: str) -> None:
    uri = make(uri=given).uri
    assert isinstance(uri, URI)
    assert str(uri) == expected
    assert uri.scheme in ("sip", "sips")


def test_uri_scheme_is_case_insensitive() -> None:
    uri = make(uri="SIP:alice@example.com").uri
    assert uri.scheme == "sip"
    assert uri.user == "alice"


@pytest.mark.parametrize(
    "bad",
    [
        "example.com",  # no user
        "sip:example.com",
        "",
        "alice@",
        "alice@exa mple.com",
        "tel:+15551234",
        "alice@example.com?subject=hi",  # URI headers are not allowed in From
        "sip:al%0D%0Aice@example.com",  # a CR/LF user would reach the Digest username
        42,
        b"alice@example.com",
        ["alice@example.com"],
        URI("tel", "+15551234", ""),
        parse_uri("http://example.com/"),
    ],
)
def test_uri_rejections(bad: object) -> None:
    rejected("uri", uri=bad)


@pytest.mark.parametrize("password", [SECRET, "plainSecret99"])
def test_uri_with_a_password_is_refused_without_showing_it(password: str) -> None:
    for text in (f"alice:{password}@example.com", f"sip:alice:{password}@example.com;x=y"):
        error = rejected("uri", uri=text)
        assert password not in messages(error)
        assert "alice:***@example.com" in str(error)
    # A well-formed one is refused for carrying a password, and says so.
    error = rejected("uri", uri=URI("sip", "alice", "example.com", password="plainSecret99"))
    assert "'password' parameter" in str(error)
    assert "plainSecret99" not in messages(error)


# --- ws_servers -----------------------------------------------------------------------------------


def test_ws_servers_single_string() -> None:
    (server,) = make(ws_servers="wss://edge.example.com").ws_servers
    assert server == WsServer(ws_uri="wss://edge.example.com", weight=0,
                              sip_uri=parse_uri("sip:edge.example.com;transport=ws;lr"))
    assert str(server.sip_uri) == "sip:edge.example.com;transport=ws;lr"
    assert server.transport == "WSS"


def test_ws_servers_mixed_list_keeps_order_weights_ports_and_paths() -> None:
    config = UAConfig(ws_servers=[
        {"ws_uri": "wss://edge1.example.com:8443/ws?x=1", "weight": 10},
        "ws://edge2.example.com",
        {"ws_uri": "ws://[2001:db8::2]:8080"},
        {"ws_uri": "wss://edge3.example.com", "weight": None},
    ])
    assert [(s.ws_uri, s.weight, str(s.sip_uri), s.transport) for s in config.ws_servers] == [
        ("wss://edge1.example.com:8443/ws?x=1", 10,
         "sip:edge1.example.com:8443;transport=ws;lr", "WSS"),
        ("ws://edge2.example.com", 0, "sip:edge2.example.com;transport=ws;lr", "WS"),
        ("ws://[2001:db8::2]:8080", 0, "sip:[2001:db8::2]:8080;transport=ws;lr", "WS"),
        ("wss://edge3.example.com", 0, "sip:edge3.example.com;transport=ws;lr", "WSS"),
    ]


def test_ws_servers_other_containers_and_records() -> None:
    assert len(make(ws_servers=("ws://a.example", "ws://b.example")).ws_servers) == 2
    (single,) = make(ws_servers={"ws_uri": "wss://c.example", "weight": 2}).ws_servers
    assert single.weight == 2
    # A WsServer given back (e.g. by dataclasses.replace) is checked again and its route derived.
    (again,) = make(ws_servers=[single]).ws_servers
    assert again == single
    (lowered,) = make(ws_servers="WSS://Edge.example.com/ws").ws_servers
    assert lowered.ws_uri == "wss://Edge.example.com/ws"
    assert lowered.transport == "WSS"


@pytest.mark.parametrize(
    "bad",
    [
        "udp://edge.example.com",  # SIP.js accepted udp; we do not
        "http://edge.example.com",
        "edge.example.com",
        "wss:edge.example.com",
        "wss://",
        "wss://exa mple.com",
        "wss://edge.example.com:0",
        "wss://edge.example.com:70000",
        "wss://edge.example.com:port",
        "wss://edge.example.com/ws#fragment",
        "wss://edge.example.com/a b",
        "wss://[2001:db8::zz]",
        "wss://[::1%eth0]",
        "",
        [],
        (),
        42,
        [42],
        [None],
        [b"wss://edge.example.com"],
        [{"weight": 1}],
        [{"ws_uri": None}],
        [{"ws_uri": 5}],
        [{"ws_uri": WS, "weight": -1}],
        [{"ws_uri": WS, "weight": "5"}],
        [{"ws_uri": WS, "weight": True}],
        [{"ws_uri": WS, "weight": 1.5}],
        [{"ws_uri": WS, "wieght": 1}],
        [{"ws_uri": WS, "sip_uri": "sip:x"}],
        [WS, "udp://edge.example.com"],
        {WS},
    ],
)
def test_ws_servers_rejections(bad: object) -> None:
    rejected("ws_servers", ws_servers=bad)


def test_ws_servers_with_credentials_are_refused_without_showing_them() -> None:
    error = rejected("ws_servers", ws_servers=f"wss://alice:{SECRET}@edge.example.com")
    assert SECRET not in messages(error)


def test_ws_servers_input_is_not_mutated() -> None:
    servers: list[object] = [{"ws_uri": "wss://a.example", "weight": 3}, "ws://b.example"]
    before = copy.deepcopy(servers)
    make(ws_servers=servers)
    assert servers == before  # SIP.js added sip_uri, status and scheme to these mappings


# --- registrar_server, authorization_user, instance_id ------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("registrar.example.com", "sip:registrar.example.com"),
        ("sip:registrar.example.com:5070;transport=ws",
         "sip:registrar.example.com:5070;transport=ws"),
        ("sips:registrar.example.com", "sips:registrar.example.com"),
        (URI("sip", None, "r.example.com"), "sip:r.example.com"),
    ],
)
def test_registrar_server_accepted(given: str | URI, expected: str) -> None:
    assert str(make(registrar_server=given).registrar_server) == expected


@pytest.mark.parametrize(
    "bad",
    ["sip:bob@registrar.example.com", "bob@registrar.example.com", "", "tel:+1555", 42,
     "registrar.example.com?x=y", URI("sip", "bob", "example.com")],
)
def test_registrar_server_rejections(bad: object) -> None:
    rejected("registrar_server", registrar_server=bad)


@pytest.mark.parametrize("given", ["bob", "bob@example.com", 'we"ird\\name', "zoë", "a\tb"])
def test_authorization_user_accepted(given: str) -> None:
    assert make(uri="alice@example.com", authorization_user=given).authorization_user == given


@pytest.mark.parametrize("bad", ["", "bob\r\n", "bob\nx", "\x00", 7, ["bob"], "\ud800"])
def test_authorization_user_rejections(bad: object) -> None:
    rejected("authorization_user", authorization_user=bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("uuid:0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("UUID:0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        (uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"),
         "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ],
)
def test_instance_id_accepted(given: str | uuid.UUID, expected: str) -> None:
    assert make(instance_id=given).instance_id == expected


@pytest.mark.parametrize(
    "bad",
    ["", "not-a-uuid", "0f8fad5bd9cb469fa16570867728950e", "{0f8fad5b-d9cb-469f-a165-70867728950e}",
     "uuid:", "0f8fad5b-d9cb-469f-a165-70867728950e ", "0f8fad5b-d9cb-469f-a165-70867728950g",
     12345, uuid.UUID(int=1).bytes],
)
def test_instance_id_rejections(bad: object) -> None:
    rejected("instance_id", instance_id=bad)


# --- booleans and numbers -------------------------------------------------------------------------

BOOLEANS = [
    "allow_legacy_notifications", "allow_out_of_dialog_refers", "autostart", "hack_via_tcp",
    "hack_wss_in_transport", "register", "trace_sip", "use_preloaded_route",
]
POSITIVE = [
    "connection_recovery_min_interval", "no_answer_timeout", "register_expires",
    "ws_server_max_reconnection", "ws_server_reconnection_timeout",
]


@pytest.mark.parametrize("name", BOOLEANS)
def test_booleans(name: str) -> None:
    assert getattr(make(**{name: True}), name) is True
    assert getattr(make(**{name: False}), name) is False
    bad: object
    for bad in (1, 0, "true", "false", "", [], 1.0):
        rejected(name, **{name: bad})


@pytest.mark.parametrize("name", POSITIVE)
def test_positive_integers(name: str) -> None:
    assert getattr(make(**{name: 1}), name) == 1
    assert getattr(make(**{name: 25}), name) == 25
    for bad in (0, -1, 1.5, 2.0, "600", True, False, [5]):
        rejected(name, **{name: bad})


def test_connection_recovery_max_interval_is_positive_and_not_below_min() -> None:
    assert make(connection_recovery_max_interval=60).connection_recovery_max_interval == 60
    equal = make(connection_recovery_min_interval=5, connection_recovery_max_interval=5)
    assert equal.connection_recovery_max_interval == equal.connection_recovery_min_interval == 5
    for bad in (0, -3, 1.5, "30", True):
        rejected("connection_recovery_max_interval", connection_recovery_max_interval=bad)
    # The cross-check names the max, as SIP.js did, also when only the min was given.
    error = rejected("connection_recovery_max_interval", connection_recovery_max_interval=1)
    assert error.value == 1
    rejected("connection_recovery_max_interval", connection_recovery_min_interval=31)
    rejected("connection_recovery_max_interval", connection_recovery_min_interval=10,
             connection_recovery_max_interval=9)


def test_keep_alive_interval_allows_zero() -> None:
    assert make(keep_alive_interval=0).keep_alive_interval == 0
    assert make(keep_alive_interval=25).keep_alive_interval == 25
    for bad in (-1, 0.5, "25", True):
        rejected("keep_alive_interval", keep_alive_interval=bad)


def test_register_expires_fits_the_expires_header() -> None:
    assert make(register_expires=2**32 - 1).register_expires == 2**32 - 1
    rejected("register_expires", register_expires=2**32)


def test_int_subclasses_are_stored_as_plain_int() -> None:
    class Seconds(int):
        pass

    value = make(no_answer_timeout=Seconds(30)).no_answer_timeout
    assert value == 30
    assert type(value) is int


# --- enums ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [("info", DtmfType.INFO), ("INFO", DtmfType.INFO), ("rtp", DtmfType.RTP),
     ("Rtp", DtmfType.RTP), (DtmfType.RTP, DtmfType.RTP)],
)
def test_dtmf_type_accepted(given: str, expected: DtmfType) -> None:
    assert make(dtmf_type=given).dtmf_type is expected


@pytest.mark.parametrize("bad", ["inband", "", "rfc4733", 1, True, Supported.REQUIRED, ["rtp"]])
def test_dtmf_type_rejections(bad: object) -> None:
    # SIP.js silently turned anything that was not 'rtp' into INFO (decision 1: we refuse).
    rejected("dtmf_type", dtmf_type=bad)


@pytest.mark.parametrize("name", ["rel100", "replaces"])
@pytest.mark.parametrize(
    ("given", "expected"),
    [("required", Supported.REQUIRED), ("Supported", Supported.SUPPORTED),
     ("none", Supported.UNSUPPORTED), ("NONE", Supported.UNSUPPORTED),
     (Supported.SUPPORTED, Supported.SUPPORTED)],
)
def test_supported_accepted(name: str, given: str, expected: Supported) -> None:
    assert getattr(make(**{name: given}), name) is expected


@pytest.mark.parametrize("name", ["rel100", "replaces"])
@pytest.mark.parametrize("bad", ["unsupported", "yes", "", "require", True, 0, DtmfType.INFO])
def test_supported_rejections(name: str, bad: object) -> None:
    rejected(name, **{name: bad})


def test_enums_are_strings_with_the_sipjs_values() -> None:
    assert [m.value for m in DtmfType] == ["info", "rtp"]
    assert [m.value for m in Supported] == ["required", "supported", "none"]
    assert isinstance(Supported.UNSUPPORTED, str)
    assert f"{Supported.UNSUPPORTED}" == "none"
    assert str(DtmfType.RTP) == "rtp"


# --- hack_ip_in_contact, display_name, user_agent_string ------------------------------------------


@pytest.mark.parametrize(
    "given", [True, False, "192.0.2.7", "host.example.com", "[2001:db8::1]", "localhost"]
)
def test_hack_ip_in_contact_accepted(given: bool | str) -> None:
    assert make(hack_ip_in_contact=given).hack_ip_in_contact == given


@pytest.mark.parametrize(
    "bad", ["", "a b", "host:5060", "[2001:db8::zz]", "-bad-.example", 1, 0, ["192.0.2.1"]]
)
def test_hack_ip_in_contact_rejections(bad: object) -> None:
    rejected("hack_ip_in_contact", hack_ip_in_contact=bad)


@pytest.mark.parametrize("given", ["", "Alice", 'Al "the pal" \\ Smith', "Zoë ☎", "tab\there"])
def test_display_name_accepted_verbatim(given: str) -> None:
    # Kept as given; the message layer escapes it as a quoted-string (decision 11).
    assert make(display_name=given).display_name == given


@pytest.mark.parametrize(
    "bad", ["Alice\r\nFrom: <sip:mallory@example.com>", "a\n", "a\r", "\x00", "\x7f", "\ud800",
            0, ["Alice"]]
)
def test_display_name_rejections(bad: object) -> None:
    rejected("display_name", display_name=bad)


def test_user_agent_string() -> None:
    agent = "MyPhone/2.1 (sipfsm)"
    assert make(user_agent_string=agent).user_agent_string == agent
    for bad in ("", "x\r\nVia: evil", "x\n", 1.0, b"agent"):
        rejected("user_agent_string", user_agent_string=bad)


# --- factories and handler options ---------------------------------------------------------------


class Handler:
    """A class is a factory too."""


@pytest.mark.parametrize(
    "name", ["authentication_factory", "session_description_handler_factory"]
)
def test_factories(name: str) -> None:
    for value in (factory, Handler, print, lambda *args: None):
        assert getattr(make(**{name: value}), name) is value
    for bad in ("digest", 1, True, [factory], Handler()):
        rejected(name, **{name: bad})


def test_handler_options_are_a_copy() -> None:
    options: dict[str, object] = {"constraints": {"audio": True}, "ice_servers": ["stun:x"]}
    config = make(session_description_handler_factory_options=options)
    stored = config.session_description_handler_factory_options
    assert stored == options
    assert stored is not options
    options["late"] = 1
    assert "late" not in stored
    assert options == {"constraints": {"audio": True}, "ice_servers": ["stun:x"], "late": 1}


@pytest.mark.parametrize("bad", [[("constraints", {})], "constraints", 1, {1: "x"}, {None: 1}])
def test_handler_options_rejections(bad: object) -> None:
    rejected("session_description_handler_factory_options",
             session_description_handler_factory_options=bad)


# --- log ------------------------------------------------------------------------------------------


def connector(level: str, category: str, label: str | None, content: str) -> None:
    """A stand-in log connector."""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, LogConfig()),
        ({"level": "debug"}, LogConfig(level=3)),
        ({"level": "WARN", "builtin_enabled": False},
         LogConfig(level=1, builtin_enabled=False)),
        ({"level": 0, "connector": connector}, LogConfig(level=0, connector=connector)),
        ({"level": None, "builtin_enabled": None, "connector": None}, LogConfig()),
        (LogConfig(level=1), LogConfig(level=1)),
    ],
)
def test_log_accepted(given: Mapping[str, object] | LogConfig, expected: LogConfig) -> None:
    assert make(log=given).log == expected


def test_log_level_names() -> None:
    levels = {name: make(log={"level": name}).log.level
              for name in ("error", "warn", "log", "debug")}
    assert levels == {"error": 0, "warn": 1, "log": 2, "debug": 3}
    assert LogConfig(level=cast(int, "Debug")).level == 3


@pytest.mark.parametrize(
    ("log", "parameter"),
    [
        ({"level": 4}, "log.level"),  # SIP.js clamped to 3
        ({"level": -1}, "log.level"),
        ({"level": "verbose"}, "log.level"),
        ({"level": True}, "log.level"),
        ({"level": 2.0}, "log.level"),
        ({"builtin_enabled": "yes"}, "log.builtin_enabled"),  # SIP.js logged and ignored it
        ({"builtin_enabled": 1}, "log.builtin_enabled"),
        ({"connector": "print"}, "log.connector"),
        ({"levle": 3}, "log.levle"),
        ({"builtinEnabled": True}, "log.builtinEnabled"),
        ("debug", "log"),
        (3, "log"),
        ([("level", 3)], "log"),
    ],
)
def test_log_rejections(log: object, parameter: str) -> None:
    rejected(parameter, log=log)


def test_log_unknown_keys_are_suggested() -> None:
    assert str(rejected("log.levle", log={"levle": 3})) == (
        "unknown parameter 'log.levle'; did you mean 'log.level'?"
    )
    assert "did you mean 'log.builtin_enabled'?" in str(
        rejected("log.builtinEnabled", log={"builtinEnabled": True})
    )


def test_log_config_checks_itself() -> None:
    with pytest.raises(ConfigurationError) as info:
        LogConfig(level=9)
    assert info.value.parameter == "log.level"
    with pytest.raises(ConfigurationError):
        LogConfig(connector=cast(Any, 3))
    with pytest.raises(ConfigurationError):
        LogConfig(builtin_enabled=cast(Any, None))


# --- register_refresh -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [("jittered", RegisterRefresh.JITTERED), ("SIPJS", RegisterRefresh.SIPJS),
     (RegisterRefresh.SIPJS, RegisterRefresh.SIPJS), (50, 50), (99, 99)],
)
def test_register_refresh_accepted(given: str | int, expected: RegisterRefresh | int) -> None:
    assert make(register_refresh=given).register_refresh == expected


@pytest.mark.parametrize("bad", [49, 100, 0, -5, 0.5, 75.0, "fast", "", True, ["sipjs"]])
def test_register_refresh_rejections(bad: object) -> None:
    rejected("register_refresh", register_refresh=bad)


@pytest.mark.parametrize(
    ("policy", "expires", "uniform", "delay"),
    [
        ("jittered", 600, 0.0, 300.0),  # JsSIP 3: expires/2 …
        ("jittered", 600, 0.5, 434.0),
        ("jittered", 600, 1.0, 568.0),  # … up to expires − 32
        ("jittered", 60, 0.3, 55.0),  # short bindings: expires − 5
        ("jittered", 4, 0.3, 2.0),  # never under half of expires
        ("sipjs", 600, 0.9, 597.0),  # SIP.js 0.10: 3 s before expiry
        ("sipjs", 4, 0.0, 2.0),
        (80, 600, 0.7, 480.0),
    ],
)
def test_register_refresh_delay(policy: str | int, expires: int, uniform: float,
                                delay: float) -> None:
    assert make(register_refresh=policy).register_refresh_delay(expires, uniform) == delay


@given(st.sampled_from(["jittered", "sipjs", 50, 75, 99]), st.integers(1, 10**7),
       st.floats(0, 1, exclude_max=True))
def test_register_refresh_delay_is_inside_the_binding(policy: str | int, expires: int,
                                                      uniform: float) -> None:
    delay = make(register_refresh=policy).register_refresh_delay(expires, uniform)
    assert expires / 2 <= delay < expires
    if policy == "jittered" and expires > 64:
        assert delay <= expires - 32


# --- password -------------------------------------------------------------------------------------


def test_password_is_stored_but_never_shown() -> None:
    config = make(password=SECRET)
    assert config.password == SECRET
    assert "password=<hidden>" in repr(config)
    for text in (repr(config), str(config), config.describe(), json.dumps(config.as_dict())):
        assert SECRET not in text
    assert "· password: NOT SHOWN" in config.describe().splitlines()
    assert config.as_dict()["password"] == "NOT SHOWN"
    assert "password=None" in repr(make())
    assert make(password="").password == ""


@pytest.mark.parametrize("bad", [1234, 12.5, b"secret", ["secret"], True, "\ud800secret"])
def test_password_rejections_do_not_show_the_value(bad: object) -> None:
    error = rejected("password", password=bad)
    assert error.value is None
    assert "NOT SHOWN" in str(error)
    shown = messages(error)
    assert repr(bad) not in shown
    assert "secret" not in shown
    assert "1234" not in shown


# Every rejection below is made with a valid password present: no error may show it.
OTHER_REJECTIONS: list[dict[str, object]] = [
    {"uri": "example.com"},
    {"uri": f"alice:{SECRET}@example.com"},
    {"ws_servers": "udp://x.example"},
    {"ws_servers": f"wss://u:{SECRET}@x.example"},
    {"ws_servers": None},
    {"wsServers": WS},
    {"passwd": SECRET},
    {"colour": "blue"},
    {"register_expires": 0},
    {"connection_recovery_min_interval": 99},
    {"dtmf_type": "x"},
    {"log": {"level": 9}},
    {"log": {"lvl": SECRET}},
    {"display_name": "a\r\n"},
    {"authorization_user": ""},
    {"registrar_server": "sip:bob@x.example"},
    {"instance_id": "nope"},
    {"hack_ip_in_contact": "a b"},
    {"register_refresh": 1},
    {"session_description_handler_factory": 1},
    {"session_description_handler_factory_options": 1},
]


@pytest.mark.parametrize("params", OTHER_REJECTIONS)
def test_no_error_shows_the_password(params: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        UAConfig(**cast(dict[str, Any], {"ws_servers": WS, "password": SECRET, **params}))
    assert SECRET not in messages(info.value)
    camel = {SIPJS_NAMES.get(k, k): v for k, v in params.items()}
    if "wsServers" in params:
        camel = {"ws_servers": WS}  # given with wsServers: both spellings
    with pytest.raises(ConfigurationError) as info:
        UAConfig.from_sipjs({"wsServers": WS, "password": SECRET, **camel})
    assert SECRET not in messages(info.value)


# --- unknown keys ---------------------------------------------------------------------------------


def test_unknown_parameter_suggests_the_closest_name() -> None:
    error = rejected("ws_server", ws_server=WS)
    assert str(error) == "unknown parameter 'ws_server'; did you mean 'ws_servers'?"
    assert "did you mean 'register_expires'?" in str(rejected("register_expire",
                                                              register_expire=60))
    assert str(rejected("colour", colour="blue")) == "unknown parameter 'colour'"


def test_camel_case_keys_point_to_their_snake_case_name() -> None:
    error = rejected("hackIpInContact", hackIpInContact=True)
    assert "did you mean 'hack_ip_in_contact'?" in str(error)
    assert "from_sipjs" in str(error)


def test_unknown_keys_never_show_their_value() -> None:
    assert SECRET not in messages(rejected("pasword", pasword=SECRET))


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        UAConfig(*cast(Any, ["alice@example.com"]))


# --- from_sipjs -----------------------------------------------------------------------------------


def test_from_sipjs_reads_a_sipjs_configuration() -> None:
    configuration: dict[str, object] = {
        "uri": "alice@example.com",
        "wsServers": [{"ws_uri": "wss://edge.example.com", "weight": 5}, "ws://backup.example"],
        "authorizationUser": "alice-auth",
        "password": SECRET,
        "displayName": "Alice",
        "registerExpires": 300,
        "registrarServer": "sip:example.com",
        "traceSip": True,
        "hackIpInContact": "192.0.2.10",
        "hackWssInTransport": True,
        "usePreloadedRoute": True,
        "rel100": "supported",
        "replaces": "required",
        "dtmfType": "rtp",
        "noAnswerTimeout": 30,
        "userAgentString": "Phone/1",
        "instanceId": "uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
        "connectionRecoveryMinInterval": 3,
        "connectionRecoveryMaxInterval": 20,
        "wsServerMaxReconnection": 5,
        "wsServerReconnectionTimeout": 6,
        "keepAliveInterval": 15,
        "allowLegacyNotifications": True,
        "allowOutOfDialogRefers": True,
        "autostart": False,
        "register": False,
        "hackViaTcp": True,
        "authenticationFactory": factory,
        "sessionDescriptionHandlerFactory": factory,
        "sessionDescriptionHandlerFactoryOptions": {"peerConnectionOptions": {"iceServers": []}},
        "log": {"builtinEnabled": False, "level": "debug", "connector": connector},
        "registerRefresh": 90,
    }
    before = copy.deepcopy(configuration)
    config = UAConfig.from_sipjs(configuration)
    assert configuration == before
    assert set(before) == set(SIPJS_NAMES.values())  # the sample sets every parameter
    assert str(config.uri) == "sip:alice@example.com"
    assert [(s.ws_uri, s.weight) for s in config.ws_servers] == [
        ("wss://edge.example.com", 5), ("ws://backup.example", 0)]
    assert config.authorization_user == "alice-auth"
    assert config.password == SECRET
    assert config.display_name == "Alice"
    assert config.register_expires == 300
    assert str(config.registrar_server) == "sip:example.com"
    assert config.trace_sip is True
    assert config.hack_ip_in_contact == "192.0.2.10"
    assert config.hack_wss_in_transport is True
    assert config.use_preloaded_route is True
    assert config.rel100 is Supported.SUPPORTED
    assert config.replaces is Supported.REQUIRED
    assert config.dtmf_type is DtmfType.RTP
    assert config.no_answer_timeout == 30
    assert config.user_agent_string == "Phone/1"
    assert config.instance_id == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert (config.connection_recovery_min_interval, config.connection_recovery_max_interval) == (
        3, 20)
    assert (config.ws_server_max_reconnection, config.ws_server_reconnection_timeout) == (5, 6)
    assert config.keep_alive_interval == 15
    assert config.allow_legacy_notifications is True
    assert config.allow_out_of_dialog_refers is True
    assert config.autostart is False
    assert config.register is False
    assert config.hack_via_tcp is True
    assert config.authentication_factory is factory
    assert config.session_description_handler_factory is factory
    # Handler options belong to the factory: passed on as given, keys untouched.
    assert config.session_description_handler_factory_options == {
        "peerConnectionOptions": {"iceServers": []}}
    assert config.log == LogConfig(builtin_enabled=False, level=3, connector=connector)
    assert config.register_refresh == 90


def test_from_sipjs_accepts_snake_case_and_none() -> None:
    config = UAConfig.from_sipjs({"ws_servers": WS, "traceSip": True, "register_expires": None,
                                  "log": {"builtin_enabled": False}})
    assert config.trace_sip is True
    assert config.register_expires == 600
    assert config.log.builtin_enabled is False
    assert UAConfig.from_sipjs({"wsServers": WS, "log": None}).log == LogConfig()


@pytest.mark.parametrize(
    ("configuration", "parameter"),
    [
        ({"wsServers": WS, "ws_servers": WS}, "ws_servers"),
        ({"wsServers": WS, "traceSip": True, "trace_sip": False}, "trace_sip"),
        ({"wsServers": WS, "log": {"builtinEnabled": True, "builtin_enabled": True}},
         "log.builtin_enabled"),
    ],
)
def test_from_sipjs_refuses_both_spellings(configuration: dict[str, object],
                                           parameter: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        UAConfig.from_sipjs(configuration)
    assert info.value.parameter == parameter
    assert "both" in str(info.value)


@pytest.mark.parametrize(
    ("configuration", "parameter", "message"),
    [
        ({"wsServer": WS}, "wsServer",
         "unknown parameter 'wsServer'; did you mean 'wsServers'?"),
        ({"wsServers": WS, "trace_sipp": True}, "trace_sipp",
         "unknown parameter 'trace_sipp'; did you mean 'trace_sip'?"),
        ({"wsServers": WS, "log": {"levl": 1}}, "log.levl",
         "unknown parameter 'log.levl'; did you mean 'log.level'?"),
        ({"wsServers": WS, "traceSip": "yes"}, "trace_sip",
         "invalid value 'yes' for parameter 'trace_sip': must be True or False"),
        ({"wsServers": "udp://x.example"}, "ws_servers", None),
        ({"wsServers": WS, 3: True}, "3", None),
    ],
)
def test_from_sipjs_rejections(configuration: dict[Any, object], parameter: str,
                               message: str | None) -> None:
    with pytest.raises(ConfigurationError) as info:
        UAConfig.from_sipjs(configuration)
    assert info.value.parameter == parameter
    if message is not None:
        assert str(info.value) == message


def test_from_sipjs_needs_a_mapping() -> None:
    with pytest.raises(TypeError):
        UAConfig.from_sipjs(cast(Any, "sip:alice@example.com"))


# --- the record -----------------------------------------------------------------------------------


def test_brief_example_normalises() -> None:
    config = UAConfig(uri="alice@example.com", ws_servers="wss://x")
    assert config.uri == parse_uri("sip:alice@example.com")
    assert config.ws_servers[0].ws_uri == "wss://x"
    typed = UAConfig(uri="sip:alice@example.com", password="secret",
                     ws_servers=[{"ws_uri": "wss://edge1.example.com", "weight": 10},
                                 "wss://edge2.example.com"])
    assert [s.weight for s in typed.ws_servers] == [10, 0]


def test_config_is_frozen_and_slotted() -> None:
    config = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cast(Any, config).trace_sip = True
    assert not hasattr(config, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cast(Any, config.ws_servers[0]).weight = 3


def test_replace_checks_again() -> None:
    config = make(uri="alice@example.com", password=SECRET)
    changed = dataclasses.replace(config, display_name="Alice")
    assert changed.display_name == "Alice"
    assert changed.uri == config.uri
    assert changed.password == SECRET
    assert changed.instance_id == config.instance_id
    assert dataclasses.replace(changed, display_name="") == config
    with pytest.raises(ConfigurationError):
        dataclasses.replace(config, register_expires=0)


def test_copy_pickle_and_asdict_work() -> None:
    config = make(uri="alice@example.com", password=SECRET, authentication_factory=factory,
                  log={"connector": connector})
    assert copy.deepcopy(config) == config
    assert pickle.loads(pickle.dumps(config)) == config
    # The standard library's asdict is not ours to filter: it shows every field, password too.
    assert dataclasses.asdict(config)["uri"] == config.uri


def test_equal_configs_hash_alike() -> None:
    config = make(uri="alice@example.com", instance_id=str(uuid.UUID(int=7)))
    twin = make(uri="alice@example.com", instance_id=str(uuid.UUID(int=7)))
    assert config == twin
    assert hash(config) == hash(twin)


def test_describe_lists_every_parameter_like_sipjs() -> None:
    config = make(uri="alice@example.com", password=SECRET, authentication_factory=factory)
    lines = config.describe().splitlines()
    assert lines[0] == "configuration parameters after validation:"
    assert [line.split(":", 1)[0] for line in lines[1:]] == [f"· {name}" for name in FIELDS]
    assert '· uri: "sip:alice@example.com"' in lines
    assert "· register_expires: 600" in lines
    assert "· authentication_factory: \"factory\"" in lines
    assert '"sip_uri": "sip:edge.example.com;transport=ws;lr"' in config.describe()


def test_as_dict_is_json_friendly() -> None:
    config = make(log={"connector": connector}, hack_ip_in_contact="192.0.2.1")
    plain = config.as_dict()
    assert list(plain) == FIELDS
    assert json.loads(json.dumps(plain)) == plain
    assert plain["log"] == {"builtin_enabled": True, "level": 2, "connector": "connector"}
    assert plain["ws_servers"] == [{"ws_uri": WS, "weight": 0,
                                    "sip_uri": "sip:edge.example.com;transport=ws;lr"}]
    assert plain["dtmf_type"] == "info"


def test_describe_survives_odd_handler_options() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    config = make(session_description_handler_factory_options={"loop": loop, "obj": object()})
    assert "session_description_handler_factory_options" in config.describe()


def test_configuration_error_is_a_sipfsm_value_error() -> None:
    error = rejected("trace_sip", trace_sip="yes")
    assert isinstance(error, SipfsmError)
    assert isinstance(error, ValueError)
    assert error.value == "yes"
    assert str(error) == "invalid value 'yes' for parameter 'trace_sip': must be True or False"


# --- property tests -------------------------------------------------------------------------------

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.binary()
    | st.sampled_from([
        "alice@example.com", "sip:bob@example.org;transport=ws", WS, "ws://[::1]:8080/ws",
        "info", "RTP", "required", "none", "debug", "sipjs", "192.0.2.1", "example.com",
        "uuid:0f8fad5b-d9cb-469f-a165-70867728950e", "", "\r\n", "\ud800",
    ])
    | st.sampled_from([factory, Handler, connector, LogConfig(), DtmfType.RTP,
                       Supported.SUPPORTED, RegisterRefresh.SIPJS, uuid.UUID(int=5),
                       parse_uri("sip:carol@example.net"), parse_uri("tel:+1555")])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.tuples(inner, inner)
        | st.dictionaries(st.sampled_from(["ws_uri", "weight", "level", "builtin_enabled",
                                           "connector", "builtinEnabled"]) | st.text(max_size=5),
                          inner, max_size=3)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),
    max_leaves=8,
)
NAMES = st.sampled_from(sorted(BRIEF_PARAMETERS))
CAMEL_NAMES = st.sampled_from(sorted(set(SIPJS_NAMES.values()) | BRIEF_PARAMETERS))


def check_outcome(build: Callable[[], UAConfig], given: Mapping[Any, object]) -> None:
    """Building gives a UAConfig or a ConfigurationError, and never shows a password."""
    shown: str | None = None
    try:
        config = build()
    except ConfigurationError as error:
        shown = messages(error)
    if shown is not None:
        password = given.get("password")
        others = [repr(value) for key, value in given.items() if key != "password"]
        # Only a password that was not also given as some other value must stay unseen.
        if isinstance(password, str) and len(password) >= 6 and not any(
            password in other for other in others
        ):
            assert password not in shown
        return
    assert isinstance(config, UAConfig)
    assert config.ws_servers
    repr(config)
    config.describe()
    if config.password is not None and len(config.password) >= 6:
        # A password that happens to be part of the rest of the text (e.g. "_serve" of
        # "ws_servers") proves nothing: compare with the repr of the same config without it.
        without = repr(dataclasses.replace(config, password=None))
        if config.password not in without:
            assert config.password not in repr(config)


@given(st.dictionaries(NAMES, VALUES, max_size=6), st.booleans())
def test_any_values_give_a_config_or_a_configuration_error(
    params: dict[str, object], with_server: bool
) -> None:
    if with_server:
        params.setdefault("ws_servers", WS)
    before = copy.deepcopy(params)
    check_outcome(lambda: UAConfig(**cast(dict[str, Any], params)), params)
    assert params == before


@given(st.dictionaries(CAMEL_NAMES | st.text(max_size=8) | st.integers(), VALUES, max_size=6))
def test_any_sipjs_object_gives_a_config_or_a_configuration_error(
    configuration: dict[Any, object]
) -> None:
    configuration.setdefault("wsServers", WS)
    check_outcome(lambda: UAConfig.from_sipjs(configuration), configuration)


@given(NAMES, st.text())
def test_any_text_gives_a_config_or_a_configuration_error(name: str, text: str) -> None:
    check_outcome(lambda: make(**{name: text}), {name: text})


@given(st.text(min_size=6).filter(lambda s: s.strip() == s and s.isprintable()))
def test_any_password_stays_hidden(password: str) -> None:
    config = make(uri="alice@example.com", password=password)
    assert config.password == password
    assert "password=<hidden>" in repr(config)
    assert "· password: NOT SHOWN" in config.describe()
