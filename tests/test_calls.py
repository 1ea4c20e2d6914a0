# mypy: disable-error-code="comparison-overlap"

"""Calls between two UAs through an edge (the devserver here; Kamailio with real audio below):
the basic INVITE usage — answer, hang up either side, reject, cancel, no answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from sipfsm.causes import Cause
from sipfsm.devserver import DevServer
from sipfsm.events import InviteReceived
from sipfsm.fsm.invite import InviteState
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.ua import UA

Make = Callable[..., UA]


@pytest.fixture
async def devserver() -> AsyncIterator[DevServer]:
    async with DevServer(min_expires=5) as server:
        yield server


@pytest.fixture
async def pair(devserver: DevServer) -> AsyncIterator[tuple[UA, UA]]:
    uas = [UA(uri=f"sip:{name}@{devserver.domain}", ws_servers=devserver.ws_url,
              password=f"{name}-secret", log={"builtin_enabled": False},
              session_description_handler_factory=signalling_only_factory,
              no_answer_timeout=1 if name == "bob" else 60)
           for name in ("alice", "bob")]
    await asyncio.gather(*(ua.wait_for("registered", timeout=10) for ua in uas))
    yield uas[0], uas[1]
    for ua in uas:
        await ua.stop()


async def incoming(ua: UA) -> Session:
    event: InviteReceived = await ua.wait_for("invite", timeout=10)
    assert isinstance(event.session, Session)
    return event.session


async def test_a_call_answered_and_hung_up_by_the_caller(pair: tuple[UA, UA]) -> None:
    alice, bob = pair
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    progress = asyncio.ensure_future(call.wait_for("progress", timeout=10))
    answered = await ringing
    assert answered.state is InviteState.RINGING
    assert (await progress).response.status_code == 180
    confirmed_callee = asyncio.ensure_future(answered.wait_for("confirmed", timeout=10))
    answered.accept()
    await call.wait_for("confirmed", timeout=10)
    await confirmed_callee
    assert call.state is InviteState.CONFIRMED and answered.state is InviteState.CONFIRMED
    assert call.dialog is not None and answered.dialog is not None
    assert call.dialog.call_id == answered.dialog.call_id
    bye = asyncio.ensure_future(answered.wait_for("bye", timeout=10))
    ended = asyncio.ensure_future(call.wait_for("terminated", timeout=10))
    call.bye()
    await bye
    assert (await ended).cause is Cause.BYE
    assert answered.state is InviteState.TERMINATED and answered.cause is Cause.BYE
    assert alice.sessions() == [] and bob.sessions() == []


async def test_the_callee_hangs_up(pair: tuple[UA, UA]) -> None:
    alice, bob = pair
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    answered = await ringing
    answered.accept()
    await call.wait_for("confirmed", timeout=10)
    await asyncio.sleep(0.05)  # the ACK reaches bob
    assert answered.state is InviteState.CONFIRMED
    gone = asyncio.ensure_future(call.wait_for("bye", timeout=10))
    answered.bye()
    await gone
    assert call.state is InviteState.TERMINATED and call.cause is Cause.BYE
    await answered.wait_for("terminated", timeout=10) if answered.state is not \
        InviteState.TERMINATED else None


async def test_rejected(pair: tuple[UA, UA]) -> None:
    alice, bob = pair
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    failed = asyncio.ensure_future(call.wait_for("failed", timeout=10))
    (await ringing).reject(486)
    event = await failed
    assert event.cause is Cause.BUSY and event.response.status_code == 486
    assert call.state is InviteState.TERMINATED


async def test_cancelled_by_the_caller(pair: tuple[UA, UA]) -> None:
    alice, bob = pair
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    await call.wait_for("progress", timeout=10)
    answered = await ringing
    callee_cancel = asyncio.ensure_future(answered.wait_for("cancel", timeout=10))
    failed = asyncio.ensure_future(call.wait_for("failed", timeout=10))
    call.cancel()
    await callee_cancel
    assert (await failed).cause is Cause.CANCELED
    assert answered.cause is Cause.CANCELED and answered.state is InviteState.TERMINATED


async def test_a_cancel_before_any_provisional_is_deferred(pair: tuple[UA, UA]) -> None:
    alice, _ = pair
    call = alice.invite("bob")
    call.cancel()  # nothing came back yet: the CANCEL waits for the first 1xx
    assert call.state is InviteState.CANCELLING
    event = await call.wait_for("failed", timeout=10)
    assert event.cause is Cause.CANCELED


async def test_no_answer_times_out_with_408(pair: tuple[UA, UA]) -> None:
    alice, bob = pair  # bob's no_answer_timeout is 1 s
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    answered = await ringing
    failed = await call.wait_for("failed", timeout=10)
    assert failed.response.status_code == 408 and failed.cause is Cause.UNAVAILABLE
    assert answered.cause is Cause.NO_ANSWER


async def test_a_call_to_nobody_fails_with_its_cause(pair: tuple[UA, UA]) -> None:
    alice, _ = pair
    call = alice.invite("carol")
    failed = await call.wait_for("failed", timeout=10)
    assert failed.cause in (Cause.NOT_FOUND, Cause.UNAVAILABLE)


async def test_misuse_raises(pair: tuple[UA, UA]) -> None:
    from sipfsm import InvalidStateError

    alice, _ = pair
    call = alice.invite("bob")
    with pytest.raises(InvalidStateError):
        call.accept()
    with pytest.raises(InvalidStateError):
        call.bye()
    call.terminate()
    await call.wait_for("terminated", timeout=10)


async def established(alice: UA, bob: UA) -> tuple[Session, Session]:
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    answered = await ringing
    confirmed = asyncio.ensure_future(answered.wait_for("confirmed", timeout=10))
    answered.accept()
    await call.wait_for("confirmed", timeout=10)
    await confirmed
    return call, answered


async def test_dtmf_by_info_both_ways(pair: tuple[UA, UA]) -> None:
    alice, bob = pair
    call, answered = await established(alice, bob)
    heard_by_bob: list[tuple[str, int, str]] = []
    heard_by_alice: list[str] = []
    answered.on("dtmf", lambda e: heard_by_bob.append((e.tone, e.duration, e.via)))
    call.on("dtmf", lambda e: heard_by_alice.append(e.tone))
    call.dtmf("12#", duration=80, inter_tone_gap=60)
    answered.dtmf("9", duration=30)  # clamped up to 70 ms
    for _ in range(100):
        if len(heard_by_bob) == 3 and heard_by_alice:
            break
        await asyncio.sleep(0.02)
    assert heard_by_bob == [("1", 80, "info"), ("2", 80, "info"), ("#", 80, "info")]
    assert heard_by_alice == ["9"]
    with pytest.raises(ValueError, match="invalid DTMF"):
        call.dtmf("12x")


async def test_info_without_a_content_type_gets_415(pair: tuple[UA, UA]) -> None:
    from sipfsm.core import OutgoingRequest

    alice, bob = pair
    call, _ = await established(alice, bob)
    assert call.dialog is not None
    info = call.dialog.request("INFO", via=alice.factory.via(alice.core.new_branch()),
                               body="Signal=5")
    info.headers.remove("Content-Type")
    handle = OutgoingRequest(alice.core, info, None)
    alice.core.send(info, owner=handle)
    assert (await handle.result(5)).status_code == 415


async def test_dtmf_needs_an_established_call(pair: tuple[UA, UA]) -> None:
    from sipfsm import InvalidStateError

    alice, _ = pair
    call = alice.invite("bob")
    with pytest.raises(InvalidStateError):
        call.dtmf("1")
    call.terminate()


async def test_hold_and_unhold_both_sides_see_it(pair: tuple[UA, UA]) -> None:
    alice, bob = pair
    call, answered = await established(alice, bob)
    seen: list[tuple[bool, bool]] = []
    answered.on("reinvite", lambda e: seen.append((e.local, answered.remote_hold)))
    assert await call.hold() is True
    assert call.held and not answered.held
    await asyncio.sleep(0.05)  # bob's side completes on the ACK
    assert answered.remote_hold and seen == [(False, True)]
    assert await call.unhold() is True
    await asyncio.sleep(0.05)
    assert not call.held and not answered.remote_hold
    assert await answered.reinvite() is True  # the callee can renegotiate too
    await asyncio.sleep(0.05)  # its ACK reaches alice
    assert call.state is InviteState.CONFIRMED and answered.state is InviteState.CONFIRMED
    call.bye()
    await answered.wait_for("terminated", timeout=10)


async def test_glare_both_reinvite_at_once_and_both_succeed(pair: tuple[UA, UA]) -> None:
    alice, bob = pair
    call, answered = await established(alice, bob)
    results = await asyncio.wait_for(asyncio.gather(call.hold(), answered.hold()), 15)
    assert results == [True, True]  # one got 491 and retried after the RFC 3261 delay
    assert call.held and answered.held


async def test_hold_on_a_call_that_is_not_up_is_misuse(pair: tuple[UA, UA]) -> None:
    from sipfsm import InvalidStateError

    alice, _ = pair
    call = alice.invite("bob")
    with pytest.raises(InvalidStateError):
        await call.hold()
    call.terminate()


async def test_a_forked_call_the_first_answer_wins(devserver: DevServer) -> None:
    def ua(name: str) -> UA:
        return UA(uri=f"sip:{name}@{devserver.domain}", ws_servers=devserver.ws_url,
                  password=f"{name}-secret", log={"builtin_enabled": False},
                  session_description_handler_factory=signalling_only_factory)

    alice, desk, mobile = ua("alice"), ua("bob"), ua("bob")  # bob has two devices
    try:
        await asyncio.gather(*(u.wait_for("registered", timeout=10)
                               for u in (alice, desk, mobile)))
        rings = [asyncio.ensure_future(incoming(u)) for u in (desk, mobile)]
        call = alice.invite("bob")
        on_desk, on_mobile = await asyncio.gather(*rings)  # both ring (the edge forks)
        cancelled = asyncio.ensure_future(on_mobile.wait_for("terminated", timeout=10))
        on_desk.accept()
        await call.wait_for("confirmed", timeout=10)
        assert (await cancelled).cause is Cause.CANCELED  # the edge cancels the other fork
        assert call.dialog is not None and on_desk.dialog is not None
        assert call.dialog.remote_tag == on_desk.dialog.local_tag
        call.bye()
        await on_desk.wait_for("terminated", timeout=10)
    finally:
        for u in (alice, desk, mobile):
            await u.stop()
