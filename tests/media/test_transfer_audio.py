"""Transfers through the real Kamailio with three sipfsm UAs and real media (aiortc, ICE pinned
to 127.0.0.1): blind — alice calls bob, bob transfers her to carol, carol hears alice's tone;
attended — bob consults carol, then transfers alice with Replaces, and carol's consultation call
is replaced by alice's.  The original calls end; bob sees the NOTIFY progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
import pytest
from kamailio import Kamailio

from sipfsm.events import InviteReceived
from sipfsm.fsm.invite import InviteState
from sipfsm.media.dtmf import tone_frequency
from sipfsm.session import Session
from sipfsm.ua import UA

pytestmark = pytest.mark.kamailio

TONES = {"alice": 440.0, "bob": 550.0, "carol": 660.0}


class Phone:
    """A UA with a tone of its own, the audio it hears, and its incoming calls answered."""

    def __init__(self, kamailio: Kamailio, user: str) -> None:
        self.heard: list[av.AudioFrame] = []
        self.ua = UA(uri=f"sip:{user}@{kamailio.domain}", ws_servers=kamailio.ws_url,
                     password=kamailio.users[user], log={"builtin_enabled": False},
                     replaces="supported", session_description_handler_factory_options={
                         "ice_addresses": ["127.0.0.1"], "tone_hz": TONES[user],
                         "on_audio": self.heard.append})
        self.calls: list[Session] = []
        self.ua.on("invite", self._answer)

    def _answer(self, event: InviteReceived) -> None:
        assert isinstance(event.session, Session)
        self.calls.append(event.session)
        event.session.accept()


@pytest.fixture
async def phones(kamailio: Kamailio) -> AsyncIterator[dict[str, Phone]]:
    made = {user: Phone(kamailio, user) for user in TONES}
    try:
        await asyncio.gather(*(p.ua.wait_for("registered", timeout=10) for p in made.values()))
        yield made
    finally:
        for phone in made.values():
            await phone.ua.stop()


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def call(caller: Phone, callee: Phone, target: str) -> tuple[Session, Session]:
    before = len(callee.calls)
    session = caller.ua.invite(target)
    await session.wait_for("confirmed", timeout=15)
    await until(lambda: len(callee.calls) > before
                and callee.calls[before].state is InviteState.CONFIRMED)
    return session, callee.calls[before]


async def hears(phone: Phone, hz: float) -> None:
    """Wait until ``phone`` has heard a second of fresh audio, then check its tone."""
    phone.heard.clear()
    await until(lambda: len(phone.heard) > 60)
    assert abs(tone_frequency(phone.heard[-50:]) - hz) < 5, f"expected {hz} Hz"


def record(session: Session, *names: str) -> list[str]:
    seen: list[str] = []

    def listener(name: str) -> Callable[[Any], None]:
        return lambda event: seen.append(name)

    for name in names:
        session.on(name, listener(name))
    return seen


async def test_blind_transfer_alice_ends_up_talking_to_carol(phones: dict[str, Phone]) -> None:
    alice, bob, carol = phones["alice"], phones["bob"], phones["carol"]
    alice_to_bob, bob_side = await call(alice, bob, "bob")
    await hears(bob, TONES["alice"])
    seen = record(bob_side, "refer_requested", "refer_progress", "refer_accepted",
                  "terminated")
    bob_side.refer("carol")
    await until(lambda: bool(carol.calls) and carol.calls[0].state is InviteState.CONFIRMED)
    await hears(carol, TONES["alice"])
    await hears(alice, TONES["carol"])
    await until(lambda: alice_to_bob.state is InviteState.TERMINATED
                and bob_side.state is InviteState.TERMINATED)
    assert seen == ["refer_requested", "refer_progress", "refer_accepted", "terminated"]
    carol.calls[0].bye()
    await until(lambda: all(s.state is InviteState.TERMINATED for s in alice.ua.sessions()))


async def test_attended_transfer_replaces_carols_consultation_call(
        phones: dict[str, Phone]) -> None:
    alice, bob, carol = phones["alice"], phones["bob"], phones["carol"]
    alice_to_bob, bob_with_alice = await call(alice, bob, "bob")
    assert await bob_with_alice.hold() is True  # the usual: alice waits on hold
    bob_with_carol, carol_with_bob = await call(bob, carol, "carol")
    await hears(carol, TONES["bob"])
    replaced: list[Any] = []
    carol_with_bob.on("replaced", replaced.append)
    seen = record(bob_with_alice, "refer_requested", "refer_progress", "refer_accepted",
                  "terminated")
    bob_with_alice.refer(bob_with_carol)
    await until(lambda: bool(replaced))
    new_at_carol = replaced[0].replacement
    assert isinstance(new_at_carol, Session) and new_at_carol in carol.calls
    await until(lambda: new_at_carol.state is InviteState.CONFIRMED)
    await hears(carol, TONES["alice"])
    await until(lambda: carol_with_bob.state is InviteState.TERMINATED
                and bob_with_carol.state is InviteState.TERMINATED
                and bob_with_alice.state is InviteState.TERMINATED
                and alice_to_bob.state is InviteState.TERMINATED)
    assert seen == ["refer_requested", "refer_progress", "refer_accepted", "terminated"]
    new_at_carol.bye()
    await until(lambda: all(s.state is InviteState.TERMINATED for s in alice.ua.sessions()))
