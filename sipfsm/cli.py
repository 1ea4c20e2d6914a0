"""The ``sipfsm`` command: a softphone for the terminal, the devserver, the diagrams, the demo.

``sipfsm register``, ``call``, ``answer`` and ``message`` drive one UA from the command line,
printing each step as it happens, one line each; every UA parameter is an option (generated
from :class:`~sipfsm.config.UAConfig`'s fields, so none is missed) and ``--config FILE`` reads
them from TOML or JSON, SIP.js's camelCase names accepted.  ``sipfsm demo`` runs the library's
story on one machine with no setup: the embedded devserver, alice, bob and carol registering
with digest, a call with real aiortc audio (each tone measured), DTMF both ways, hold, an
attended transfer to carol, a ladder of the SIP flow and the machines' diagrams as they ended.
``sipfsm serve`` runs the devserver alone; ``sipfsm diagrams`` draws every machine.

Exit status: 0 on success; 1 when the SIP side failed (registration refused, call rejected or
unanswered, message not delivered, no connection), with the reason on standard error; 2 for a
usage or configuration error; 130 after Ctrl-C (143 after SIGTERM), once the call is hung up
(BYE or CANCEL) and the UA unregistered.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import enum
import functools
import getpass
import inspect
import itertools
import json
import os
import re
import signal
import sys
import textwrap
import tomllib
import typing
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import SIPJS_NAMES, LogConfig, RegisterRefresh, UAConfig
from .errors import ConfigurationError, InvalidStateError
from .sip.uri import URI

if TYPE_CHECKING:
    from .events import (
        InviteReceived,
        Registered,
        RegistrationFailed,
        SessionDtmf,
        SessionReinvited,
        TransportDisconnected,
        Unregistered,
    )
    from .session import Session
    from .sip.message import Response

__all__ = ["DEFAULT_ICE_ADDRESS", "PASSWORD_ENV", "main"]

PASSWORD_ENV = "SIPFSM_PASSWORD"
"""The environment variable read for the password when ``--password`` is not given."""
DEFAULT_ICE_ADDRESS = "127.0.0.1"
"""Where ICE gathers and talks unless ``--ice-address`` (or the media options) say otherwise."""

Out = Callable[[str], None]


class _UsageError(Exception):
    """A bad command line or configuration file: exit status 2, with this message."""


# -- UA parameters as options, generated from UAConfig ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _UAOption:
    """One command-line option standing for a UA parameter (or a field of ``log``)."""

    path: tuple[str, ...]
    """``("ws_servers",)``, or ``("log", "level")`` for a field of the ``log`` parameter."""
    flag: str
    kwargs: Mapping[str, Any]
    """What ``add_argument`` gets besides the flag and ``dest``."""

    @property
    def dest(self) -> str:
        return "ua_" + "_".join(self.path)


def _first_sentence(doc: str) -> str:
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", " ".join(doc.replace("``", "").split()))
    end = text.find(". ")
    text = text if end < 0 else text[:end + 1]
    return text.replace("%", "%%")  # argparse formats help strings with %


@functools.cache
def _field_docs(cls: type) -> Mapping[str, str]:
    """The attribute docstrings of a dataclass (the string after each field), by field name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # no source (a frozen application): no help text
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for item, after in itertools.pairwise(body):
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) \
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                and isinstance(after.value.value, str):
            docs[item.target.id] = _first_sentence(after.value.value)
    return docs


def _is_callable_hint(hint: object) -> bool:
    return any(typing.get_origin(item) is Callable for item in (hint, *typing.get_args(hint)))


def _truth_or_text(text: str) -> bool | str:
    """``hack_ip_in_contact``: yes/no/true/false, or a host."""
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    return text


def _name_or_number(text: str) -> str | int:
    """``register_refresh``: a policy name, or a percentage."""
    return int(text) if text.isdigit() else text


def _ws_server(text: str) -> str | dict[str, object]:
    """``URI`` or ``URI,WEIGHT``."""
    uri, comma, weight = text.rpartition(",")
    if comma and weight.isdigit():
        return {"ws_uri": uri, "weight": int(weight)}
    return text


def _json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object is expected")
    return value


_LOG_LEVELS = ("error", "warn", "log", "debug", "0", "1", "2", "3")
_SECONDS_WORDS = ("interval", "timeout", "expires")


def _option(path: tuple[str, ...], hint: object, doc: str) -> _UAOption | None:
    """The option for one parameter, or ``None`` for a callable (not expressible as text)."""
    name = path[-1]
    camel = ".".join((SIPJS_NAMES.get(path[0], path[0]), *map(_camel, path[1:])))
    help_text = f"{doc} [{camel}]".strip()
    flag = "--" + "-".join(path).replace("_", "-")
    kwargs: dict[str, Any]
    if _is_callable_hint(hint):
        return None
    if path == ("log", "level"):
        kwargs = {"choices": _LOG_LEVELS, "metavar": "LEVEL",
                  "help": f"sipfsm's own log lines (on standard error) up to: error, warn, log "
                          f"or debug, or 0-3 (default here warn; log with --trace-sip) [{camel}]"}
    elif path == ("ws_servers",):
        flag = "--ws-server"
        kwargs = {"action": "append", "type": _ws_server, "metavar": "URI[,WEIGHT]",
                  "help": f"a ws:// or wss:// URI of your SIP edge, optionally with a weight; "
                          f"repeat it for failover [{camel}]"}
    elif path == ("password",):
        kwargs = {"metavar": "PASSWORD",
                  "help": f"the digest password, never shown; '-' asks for it (or reads the "
                          f"first line of standard input when that is not a terminal); default "
                          f"${PASSWORD_ENV} [{camel}]"}
    elif hint is bool:
        kwargs = {"action": argparse.BooleanOptionalAction, "help": help_text}
    elif hint is int:
        metavar = "SECONDS" if any(word in name for word in _SECONDS_WORDS) else "N"
        kwargs = {"type": int, "metavar": metavar, "help": help_text}
    elif hint in (str, URI) or hint == str | None:
        kwargs = {"metavar": "URI" if hint is URI else "TEXT", "help": help_text}
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        kwargs = {"choices": [str(member.value) for member in hint], "help": help_text}
    elif hint == bool | str:
        kwargs = {"type": _truth_or_text, "metavar": "yes|no|HOST", "help": help_text}
    elif hint == RegisterRefresh | int:
        choices = "|".join(str(member.value) for member in RegisterRefresh)
        kwargs = {"type": _name_or_number, "metavar": f"{choices}|PERCENT", "help": help_text}
    elif typing.get_origin(hint) is Mapping:
        kwargs = {"type": _json_object, "metavar": "JSON", "help": help_text}
    else:  # a new kind of parameter: give it a command-line form here
        raise TypeError(f"no command-line form for UA parameter {'.'.join(path)} ({hint})")
    return _UAOption(path, flag, kwargs)


@functools.cache
def _ua_options() -> tuple[tuple[_UAOption, ...], tuple[str, ...]]:
    """(the options, the parameters that have none) for every field of UAConfig, in order."""
    options: list[_UAOption] = []
    skipped: list[str] = []
    hints = typing.get_type_hints(UAConfig)
    docs = _field_docs(UAConfig)
    for item in fields(UAConfig):
        hint = hints[item.name]
        if hint is LogConfig:  # a nested record: one option per field of its own
            log_hints = typing.get_type_hints(LogConfig)
            log_docs = _field_docs(LogConfig)
            for sub in fields(LogConfig):
                made = _option(("log", sub.name), log_hints[sub.name], log_docs.get(sub.name, ""))
                if made is None:
                    skipped.append(f"log.{sub.name}")
                else:
                    options.append(made)
            continue
        made = _option((item.name,), hint, docs.get(item.name, ""))
        if made is None:
            skipped.append(item.name)
        else:
            options.append(made)
    return tuple(options), tuple(skipped)


def _add_ua_arguments(parser: argparse.ArgumentParser) -> None:
    options, skipped = _ua_options()
    common = parser.add_argument_group("connection and output")
    common.add_argument("--config", metavar="FILE",
                        help="read UA parameters from a TOML (.toml) or JSON file; SIP.js's "
                             "camelCase names are accepted, and options given here win")
    common.add_argument("--ice-address", action="append", metavar="IP",
                        help=f"an address ICE may use for media (repeatable; default "
                             f"{DEFAULT_ICE_ADDRESS}, so that nothing leaves this machine: "
                             "give your real address to talk to other hosts)")
    common.add_argument("--connect-timeout", type=_positive, default=15.0, metavar="SECONDS",
                        help="how long to wait for the connection and registration "
                             "(default 15)")
    group = parser.add_argument_group(
        "UA parameters (SIP.js 0.10's, in snake_case; [camelCase] is the --config name)",
        f"Not settable here, being Python callables: {', '.join(skipped)}.")
    for option in options:
        group.add_argument(option.flag, dest=option.dest, **option.kwargs)


# -- the configuration: file, environment, options -------------------------------------------------


def _read_config_file(path: str) -> dict[str, object]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    toml = file.suffix.lower() == ".toml"
    try:
        data = tomllib.loads(text) if toml else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        # Neither message quotes the file's text, so a password in it is not shown.
        raise _UsageError(f"{path} is not valid {'TOML' if toml else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise _UsageError(f"{path} must hold a JSON object of UA parameters")
    return data


def _set(mapping: dict[str, object], name: str, value: object) -> None:
    """Set parameter ``name`` in a SIP.js-style mapping, whichever spelling it used."""
    mapping.pop(SIPJS_NAMES[name], None)
    mapping[name] = value


def _get(mapping: Mapping[str, object], name: str) -> object:
    """Parameter ``name`` of a SIP.js-style mapping, in either spelling (``None``: absent)."""
    return mapping.get(name, mapping.get(SIPJS_NAMES[name]))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("SIP password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _configuration(args: argparse.Namespace, media: Mapping[str, object]) -> UAConfig:
    """The UA configuration: the file, then ``$SIPFSM_PASSWORD``, then the options, then what
    the command itself needs (``media``: session description handler options)."""
    merged: dict[str, object] = _read_config_file(args.config) if args.config else {}
    options, _ = _ua_options()
    log: dict[str, object] = {}
    given_log = _get(merged, "log")
    if isinstance(given_log, Mapping):
        log = {("builtin_enabled" if key == "builtinEnabled" else str(key)): value
               for key, value in given_log.items()}
    elif given_log is not None:
        raise _UsageError("invalid value for parameter 'log': a table (an object) of "
                          "builtinEnabled and level is expected")
    password = os.environ.get(PASSWORD_ENV)
    if password:
        _set(merged, "password", password)
    for option in options:
        value = getattr(args, option.dest, None)
        if value is None:
            continue
        if option.path == ("log", "level"):
            log["level"] = int(value) if value.isdigit() else value
        elif option.path[0] == "log":
            log[option.path[1]] = value
        elif option.path == ("password",):
            _set(merged, "password", _read_password() if value == "-" else value)
        else:
            _set(merged, option.path[0], value)
    if args.command == "register":
        _set(merged, "register", True)  # that is the command's whole point
    if "level" not in log:
        log["level"] = "log" if _get(merged, "trace_sip") is True else "warn"
    _set(merged, "log", log)
    handler: object = _get(merged, "session_description_handler_factory_options")
    sdh: dict[str, object] = dict(handler) if isinstance(handler, Mapping) else {}
    if args.ice_address:
        sdh["ice_addresses"] = list(args.ice_address)
    sdh.setdefault("ice_addresses", [DEFAULT_ICE_ADDRESS])
    sdh.update(media)
    _set(merged, "session_description_handler_factory_options", sdh)
    try:
        return UAConfig.from_sipjs(merged)
    except ConfigurationError as exc:
        if exc.parameter == "ws_servers" and _get(merged, "ws_servers") is None:
            raise _UsageError("give the SIP edge's WebSocket URI with --ws-server (or wsServers "
                              "in --config)") from None
        raise _UsageError(str(exc)) from None


def _media_options(args: argparse.Namespace) -> dict[str, object]:
    """The aiortc handler options of ``--play``, ``--tone`` and ``--record``."""
    media: dict[str, object] = {}
    play = getattr(args, "play", None)
    if play is not None:
        if not Path(play).is_file() and "://" not in play:
            raise _UsageError(f"--play: no such file: {play}")
        media["audio_source"] = play
    tone = getattr(args, "tone", None)
    if tone is not None:
        media["tone_hz"] = tone
    record = getattr(args, "record", None)
    if record is not None:
        if not Path(record).resolve().parent.is_dir():
            raise _UsageError(f"--record: no such directory for {record}")
        media["record_to"] = record
    return media


def _check_media(config: UAConfig) -> None:
    """Refuse bad media options now rather than when the first call fails with them."""
    from .media.aiortc_sdh import AiortcSDH

    if config.session_description_handler_factory is not None:
        return
    options = {key: value for key, value
               in config.session_description_handler_factory_options.items()
               if value or key not in ("constraints", "peer_connection_options")}
    try:
        AiortcSDH(options)  # checks its options; nothing is opened before the first offer
    except ConfigurationError as exc:
        raise _UsageError(f"media options: {exc}") from None


def _tones(text: str) -> str:
    from .media.dtmf import normalise_tones

    try:
        return normalise_tones(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    return name.strip(), value.strip()


# -- what a UA command prints ----------------------------------------------------------------------


def _status(response: Response | None) -> str:
    if response is None:
        return ""
    return f"{response.status_code} {response.reason_phrase}".strip()


def _why(response: Response | None, cause: object) -> str:
    status = _status(response)
    return f"{status} ({cause})" if status else str(cause)


def _peer(session: Session) -> str:
    """Who is at the other end: the callee's URI, or the caller's display name and URI."""
    identity = session.remote_identity
    if session.machine.caller or identity is None:
        return str(session.target)
    if identity.display_name:
        return f"{identity.display_name.strip(chr(34))} <{identity.uri}>"
    return str(identity.uri)


_PROGRESS_WORDS = {180: "ringing", 181: "forwarded", 182: "queued", 183: "session progress"}
_DTMF_VIA = {"info": "SIP INFO", "rtp": "RFC 4733"}


class _Phone:
    """One UA driven from the command line: it prints what happens, follows the current call
    through transfers, and at the end hangs up, finishes recordings and unregisters."""

    def __init__(self, command: str, config: UAConfig) -> None:
        from .ua import UA

        self.command = command
        self.ua = UA(config)
        self.sessions: list[Session] = []
        self.current: Session | None = None
        """The call being followed (a transfer or a replacement moves it to the new call)."""
        self.call_over = asyncio.Event()
        self.established = asyncio.Event()
        self.failure: str | None = None
        self._servers = {server.ws_uri for server in config.ws_servers}
        self._given_up: set[str] = set()
        self._connected = False
        self._ready: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held_by_peer: set[Session] = set()
        self._record_to = config.session_description_handler_factory_options.get("record_to")
        ua = self.ua
        ua.on("connected", lambda event: self._on_connected(event.server))
        ua.on("disconnected", self._on_disconnected)
        ua.on("registered", self._on_registered)
        ua.on("unregistered", self._on_unregistered)
        ua.on("registration_failed", self._on_registration_failed)

    # -- output

    def say(self, text: str) -> None:
        print(text, flush=True)

    def fail(self, reason: str) -> int:
        print(f"sipfsm {self.command}: {reason}", file=sys.stderr, flush=True)
        return 1

    # -- connection and registration

    async def ready(self, timeout: float) -> str | None:
        """Start; wait for the registration (or, without ``register``, the connection).
        ``None`` when ready, else why not."""
        self.ua.start()
        what = "registration" if self.ua.config.register else "connection"
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            return f"no {what} within {timeout:g} s"

    def _settle(self, outcome: str | None) -> None:
        if not self._ready.done():
            self._ready.set_result(outcome)

    def _on_connected(self, server: str) -> None:
        self._connected = True
        self.say(f"connected to {server}")
        if not self.ua.config.register:
            self._settle(None)

    def _on_disconnected(self, event: TransportDisconnected) -> None:
        if event.reason != "stopped":
            self.say(f"disconnected from {event.server}: {event.reason}")
        if event.given_up:
            self._given_up.add(event.server)
            if not self._connected and self._given_up >= self._servers:
                self._settle(f"cannot connect to {event.server}: {event.reason}")

    def _on_registered(self, event: Registered) -> None:
        if event.refresh:
            self.say(f"registration refreshed (expires {event.expires} s)")
        else:
            self.say(f"registered as {self.ua.config.uri} (expires {event.expires} s)")
        self._settle(None)

    def _on_unregistered(self, event: Unregistered) -> None:
        self.say("unregistered" if event.cause is None else f"unregistered: {event.cause}")

    def _on_registration_failed(self, event: RegistrationFailed) -> None:
        reason = f"registration failed: {_why(event.response, event.cause)}"
        self.say(reason)
        self._settle(reason)

    # -- calls

    def follow(self, session: Session) -> None:
        """Print ``session``'s events; it is the current call if there is none."""
        if session in self.sessions:
            return
        self.sessions.append(session)
        if self.current is None:
            self.current = session
        on = session.on
        on("progress", lambda event: self._progress(event.response))
        on("accepted", lambda event: self.say(
            f"answered ({_status(event.response)})" if event.response is not None
            else "answered"))
        on("confirmed", lambda event: self._confirmed(session))
        on("dtmf", self._dtmf)
        on("reinvite", lambda event: self._reinvite(session, event))
        on("bye", lambda event: self.say("peer hung up"))
        on("cancel", lambda event: self.say(
            "cancelling the call" if session.machine.caller else "the caller gave up (CANCEL)"))
        on("message", lambda event: self.say(f"message from {_peer(session)}: "
                                             f"{event.request.text}"))
        on("failed", lambda event: self._failed(session, _why(event.response, event.cause)))
        on("terminated", lambda event: self._ended(session, str(event.cause)))
        on("refer", lambda event: self._transferred(session, event.refer))
        on("replaced", lambda event: self._replaced(session, event.replacement))

    def _progress(self, response: Response) -> None:
        word = _PROGRESS_WORDS.get(response.status_code, "progress")
        self.say(f"{word} ({_status(response)})")

    def _confirmed(self, session: Session) -> None:
        if session is not self.current and self.current is not None:
            self.say(f"now talking to {_peer(session)}")
        self.current = session
        self.say(f"call established with {_peer(session)}")
        self.established.set()
        self._spawn(self._media_up(session))

    async def _media_up(self, session: Session) -> None:
        from .media import MediaError

        wait = getattr(session.sdh, "wait_connected", None)
        if wait is None:
            return
        try:
            await wait(20.0)
        except MediaError as exc:
            if session.state.name != "TERMINATED":
                self.say(f"no audio: {exc}")
            return
        pair = session.sdh.selected_pair()  # type: ignore[attr-defined]
        where = f" ({pair[0][0]}:{pair[0][1]} <-> {pair[1][0]}:{pair[1][1]})" if pair else ""
        self.say(f"audio connected{where}, DTLS-SRTP")

    def _dtmf(self, event: SessionDtmf) -> None:
        self.say(f"DTMF {event.tone} received ({_DTMF_VIA.get(event.via, event.via)}, "
                 f"{event.duration} ms)")

    def _reinvite(self, session: Session, event: SessionReinvited) -> None:
        if event.local:
            if not event.accepted:
                self.say("the peer refused our re-INVITE; nothing changed")
            else:
                self.say("call on hold" if event.held else "call resumed")
        elif session.remote_hold and session not in self._held_by_peer:
            self._held_by_peer.add(session)
            self.say("the peer put the call on hold")
        elif not session.remote_hold and session in self._held_by_peer:
            self._held_by_peer.discard(session)
            self.say("the peer resumed the call")
        else:
            self.say("the peer renegotiated the media")

    def _failed(self, session: Session, reason: str) -> None:
        if session.cause is not None and session.cause.name == "CANCELED":
            return  # ours: "call ended: Canceled" says it
        self.say(f"call failed: {reason}")
        if session is self.current:
            self.failure = f"call failed: {reason}"

    def _ended(self, session: Session, cause: str) -> None:
        self.say(f"call ended: {cause}")
        if session is not self.current:
            return
        # A transfer in progress takes over; otherwise the call is over.
        successor = next((s for s in self.sessions if s.state.name != "TERMINATED"), None)
        self.current = successor
        if successor is None:
            self.call_over.set()

    def _transferred(self, session: Session, refer: Any) -> None:
        kind = "attended transfer" if refer.replaces is not None else "transfer"
        self.say(f"{_peer(session)} asks for a {kind} to {refer.target}")
        try:
            new = refer.accept()
        except InvalidStateError as exc:
            self.say(f"transfer refused: {exc}")
            return
        if new is not None:
            self.say(f"calling {new.target} (transferred)")
            self.follow(new)

    def _replaced(self, session: Session, replacement: Session) -> None:
        self.say(f"call replaced by a call from {_peer(replacement)}")
        self.follow(replacement)
        if session is self.current:
            self.current = replacement

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_dtmf(self, session: Session, tones: str, duration: int = 100,
                        gap: int = 400) -> None:
        """Send ``tones`` one at a time, paced as they are played, once the media is up."""
        from .media import MediaError
        from .session import DTMF_PAUSE

        wait = getattr(session.sdh, "wait_connected", None)
        if wait is not None:
            with contextlib.suppress(MediaError):  # then INFO carries them
                await wait(20.0)
        for tone in tones:
            if session.state.name != "CONFIRMED":
                return
            if tone == ",":
                await asyncio.sleep(DTMF_PAUSE)
                continue
            session.dtmf(tone, duration=duration, inter_tone_gap=gap)
            self.say(f"DTMF {tone} sent")
            await asyncio.sleep((duration + gap) / 1000)

    async def talk(self, tones: str | None, duration: float | None) -> None:
        """In an established call: send ``tones``, then stay ``duration`` seconds (or until
        the call is over), then hang up."""
        if tones and self.current is not None:
            await self.send_dtmf(self.current, tones)
        if duration is None:
            await self.call_over.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.call_over.wait(), duration)
        if not self.call_over.is_set():
            self.say("hanging up")
            await self.hang_up()

    async def hang_up(self, timeout: float = 10.0) -> None:
        """End every call (BYE, CANCEL or a rejection) and wait until they are over."""
        for session in self.ua.sessions():
            with contextlib.suppress(InvalidStateError):
                session.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.ua.sessions():
                    await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Hang up, finish the recordings, unregister and disconnect."""
        await self.hang_up()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self.sessions:  # the recording is complete once its handler is closed
            with contextlib.suppress(Exception):
                await session.sdh.close()
        if self._record_to is not None and self.sessions and Path(str(self._record_to)).exists():
            self.say(f"recorded to {self._record_to}")
        await self.ua.stop()


# -- the UA commands -------------------------------------------------------------------------------


async def _register(phone: _Phone, args: argparse.Namespace) -> int:
    def refuse(event: InviteReceived) -> None:
        from .session import Session

        assert isinstance(event.session, Session)
        phone.say(f"incoming call from {_peer(event.session)}: not answered here (480)")
        event.session.reject(480)

    phone.ua.on("invite", refuse)
    problem = await phone.ready(args.connect_timeout)
    if problem is not None:
        return phone.fail(problem)
    if args.stay:
        phone.say("staying registered; Ctrl-C unregisters")
        await asyncio.Event().wait()
    return 0


async def _message(phone: _Phone, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text:
        return phone.fail("the message is empty")
    problem = await phone.ready(args.connect_timeout)
    if problem is not None:
        return phone.fail(problem)
    handle = phone.ua.message(args.target, text, content_type=args.content_type)
    phone.say(f"sending MESSAGE to {handle.request.uri}")
    response = await handle.result()  # a timeout ends with a 408 of our own (64*T1)
    if 200 <= response.status_code < 300:
        phone.say(f"delivered ({_status(response)})")
        return 0
    return phone.fail(f"message not delivered: {_why(response, handle.cause)}")


async def _call(phone: _Phone, args: argparse.Namespace) -> int:
    problem = await phone.ready(args.connect_timeout)
    if problem is not None:
        return phone.fail(problem)
    session = phone.ua.invite(args.target, extra_headers=args.header, anonymous=args.anonymous,
                              invite_without_sdp=args.without_sdp)
    phone.follow(session)
    phone.say(f"calling {session.target}")
    established = asyncio.ensure_future(phone.established.wait())
    over = asyncio.ensure_future(phone.call_over.wait())
    await asyncio.wait({established, over}, timeout=args.timeout,
                       return_when=asyncio.FIRST_COMPLETED)
    established.cancel()
    over.cancel()
    if not phone.established.is_set():
        if phone.call_over.is_set():
            return phone.fail(phone.failure or f"call ended: {session.cause}")
        phone.say(f"no answer within {args.timeout:g} s: giving up")
        await phone.hang_up()
        return phone.fail(f"no answer within {args.timeout:g} s")
    await phone.talk(args.dtmf, args.duration)
    return 0


async def _answer(phone: _Phone, args: argparse.Namespace) -> int:
    calls: asyncio.Queue[Session] = asyncio.Queue()

    def ring(event: InviteReceived) -> None:
        from .session import Session

        session = event.session
        assert isinstance(session, Session)
        caller = _peer(session)
        if session.replaces is not None and session.replaces in phone.sessions:
            phone.say(f"call from {caller} replaces the call with {_peer(session.replaces)}")
            phone.follow(session)
            session.accept()
        elif args.reject is not None:
            phone.say(f"incoming call from {caller}: rejecting it ({args.reject})")
            session.reject(args.reject)
            calls.put_nowait(session)
        elif phone.current is not None:
            phone.say(f"incoming call from {caller}: busy, rejecting it (486)")
            session.reject(486)
        else:
            phone.say(f"incoming call from {caller}")
            phone.follow(session)
            session.accept()
            calls.put_nowait(session)

    phone.ua.on("invite", ring)
    problem = await phone.ready(args.connect_timeout)
    if problem is not None:
        return phone.fail(problem)
    phone.say(f"waiting for calls to {phone.ua.config.uri}")
    handled = 0
    while args.count is None or handled < args.count:
        await calls.get()
        handled += 1
        if args.reject is not None:
            continue
        established = asyncio.ensure_future(phone.established.wait())
        over = asyncio.ensure_future(phone.call_over.wait())
        await asyncio.wait({established, over}, return_when=asyncio.FIRST_COMPLETED)
        established.cancel()
        over.cancel()
        if phone.established.is_set():
            await phone.talk(args.dtmf, args.duration)
        await phone.call_over.wait()
        # Ready for the next call.
        phone.current = None
        phone.established.clear()
        phone.call_over.clear()
    return 0


_UA_COMMANDS: Mapping[str, Callable[[_Phone, argparse.Namespace],
                                    Coroutine[Any, Any, int]]] = {
    "register": _register, "message": _message, "call": _call, "answer": _answer}


def _run_ua_command(args: argparse.Namespace) -> int:
    try:
        media = _media_options(args)
        config = _configuration(args, media)
        if args.command in ("call", "answer"):
            _check_media(config)
    except _UsageError as exc:
        print(f"sipfsm {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # at the password prompt
        return 130
    try:
        return asyncio.run(_drive(args, config))
    except KeyboardInterrupt:  # before the signal handlers were installed, or a second Ctrl-C
        return 130


async def _drive(args: argparse.Namespace, config: UAConfig) -> int:
    """Run the command; Ctrl-C (or SIGTERM) hangs up and unregisters, a second one quits."""
    loop = asyncio.get_running_loop()
    phone = _Phone(args.command, config)
    work = asyncio.ensure_future(_UA_COMMANDS[args.command](phone, args))
    interrupted: asyncio.Future[int] = loop.create_future()
    closing: list[asyncio.Task[None]] = []

    def on_signal(status: int, name: str) -> None:
        if not interrupted.done():
            phone.say(f"{name}: hanging up" if phone.ua.sessions() else name)
            interrupted.set_result(status)
            work.cancel()
        else:
            for task in closing:
                task.cancel()

    for signum, status, name in ((signal.SIGINT, 130, "interrupted"),
                                 (signal.SIGTERM, 143, "SIGTERM received")):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on this platform
            loop.add_signal_handler(signum, on_signal, status, name)
    try:
        status = await work
    except asyncio.CancelledError:
        if not interrupted.done():
            raise
        status = interrupted.result()
    except Exception as exc:
        status = phone.fail(f"unexpected error: {type(exc).__name__}: {exc}")
    closing.append(asyncio.ensure_future(phone.close()))
    try:
        await closing[0]
    except asyncio.CancelledError:
        phone.say("quitting without waiting")
    return interrupted.result() if interrupted.done() else status


# -- serve, diagrams -------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    """Run the devserver until interrupted (Ctrl-C stops it cleanly)."""
    from .devserver import DevServer

    users = None
    if args.user:
        users = {}
        for item in args.user:
            name, colon, password = item.partition(":")
            if not colon or not name:
                print(f"sipfsm serve: --user takes NAME:PASSWORD, not {item!r}", file=sys.stderr)
                return 2
            users[name] = password

    async def run() -> None:
        server = DevServer(host=args.host, port=args.port, domain=args.domain, users=users,
                           require_auth=not args.no_auth,
                           log=None if args.quiet else lambda line: print(line, flush=True))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Also when started in the background by a shell, which makes it ignore SIGINT.
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        async with server:
            print(f"sipfsm devserver: {server.ws_url} (domain {args.domain}); Ctrl-C stops it",
                  flush=True)
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
        asyncio.run(run())
    return 0


def _diagrams(args: argparse.Namespace) -> int:
    """Write the state diagram of every machine into ``args.out``."""
    from .diagrams import DiagramError, write

    try:
        paths = write(args.out, args.format)
    except DiagramError as exc:
        print(f"sipfsm diagrams: {exc}", file=sys.stderr)
        return 1
    print(f"sipfsm diagrams: wrote {len(paths)} files ({args.format}) to {args.out}")
    return 0


# -- the parser ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipfsm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sipfsm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formats = ("mermaid", "svg", "dot")

    demo_parser = commands.add_parser("demo", help="show what sipfsm does, with no setup")
    demo_parser.add_argument("--out", metavar="DIR",
                             help="where to write the diagrams (default: a new temporary "
                                  "directory)")
    demo_parser.add_argument("--format", choices=formats, default="mermaid",
                             help="diagram format (default mermaid; svg needs Graphviz)")

    serve = commands.add_parser("serve", help="run the embedded SIP-over-WebSocket devserver")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=5066, help="port (0: any free one)")
    serve.add_argument("--domain", default="sipfsm.test", help="the SIP domain served")
    serve.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                       help="a user (repeatable; default alice, bob, carol with NAME-secret)")
    serve.add_argument("--no-auth", action="store_true", help="accept REGISTER without digest")
    serve.add_argument("--quiet", action="store_true", help="do not print each request")

    diagrams = commands.add_parser(
        "diagrams", help="draw every state machine from the tables the code runs")
    diagrams.add_argument("--format", choices=formats, default="mermaid",
                          help="mermaid text (default), Graphviz dot text, or SVG (needs dot)")
    diagrams.add_argument("--out", default="diagrams", metavar="DIR",
                          help="directory to write into (default: diagrams)")

    epilog = (f"The password: --password, '--password -' to be asked for it, or "
              f"${PASSWORD_ENV}. Exit status: 0 done, 1 the SIP side failed (the reason is on "
              "standard error), 2 bad usage or configuration, 130 after Ctrl-C (the call is "
              "hung up and the UA unregistered first; a second Ctrl-C quits at once).")

    def ua_command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary, epilog=epilog)
        return sub

    register = ua_command("register", "register, report the outcome, and unregister")
    register.add_argument("--stay", action="store_true",
                          help="stay registered (refreshing) until Ctrl-C")

    message = ua_command("message", "send a MESSAGE and report whether it was delivered")
    message.add_argument("target", help="a user of your domain, or a SIP URI")
    message.add_argument("text", help="the text ('-': read it from standard input)")
    message.add_argument("--content-type", default="text/plain", help="default text/plain")

    call = ua_command("call", "call TARGET and stay in the call (until the peer hangs up, "
                              "--duration or Ctrl-C)")
    call.add_argument("target", help="a user of your domain, or a SIP URI")
    call.add_argument("--timeout", type=_positive, default=60.0, metavar="SECONDS",
                      help="give up (CANCEL) when nobody answers within this time (default 60)")
    call.add_argument("--header", action="append", default=[], type=_header,
                      metavar="'NAME: VALUE'",
                      help="an extra header for the INVITE (repeatable)")
    call.add_argument("--anonymous", action="store_true",
                      help="hide who calls (From: Anonymous, Privacy: id)")
    call.add_argument("--without-sdp", action="store_true",
                      help="send the INVITE without an offer (the callee offers)")

    answer = ua_command("answer", "register and answer incoming calls, one at a time")
    answer.add_argument("--count", type=int, metavar="N",
                        help="exit after N calls (default: answer until Ctrl-C)")
    answer.add_argument("--reject", type=int, metavar="STATUS",
                        help="refuse every call with this status (e.g. 486) instead")

    for sub in (call, answer):
        media = sub.add_argument_group("media and DTMF")
        source = media.add_mutually_exclusive_group()
        source.add_argument("--play", metavar="FILE",
                            help="send this audio file (anything aiortc's MediaPlayer reads)")
        source.add_argument("--tone", type=_positive, metavar="HZ",
                            help="send a tone of this frequency (default 440 Hz)")
        media.add_argument("--record", metavar="FILE",
                           help="record what the peer sends (the extension picks the format, "
                                "e.g. .wav); complete when the call is over")
        media.add_argument("--dtmf", type=_tones, metavar="DIGITS",
                           help="send these DTMF tones (0-9 * # A-D; ',' pauses 2 s) once the "
                                "call is established")
        media.add_argument("--duration", type=_positive, metavar="SECONDS",
                           help="hang up this long after the call is established and the DTMF "
                                "sent (default: when the peer hangs up, or on Ctrl-C)")
    for sub in (register, message, call, answer):
        _add_ua_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sipfsm`` command."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        with contextlib.suppress(AttributeError, ValueError):  # a ✓ must not stop the demo
            sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
        from .demo import demo  # the demo's module imports this one

        return demo(out=lambda line: print(line, flush=True), out_dir=args.out,
                    format=args.format)
    if args.command == "serve":
        return _serve(args)
    if args.command == "diagrams":
        return _diagrams(args)
    return _run_ua_command(args)


if __name__ == "__main__":
    sys.exit(main())
