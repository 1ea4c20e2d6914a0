"""Two sipfsm UAs registered at the real Kamailio call each other with the aiortc handler
(ICE pinned to 127.0.0.1, DTLS-SRTP): each hears the other's tone; BYE ends both; early media
through a reliable 183 is heard before the answer."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import pytest
from kamailio import Kamailio

from sipfsm.causes import Cause
from sipfsm.fsm.invite import InviteState
from sipfsm.media.dtmf import tone_frequency
from sipfsm.session import Session
from sipfsm.ua import UA

pytestmark = pytest.mark.kamailio


def ua_with_tone(kamailio: Kamailio, user: str, hz: float, heard: list[av.AudioFrame],
                 **params: Any) -> UA:
    return UA(uri=f"sip:{user}@{kamailio.domain}", ws_servers=kamailio.ws_url,
              password=kamailio.users[user], log={"builtin_enabled": False}, dtmf_type="rtp",
              session_description_handler_factory_options={
                  "ice_addresses": ["127.0.0.1"], "tone_hz": hz, "on_audio": heard.append},
              **params)


async def test_alice_and_bob_hear_each_others_tone(kamailio: Kamailio) -> None:
    alice_heard: list[av.AudioFrame] = []
    bob_heard: list[av.AudioFrame] = []
    alice = ua_with_tone(kamailio, "alice", 440.0, alice_heard)
    bob = ua_with_tone(kamailio, "bob", 660.0, bob_heard)
    try:
        await asyncio.gather(alice.wait_for("registered", timeout=10),
                             bob.wait_for("registered", timeout=10))
        ringing: asyncio.Future[Any] = asyncio.ensure_future(bob.wait_for("invite", timeout=10))
        call = alice.invite("bob")
        answered: Session = (await ringing).session
        answered.accept()
        await call.wait_for("confirmed", timeout=15)
        for _ in range(100):  # up to 5 s for ICE, DTLS and a second of audio each way
            if len(alice_heard) > 60 and len(bob_heard) > 60:
                break
            await asyncio.sleep(0.05)
        assert abs(tone_frequency(bob_heard) - 440.0) < 5, "bob should hear alice's 440 Hz"
        assert abs(tone_frequency(alice_heard) - 660.0) < 5, "alice should hear bob's 660 Hz"
        # RFC 4733 DTMF in the media (dtmf_type="rtp"), detected by bob's handler
        digits: list[tuple[str, str]] = []
        answered.on("dtmf", lambda e: digits.append((e.tone, e.via)))
        call.dtmf("42#", duration=100, inter_tone_gap=70)
        for _ in range(100):
            if len(digits) == 3:
                break
            await asyncio.sleep(0.05)
        assert digits == [("4", "rtp"), ("2", "rtp"), ("#", "rtp")]
        # hold and unhold: a re-INVITE with a sendonly offer, seen by both sides
        assert await call.hold() is True
        await asyncio.sleep(0.1)
        assert call.held and answered.remote_hold
        assert await call.unhold() is True
        await asyncio.sleep(0.1)
        assert not call.held and not answered.remote_hold
        ended = asyncio.ensure_future(answered.wait_for("terminated", timeout=10))
        call.bye()
        assert (await ended).cause is Cause.BYE
        assert call.state is InviteState.TERMINATED or \
            (await call.wait_for("terminated", timeout=10)).cause is Cause.BYE
    finally:
        await alice.stop()
        await bob.stop()


async def test_early_media_in_a_reliable_183_is_heard_before_the_answer(
        kamailio: Kamailio) -> None:
    """RFC 3262 through Kamailio: bob's reliable 183 carries his answer, alice PRACKs it, and
    she hears bob's tone while the call is still ringing; then the 2xx confirms it."""
    alice_heard: list[av.AudioFrame] = []
    bob_heard: list[av.AudioFrame] = []
    alice = ua_with_tone(kamailio, "alice", 440.0, alice_heard, rel100="supported")
    bob = ua_with_tone(kamailio, "bob", 880.0, bob_heard, rel100="supported")
    try:
        await asyncio.gather(alice.wait_for("registered", timeout=10),
                             bob.wait_for("registered", timeout=10))
        ringing: asyncio.Future[Any] = asyncio.ensure_future(bob.wait_for("invite", timeout=10))
        call = alice.invite("bob")
        answered: Session = (await ringing).session
        answered.progress(183, rel100=True)
        for _ in range(100):
            if len(alice_heard) > 60:
                break
            await asyncio.sleep(0.05)
        assert call.state is InviteState.PROCEEDING, "still ringing: this is early media"
        assert answered.machine.unacknowledged is None, "alice's PRACK came through Kamailio"
        assert abs(tone_frequency(alice_heard) - 880.0) < 5, "alice hears bob's early media"
        answered.accept()
        await call.wait_for("confirmed", timeout=15)
        ended = asyncio.ensure_future(answered.wait_for("terminated", timeout=10))
        call.bye()
        assert (await ended).cause is Cause.BYE
    finally:
        await alice.stop()
        await bob.stop()
