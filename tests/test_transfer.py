# mypy: disable-error-code="comparison-overlap"

"""Transfers between three UAs through the devserver: blind and attended REFER (RFC 3515),
Replaces (RFC 3891) whichever side placed the consultation call, a refused REFER, and the
transferor seeing the NOTIFY progress.  The rules for odd Replaces, out-of-dialog REFER and
NOTIFY are in ``test_transfer_rules.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sipfsm.causes import Cause
from sipfsm.devserver import DevServer
from sipfsm.errors import InvalidStateError
from sipfsm.events import InviteReceived
from sipfsm.fsm.invite import InviteState
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.ua import UA


@pytest.fixture
async def trio() -> AsyncIterator[tuple[UA, UA, UA]]:
    async with DevServer(min_expires=5) as server:
        uas = [UA(uri=f"sip:{name}@{server.domain}", ws_servers=server.ws_url,
                  password=f"{name}-secret", log={"builtin_enabled": False},
                  replaces="supported",
                  session_description_handler_factory=signalling_only_factory)
               for name in ("alice", "bob", "carol")]
        await asyncio.gather(*(ua.wait_for("registered", timeout=10) for ua in uas))
        yield uas[0], uas[1], uas[2]
        for ua in uas:
            await ua.stop()


def answer_calls(ua: UA) -> list[Session]:
    """Accept every incoming call of ``ua``; the list fills with them."""
    calls: list[Session] = []

    def accept(event: InviteReceived) -> None:
        assert isinstance(event.session, Session)
        calls.append(event.session)
        event.session.accept()

    ua.on("invite", accept)
    return calls


def record(session: Session, *names: str) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def listener(name: str) -> Callable[[Any], None]:
        return lambda event: seen.append((name, event))

    for name in names:
        session.on(name, listener(name))
    return seen


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def call(caller: UA, callee_calls: list[Session], target: str) -> tuple[Session, Session]:
    """``caller`` calls ``target`` (which answers); both sides once confirmed."""
    before = len(callee_calls)
    session = caller.invite(target)
    await session.wait_for("confirmed", timeout=10)
    await until(lambda: len(callee_calls) > before
                and callee_calls[before].state is InviteState.CONFIRMED)
    return session, callee_calls[before]


async def test_blind_transfer(trio: tuple[UA, UA, UA]) -> None:
    alice, bob, carol = trio
    bob_calls, carol_calls = answer_calls(bob), answer_calls(carol)
    alice_to_bob, bob_side = await call(alice, bob_calls, "bob")
    seen = record(bob_side, "refer_requested", "refer_progress", "refer_accepted",
                  "refer_rejected", "terminated")
    referral = bob_side.refer("carol")
    await until(lambda: bool(carol_calls) and carol_calls[0].state is InviteState.CONFIRMED)
    await until(lambda: bob_side.state is InviteState.TERMINATED)
    names = [name for name, _ in seen]
    assert names[:4] == ["refer_requested", "refer_progress", "refer_accepted", "terminated"]
    assert seen[0][1].accepted and seen[1][1].status == 100 and seen[2][1].status == 200
    assert referral.ended and referral.outcome == 200
    # alice's new call is with carol, referred by bob; her call with bob is over
    await until(lambda: alice_to_bob.state is InviteState.TERMINATED)
    assert alice_to_bob.cause is Cause.BYE
    new = [s for s in alice.sessions() if s is not alice_to_bob]
    assert len(new) == 1 and new[0].state is InviteState.CONFIRMED
    invite = carol_calls[0].request
    assert invite is not None and invite.from_ is not None
    assert invite.from_.uri.user == "alice"
    assert "bob" in (invite.headers.get("Referred-By") or "")
    new[0].bye()
    await carol_calls[0].wait_for("terminated", timeout=10)


@pytest.mark.parametrize("consultation_by", ["bob", "carol"])
async def test_attended_transfer_replaces_the_consultation_call(
        trio: tuple[UA, UA, UA], consultation_by: str) -> None:
    alice, bob, carol = trio
    bob_calls, carol_calls = answer_calls(bob), answer_calls(carol)
    alice_to_bob, bob_with_alice = await call(alice, bob_calls, "bob")
    if consultation_by == "bob":
        bob_with_carol, carol_with_bob = await call(bob, carol_calls, "carol")
    else:  # carol called bob: the Replaces tags must still be the right way round
        carol_with_bob, bob_with_carol = await call(carol, bob_calls, "bob")
    replaced = record(carol_with_bob, "replaced", "terminated")
    seen = record(bob_with_alice, "refer_accepted", "terminated")
    bob_with_alice.refer(bob_with_carol)
    await until(lambda: [n for n, _ in replaced] == ["replaced", "terminated"])
    new_at_carol = replaced[0][1].replacement
    assert isinstance(new_at_carol, Session) and new_at_carol.replaces is None
    assert new_at_carol.remote_identity is not None
    assert new_at_carol.remote_identity.uri.user == "alice"
    await until(lambda: new_at_carol.state is InviteState.CONFIRMED)
    # both of bob's calls end: the consultation replaced, the original after the transfer
    await until(lambda: bob_with_carol.state is InviteState.TERMINATED
                and bob_with_alice.state is InviteState.TERMINATED)
    assert [n for n, _ in seen] == ["refer_accepted", "terminated"]
    await until(lambda: alice_to_bob.state is InviteState.TERMINATED)
    new_at_alice = [s for s in alice.sessions() if s is not alice_to_bob]
    assert len(new_at_alice) == 1 and new_at_alice[0].state is InviteState.CONFIRMED
    new_at_alice[0].bye()
    await new_at_carol.wait_for("terminated", timeout=10)


async def test_a_refused_refer_keeps_the_call(trio: tuple[UA, UA, UA]) -> None:
    alice, bob, _ = trio
    bob_calls = answer_calls(bob)
    alice_to_bob, bob_side = await call(alice, bob_calls, "bob")
    alice_to_bob.on("refer", lambda event: event.refer.reject())
    seen = record(bob_side, "refer_requested", "refer_rejected")
    bob_side.refer("carol")
    await until(lambda: len(seen) == 2)
    assert not seen[0][1].accepted and seen[0][1].response.status_code == 603
    assert seen[1][1].status == 603
    assert bob_side.state is InviteState.CONFIRMED
    assert alice_to_bob.state is InviteState.CONFIRMED
    bob_side.bye()
    await alice_to_bob.wait_for("terminated", timeout=10)


async def test_a_transfer_to_nobody_is_reported_and_the_call_stays(
        trio: tuple[UA, UA, UA]) -> None:
    alice, bob, _ = trio
    bob_calls = answer_calls(bob)
    alice_to_bob, bob_side = await call(alice, bob_calls, "bob")
    seen = record(bob_side, "refer_requested", "refer_progress", "refer_rejected")
    bob_side.refer("nobody")
    await until(lambda: any(name == "refer_rejected" for name, _ in seen))
    assert [n for n, _ in seen] == ["refer_requested", "refer_progress", "refer_rejected"]
    assert seen[-1][1].status == 404
    assert bob_side.state is InviteState.CONFIRMED
    bob_side.bye()
    await alice_to_bob.wait_for("terminated", timeout=10)


async def test_refer_rules_for_the_transferor(trio: tuple[UA, UA, UA]) -> None:
    alice, bob, _ = trio
    bob_calls = answer_calls(bob)
    alice_to_bob, bob_side = await call(alice, bob_calls, "bob")
    with pytest.raises(ValueError, match="itself"):
        bob_side.refer(bob_side)
    alice_to_bob.on("refer", lambda event: None)  # undecided: the REFER stays pending
    bob_side.refer("carol")
    with pytest.raises(InvalidStateError):
        bob_side.refer("carol")
    bob_side.bye()
    await alice_to_bob.wait_for("terminated", timeout=10)
    with pytest.raises(InvalidStateError):
        bob_side.refer("carol")
