"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import settings
from kamailio import Kamailio, find_kamailio
from scripted import ScriptedServer

pytest_plugins = ["transitions_plugin"]

# HYPOTHESIS_PROFILE=thorough runs many more examples (for hunting, not for every run).  Under
# CI=true Hypothesis picks its own "ci" profile (derandomised, no deadline).
settings.register_profile("thorough", max_examples=5000, deadline=None)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def _require_kamailio() -> None:
    """Skip when Kamailio is not installed; under CI=true that is a failure instead."""
    if find_kamailio() is not None:
        return
    message = "kamailio is not installed (run: bash scripts/install-system-deps.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; a missing Kamailio under CI is a failure, not a skip")
    pytest.skip(message)


@pytest.fixture(scope="session")
def kamailio() -> Iterator[Kamailio]:
    """One Kamailio on 127.0.0.1 shared by the whole session (stopped at the end).

    Tests using it must not stop, kill or restart it: use ``fresh_kamailio`` for that.
    """
    _require_kamailio()
    server = Kamailio()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_kamailio() -> Iterator[Kamailio]:
    """A Kamailio of the test's own, started for it and stopped after it."""
    _require_kamailio()
    server = Kamailio()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["kamailio", "devserver"])
async def edge(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The same tests against a real Kamailio and against sipfsm's devserver."""
    from edges import DevServerEdge, KamailioEdge

    from sipfsm.devserver import DevServer

    if request.param == "kamailio":
        request.applymarker(pytest.mark.kamailio)
        yield KamailioEdge(request.getfixturevalue("kamailio"))
        return
    server = DevServer(min_expires=5)
    await server.start()
    try:
        yield DevServerEdge(server)
    finally:
        await server.stop()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A scripted SIP-over-WebSocket peer on 127.0.0.1 (``tests/scripted.py``); the UAs a test
    lists in ``server.clients`` are stopped even when it failed half-way.  Modules whose
    ``server`` is another edge (the devserver) define their own."""
    scripted = ScriptedServer()
    await scripted.start()
    yield scripted
    for ua in scripted.clients:
        await ua.stop()
    await scripted.stop()
