# mypy: disable-error-code="comparison-overlap"

"""Kamailio killed (SIGKILL) and restarted 20 times in a row under 10 registered UAs, two of
them in a call: after each restart every UA registers again (each reconnection attempt is a
second apart and whole-UA recovery waits at most two, so that comes within seconds); the
confirmed call is kept through every restart, as decision 4 documents (the UAs are told
``disconnected``; the media would survive); at the end both sides hang up and everything —
sessions, dialogs, transactions, timers, tasks — is gone.  Nothing hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from conftest import _require_kamailio
from kamailio import Kamailio

from sipfsm.events import InviteReceived, TransportDisconnected
from sipfsm.fsm.invite import InviteState
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.ua import UA

pytestmark = pytest.mark.kamailio

USERS = {f"user{n}": f"user{n}-secret" for n in range(10)}
RESTARTS = 20


@pytest.fixture
def edge() -> Iterator[Kamailio]:
    _require_kamailio()
    server = Kamailio(users=USERS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def until(condition: object, timeout: float) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_twenty_kills_and_restarts_under_ten_uas_and_a_call(edge: Kamailio) -> None:
    uas = [UA(uri=f"sip:{user}@{edge.domain}", ws_servers=edge.ws_url, password=password,
              log={"builtin_enabled": False}, ws_server_reconnection_timeout=1,
              connection_recovery_min_interval=1, connection_recovery_max_interval=2,
              session_description_handler_factory=signalling_only_factory, t1=0.1)
           for user, password in USERS.items()]
    told: list[TransportDisconnected] = []
    try:
        await asyncio.gather(*(ua.wait_for("registered", timeout=20) for ua in uas))
        caller, callee = uas[0], uas[1]
        answered: list[Session] = []

        def answer(event: InviteReceived) -> None:
            assert isinstance(event.session, Session)
            answered.append(event.session)
            event.session.accept()

        callee.on("invite", answer)
        call = caller.invite("user1")
        await call.wait_for("confirmed", timeout=10)
        await until(lambda: bool(answered) and answered[0].state is InviteState.CONFIRMED, 10)
        caller.on("disconnected", told.append)

        for attempt in range(RESTARTS):
            edge.kill()
            await until(lambda: not any(ua.is_registered() for ua in uas), 20)
            edge.restart()
            await until(lambda: all(ua.is_registered() for ua in uas), 30)
            assert call.state is InviteState.CONFIRMED, f"restart {attempt + 1}"
            assert answered[0].state is InviteState.CONFIRMED, f"restart {attempt + 1}"
        assert len(told) >= RESTARTS, "the caller was told of every lost connection"

        # The call is still usable where the edge can route it; hanging up ends it either way
        # (a BYE the restarted edge cannot deliver times out and ends the call locally).
        call.bye()
        await until(lambda: call.state is InviteState.TERMINATED, 15)
        answered[0].terminate()
        await until(lambda: answered[0].state is InviteState.TERMINATED, 15)
        await until(lambda: all(not ua.sessions() and not ua._dialogs
                                and len(ua.core.transactions) == 0 for ua in uas), 15)
    finally:
        await asyncio.wait_for(asyncio.gather(*(ua.stop() for ua in uas)), 30)
    for ua in uas:
        assert ua._runner.tasks() == []
        assert ua._runner.timers_armed() == []
