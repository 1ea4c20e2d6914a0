"""State diagrams of every machine, drawn from the very tables the code runs.

Theory of operation
-------------------
Every machine registers its :class:`~sipfsm.fsm.base.MachineSpec` in
:data:`sipfsm.fsm.base.MACHINES` when its module is imported; :func:`views` imports every module
of :mod:`sipfsm.fsm` (and the UA, which imports the rest), so a machine added later — a
subscription, say — is drawn with no change here.  Nothing is drawn from a second description:
each row of ``spec.table`` becomes one edge per source state (:func:`edges`).

*Labels.*  An edge is labelled with its trigger, which is the SIP event or the timer that fires
it (``recv_2xx``, ``timer_b``, ``remote_bye``, ``keep_alive``…), followed by its conditions as
``[name]`` (and ``unless`` guards as ``[not name]``) in the order the table lists them; the
table tries rows top to bottom, so among edges with the same trigger and source the first whose
conditions hold wins.  An *internal* transition (``dest: None``: callbacks run, the state stays
and nothing is re-entered) is drawn as a self-loop labelled ``(internal)``, dashed in Graphviz;
an external self-transition (``dest`` equal to the source) is a plain self-loop.  ``[*] →`` marks
the initial state, and ``→ [*]`` every state that no edge leaves for another state (a final one).

*Views.*  One diagram per machine, named after it (``transport``, ``ict``, ``nict``, ``ist``,
``nist``, ``registration``, ``invite``, ``dialog``…).  The INVITE session machine is one table
for both sides of a call, because the two share their ending (CONFIRMED, re-INVITE, BYE); a
caller's session starts in INITIAL and a callee's in RINGING.  Besides the whole ``invite``
diagram there are two filtered views, ``invite-client`` and ``invite-server``: the states
reachable from INITIAL, and from RINGING, with every edge that leaves one of them.  Shared
states (CONFIRMED onwards) appear in both.  Reachability is a property of the table, so a
shared state keeps every edge the table gives it (the client view shows ``ack`` in TERMINATING,
which only a callee ever receives); the whole diagram remains the reference.

*Formats.*  ``mermaid`` (``stateDiagram-v2`` text, ``.mmd``; GitHub and most Markdown viewers
draw it, and it needs no Graphviz), ``dot`` (Graphviz source, ``.dot``) and ``svg`` (the dot
source laid out by Graphviz's ``dot`` program, which must be on ``PATH``; the Debian package
is ``graphviz``).  Output is deterministic: views sorted by name, states in enum order, edges in
table order.  An SVG carries the SHA-256 of its dot source in a comment
(:data:`SOURCE_DIGEST`) instead of Graphviz's version line, so that staleness can be checked
without depending on how one Graphviz release lays a graph out.

*Live.*  :func:`render_live` draws a running UA's machines with the states its instances are in
highlighted, and each highlighted state annotated with the ids of the instances in it: the
transport, the registration, every transaction of the UA core's table, and what every call
and subscription holds (a call's INVITE session machine and dialog, a REFER's subscription…;
see :func:`live_models`).  A snapshot, taken synchronously; call it from the
event loop's thread, e.g. from an event handler while debugging a call::

    from sipfsm.diagrams import render_live, write_live

    print(render_live(ua)["invite"])          # Mermaid text, current states highlighted
    write_live(ua, "debug-diagrams", "svg")   # one file per machine

``sipfsm diagrams [--format mermaid|svg|dot] [--out diagrams/]`` writes every view, plus a
``README.md`` index, with :func:`write`.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import pkgutil
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SipfsmError
from .fsm.base import MACHINES, MachineSpec, Model

if TYPE_CHECKING:
    from .ua import UA

__all__ = [
    "FORMATS",
    "SOURCE_DIGEST",
    "DiagramError",
    "Edge",
    "View",
    "edges",
    "live_models",
    "live_states",
    "render",
    "render_live",
    "render_view",
    "views",
    "write",
    "write_live",
]

FORMATS: Mapping[str, str] = {"mermaid": ".mmd", "dot": ".dot", "svg": ".svg"}
"""The output formats and the file extension of each."""
SOURCE_DIGEST = "sipfsm-dot-sha256"
"""The name of the comment in every SVG that holds the SHA-256 of its dot source."""

_TITLES: Mapping[str, str] = {
    "transport": "WebSocket transport (RFC 7118, RFC 5626 keep-alive)",
    "ict": "INVITE client transaction (RFC 3261 §17.1.1, RFC 6026)",
    "nict": "non-INVITE client transaction (RFC 3261 §17.1.2)",
    "ist": "INVITE server transaction (RFC 3261 §17.2.1, RFC 6026)",
    "nist": "non-INVITE server transaction (RFC 3261 §17.2.2)",
    "registration": "registration (RFC 3261 §10, RFC 5626, RFC 5627)",
    "invite": "INVITE session, caller and callee (RFC 3261 §13-15)",
    "dialog": "dialog (RFC 3261 §12)",
    "subscription": "subscription, subscriber side (RFC 6665 §4.1, RFC 3515)",
    "refer": "REFER notifier: the implicit subscription of a REFER we accepted (RFC 3515)",
}
# Machines drawn a second time, filtered to the states reachable from a given one:
# machine → ((view name, start state, title), …).
_SPLITS: Mapping[str, tuple[tuple[str, str, str], ...]] = {
    "invite": (
        ("invite-client", "INITIAL", "INVITE session, caller (UAC) side: states reachable "
                                     "from INITIAL"),
        ("invite-server", "RINGING", "INVITE session, callee (UAS) side: states reachable "
                                     "from RINGING"),
    ),
}
_HIGHLIGHT = ("#ffd966", "#b45f06")  # fill, stroke of a current state
_MAX_IDS = 4  # instance ids written next to one highlighted state


class DiagramError(SipfsmError):
    """A diagram could not be rendered (an unknown format, or no Graphviz ``dot`` for SVG)."""


# -- the model: edges and views ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    """One transition from one source state, as the table declares it."""

    source: str
    """The source state's name."""
    dest: str | None
    """The destination state's name; ``None`` for an internal transition."""
    trigger: str
    """The trigger: the SIP event, timer or API call that fires it."""
    conditions: tuple[str, ...] = ()
    """The names of the conditions that must all hold."""
    unless: tuple[str, ...] = ()
    """The names of the conditions that must all fail."""

    @property
    def internal(self) -> bool:
        """Whether the state stays without being re-entered (``dest: None``)."""
        return self.dest is None

    @property
    def target(self) -> str:
        """The state the machine is in afterwards."""
        return self.source if self.dest is None else self.dest

    @property
    def label(self) -> str:
        """``trigger [condition]… [not unless]…``, and ``(internal)`` for internal ones."""
        parts = [self.trigger, *(f"[{name}]" for name in self.conditions),
                 *(f"[not {name}]" for name in self.unless)]
        if self.internal:
            parts.append("(internal)")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class View:
    """One diagram: a machine, or the part of it reachable from one state."""

    name: str
    """The file stem: the machine's name, or ``invite-client`` / ``invite-server``."""
    machine: str
    """The name of the machine in :data:`~sipfsm.fsm.base.MACHINES`."""
    title: str
    """A one-line description."""
    module: str
    """The module whose ``TABLE`` this is drawn from."""
    initial: str
    """Where the arrow from ``[*]`` points."""
    states: tuple[str, ...]
    """The states drawn, in their enum's order."""
    edges: tuple[Edge, ...]
    """The transitions drawn, in table order."""

    @property
    def finals(self) -> tuple[str, ...]:
        """The states no edge leaves for another state."""
        leaving = {edge.source for edge in self.edges if edge.target != edge.source}
        return tuple(state for state in self.states if state not in leaving)


def _state_names(value: object, states: type[enum.Enum]) -> list[str]:
    """The state names a table's ``source`` or ``dest`` stands for."""
    if isinstance(value, list | tuple):
        return [name for item in value for name in _state_names(item, states)]
    if isinstance(value, enum.Enum):
        return [value.name]
    if value == "*":
        return [state.name for state in states]
    return [str(value)]


def _guard_names(value: object) -> tuple[str, ...]:
    """The names of a table's ``conditions`` or ``unless`` (strings or callables)."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(name for item in value for name in _guard_names(item))
    if isinstance(value, str):
        return (value,)
    return (str(getattr(value, "__name__", value)),)


def edges(spec: MachineSpec) -> list[Edge]:
    """Every transition of ``spec.table``: one :class:`Edge` per row and source state, in
    table order."""
    out: list[Edge] = []
    for row in spec.table:
        dest = row.get("dest")
        for source in _state_names(row["source"], spec.states):
            if dest is None:
                target = None
            elif dest == "=":  # transitions' spelling of "back to the source, re-entered"
                target = source
            else:
                target = _state_names(dest, spec.states)[0]
            out.append(Edge(source, target, str(row["trigger"]),
                            _guard_names(row.get("conditions")), _guard_names(row.get("unless"))))
    return out


def _reachable(start: str, all_edges: Iterable[Edge]) -> set[str]:
    graph: dict[str, set[str]] = {}
    for edge in all_edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _load_machines() -> None:
    """Import everything that defines a machine, so :data:`MACHINES` is complete."""
    from . import fsm, ua  # noqa: F401  (ua: the machines an adapter may define)

    for module in pkgutil.iter_modules(fsm.__path__):
        importlib.import_module(f"{fsm.__name__}.{module.name}")


def _full_view(spec: MachineSpec) -> View:
    return View(name=spec.name, machine=spec.name, title=_TITLES.get(spec.name, spec.name),
                module=spec.states.__module__, initial=spec.initial.name,
                states=tuple(state.name for state in spec.states), edges=tuple(edges(spec)))


def views() -> list[View]:
    """Every diagram, sorted by name: one per registered machine, plus the filtered views
    (``invite-client``, ``invite-server``)."""
    _load_machines()
    out: list[View] = []
    for name in sorted(MACHINES):
        whole = _full_view(MACHINES[name])
        out.append(whole)
        for view_name, start, title in _SPLITS.get(name, ()):
            if start not in whole.states:
                continue  # the machine changed; the test of the committed files says so
            keep = _reachable(start, whole.edges)
            out.append(View(
                name=view_name, machine=name, title=title, module=whole.module, initial=start,
                states=tuple(state for state in whole.states if state in keep),
                edges=tuple(edge for edge in whole.edges if edge.source in keep)))
    return sorted(out, key=lambda view: view.name)


# -- rendering ---------------------------------------------------------------------------------

Current = Mapping[str, Sequence[str]]
"""Live state: state name → the ids of the instances in it."""


def _header(view: View, live: bool) -> str:
    what = "a live snapshot of" if live else "generated by `sipfsm diagrams` from"
    return f"{view.name}: {view.title}; {what} {view.module}.TABLE"


def _ids_text(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_MAX_IDS])
    more = f" and {len(ids) - _MAX_IDS} more" if len(ids) > _MAX_IDS else ""
    return f"{shown}{more}"


def _mermaid_text(text: str) -> str:
    """Note text Mermaid cannot misread (``;`` ends a statement, ``:`` starts a label…)."""
    return re.sub(r"[^\w.@,/+= -]", "_", text)


def _mermaid(view: View, current: Current | None) -> str:
    lines = [f"%% {_header(view, current is not None)}; do not edit.", "stateDiagram-v2"]
    used = {edge.source for edge in view.edges} | {edge.target for edge in view.edges}
    lines += [f"    {state}" for state in view.states if state not in used]
    lines.append(f"    [*] --> {view.initial}")
    lines += [f"    {edge.source} --> {edge.target}: {edge.label}" for edge in view.edges]
    lines += [f"    {state} --> [*]" for state in view.finals]
    if current:
        fill, stroke = _HIGHLIGHT
        lines.append(f"    classDef current fill:{fill},stroke:{stroke},stroke-width:3px")
        for state in view.states:
            ids = current.get(state)
            if ids:
                lines.append(f"    class {state} current")
                lines.append(f"    note right of {state}: {_mermaid_text(_ids_text(ids))}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(view: View, current: Current | None) -> str:
    lines = [
        f"// {_header(view, current is not None)}; do not edit.",
        f"digraph {_quote(view.name)} {{",
        f"    graph [label={_quote(f'{view.name}: {view.title}')}, labelloc=t, "
        'fontname="Helvetica", fontsize=14];',
        '    node [shape=box, style=rounded, fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9];',
        '    "[*]" [shape=point, width=0.15, label=""];',
    ]
    finals = view.finals
    if finals:
        lines.append('    "[end]" [shape=doublecircle, width=0.1, label="", style=filled, '
                     'fillcolor=black];')
    fill, stroke = _HIGHLIGHT
    for state in view.states:
        ids = (current or {}).get(state)
        if ids:
            lines.append(f'    {_quote(state)} [style="rounded,filled,bold", '
                         f'fillcolor={_quote(fill)}, color={_quote(stroke)}, penwidth=3, '
                         f'xlabel={_quote(_ids_text(ids))}];')
        else:
            lines.append(f"    {_quote(state)};")
    lines.append(f'    "[*]" -> {_quote(view.initial)};')
    for edge in view.edges:
        style = ", style=dashed" if edge.internal else ""
        lines.append(f"    {_quote(edge.source)} -> {_quote(edge.target)} "
                     f"[label={_quote(edge.label)}{style}];")
    lines += [f'    {_quote(state)} -> "[end]";' for state in finals]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _svg(dot_source: str) -> str:
    """Lay ``dot_source`` out with Graphviz; mark the result with the source's digest."""
    program = shutil.which("dot")
    if program is None:
        raise DiagramError("SVG needs Graphviz's `dot` program on PATH (Debian package "
                           "`graphviz`); the mermaid and dot formats do not")
    done = subprocess.run([program, "-Tsvg"], input=dot_source, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise DiagramError(f"dot failed ({done.returncode}): {done.stderr.strip()}")
    digest = hashlib.sha256(dot_source.encode()).hexdigest()
    svg = re.sub(r"<!-- Generated by graphviz[^>]*-->\n", "", done.stdout, count=1)
    mark = f"<!-- {SOURCE_DIGEST}: {digest} -->\n"
    declaration = re.match(r"<\?xml[^>]*\?>\n", svg)
    at = declaration.end() if declaration else 0
    return svg[:at] + mark + svg[at:]


def render_view(view: View, format: str = "mermaid", current: Current | None = None) -> str:
    """``view`` as text in ``format`` (see :data:`FORMATS`); ``current`` highlights states."""
    if format == "mermaid":
        return _mermaid(view, current)
    if format == "dot":
        return _dot(view, current)
    if format == "svg":
        return _svg(_dot(view, current))
    raise DiagramError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")


def render(format: str = "mermaid") -> dict[str, str]:
    """Every view in ``format``, as file name → text, plus ``README.md`` (the index)."""
    if format not in FORMATS:
        raise DiagramError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    all_views = views()
    files = {view.name + FORMATS[format]: render_view(view, format) for view in all_views}
    files["README.md"] = _readme(all_views)
    return files


def write(out: str | Path = "diagrams", format: str = "mermaid") -> list[Path]:
    """Write :func:`render`'s files into directory ``out`` (made if missing); return their
    paths, sorted.  Files already there that no view produces are left alone."""
    return _write(Path(out), render(format))


def _write(out: Path, files: Mapping[str, str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in sorted(files):
        path = out / name
        path.write_text(files[name], encoding="utf-8", newline="\n")
        paths.append(path)
    return paths


def _readme(all_views: Sequence[View]) -> str:
    rows = []
    for view in all_views:
        rows.append(f"| `{view.name}` | {view.title} | {len(view.states)} | {len(view.edges)} "
                    f"| [mermaid]({view.name}.mmd) · [svg]({view.name}.svg) |")
    return "\n".join([
        "# diagrams",
        "",
        "The state diagrams of sipfsm's machines, drawn from the very transition tables the",
        "code runs (the `TABLE` of each module in `sipfsm/fsm/`). Generated: do not edit. After",
        "changing a table, run",
        "",
        "```sh",
        "python -m sipfsm diagrams                 # the .mmd files and this README",
        "python -m sipfsm diagrams --format svg    # the .svg files (needs Graphviz's dot)",
        "```",
        "",
        "`tests/test_diagrams.py` fails while a file here is stale, missing or left over.",
        "",
        "| diagram | machine | states | transitions | files |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "How to read them: an edge is labelled with its trigger (the SIP event, timer or call",
        "that fires it), then its conditions in brackets; of several edges with the same source",
        "and trigger, the first in the table whose conditions hold is taken. `(internal)` (dashed",
        "in the SVGs) marks an internal transition: its actions run and the state stays. `[*]`",
        "points at the initial state, and a state with an arrow to the end has no way out.",
        "`invite-client` and `invite-server` are the caller's and callee's parts of `invite`",
        "(the states reachable from INITIAL and from RINGING).",
        "",
        "A running UA's machines, with their current states highlighted:",
        "`sipfsm.diagrams.render_live(ua)` (see `docs/machines/index.md`).",
        "",
    ])


# -- live --------------------------------------------------------------------------------------


def live_models(ua: UA) -> list[Model]:
    """The machine instances of ``ua`` now: its transport, its registration, every live
    transaction, and every machine its calls and subscriptions hold (their INVITE session and
    dialog, a REFER's subscription…: any :class:`~sipfsm.fsm.base.Model` found up to two
    attributes deep, so that a machine added later is found without a change here)."""
    found: dict[int, Model] = {}

    def visit(value: object, depth: int) -> None:
        if isinstance(value, Model):
            found.setdefault(id(value), value)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                visit(item, depth)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item, depth)
        elif depth > 0 and value is not ua and type(value).__module__.startswith("sipfsm."):
            for item in _attribute_values(value):
                visit(item, depth - 1)

    visit([ua.transport, ua.registration, *ua.core.transactions.values()], 0)
    subscriptions = getattr(ua, "subscriptions", None)
    owners: list[object] = [*ua.sessions(), *(subscriptions() if callable(subscriptions) else ())]
    for owner in owners:
        visit(owner, 2)
    return list(found.values())


def _attribute_values(obj: object) -> list[object]:
    """The values of ``obj``'s instance attributes (``__dict__`` and ``__slots__``)."""
    values = list(getattr(obj, "__dict__", {}).values())
    for cls in type(obj).__mro__:
        slots = getattr(cls, "__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                values.append(getattr(obj, name))
    return values


def live_states(ua: UA) -> dict[str, dict[str, list[str]]]:
    """machine name → state name → the ids of ``ua``'s instances in that state (sorted)."""
    found: dict[str, dict[str, list[str]]] = {}
    for model in live_models(ua):
        states = found.setdefault(model.SPEC.name, {})
        states.setdefault(model.state.name, []).append(model.id)
    for states in found.values():
        for ids in states.values():
            ids.sort()
    return found


def render_live(ua: UA, format: str = "mermaid") -> dict[str, str]:
    """Every machine (the whole view of each; no filtered views), as machine name → text in
    ``format``, with the states ``ua``'s instances are in highlighted and annotated with their
    ids.  A machine with no live instance is drawn plain."""
    current = live_states(ua)
    return {view.name: render_view(view, format, current.get(view.machine, {}))
            for view in views() if view.name == view.machine}


def write_live(ua: UA, out: str | Path, format: str = "mermaid") -> list[Path]:
    """Write :func:`render_live`'s diagrams into directory ``out``, one file per machine;
    return their paths."""
    return _write(Path(out), {name + FORMATS[format]: text
                              for name, text in render_live(ua, format).items()})
