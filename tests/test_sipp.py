"""sipp (Debian's ``sip-tester``) as an independent SIP peer of sipfsm, through the real Kamailio.

* sipp calls a sipfsm UA: sipp (UAC, UDP) → Kamailio → WebSocket → sipfsm, which answers in an
  ``invite`` listener; sipp hangs up (``tests/sipp/uac_call.xml``).
* a sipfsm UA calls a sipp UAS: sipfsm → WebSocket → Kamailio → UDP → ``sip:sipp@127.0.0.1:PORT``
  (the test Kamailio relays a request for a loopback UDP peer as it is); sipfsm hangs up
  (``tests/sipp/uas_answer.xml``).
* the same with a sipp UAS that sends a reliable 183 (``Require: 100rel``, ``RSeq``) and wants
  a PRACK with the right ``RAck`` before it answers (``tests/sipp/uas_prack.xml``).
* sipp calls a sipfsm UA with an INVITE that requires 100rel: the sipfsm 180 is reliable, sipp
  PRACKs it, the sipfsm UA answers after the PRACK (``tests/sipp/uac_prack.xml``).

Everything stays on 127.0.0.1; the sipp helper is ``tests/sipp.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kamailio import Kamailio
from sipp import LOOPBACK, Sipp, SippResult, require_sipp

from sipfsm.causes import Cause
from sipfsm.events import InviteReceived
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.ua import UA

pytestmark = pytest.mark.kamailio

_SESSION_EVENTS = ("progress", "accepted", "confirmed", "failed", "bye", "terminated")


@pytest.fixture
def sipp_binary() -> str:
    return require_sipp()


def make_ua(kamailio: Kamailio, user: str, **params: Any) -> UA:
    return UA(uri=f"sip:{user}@{kamailio.domain}", ws_servers=kamailio.ws_url,
              password=kamailio.users[user], log={"builtin_enabled": False},
              session_description_handler_factory=signalling_only_factory, **params)


@contextlib.asynccontextmanager
async def registered(kamailio: Kamailio, user: str, **params: Any) -> AsyncIterator[UA]:
    ua = make_ua(kamailio, user, **params)
    try:
        await ua.wait_for("registered", timeout=10)
        yield ua
    finally:
        await ua.stop()


def record(session: Session, seen: list[tuple[str, Any]] | None = None
           ) -> list[tuple[str, Any]]:
    """Append the session's events to ``seen`` (a new list by default) as (name, event)."""
    into: list[tuple[str, Any]] = [] if seen is None else seen

    def listener(name: str) -> Callable[[Any], None]:
        return lambda event: into.append((name, event))

    for name in _SESSION_EVENTS:
        session.on(name, listener(name))
    return into


def names(seen: list[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in seen]


# ------------------------------------------------------------------------ sipp calls sipfsm


async def sipp_calls(kamailio: Kamailio, binary: str, user: str, scenario: str = "uac_call",
                     **params: Any
                     ) -> tuple[SippResult, list[Session], list[tuple[str, Any]]]:
    """One call from a sipp UAC to ``user`` (a sipfsm UA answering at once, or once its
    reliable provisional response is PRACKed); sipp hangs up."""
    answered: list[Session] = []
    seen: list[tuple[str, Any]] = []
    waiting: set[asyncio.Task[None]] = set()
    async with registered(kamailio, user, **params) as callee:

        async def answer_when_pracked(session: Session) -> None:
            while session.machine.unacknowledged is not None:
                await asyncio.sleep(0.01)
            session.accept()

        def answer(event: InviteReceived) -> None:
            session = event.session
            assert isinstance(session, Session)
            answered.append(session)
            record(session, seen)
            if session.machine.unacknowledged is None:
                session.accept()
            else:
                waiting.add(asyncio.ensure_future(answer_when_pracked(session)))

        callee.on("invite", answer)
        sipp = Sipp(scenario, remote=f"{LOOPBACK}:{kamailio.udp_port}", service=user,
                    pause_ms=300, timeout=20, binary=binary)
        result = await sipp.run_async()
        for task in waiting:
            task.cancel()
        for session in answered:  # the 200 to sipp's BYE is out: the session ends at once
            if "terminated" not in names(seen):
                with contextlib.suppress(TimeoutError):
                    await session.wait_for("terminated", timeout=5)
    return result, answered, seen


async def test_sipp_calls_a_sipfsm_ua(kamailio: Kamailio, sipp_binary: str) -> None:
    result, answered, seen = await sipp_calls(kamailio, sipp_binary, "carol")
    assert result.ok, f"events: {names(seen)}\n{result.report()}"
    assert result.stats is not None, result.report()
    assert (result.stats.attempted, result.stats.successful, result.stats.failed) == (1, 1, 0)
    assert len(answered) == 1, "the sipfsm UA should have been offered exactly one call"
    assert answered[0].remote_identity is not None
    assert answered[0].remote_identity.uri.user == "sipp"
    events = names(seen)
    # sipp's ACK (through Kamailio, along the Record-Route the 200 copied) confirms the call
    # before sipp's BYE ends it
    assert "confirmed" in events and "terminated" in events, events
    assert events.index("accepted") < events.index("confirmed") < events.index("bye") \
        < events.index("terminated"), events
    assert seen[-1][0] == "terminated" and seen[-1][1].cause is Cause.BYE


async def test_sipp_requires_100rel_and_pracks_the_reliable_180_of_a_sipfsm_ua(
        kamailio: Kamailio, sipp_binary: str) -> None:
    result, answered, seen = await sipp_calls(kamailio, sipp_binary, "carol", "uac_prack",
                                              rel100="supported")
    assert result.ok, f"events: {names(seen)}\n{result.report()}"
    assert result.stats is not None and result.stats.successful == 1, result.report()
    assert len(answered) == 1
    invite = answered[0].request
    assert invite is not None and "100rel" in invite.require
    events = names(seen)
    assert events.index("accepted") < events.index("confirmed") < events.index("terminated")
    assert seen[-1][1].cause is Cause.BYE


# ------------------------------------------------------------------------ sipfsm calls sipp


async def call_sipp_uas(kamailio: Kamailio, binary: str, scenario: str, **params: Any
                        ) -> tuple[SippResult, list[tuple[str, Any]]]:
    """alice calls a sipp UAS running ``scenario``; once confirmed she hangs up.

    Whatever goes wrong, the sipp outcome is returned (it says why) unless the call itself
    could not be placed.
    """
    sipp = Sipp(scenario, timeout=20, binary=binary)
    async with registered(kamailio, "alice", **params) as alice:
        await sipp.start()
        try:
            call = alice.invite(f"sip:sipp@{LOOPBACK}:{sipp.port}")
            seen = record(call)
            confirmed = asyncio.ensure_future(call.wait_for("confirmed", timeout=15))
            sipp_done = asyncio.ensure_future(sipp.wait())
            await asyncio.wait({confirmed, sipp_done}, return_when=asyncio.FIRST_COMPLETED)
            if confirmed.done() and confirmed.exception() is None:
                ended = asyncio.ensure_future(call.wait_for("terminated", timeout=10))
                call.bye()
                with contextlib.suppress(TimeoutError):
                    await ended
            else:
                confirmed.cancel()
            return await sipp_done, seen
        finally:
            sipp.kill()


async def test_a_sipfsm_ua_calls_a_sipp_uas(kamailio: Kamailio, sipp_binary: str) -> None:
    result, seen = await call_sipp_uas(kamailio, sipp_binary, "uas_answer")
    assert result.ok, f"events: {names(seen)}\n{result.report()}"
    assert result.stats is not None and result.stats.successful == 1, result.report()
    events = names(seen)
    assert events.index("progress") < events.index("accepted") < events.index("confirmed") \
        < events.index("terminated"), events
    progress = seen[events.index("progress")][1]
    assert progress.response.status_code == 180
    assert seen[-1][0] == "terminated" and seen[-1][1].cause is Cause.BYE


async def test_a_sipfsm_ua_pracks_a_reliable_183_from_a_sipp_uas(
        kamailio: Kamailio, sipp_binary: str) -> None:
    result, seen = await call_sipp_uas(kamailio, sipp_binary, "uas_prack", rel100="supported")
    assert result.ok, f"events: {names(seen)}\n{result.report()}"
    events = names(seen)
    assert "confirmed" in events and events[-1] == "terminated", events
    progress = seen[events.index("progress")][1]
    assert progress.response.status_code == 183
    assert seen[-1][1].cause is Cause.BYE
