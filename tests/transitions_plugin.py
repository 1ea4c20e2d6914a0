"""A pytest plugin: which declared transitions did the test run fire?

Every machine's table is the single source of its behaviour, so a declared transition that no
test fires is either an untested path or a table bug.  At the end of the run this prints
``transitions fired: N/M`` and lists the ones never fired; when the whole suite ran (no file,
``-k`` or ``-m`` selection), any unfired transition fails the run.
"""

from __future__ import annotations

import pytest

from sipfsm.fsm.base import MACHINES, observe_transitions

Row = tuple[str, str, str, str]
_fired: set[Row] = set()
_stop = observe_transitions(lambda machine, source, trigger, dest: _fired.add(
    (machine, source, trigger, dest)))


def declared() -> set[Row]:
    """Every (machine, source, trigger, destination) the tables declare."""
    rows: set[Row] = set()
    for name, spec in MACHINES.items():
        for row in spec.table:
            sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
            for source in sources:
                dest = row["dest"] if row["dest"] is not None else source
                rows.add((name, source.name, row["trigger"], dest.name))
    return rows


def _whole_suite(config: pytest.Config) -> bool:
    option = config.option
    chosen = [a for a in config.args if a not in ("tests", "tests/")]
    return not chosen and not option.keyword and not option.markexpr and not option.lf


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    table = declared()
    missing = sorted(table - _fired)
    terminalreporter.write_line(f"transitions fired: {len(table & _fired)}/{len(table)}")
    for row in missing:
        terminalreporter.write_line("  never fired: {} {} --{}--> {}".format(*row))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if declared() - _fired and _whole_suite(session.config) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
