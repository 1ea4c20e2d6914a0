"""Tests of sipfsm.logging: levels, connector, builtin output, transitions, traces, secrets.

The behaviour is SIP.js 0.10's ``log`` object (reference §1.2: ``log.builtinEnabled``,
``log.level``, ``log.connector``, ``traceSip``), under the "Embedding" rules of the design:
nothing global is configured, and factories (one per UA) are independent.
"""

from __future__ import annotations

import enum
import io
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from sipfsm.config import LogConfig
from sipfsm.logging import LEVELS, LevelName, Logger, LoggerFactory

PASSWORD = "hunter2-Sw0rdfish"
TOKEN = "eyJhbGciOi.J9-secret-token"
NAMES: tuple[LevelName, ...] = ("error", "warn", "log", "debug")
# timestamp | LEVEL | sipfsm.category [| label] | content
LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d \| (?P<level>[A-Z]+) *"
    r" \| sipfsm\.(?P<category>[\w.]+)(?: \| (?P<label>[^|]+))? \| (?P<content>.*)"
)

Call = tuple[str, str, str | None, str]


class State(enum.Enum):
    """A stand-in for a machine's state enum."""

    STOPPED = "stopped"
    CONNECTING = "connecting"


class Recorder:
    """A connector that records its calls."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, level: str, category: str, label: str | None, content: str) -> None:
        self.calls.append((level, category, label, content))

    @property
    def contents(self) -> list[str]:
        """The content of every call, in order."""
        return [call[3] for call in self.calls]


class Setup:
    """A factory writing to a StringIO, with a recording connector."""

    def __init__(self, *, level: int = 3, builtin_enabled: bool = True, trace_sip: bool = False,
                 secrets: tuple[str, ...] = ()) -> None:
        self.stream = io.StringIO()
        self.connector = Recorder()
        self.factory = LoggerFactory(
            LogConfig(level=level, builtin_enabled=builtin_enabled, connector=self.connector),
            trace_sip=trace_sip, stream=self.stream, secrets=secrets,
        )

    @property
    def output(self) -> str:
        """Everything written to the stream."""
        return self.stream.getvalue()

    def lines(self) -> list[re.Match[str]]:
        """The first line of every entry on the stream, parsed (continuations skipped)."""
        matches = []
        for line in self.output.splitlines():
            if line.startswith(" ") or not line:
                continue
            match = LINE.fullmatch(line)
            assert match is not None, line
            matches.append(match)
        return matches


def emit_all(logger: Logger) -> None:
    """One line at each level."""
    logger.error("e", n=0)
    logger.warn("w", n=1)
    logger.log("l", n=2)
    logger.debug("d", n=3)


REGISTER = (
    "REGISTER sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK776\r\n"
    "From: <sip:alice@example.com>;tag=1928\r\n"
    "To: <sip:alice@example.com>\r\n"
    f"Authorization: Bearer {TOKEN}\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


# -- levels ----------------------------------------------------------------------------------------


def test_levels_are_sipjs_names() -> None:
    assert dict(LEVELS) == {"error": 0, "warn": 1, "log": 2, "debug": 3}


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_a_line_passes_iff_its_level_is_at_most_the_configured_one(level: int) -> None:
    setup = Setup(level=level)
    logger = setup.factory.get("ua")
    emit_all(logger)
    expected = list(NAMES[: level + 1])
    assert [match["level"].lower() for match in setup.lines()] == expected
    assert [call[0] for call in setup.connector.calls] == expected
    assert [logger.enabled(name) for name in NAMES] == [LEVELS[n] <= level for n in NAMES]


def test_level_names_are_accepted_through_the_config() -> None:
    setup_stream = io.StringIO()
    factory = LoggerFactory(LogConfig(level="warn"), stream=setup_stream)  # type: ignore[arg-type]
    emit_all(factory.get("ua"))
    assert [line.split(" | ")[1].strip() for line in setup_stream.getvalue().splitlines()] == [
        "ERROR", "WARN"]


def test_enabled_refuses_an_unknown_name() -> None:
    logger = Setup().factory.get("ua")
    with pytest.raises(ValueError, match="unknown log level 'info'"):
        logger.enabled("info")  # type: ignore[arg-type]


def test_a_filtered_call_renders_nothing() -> None:
    rendered = []

    class Expensive:
        def __str__(self) -> str:
            rendered.append(1)
            return "expensive"

    setup = Setup(level=2)
    logger = setup.factory.get("ua")
    logger.debug("skipped", value=Expensive())
    logger.transition(machine="m", id="1", source=Expensive(), trigger="t", dest=Expensive())
    assert rendered == []
    assert setup.output == ""
    assert setup.connector.calls == []
    logger.log("shown", value=Expensive())
    assert rendered == [1]
    assert setup.connector.contents == ["shown value=expensive"]


def test_without_any_output_nothing_is_enabled() -> None:
    stream = io.StringIO()
    factory = LoggerFactory(LogConfig(level=3, builtin_enabled=False), stream=stream)
    logger = factory.get("ua")
    assert not any(logger.enabled(name) for name in NAMES)
    emit_all(logger)
    assert stream.getvalue() == ""


# -- connector and builtin output ------------------------------------------------------------------


def test_the_connector_gets_level_category_label_and_content() -> None:
    setup = Setup(level=2)
    logger = setup.factory.get("transaction", "z9hG4bK776", method="INVITE")
    emit_all(logger)
    assert setup.connector.calls == [
        ("error", "transaction", "z9hG4bK776", "e method=INVITE n=0"),
        ("warn", "transaction", "z9hG4bK776", "w method=INVITE n=1"),
        ("log", "transaction", "z9hG4bK776", "l method=INVITE n=2"),
    ]
    unlabelled = setup.factory.get("ua")
    unlabelled.log("started")
    assert setup.connector.calls[-1] == ("log", "ua", None, "started")


def test_the_builtin_line_has_timestamp_level_category_label_and_content() -> None:
    setup = Setup()
    setup.factory.get("transport", "t1").warn("connection lost", code=1006)
    setup.factory.get("ua").log("started")
    first, second = setup.lines()
    assert (first["level"], first["category"], first["label"], first["content"]) == (
        "WARN", "transport", "t1", "connection lost code=1006")
    assert (second["level"], second["category"], second["label"], second["content"]) == (
        "LOG", "ua", None, "started")
    assert setup.output.count("\n") == 2


def test_builtin_disabled_writes_nothing_but_the_connector_is_called() -> None:
    setup = Setup(level=3, builtin_enabled=False)
    emit_all(setup.factory.get("ua"))
    assert setup.output == ""
    assert [call[0] for call in setup.connector.calls] == list(NAMES)


def test_bind_keeps_category_and_label_and_adds_fields() -> None:
    setup = Setup()
    logger = setup.factory.get("dialog", "d1", call_id="abc")
    bound = logger.bind(local_tag="x")
    assert (bound.category, bound.label) == ("dialog", "d1")
    bound.log("confirmed")
    logger.log("unchanged")
    assert setup.connector.calls == [
        ("log", "dialog", "d1", "confirmed call_id=abc local_tag=x"),
        ("log", "dialog", "d1", "unchanged call_id=abc"),
    ]
    assert repr(bound) == "<Logger sipfsm.dialog label='d1'>"


def test_values_are_quoted_when_needed() -> None:
    setup = Setup()
    setup.factory.get("ua").log(
        "values", plain="abc", spaced="a b", newline="a\nb", quote='say "hi"', empty="",
        number=3, flag=True, nothing=None, state=State.CONNECTING, items=[1, "x"],
        # keyword names that structlog uses for its own parameters must not collide
        method_name="m", self="s",
    )
    assert setup.connector.contents == [
        'values plain=abc spaced="a b" newline="a\\nb" quote="say \\"hi\\"" empty="" number=3 '
        "flag=True nothing=None state=CONNECTING items=[1, 'x'] method_name=m self=s"
    ]
    assert setup.output.count("\n") == 1


def test_a_traceback_is_written_below_the_line() -> None:
    setup = Setup()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        setup.factory.get("ua").error("failed", exc_info=True)
    content = setup.connector.contents[0]
    assert content.startswith("failed\nTraceback (most recent call last):")
    assert content.endswith("RuntimeError: boom")
    lines = setup.output.splitlines()
    assert lines[0].endswith("| failed")
    assert lines[1] == "    Traceback (most recent call last):"
    assert lines[-1] == "    RuntimeError: boom"


def test_the_default_stream_is_stderr_at_write_time(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = LoggerFactory(LogConfig())
    logger = factory.get("ua")
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    logger.log("hello")
    assert stderr.getvalue().endswith(" | LOG   | sipfsm.ua | hello\n")


def test_a_closed_stream_does_not_break_the_caller() -> None:
    setup = Setup()
    setup.stream.close()
    setup.factory.get("ua").log("still fine")
    assert setup.connector.contents == ["still fine"]


# -- transitions and traces ------------------------------------------------------------------------


def test_a_transition_is_one_debug_line_with_its_keys() -> None:
    setup = Setup()
    logger = setup.factory.get("transport", "t1")
    logger.transition(machine="transport", id="t1", source=State.STOPPED, trigger="start",
                      dest=State.CONNECTING)
    logger.transition(machine="transport", id="t1", source="CONNECTING", trigger="connected",
                      dest="CONNECTED", server="wss://edge.example.com")
    assert setup.connector.calls == [
        ("debug", "transport", "t1",
         "transition machine=transport id=t1 source=STOPPED trigger=start dest=CONNECTING"),
        ("debug", "transport", "t1",
         "transition machine=transport id=t1 source=CONNECTING trigger=connected "
         "dest=CONNECTED server=wss://edge.example.com"),
    ]
    assert [match["level"] for match in setup.lines()] == ["DEBUG", "DEBUG"]


def test_transitions_are_not_logged_below_debug() -> None:
    setup = Setup(level=2)
    setup.factory.get("transport").transition(machine="transport", id="t1", source="A",
                                              trigger="go", dest="B")
    assert setup.output == ""
    assert setup.connector.calls == []


def test_trace_logs_the_whole_frame_at_level_log() -> None:
    setup = Setup(level=2, trace_sip=True)
    logger = setup.factory.get("transport", "t1")
    logger.trace("sent", REGISTER, peer="wss://edge.example.com")
    logger.trace("received", "\r\n", peer="wss://edge.example.com")
    assert setup.connector.calls[0] == (
        "log", "transport", "t1",
        "sent peer=wss://edge.example.com\n" + REGISTER)
    assert setup.connector.calls[1][3] == "received peer=wss://edge.example.com\n\r\n"
    lines = setup.output.splitlines()
    assert lines[0].endswith(" | LOG   | sipfsm.transport | t1 | sent peer=wss://edge.example.com")
    assert lines[1:7] == ["    " + line for line in REGISTER.split("\r\n")[:6]]
    assert lines[7].endswith(" | received peer=wss://edge.example.com")
    assert len(lines) == 8


@pytest.mark.parametrize(("trace_sip", "level"), [(False, 3), (True, 1)])
def test_trace_is_silent_without_trace_sip_or_below_log(trace_sip: bool, level: int) -> None:
    setup = Setup(level=level, trace_sip=trace_sip)
    setup.factory.get("transport").trace("received", REGISTER, peer="wss://edge")
    assert setup.output == ""
    assert setup.connector.calls == []


# -- secrets ---------------------------------------------------------------------------------------


def test_secret_named_keys_are_not_shown() -> None:
    setup = Setup()
    setup.factory.get("auth").log(
        "credentials", user="alice", password="pw1", HA1="abc", Proxy_Authorization="Digest x",
        sip_password="pw2", client_secret="s3", password_length=3,
        headers={"Authorization": "Digest y", "Proxy-Authorization": "Digest z", "To": "bob"},
        nested=[{"PassWord": "pw3"}],
    )
    content = setup.connector.contents[0]
    assert content == (
        'credentials user=alice password="NOT SHOWN" HA1="NOT SHOWN" '
        'Proxy_Authorization="NOT SHOWN" sip_password="NOT SHOWN" client_secret="NOT SHOWN" '
        "password_length=3 headers={'Authorization': 'NOT SHOWN', "
        "'Proxy-Authorization': 'NOT SHOWN', 'To': 'bob'} nested=[{'PassWord': 'NOT SHOWN'}]"
    )
    for value in ("pw1", "abc", "Digest", "pw2", "s3", "pw3"):
        assert value not in setup.output


def test_secret_named_context_is_not_shown() -> None:
    setup = Setup()
    setup.factory.get("auth", password="pw").bind(ha1="h").log("x")
    assert setup.connector.contents == ['x password="NOT SHOWN" ha1="NOT SHOWN"']


def test_registered_secrets_are_hidden_everywhere() -> None:
    setup = Setup(secrets=(PASSWORD,))
    logger = setup.factory.get("auth", f"label-{PASSWORD}")
    logger.warn(f"event {PASSWORD}", value=f"a {PASSWORD} b", items=[f"x{PASSWORD}"],
                mapping={PASSWORD: {"deep": (PASSWORD,)}}, obj=Wrapper(PASSWORD))
    assert PASSWORD not in setup.output
    assert PASSWORD not in repr(setup.connector.calls)
    assert setup.connector.calls == [(
        "warn", "auth", "label-***",
        "event *** value=\"a *** b\" items=['x***'] mapping={'***': {'deep': ('***',)}} "
        "obj=wrapped(***)",
    )]


class Wrapper:
    """An object whose ``str()`` shows what it wraps."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return f"wrapped({self.text})"


def test_a_secret_in_a_traced_authorization_header_is_hidden() -> None:
    setup = Setup(trace_sip=True)
    setup.factory.add_secret(TOKEN)
    setup.factory.get("transport", "t1").trace("sent", REGISTER, peer="wss://edge")
    assert TOKEN not in setup.output
    content = setup.connector.contents[0]
    assert TOKEN not in content
    assert "\r\nAuthorization: Bearer ***\r\n" in content
    assert "\n    Authorization: Bearer ***\n" in setup.output


def test_a_secret_added_later_is_hidden_from_then_on() -> None:
    setup = Setup()
    logger = setup.factory.get("auth")
    logger.log("before", value=PASSWORD)
    setup.factory.add_secret(PASSWORD)
    logger.log("after", value=PASSWORD)
    assert setup.connector.contents == [f"before value={PASSWORD}", "after value=***"]


def test_an_empty_secret_is_ignored() -> None:
    setup = Setup(secrets=("",))
    setup.factory.add_secret("")
    setup.factory.get("ua").log("visible", text="abc")
    assert setup.connector.contents == ["visible text=abc"]


def test_the_longest_secret_wins() -> None:
    setup = Setup(secrets=("pass", "password123"))
    setup.factory.get("ua").log("x", value="password123 pass")
    assert setup.connector.contents == ['x value="*** ***"']


def test_an_escaped_secret_is_still_hidden() -> None:
    secret = 'a"b\\c\nd'
    setup = Setup(secrets=(secret,))
    setup.factory.get("ua").log("x", value=f"<{secret}>", items=[secret], obj=Wrapper(secret))
    content = setup.connector.contents[0]
    assert content == "x value=<***> items=['***'] obj=wrapped(***)"
    assert "b\\\\c" not in setup.output


@given(
    secret=st.text(min_size=1, max_size=12).filter(lambda text: "*" not in text),
    before=st.text(max_size=8),
    after=st.text(max_size=8),
)
def test_a_registered_secret_never_appears(secret: str, before: str, after: str) -> None:
    setup = Setup(trace_sip=True, secrets=(secret,))
    logger = setup.factory.get("ua", before + secret)
    text = before + secret + after
    logger.log(text, value=text, items=[text, {text: text}], obj=Wrapper(text))
    logger.trace("received", f"MESSAGE sip:a SIP/2.0\r\nX: {text}\r\n\r\n{text}", peer=text)
    assert len(setup.connector.calls) == 2
    for _level, _category, label, content in setup.connector.calls:
        assert secret not in content
        assert label is not None
        assert secret not in label
    assert secret not in setup.output


# -- connector failures ----------------------------------------------------------------------------


def broken_connector(level: str, category: str, label: str | None, content: str) -> None:
    """A connector that always fails, quoting what it was given."""
    raise RuntimeError(f"cannot send {content}")


@pytest.mark.parametrize("builtin_enabled", [True, False])
def test_a_raising_connector_is_reported_once(builtin_enabled: bool) -> None:
    stream = io.StringIO()
    factory = LoggerFactory(
        LogConfig(level=3, builtin_enabled=builtin_enabled, connector=broken_connector),
        stream=stream, secrets=(PASSWORD,),
    )
    logger = factory.get("ua")
    for index in range(3):
        logger.log("line", index=index, value=PASSWORD)  # must not raise
    output = stream.getvalue()
    reports = [line for line in output.splitlines() if "log connector" in line]
    assert len(reports) == 1
    assert " | ERROR | sipfsm.logging | log connector broken_connector raised RuntimeError: " \
           "cannot send line index=0 value=***" in reports[0]
    assert PASSWORD not in output
    assert len(output.splitlines()) == (4 if builtin_enabled else 1)


def test_a_connector_failure_is_reported_once_per_factory() -> None:
    streams = [io.StringIO(), io.StringIO()]
    loggers = [LoggerFactory(LogConfig(connector=broken_connector, builtin_enabled=False),
                             stream=stream).get("ua") for stream in streams]
    for logger in loggers * 2:
        logger.log("x")
    assert [stream.getvalue().count("log connector") for stream in streams] == [1, 1]


# -- independence and no global side effects -------------------------------------------------------


def test_two_factories_are_independent() -> None:
    first = Setup(level=0, secrets=("alpha",))
    second = Setup(level=3, builtin_enabled=False, trace_sip=True)
    first_logger, second_logger = first.factory.get("ua", "1"), second.factory.get("ua", "2")
    for logger in (first_logger, second_logger):
        emit_all(logger)
        logger.log("word", value="alpha")
        logger.trace("sent", "OPTIONS sip:a SIP/2.0\r\n\r\n", peer="wss://edge")
    second.factory.add_secret("word")
    first_logger.error("word")
    assert [call[0] for call in first.connector.calls] == ["error", "error"]
    assert first.connector.contents[-1] == "word"
    assert [match["label"] for match in first.lines()] == ["1", "1"]
    assert [call[0] for call in second.connector.calls] == [*NAMES, "log", "log"]
    assert "value=alpha" in second.connector.contents[4]
    assert second.connector.contents[5].startswith("sent peer=wss://edge\nOPTIONS")
    assert second.output == ""


@pytest.fixture
def global_state() -> Iterator[None]:
    """Fail the test if structlog's or the stdlib's global logging configuration changed."""
    configured, config = structlog.is_configured(), structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sipfsm_handlers = list(logging.getLogger("sipfsm").handlers)
    yield
    assert structlog.is_configured() == configured
    assert structlog.get_config() == config
    assert root.handlers == handlers
    assert root.level == level
    assert logging.getLogger("sipfsm").handlers == sipfsm_handlers


@pytest.mark.usefixtures("global_state")
def test_using_loggers_touches_no_global_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    for config in (LogConfig(level=3), LogConfig(level=0, builtin_enabled=False)):
        factory = LoggerFactory(config, trace_sip=True, secrets=("x",))
        logger = factory.get("ua", "l", a=1).bind(b=2)
        emit_all(logger)
        logger.transition(machine="m", id="1", source="A", trigger="t", dest="B")
        logger.trace("sent", "OPTIONS sip:a SIP/2.0\r\n\r\n", peer="wss://edge")


def test_importing_sipfsm_logging_configures_nothing() -> None:
    script = (
        "import logging, structlog\n"
        "before = (structlog.is_configured(), structlog.get_config())\n"
        "import sipfsm.logging\n"
        "assert (structlog.is_configured(), structlog.get_config()) == before\n"
        "assert logging.getLogger().handlers == []\n"
        "assert not structlog.is_configured()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_the_factory_exposes_its_settings() -> None:
    config = LogConfig(level=1)
    factory = LoggerFactory(config, trace_sip=True)
    assert (factory.config, factory.level, factory.trace_sip) == (config, 1, True)
    silent = LoggerFactory(LogConfig(level=3, builtin_enabled=False))
    assert silent.level == -1


def call_with(logger: Logger, name: str, **fields: Any) -> None:
    """Call the level method ``name`` (keeps the parametrised test below typed)."""
    getattr(logger, name)("event", **fields)


@pytest.mark.parametrize("name", NAMES)
def test_each_level_method_reports_its_own_level(name: str) -> None:
    setup = Setup()
    call_with(setup.factory.get("ua"), name, k="v")
    assert setup.connector.calls == [(name, "ua", None, "event k=v")]
