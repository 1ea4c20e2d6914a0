"""Logging for one UA: structlog bound loggers with a private processor chain, SIP.js's levels.

Theory of operation
-------------------
Each UA owns one :class:`LoggerFactory`, built from its :class:`~sipfsm.LogConfig`.  The
factory hands out :class:`Logger` objects per *category* (``"transport"``, ``"transaction"``…)
and optional *label* (a transaction or dialog id).  A :class:`Logger` wraps a structlog bound
logger made by :func:`structlog.wrap_logger` with the factory's own processors, so nothing here
reads or changes structlog's global configuration or the standard library's root logger: an
application embedding sipfsm keeps full control of both, and two UAs in one process (different
levels, connectors, streams, secrets) never see each other's settings.

A call goes through these steps, and stops at the first one that says no:

1. the level check, before anything is built: ``debug`` at level 2 is one comparison;
2. the processor chain: :func:`structlog.processors.format_exc_info` (``exc_info=...`` becomes
   a traceback), :meth:`LoggerFactory._redact` (values of secret-named keys become ``NOT SHOWN``,
   registered secrets inside strings become ``***``, nested containers included) and
   :meth:`LoggerFactory._render`, which returns the *content*: ``event key=value ...``, with a
   multi-line body (a traced SIP frame, a traceback) on the lines after it;
3. the sink: if ``builtin_enabled``, one human-readable line on the stream; then the
   connector, called as SIP.js did, ``connector(level, category, label, content)``.

Secrets are hidden twice on purpose: once in the raw strings, before quoting can escape a quote
or a newline inside a secret into a form a plain search no longer finds, and once in the
finished text, which catches what the first pass cannot see (a traced frame, an object's
``str()``).  A secret containing ``*`` may therefore still be half recognisable after ``***``
was put in place of another secret; every other secret is gone from both outputs.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any, Final, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from .config import LogConfig

__all__ = ["LEVELS", "LevelName", "Logger", "LoggerFactory"]

LevelName = Literal["error", "warn", "log", "debug"]
"""SIP.js's level names; ``"log"`` is what other libraries call *info*."""

LEVELS: Final[Mapping[str, int]] = MappingProxyType({"error": 0, "warn": 1, "log": 2, "debug": 3})
"""Level name -> number; a line is emitted iff its number is at most ``LogConfig.level``."""

NOT_SHOWN: Final = "NOT SHOWN"
"""What stands in for the value of a secret-named key (SIP.js's wording)."""
HIDDEN: Final = "***"
"""What stands in for a registered secret wherever it occurs."""

# A key is secret if, lower-cased with '-' read as '_', it is one of these words or ends with
# '_' and one of them: "Proxy-Authorization", "HA1", "sip_password" and "client_secret" are.
_SECRET_KEY: Final = re.compile(r"(?:.*_)?(?:password|ha1|secret|authorization)")
# Keys the renderer lays out on the lines below the first instead of as key=value pairs.  The
# colon keeps the trace body out of reach of ordinary keyword arguments.
_BODY: Final = "sipfsm:body"
_EXCEPTION: Final = "exception"  # where format_exc_info puts the traceback
# A value is written bare unless it has one of these (or a non-printable character).
_NEEDS_QUOTES: Final = re.compile(r"[\s\"'=\\]")
_INDENT: Final = "    "
_REBUILT: Final = (list, tuple, set, frozenset)


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.fullmatch(key.lower().replace("-", "_")) is not None


class _Bound(structlog.BoundLoggerBase):
    """The structlog wrapper class: one method that runs the chain and hands the result on."""

    def emit(self, level: LevelName, event: str, fields: dict[str, Any]) -> None:
        # _process_event takes the fields as a dict, so a key named like one of structlog's own
        # parameters ("method_name", "event") cannot collide with them.
        args, kwargs = self._process_event(level, event, fields)
        self._logger.emit(level, *args, **kwargs)


class _Sink:
    """The object structlog wraps: it knows where its lines go and under which names."""

    __slots__ = ("category", "factory", "label")

    def __init__(self, factory: LoggerFactory, category: str, label: str | None) -> None:
        self.factory = factory
        self.category = category
        self.label = label

    def emit(self, level: LevelName, content: str) -> None:
        self.factory._emit(level, self.category, self.label, content)


class Logger:
    """A category's (and label's) logger; made by :meth:`LoggerFactory.get`.

    ``error``, ``warn``, ``log`` and ``debug`` take an event name or message and keyword fields;
    the fields bound by :meth:`LoggerFactory.get` and :meth:`bind` come first in the output.
    ``exc_info=True`` (or an exception) adds the traceback below the line.
    """

    __slots__ = ("_bound", "_level", "_sink", "_trace_sip")

    def __init__(self, sink: _Sink, bound: _Bound) -> None:
        self._sink = sink
        self._bound = bound
        self._level = sink.factory.level
        self._trace_sip = sink.factory.trace_sip

    @property
    def category(self) -> str:
        """The category, printed as ``sipfsm.<category>``."""
        return self._sink.category

    @property
    def label(self) -> str | None:
        """The label (a transaction or dialog id, say), or ``None``."""
        return self._sink.label

    def enabled(self, level_name: LevelName) -> bool:
        """Whether a line at ``level_name`` would be emitted (written or sent to the connector).

        Use it to skip building an expensive value: ``if log.enabled("debug"): ...``.
        """
        try:
            return LEVELS[level_name] <= self._level
        except KeyError:
            raise ValueError(f"unknown log level {level_name!r}; "
                             f"use one of {', '.join(LEVELS)}") from None

    def bind(self, **fields: Any) -> Logger:
        """A logger of the same category and label with ``fields`` added to every line."""
        return Logger(self._sink, self._bound.bind(**fields))

    def error(self, event: str, /, **fields: Any) -> None:
        """Emit ``event`` at level ``error`` (0)."""
        if self._level >= 0:
            self._bound.emit("error", event, fields)

    def warn(self, event: str, /, **fields: Any) -> None:
        """Emit ``event`` at level ``warn`` (1)."""
        if self._level >= 1:
            self._bound.emit("warn", event, fields)

    def log(self, event: str, /, **fields: Any) -> None:
        """Emit ``event`` at level ``log`` (2, *info*)."""
        if self._level >= 2:
            self._bound.emit("log", event, fields)

    def debug(self, event: str, /, **fields: Any) -> None:
        """Emit ``event`` at level ``debug`` (3)."""
        if self._level >= 3:
            self._bound.emit("debug", event, fields)

    def transition(self, *, machine: str, id: str, source: object, trigger: str, dest: object,
                   **fields: Any) -> None:
        """Emit the ``transition`` debug event of a state machine.

        Every machine logs each of its transitions through this method, so that one grep (or
        one connector filter) follows any machine: ``transition machine=transport id=t1
        source=STOPPED trigger=start dest=CONNECTING``.  Enum states are written by name.
        """
        if self._level >= 3:
            self._bound.emit("debug", "transition", {
                "machine": machine, "id": id, "source": source, "trigger": trigger,
                "dest": dest, **fields,
            })

    def trace(self, direction: Literal["sent", "received"], data: str, *, peer: str) -> None:
        """Log a whole WebSocket frame at level ``log`` if the UA has ``trace_sip`` (SIP.js's
        ``traceSip``).  The first line says ``sent`` or ``received`` and the ``peer``; the
        frame follows on the next lines.
        """
        if self._trace_sip and self._level >= 2:
            self._bound.emit("log", direction, {"peer": peer, _BODY: data})

    def __repr__(self) -> str:
        label = "" if self.label is None else f" label={self.label!r}"
        return f"<Logger sipfsm.{self.category}{label}>"


class LoggerFactory:
    """The loggers of one UA, all sharing its configuration, stream and secrets.

    ``config`` gives the level, whether sipfsm writes its own lines (``builtin_enabled``) and
    the connector; ``trace_sip`` turns :meth:`Logger.trace` on; ``stream`` receives the lines
    (default: whatever ``sys.stderr`` is when a line is written); ``secrets`` are strings never
    to be shown (the password, say), to which :meth:`add_secret` adds more later.

    Nothing global is configured: each factory has its own structlog processors, and factories
    never share state.
    """

    def __init__(self, config: LogConfig, *, trace_sip: bool = False,
                 stream: TextIO | None = None, secrets: Iterable[str] = ()) -> None:
        self._config = config
        self._trace_sip = trace_sip
        self._stream = stream
        # A tuple, longest first (so that a secret containing another is hidden whole), replaced
        # as a whole by add_secret: a line being rendered in another thread sees one or the other.
        self._secrets: tuple[str, ...] = ()
        self._connector_failure_reported = False
        # A line that nobody would see is not worth rendering: without an output, level -1.
        has_output = config.builtin_enabled or config.connector is not None
        self._level = config.level if has_output else -1
        self._processors: list[Processor] = [
            structlog.processors.format_exc_info,
            self._redact,
            self._render,
        ]
        for secret in secrets:
            self.add_secret(secret)

    @property
    def config(self) -> LogConfig:
        """The configuration given."""
        return self._config

    @property
    def level(self) -> int:
        """The effective level: ``config.level``, or -1 when no line can go anywhere."""
        return self._level

    @property
    def trace_sip(self) -> bool:
        """Whether :meth:`Logger.trace` logs frames."""
        return self._trace_sip

    def add_secret(self, secret: str) -> None:
        """Hide ``secret`` (replaced by ``***``) in every later line; ``""`` is ignored."""
        if secret and secret not in self._secrets:
            self._secrets = tuple(sorted((*self._secrets, secret), key=len, reverse=True))

    def get(self, category: str, label: str | None = None, **context: Any) -> Logger:
        """A logger for ``category`` (printed ``sipfsm.<category>``), ``label`` and ``context``.

        The ``context`` fields appear on every line of the logger, before the call's own.
        """
        sink = _Sink(self, category, label)
        proxy = structlog.wrap_logger(
            sink, processors=self._processors, wrapper_class=_Bound, context_class=dict,
            cache_logger_on_first_use=False,
        )
        bound: _Bound = proxy.bind(**context)
        return Logger(sink, bound)

    # -- the processors ----------------------------------------------------------------------

    def _hide(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, HIDDEN)
        return text

    def _scrub(self, value: object) -> object:
        """``value`` with secret-named keys and registered secrets hidden, containers copied."""
        if isinstance(value, str):
            return self._hide(value)
        if isinstance(value, Mapping):
            return {self._scrub(key): NOT_SHOWN if _is_secret_key(key) else self._scrub(item)
                    for key, item in value.items()}
        # Exact types only: a subclass (a namedtuple, say) may not rebuild from an iterable.
        if isinstance(value, list | tuple | set | frozenset) and type(value) in _REBUILT:
            return type(value)(self._scrub(item) for item in value)
        return value

    def _redact(self, _logger: WrappedLogger, _level: str, event_dict: EventDict) -> EventDict:
        """Processor: hide secrets in the event dict (by key name, and by value)."""
        for key, value in event_dict.items():
            event_dict[key] = NOT_SHOWN if _is_secret_key(key) else self._scrub(value)
        return event_dict

    def _render(self, _logger: WrappedLogger, _level: str, event_dict: EventDict) -> str:
        """Processor: the content, ``event key=value ...`` and the body lines below."""
        parts = [str(event_dict.pop("event", ""))]
        body = event_dict.pop(_BODY, None)
        exception = event_dict.pop(_EXCEPTION, None)
        parts.extend(f"{key}={self._value(value)}" for key, value in event_dict.items())
        content = " ".join(parts)
        for extra in (body, exception):
            if extra is not None:
                content += "\n" + str(extra)
        return self._hide(content)

    def _value(self, value: object) -> str:
        """One value as text: a container as its ``repr`` (brackets delimit it), anything else
        bare if it can be, else double-quoted with JSON escapes; enums by name."""
        if isinstance(value, dict | list | tuple | set | frozenset):
            return self._hide(repr(value))
        if isinstance(value, Enum):
            value = value.name
        text = self._hide(value if isinstance(value, str) else str(value))
        if text and text.isprintable() and _NEEDS_QUOTES.search(text) is None:
            return text
        return json.dumps(text, ensure_ascii=False)

    # -- the outputs -------------------------------------------------------------------------

    def _emit(self, level: LevelName, category: str, label: str | None, content: str) -> None:
        """Write the line (if ``builtin_enabled``), then call the connector (if any)."""
        if label is not None:
            label = self._hide(label)
        if self._config.builtin_enabled:
            self._write(level, category, label, content)
        connector = self._config.connector
        if connector is not None:
            try:
                connector(level, category, label, content)
            except Exception as error:  # a broken connector must not break the UA
                self._report_connector_failure(connector, error)

    def _report_connector_failure(self, connector: Callable[..., object],
                                  error: Exception) -> None:
        # Once per factory: a connector that fails on every line would otherwise double the
        # output with the same complaint.  Written even without builtin_enabled, since the
        # connector was then the only output and nobody would learn that it is broken.
        if self._connector_failure_reported:
            return
        self._connector_failure_reported = True
        try:
            name = getattr(connector, "__qualname__", type(connector).__qualname__)
            content = (f"log connector {name} raised {type(error).__name__}: {error}; it is "
                       "still called, but its further errors are not reported")
        except Exception:  # an exception whose str() fails
            content = "log connector raised an exception; further errors are not reported"
        self._write("error", "logging", None, content)

    def _write(self, level: LevelName, category: str, label: str | None, content: str) -> None:
        """One line on the stream: timestamp, level, category, label, content; the content's
        other lines (a frame, a traceback) follow, indented."""
        stream = self._stream if self._stream is not None else sys.stderr
        if stream is None:  # no console (pythonw)
            return
        stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
        head = f"{stamp} | {level.upper():<5} | sipfsm.{category}"
        if label is not None:
            head += f" | {label}"
        first, *rest = content.rstrip("\r\n").splitlines() or [""]
        lines = [f"{head} | {first}"]
        lines.extend(_INDENT + line if line else "" for line in rest)
        # Hidden once more as a whole: joining and indenting must not assemble a secret.
        text = self._hide("\n".join(lines) + "\n")
        try:
            stream.write(text)  # one write per line, so that threads do not interleave lines
            stream.flush()
        except (OSError, ValueError):  # closed or broken stream: logging must not raise
            pass
