"""mkdocs hooks: the reference parts of the docs, generated from the code at build time.

A page asks for generated Markdown with an HTML comment (invisible when the page is read as
plain Markdown, e.g. on GitHub):

* ``<!-- sipfsm:config-table -->``: every :class:`sipfsm.UAConfig` parameter with its SIP.js
  name, accepted input, stored type and default;
* ``<!-- sipfsm:ua-events -->``, ``<!-- sipfsm:session-events -->``: every event name, its bus
  class and the payload fields with their documentation (read from ``sipfsm/events.py``);
* ``<!-- sipfsm:causes -->``: every :class:`sipfsm.causes.Cause` and the statuses that map to it;
* ``<!-- sipfsm:event-names -->``: every UA event name beside its SIP.js spelling;
* ``<!-- sipfsm:api MODULE.CLASS -->``: the class's docstring and a table of its public
  methods and properties (signature and first paragraph of the docstring);
* ``<!-- sipfsm:machine NAME -->``: the states (with their documentation) and the transition
  table of machine NAME, straight from ``MACHINES[NAME]``;
* ``<!-- sipfsm:diagram VIEW -->``: the committed SVG of a diagram view (when there is one) and
  its Mermaid source, rendered now by :mod:`sipfsm.diagrams`.

The SVG files of ``diagrams/`` are added to the site as static files.  A marker naming
something that does not exist is a warning, which ``mkdocs build --strict`` turns into a failure;
so is a configuration parameter without a ``### `name` `` section on the configuration page.
"""

from __future__ import annotations

import ast
import enum
import inspect
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.sipfsm")

_MARKER = re.compile(r"<!-- sipfsm:([a-z-]+)(?: ([\w.-]+))? -->")
_CAUSE_MEANINGS: Mapping[str, str] = {
    "CONNECTION_ERROR": "the WebSocket was not connected, or dropped while the request, "
                        "registration or early call was in progress",
    "REQUEST_TIMEOUT": "no final response within 64·T1 (Timer B or F)",
    "SIP_FAILURE_CODE": "a failure response with no more specific cause",
    "INTERNAL_ERROR": "something failed inside the UA",
    "BUSY": "the callee is busy",
    "REJECTED": "the request was declined or forbidden",
    "REDIRECTED": "a 3xx: the target moved (redirects are not followed)",
    "UNAVAILABLE": "the target cannot be reached now (this includes a callee's 408)",
    "NOT_FOUND": "no such user",
    "ADDRESS_INCOMPLETE": "the target address is incomplete",
    "INCOMPATIBLE_SDP": "no media in common (488 sent or received)",
    "AUTHENTICATION_ERROR": "the credentials were refused (a second challenge for the same "
                            "request, or no credentials)",
    "DIALOG_ERROR": "an in-dialog request found no dialog",
    "WEBRTC_NOT_SUPPORTED": "the media layer is missing",
    "WEBRTC_ERROR": "the media handler failed to make an offer or an answer",
    "CANCELED": "the caller cancelled (either side sees it)",
    "NO_ANSWER": "a callee did not answer within `no_answer_timeout` (408 sent)",
    "EXPIRES": "an INVITE's `Expires` ran out (487 sent), or a registration expired",
    "NO_ACK": "our 2xx was never acknowledged (64·T1); the call is hung up",
    "NO_PRACK": "a reliable provisional response was never acknowledged",
    "USER_DENIED_MEDIA_ACCESS": "SIP.js's name for a refused microphone",
    "BAD_MEDIA_DESCRIPTION": "the peer's SDP could not be used",
    "RTP_TIMEOUT": "media stopped arriving",
    "BYE": "the call ended normally with a BYE, from either side (decision 9)",
}
_SIPFSM_ONLY_EVENTS = frozenset({"transport_stopped"})  # UA events SIP.js 0.10 did not have
_DERIVED_DEFAULTS: Mapping[str, str] = {
    "uri": "`sip:anonymous.XXXXXX@anonymous.invalid` (random)",
    "ws_servers": "none: required",
    "authorization_user": "the user part of `uri`",
    "instance_id": "a random UUID (version 4)",
    "registrar_server": "`uri` without its user part and parameters",
}


# -- helpers -----------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    """A code span in a table cell (pipes inside code spans are fine)."""
    return f"`{' '.join(text.split())}`"


def _clean(doc: str) -> str:
    """reStructuredText inline markup as Markdown: roles and double backquotes to code."""
    doc = re.sub(r":[a-z]+:`~[\w.]*?\.?(\w+)`", r"`\1`", doc)
    doc = re.sub(r":[a-z]+:`([^`]+)`", r"`\1`", doc)
    return doc.replace("``", "`")


def _first_paragraph(doc: str | None) -> str:
    return _cell(_clean((doc or "").strip().split("\n\n")[0]))


def _documented(module: Any, class_name: str) -> tuple[str | None, list[tuple[str, str, str]]]:
    """The docstring of ``class_name`` in ``module`` and its attributes as (name, annotation,
    docstring), read from the source: attribute docstrings do not exist at run time."""
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            members: list[tuple[str, str, str]] = []
            body = node.body
            for at, item in enumerate(body):
                name, annotation = None, ""
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    name, annotation = item.target.id, ast.unparse(item.annotation)
                elif isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
                    name = item.targets[0].id
                if name is None:
                    continue
                doc = ""
                following = body[at + 1] if at + 1 < len(body) else None
                if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                        and isinstance(following.value.value, str):
                    doc = inspect.cleandoc(following.value.value)
                members.append((name, annotation, doc))
            return ast.get_docstring(node), members
    return None, []


def _literal(value: object) -> str:
    from sipfsm.config import LogConfig

    if isinstance(value, enum.Enum):
        return _code(repr(value.value))
    if isinstance(value, LogConfig):
        return (f"`LogConfig()`: `builtin_enabled={value.builtin_enabled!r}`, "
                f"`level={value.level!r}`, `connector={value.connector!r}`")
    return _code(repr(value))


# -- the generators ----------------------------------------------------------------------------


def config_table() -> str:
    """Every UAConfig parameter: Python name, SIP.js name, accepted input, type, default."""
    from sipfsm.config import _PARAMETERS, SIPJS_NAMES, UAConfig, UAParams

    accepts = UAParams.__annotations__
    stored = UAConfig.__annotations__
    rows = ["| parameter | SIP.js name | accepts (`None`: the default) | stored as | default |",
            "|---|---|---|---|---|"]
    for name in sorted(_PARAMETERS):
        row = _PARAMETERS[name]
        if name in _DERIVED_DEFAULTS:
            default = _DERIVED_DEFAULTS[name]
        elif row.derive is not None:
            default = _literal(row.derive({}))
        else:
            default = _literal(row.default)
        hint = accepts.get(name, "")
        hint = getattr(hint, "__forward_arg__", hint)  # a TypedDict keeps ForwardRefs
        given = re.sub(r"\s*\|\s*None\)?$", "", str(hint)).lstrip("(")
        rows.append(f"| [`{name}`](#{name}) | `{SIPJS_NAMES[name]}` | {_code(given)} "
                    f"| {_code(str(stored[name]))} | {default} |")
    return "\n".join(rows)


def _events_section(names: Mapping[str, type], subscribe: str, prefix: str) -> str:
    import sipfsm.events as events

    out = ["| event | bus class | payload |", "|---|---|---|"]
    sections = []
    for name in sorted(names):
        kind = names[name]
        doc, fields = _documented(events, kind.__name__)
        payload = ", ".join(f"`{field}`" for field, _, _ in fields) or "—"
        anchor = f"{prefix}-{name}"
        out.append(f"| [`{name}`](#{anchor}) | `{kind.__name__}` | {payload} |")
        lines = [f"### `{name}` {{#{anchor}}}", "", f"`{subscribe}(\"{name}\", handler)` · "
                 f"`sipfsm.events.{kind.__name__}`", "", _clean(inspect.cleandoc(doc or "")), ""]
        if fields:
            lines += ["| field | type | meaning |", "|---|---|---|"]
            lines += [f"| `{field}` | {_code(annotation)} | {_cell(_clean(text))} |"
                      for field, annotation, text in fields]
        else:
            lines.append("No fields.")
        sections.append("\n".join(lines))
    return "\n".join(out) + "\n\n" + "\n\n".join(sections)


def ua_events() -> str:
    """Every UA event name (``UA_EVENTS``) with its payload."""
    from sipfsm.events import UA_EVENTS

    return _events_section(UA_EVENTS, "ua.on", "ua")


def session_events() -> str:
    """Every session event name with its payload."""
    from sipfsm.session import _EVENT_NAMES

    return _events_section({name: kind for kind, name in _EVENT_NAMES.items()}, "session.on",
                           "session")


def event_names() -> str:
    """Every UA event name beside SIP.js's camelCase spelling."""
    from sipfsm.events import UA_EVENTS

    rows = ["| sipfsm (`ua.on`) | SIP.js 0.10 | event object |", "|---|---|---|"]
    for name in sorted(UA_EVENTS):
        camel = re.sub(r"_([a-z])", lambda m: m[1].upper(), name)
        sipjs = "— (sipfsm only)" if name in _SIPFSM_ONLY_EVENTS else f"`{camel}`"
        rows.append(f"| [`{name}`](events.md#ua-{name}) | {sipjs} "
                    f"| `{UA_EVENTS[name].__name__}` |")
    return "\n".join(rows)


def causes() -> str:
    """Every cause, its text, and the failure statuses that map to it."""
    from sipfsm.causes import _BY_STATUS, Cause

    rows = ["| `Cause` member | text (`str(cause)`) | from statuses | meaning |",
            "|---|---|---|---|"]
    for cause in Cause:
        statuses = ", ".join(str(s) for s in sorted(s for s, c in _BY_STATUS.items()
                                                    if c is cause))
        rows.append(f"| `Cause.{cause.name}` | `{cause.value}` | {statuses or '—'} "
                    f"| {_cell(_CAUSE_MEANINGS.get(cause.name, ''))} |")
    return "\n".join(rows)


def _signature(function: Any) -> str:
    parts: list[str] = []
    star = False
    for parameter in list(inspect.signature(function).parameters.values()):
        if parameter.name in ("self", "cls"):
            continue
        if parameter.kind is parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
            star = True
        elif parameter.kind is parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
        else:
            if parameter.kind is parameter.KEYWORD_ONLY and not star:
                parts.append("*")
                star = True
            default = "" if parameter.default is parameter.empty else f"={parameter.default!r}"
            parts.append(parameter.name + default)
    return f"({', '.join(parts)})"


def api(path: str) -> str | None:
    """The docstring of class ``path`` and its public members, in definition order."""
    import importlib

    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        return None
    lines = [_clean(inspect.cleandoc(cls.__doc__ or "")), "", "| member | what it does |",
             "|---|---|"]
    for name, member in vars(cls).items():
        if name.startswith("_"):  # the constructor included: the class docstring covers it
            continue
        if isinstance(member, property):
            shown, doc = f"`{name}`", member.__doc__
        elif isinstance(member, classmethod | staticmethod):
            shown, doc = f"`{class_name}.{name}{_signature(member.__func__)}`", member.__doc__
        elif inspect.isfunction(member):
            awaited = "await " if inspect.iscoroutinefunction(member) else ""
            shown, doc = f"`{awaited}{name}{_signature(member)}`", member.__doc__
        else:
            continue
        lines.append(f"| {shown} | {_first_paragraph(doc)} |")
    return "\n".join(lines)


def _names(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_names(item) for item in value)
    if isinstance(value, enum.Enum):
        return value.name
    if value is None:
        return ""
    return str(getattr(value, "__name__", value))


def machine(name: str) -> str | None:
    """The states and the transition table of machine ``name``."""
    import importlib

    from sipfsm.diagrams import views
    from sipfsm.fsm.base import MACHINES

    views()  # imports every machine
    spec = MACHINES.get(name)
    if spec is None:
        return None
    _, members = _documented(importlib.import_module(spec.states.__module__),
                             spec.states.__name__)
    lines = [f"**States** (`{spec.states.__module__}.{spec.states.__name__}`; initial "
             f"`{spec.initial.name}`)", "", "| state | meaning |", "|---|---|"]
    lines += [f"| `{member}` | {_cell(_clean(text))} |" for member, _, text in members]
    lines += ["", f"**Transitions** (`{spec.states.__module__}.TABLE`, in order; the first row "
                  "whose source, trigger and conditions match is taken; an empty *to* is an "
                  "internal transition)", "",
              "| trigger | from | to | conditions | actions |", "|---|---|---|---|---|"]
    for row in spec.table:
        actions = ", ".join(n for n in (_names(row.get("before")), _names(row.get("after"))) if n)
        lines.append(f"| `{row['trigger']}` | {_names(row['source'])} | {_names(row['dest'])} "
                     f"| {_names(row.get('conditions'))} | {actions} |")
    return "\n".join(lines)


def diagram(view_name: str, page_uri: str, root: Path) -> str | None:
    """A diagram: the committed SVG when there is one, then the Mermaid source."""
    from sipfsm.diagrams import render_view, views

    view = next((v for v in views() if v.name == view_name), None)
    if view is None:
        return None
    lines = []
    if (root / "diagrams" / f"{view_name}.svg").exists():
        up = "../" * page_uri.count("/")
        lines += [f"![{view_name} state diagram]({up}diagrams/{view_name}.svg)", ""]
    lines += [f"Mermaid source (`diagrams/{view_name}.mmd`):", "", "```mermaid",
              render_view(view, "mermaid").rstrip("\n"), "```"]
    return "\n".join(lines)


# -- the hooks ---------------------------------------------------------------------------------


def _root(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_files(files: Any, config: Any) -> Any:
    """Add the committed SVG diagrams to the site."""
    from mkdocs.structure.files import File

    for path in sorted((_root(config) / "diagrams").glob("*.svg")):
        files.append(File.generated(config, f"diagrams/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Expand the ``<!-- sipfsm:… -->`` markers of a page."""
    uri = page.file.src_uri

    def expand(match: re.Match[str]) -> str:
        kind, argument = match[1], match[2]
        text: str | None
        if kind == "config-table":
            text = config_table()
        elif kind == "ua-events":
            text = ua_events()
        elif kind == "session-events":
            text = session_events()
        elif kind == "causes":
            text = causes()
        elif kind == "event-names":
            text = event_names()
        elif kind == "api" and argument:
            text = api(argument)
        elif kind == "machine" and argument:
            text = machine(argument)
        elif kind == "diagram" and argument:
            text = diagram(argument, uri, _root(config))
        else:
            text = None
        if text is None:
            log.warning("%s: unknown marker %s", uri, match[0])
            return match[0]
        return text

    if uri == "configuration.md":
        _check_configuration(markdown)
    return _MARKER.sub(expand, markdown)


def _check_configuration(markdown: str) -> None:
    from sipfsm.config import _PARAMETERS

    for name in _PARAMETERS:
        if f"### `{name}`" not in markdown:
            log.warning("configuration.md: parameter %r has no '### `%s`' section", name, name)
