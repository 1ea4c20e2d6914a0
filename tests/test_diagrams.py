"""State diagrams: the committed files are current, every declared transition is drawn, the live
rendering highlights where a running UA's machines are, and ``sipfsm diagrams`` works."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sipfsm import diagrams
from sipfsm.devserver import DevServer
from sipfsm.diagrams import SOURCE_DIGEST, DiagramError, render_live, render_view, views
from sipfsm.events import InviteReceived
from sipfsm.fsm.base import MACHINES
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.ua import UA

COMMITTED = Path(__file__).resolve().parent.parent / "diagrams"
REGENERATE = ("run `python -m sipfsm diagrams` (and `python -m sipfsm diagrams --format svg` "
              "for the SVG files) and commit diagrams/")
_DIGEST = re.compile(rf"<!-- {SOURCE_DIGEST}: ([0-9a-f]{{64}}) -->")


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sipfsm", "diagrams", *args],
                          capture_output=True, text=True, timeout=60, check=False, env=env)


def _expected_lines(name: str) -> list[str]:
    """The edge lines the mermaid text of machine ``name`` must hold, worked out from the table
    directly (not through :func:`diagrams.edges`)."""
    spec = MACHINES[name]
    lines = []
    for row in spec.table:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        conditions = row.get("conditions") or []
        conditions = [conditions] if isinstance(conditions, str) else conditions
        for source in sources:
            dest = row["dest"]
            label = " ".join([row["trigger"], *(f"[{c}]" for c in conditions)])
            if dest is None:
                dest, label = source, f"{label} (internal)"
            lines.append(f"    {source.name} --> {dest.name}: {label}")
    return lines


# -- the committed files -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("diagrams")
    result = _run_cli("--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"to {out}" in result.stdout
    return out


def test_committed_mermaid_files_and_readme_are_current(regenerated: Path) -> None:
    produced = sorted(path.name for path in regenerated.iterdir())
    assert "README.md" in produced and "transport.mmd" in produced
    for name in produced:
        committed = COMMITTED / name
        assert committed.exists(), f"diagrams/{name} is missing: {REGENERATE}"
        assert committed.read_text(encoding="utf-8") == \
            (regenerated / name).read_text(encoding="utf-8"), \
            f"diagrams/{name} is stale: {REGENERATE}"


def test_no_committed_diagram_is_left_over(regenerated: Path) -> None:
    stems = {path.stem for path in regenerated.glob("*.mmd")}
    for path in sorted(COMMITTED.iterdir()):
        if path.suffix in (".mmd", ".dot", ".svg"):
            assert path.stem in stems, (f"diagrams/{path.name} draws no machine any more: "
                                        "delete it, then " + REGENERATE)


def test_committed_svg_files_are_drawn_from_the_current_tables() -> None:
    # Compared by the digest of the dot source each SVG carries, not byte for byte: another
    # Graphviz release may lay the same graph out differently.
    for view in views():
        svg = COMMITTED / f"{view.name}.svg"
        assert svg.exists(), f"diagrams/{svg.name} is missing: {REGENERATE}"
        found = _DIGEST.search(svg.read_text(encoding="utf-8"))
        assert found is not None, f"diagrams/{svg.name} has no source digest: {REGENERATE}"
        source = render_view(view, "dot").encode()
        assert found[1] == hashlib.sha256(source).hexdigest(), \
            f"diagrams/{svg.name} is stale: {REGENERATE}"


# -- what the diagrams say -----------------------------------------------------------------------


def test_every_machine_has_a_view_and_every_transition_an_edge() -> None:
    by_name = {view.name: view for view in views()}
    assert {"transport", "ict", "nict", "ist", "nist", "registration", "invite",
            "dialog"} <= set(MACHINES)
    for name in MACHINES:
        text = render_view(by_name[name], "mermaid")
        expected = _expected_lines(name)
        drawn = [line for line in text.splitlines()
                 if " --> " in line and "[*]" not in line]
        assert sorted(drawn) == sorted(expected), name
        initial = MACHINES[name].initial.name
        assert f"    [*] --> {initial}" in text


def test_labels_carry_triggers_timers_and_conditions() -> None:
    by_name = {view.name: render_view(view, "mermaid") for view in views()}
    assert "    CALLING --> TERMINATED: timer_b" in by_name["ict"]
    assert "    CALLING --> ACCEPTED: recv_2xx" in by_name["ict"]
    assert "    COMPLETED --> TERMINATED: timer_h" in by_name["ist"]
    assert "    CONNECTING --> RECONNECT_WAIT: connect_failed [_may_retry]" in \
        by_name["transport"]
    assert "    CONNECTED --> CONNECTED: keep_alive (internal)" in by_name["transport"]
    assert "    TERMINATED --> [*]" in by_name["nict"]
    dot = render_view(next(v for v in views() if v.name == "transport"), "dot")
    assert '"CONNECTED" -> "CONNECTED" [label="keep_alive (internal)", style=dashed];' in dot


def test_the_invite_machine_is_split_into_caller_and_callee_views() -> None:
    by_name = {view.name: view for view in views()}
    whole, client, server = by_name["invite"], by_name["invite-client"], by_name["invite-server"]
    assert client.initial == "INITIAL" and server.initial == "RINGING"
    assert {"CALLING", "PROCEEDING", "CANCELLING"} <= set(client.states)
    assert not {"RINGING", "ANSWERING", "ACCEPTED"} & set(client.states)
    assert {"RINGING", "ANSWERING", "ACCEPTED"} <= set(server.states)
    assert not {"INITIAL", "CALLING", "PROCEEDING", "CANCELLING"} & set(server.states)
    assert "CONFIRMED" in client.states and "CONFIRMED" in server.states
    assert set(client.edges) | set(server.edges) == set(whole.edges)
    text = render_view(server, "mermaid")
    assert "    [*] --> RINGING" in text and "INITIAL" not in text


def test_output_is_deterministic() -> None:
    first = diagrams.render("mermaid")
    assert first == diagrams.render("mermaid")
    assert diagrams.render("dot") == diagrams.render("dot")
    assert [view.name for view in views()] == sorted(view.name for view in views())


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(DiagramError, match="unknown format"):
        diagrams.render("png")


# -- live ----------------------------------------------------------------------------------------


def test_live_rendering_highlights_current_states_offline() -> None:
    ua = UA(uri="alice@example.test", ws_servers="ws://127.0.0.1:9", autostart=False,
            log={"builtin_enabled": False})
    ua.transport.start(0.0)  # driven by hand: the effects are never carried out
    ua.transport.take_effects()
    ua.registration.register(0.0)
    ua.registration.take_effects()
    states = diagrams.live_states(ua)
    assert states["transport"] == {"CONNECTING": [f"{ua.id}.transport"]}
    assert states["registration"] == {"REGISTERING": [f"{ua.id}.registration"]}
    live = render_live(ua)
    assert set(live) == set(MACHINES)
    assert "    class CONNECTING current" in live["transport"]
    assert f"    note right of CONNECTING: {ua.id}.transport" in live["transport"]
    assert "    class REGISTERING current" in live["registration"]
    assert live["transport"].count("class ") == 1
    assert "classDef" not in live["invite"]  # no call: drawn plain
    dot = render_live(ua, "dot")["registration"]
    assert re.search(r'"REGISTERING" \[style="rounded,filled,bold".*xlabel=', dot)
    assert '"UNREGISTERED";' in dot


async def test_live_rendering_of_a_call_in_progress(tmp_path: Path) -> None:
    async with DevServer() as server:
        alice, bob = (UA(uri=f"sip:{name}@{server.domain}", ws_servers=server.ws_url,
                         password=f"{name}-secret", log={"builtin_enabled": False},
                         session_description_handler_factory=signalling_only_factory)
                      for name in ("alice", "bob"))
        try:
            await asyncio.gather(alice.wait_for("registered", timeout=10),
                                 bob.wait_for("registered", timeout=10))
            ringing = asyncio.ensure_future(bob.wait_for("invite", timeout=10))
            call = alice.invite("bob")
            event: InviteReceived = await ringing
            assert isinstance(event.session, Session)
            ringing_live = render_live(bob)["invite"]
            assert f"note right of RINGING: {event.session.id}" in ringing_live
            event.session.accept()
            await call.wait_for("confirmed", timeout=10)
            live = render_live(alice)
            assert "    class CONNECTED current" in live["transport"]
            assert "    class REGISTERED current" in live["registration"]
            assert "    class CONFIRMED current" in live["invite"]
            assert f"note right of CONFIRMED: {call.id}" in live["invite"]
            assert "    class CONFIRMED current" in live["dialog"]
            paths = diagrams.write_live(alice, tmp_path, "mermaid")
            assert sorted(path.name for path in paths) == sorted(f"{name}.mmd"
                                                                 for name in MACHINES)
            call.bye()
            await call.wait_for("terminated", timeout=10)
        finally:
            await alice.stop()
            await bob.stop()


# -- SVG and the command -------------------------------------------------------------------------


def _need_dot() -> None:
    if shutil.which("dot") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Graphviz's dot is missing (scripts/install-system-deps.sh installs it)")
        pytest.skip("Graphviz's dot is not installed")


def test_svg_is_valid_xml_with_an_svg_root() -> None:
    _need_dot()
    view = next(v for v in views() if v.name == "ict")
    svg = render_view(view, "svg")
    root = ET.fromstring(svg)
    assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg")
    assert "Generated by graphviz" not in svg and _DIGEST.search(svg)
    live = ET.fromstring(render_live(UA(uri="a@example.test", ws_servers="ws://127.0.0.1:9",
                                        autostart=False), "svg")["transport"])
    assert live.tag.endswith("svg")


def test_cli_writes_svg_and_dot(tmp_path: Path) -> None:
    _need_dot()
    result = _run_cli("--format", "svg", "--out", str(tmp_path / "svg"))
    assert result.returncode == 0, result.stderr
    for view in views():
        ET.parse(tmp_path / "svg" / f"{view.name}.svg")
    result = _run_cli("--format", "dot", "--out", str(tmp_path / "dot"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dot" / "invite-server.dot").read_text().startswith("// invite-server")


def test_cli_without_dot_explains_and_fails(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no dot there
    result = _run_cli("--format", "svg", "--out", str(tmp_path / "out"), env=env)
    assert result.returncode == 1
    assert "graphviz" in result.stderr.lower()


def test_cli_refuses_an_unknown_format(tmp_path: Path) -> None:
    result = _run_cli("--format", "png", "--out", str(tmp_path))
    assert result.returncode == 2 and "invalid choice" in result.stderr
