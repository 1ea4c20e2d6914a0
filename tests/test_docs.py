"""The documentation site cannot silently go stale: every configuration parameter, event, cause
and machine is documented, every page is in the navigation, every code example compiles and
imports what exists, and ``mkdocs build --strict`` passes."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from types import ModuleType

import pytest

from sipfsm.causes import Cause
from sipfsm.config import SIPJS_NAMES, UAConfig
from sipfsm.diagrams import views
from sipfsm.events import UA_EVENTS
from sipfsm.fsm.base import MACHINES
from sipfsm.session import _EVENT_NAMES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKER = re.compile(r"<!-- sipfsm:([a-z-]+)(?: ([\w.-]+))? -->")


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sipfsm_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages() -> dict[str, str]:
    return {path.relative_to(DOCS).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(DOCS.rglob("*.md"))}


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_every_configuration_parameter_has_a_section_and_a_row() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert "<!-- sipfsm:config-table -->" in page
    table = _hooks().config_table()
    for item in fields(UAConfig):
        assert f"### `{item.name}`" in page, f"docs/configuration.md: document {item.name}"
        assert f"| [`{item.name}`](#{item.name}) | `{SIPJS_NAMES[item.name]}` |" in table
    sections = re.findall(r"^### `(\w+)`", page, re.M)
    assert sorted(sections) == sorted(item.name for item in fields(UAConfig)), \
        "docs/configuration.md has a section for a parameter that does not exist"


def test_the_out_of_dialog_refer_warning_is_there() -> None:
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert '!!! warning "Security: out-of-dialog REFER"' in page


def test_every_event_and_cause_is_documented() -> None:
    hooks = _hooks()
    page = (DOCS / "events.md").read_text(encoding="utf-8")
    for marker in ("ua-events", "session-events", "causes"):
        assert f"<!-- sipfsm:{marker} -->" in page
    ua_events = hooks.ua_events()
    for name, kind in UA_EVENTS.items():
        assert f"### `{name}` {{#ua-{name}}}" in ua_events
        assert f"`sipfsm.events.{kind.__name__}`" in ua_events
    session_events = hooks.session_events()
    for name in _EVENT_NAMES.values():
        assert f"### `{name}` {{#session-{name}}}" in session_events
    causes = hooks.causes()
    for cause in Cause:
        assert f"| `Cause.{cause.name}` | `{cause.value}` |" in causes
        assert cause.name in hooks._CAUSE_MEANINGS, f"docs/hooks.py: explain Cause.{cause.name}"
    names = hooks.event_names()
    assert all(f"[`{name}`](events.md#ua-{name})" in names for name in UA_EVENTS)


def test_event_payload_fields_are_read_from_the_source() -> None:
    registered = _hooks().ua_events().split("### `registered`", 1)[1].split("### ", 1)[0]
    assert "| `expires` | `int` | The lifetime granted to our binding, in seconds. |" in \
        registered


def test_every_machine_has_a_page_with_its_diagram_and_table() -> None:
    markers = [(page, kind, argument) for page, text in _pages().items()
               for kind, argument in MARKER.findall(text)]
    on_machine_pages = {(kind, argument) for page, kind, argument in markers
                        if page.startswith("machines/")}
    for name in MACHINES:
        assert ("machine", name) in on_machine_pages, \
            f"docs/machines/: add <!-- sipfsm:machine {name} --> to a page for machine {name}"
        assert ("diagram", name) in on_machine_pages, \
            f"docs/machines/: add <!-- sipfsm:diagram {name} --> to a page for machine {name}"
    view_names = {view.name for view in views()}
    known = {"config-table", "ua-events", "session-events", "causes", "event-names", "api",
             "machine", "diagram"}
    for page, kind, argument in markers:
        assert kind in known, f"docs/{page}: unknown marker {kind}"
        if kind == "machine":
            assert argument in MACHINES, f"docs/{page}: no machine {argument!r}"
        if kind == "diagram":
            assert argument in view_names, f"docs/{page}: no diagram {argument!r}"


def test_the_machine_tables_list_every_transition() -> None:
    hooks = _hooks()
    for name, spec in MACHINES.items():
        text = hooks.machine(name)
        rows = [line for line in text.splitlines() if line.startswith("| `")
                and line.count("|") == 6]
        assert len(rows) == len(spec.table), name
        for member in spec.states:
            assert f"| `{member.name}` |" in text


def test_every_page_is_in_the_navigation_and_every_entry_exists() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s+([\w/.-]+\.md)\s*$", config, re.M))
    assert listed == set(_pages()), "mkdocs.yml's nav and docs/ disagree"


def test_code_examples_compile_and_import_what_exists() -> None:
    for page, text in _pages().items():
        for number, code in enumerate(_code_blocks(text), 1):
            where = f"docs/{page}, python block {number}"
            tree = ast.parse(code, where)  # a SyntaxError names the block
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and \
                        node.module.split(".")[0] == "sipfsm":
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        assert hasattr(module, alias.name) or importlib.util.find_spec(
                            f"{node.module}.{alias.name}") is not None, \
                            f"{where}: {node.module} has no {alias.name}"
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] == "sipfsm":
                            importlib.import_module(alias.name)


def test_the_api_tables_list_the_public_methods() -> None:
    from sipfsm.session import Session
    from sipfsm.ua import UA

    hooks = _hooks()
    for cls in (UA, Session):
        table = hooks.api(f"{cls.__module__}.{cls.__name__}")
        for name in vars(cls):
            if not name.startswith("_") and callable(getattr(cls, name)):
                assert re.search(rf"\| `(await )?({cls.__name__}\.)?{name}\(", table), name


def test_mkdocs_build_is_strict_clean(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is missing (it is in the dev extra)")
        pytest.skip("mkdocs is not installed")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                             "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "machines" / "invite" / "index.html").exists()
