# mypy: disable-error-code="comparison-overlap"

"""Provisional responses, 100rel/PRACK (RFC 3262), early media, offerless INVITEs and anonymous
calls, between two UAs through the devserver, and against a scripted caller for what a sipfsm
caller never does (no PRACK, a wrong RAck, no 100rel at all)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from scripted import Peer, ScriptedServer, request_text

from sipfsm.causes import Cause
from sipfsm.devserver import DevServer
from sipfsm.errors import InvalidStateError
from sipfsm.events import InviteReceived, SessionProgress
from sipfsm.fsm.invite import InviteState
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.sip import Response
from sipfsm.ua import UA


@pytest.fixture
async def devserver() -> AsyncIterator[DevServer]:
    async with DevServer(min_expires=5) as server:
        yield server


async def make_pair(devserver: DevServer, alice: dict[str, Any], bob: dict[str, Any]
                    ) -> tuple[UA, UA]:
    uas = [UA(uri=f"sip:{name}@{devserver.domain}", ws_servers=devserver.ws_url,
              password=f"{name}-secret", log={"builtin_enabled": False},
              session_description_handler_factory=signalling_only_factory, **params)
           for name, params in (("alice", alice), ("bob", bob))]
    await asyncio.gather(*(ua.wait_for("registered", timeout=10) for ua in uas))
    return uas[0], uas[1]


@pytest.fixture
async def uas(devserver: DevServer) -> AsyncIterator[list[UA]]:
    made: list[UA] = []
    yield made
    for ua in made:
        await ua.stop()


async def pair(devserver: DevServer, made: list[UA], alice: dict[str, Any] | None = None,
               bob: dict[str, Any] | None = None) -> tuple[UA, UA]:
    a, b = await make_pair(devserver, alice or {"rel100": "supported"},
                           bob or {"rel100": "supported"})
    made += [a, b]
    return a, b


async def incoming(ua: UA) -> Session:
    event: InviteReceived = await ua.wait_for("invite", timeout=10)
    assert isinstance(event.session, Session)
    return event.session


def collect(session: Session, name: str) -> list[Any]:
    seen: list[Any] = []
    session.on(name, seen.append)
    return seen


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_reliable_183_brings_early_media_then_the_call_is_answered(
        devserver: DevServer, uas: list[UA]) -> None:
    alice, bob = await pair(devserver, uas)
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    progress = collect(call, "progress")
    answered = await ringing
    assert "100rel" in answered.request.supported  # type: ignore[union-attr]
    answered.progress(183, rel100=True)
    await until(lambda: any(e.response.status_code == 183 for e in progress))
    early: SessionProgress = next(e for e in progress if e.response.status_code == 183)
    assert "100rel" in early.response.require and early.response.rseq is not None
    assert early.response.body  # our answer, in the 183
    await until(lambda: answered.machine.unacknowledged is None)  # alice's PRACK came
    assert call.sdh.remote_description is not None  # type: ignore[attr-defined]
    confirmed = asyncio.ensure_future(call.wait_for("confirmed", timeout=10))
    answered.accept()
    await confirmed
    await answered.wait_for("confirmed", timeout=10)
    # The 2xx repeats the answer of the 183: one negotiation, not two.
    assert call._ok is None and answered._ok is not None
    assert answered._ok.text == early.response.text
    call.bye()
    await answered.wait_for("terminated", timeout=10)


async def test_accept_right_after_early_media_waits_for_the_prack(
        devserver: DevServer, uas: list[UA]) -> None:
    alice, bob = await pair(devserver, uas)
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    order: list[str] = []
    call.on("progress", lambda e: order.append(f"progress {e.response.status_code}"))
    call.on("accepted", lambda e: order.append("accepted"))
    answered = await ringing
    answered.progress(183, rel100=True)
    answered.accept()
    await call.wait_for("confirmed", timeout=10)
    assert order.index("progress 183") < order.index("accepted")
    await until(lambda: answered.state is InviteState.CONFIRMED)
    call.bye()
    await answered.wait_for("terminated", timeout=10)


async def test_a_caller_that_requires_100rel_gets_a_reliable_180(
        devserver: DevServer, uas: list[UA]) -> None:
    alice, bob = await pair(devserver, uas, alice={"rel100": "required"})
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    progress = asyncio.ensure_future(call.wait_for("progress", timeout=10))
    answered = await ringing
    assert "100rel" in answered.request.require  # type: ignore[union-attr]
    event: SessionProgress = await progress
    assert event.response.status_code == 180 and event.response.rseq is not None
    await until(lambda: answered.machine.unacknowledged is None)
    with pytest.raises(ValueError, match="requires 100rel"):
        answered.progress(183, rel100=False)
    answered.accept()
    await call.wait_for("confirmed", timeout=10)
    call.bye()


async def test_a_callee_that_requires_100rel_refuses_a_caller_without_it_421(
        devserver: DevServer, uas: list[UA]) -> None:
    alice, _ = await pair(devserver, uas, alice={"rel100": "none"},
                          bob={"rel100": "required"})
    call = alice.invite("bob")
    failed = await call.wait_for("failed", timeout=10)
    assert failed.response.status_code == 421
    assert list(failed.response.require) == ["100rel"]


async def test_progress_rules(devserver: DevServer, uas: list[UA]) -> None:
    alice, bob = await pair(devserver, uas, alice={"rel100": "none"},
                            bob={"rel100": "supported"})
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob")
    answered = await ringing
    with pytest.raises(ValueError, match="does not support 100rel"):
        answered.progress(183, rel100=True)
    with pytest.raises(ValueError, match="101 to 199"):
        answered.progress(200)
    with pytest.raises(InvalidStateError):
        call.progress(180)  # a caller has no provisional responses to send
    progress = collect(call, "progress")
    answered.progress(183)  # unreliable early media: the answer rides along
    await until(lambda: any(e.response.status_code == 183 for e in progress))
    assert progress[-1].response.rseq is None and progress[-1].response.body
    answered.reject(486)
    await call.wait_for("terminated", timeout=10)
    with pytest.raises(InvalidStateError):
        answered.progress(180)


async def test_an_offerless_invite_gets_the_offer_in_the_2xx_and_the_answer_in_the_ack(
        devserver: DevServer, uas: list[UA]) -> None:
    alice, bob = await pair(devserver, uas)
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob", invite_without_sdp=True)
    answered = await ringing
    assert not answered.request.body  # type: ignore[union-attr]
    answered.accept()
    await call.wait_for("confirmed", timeout=10)
    await answered.wait_for("confirmed", timeout=10)
    await until(lambda: answered.sdh.remote_description is not None)  # type: ignore
    assert call.sdh.remote_description is not None  # type: ignore[attr-defined]
    call.bye()
    await answered.wait_for("terminated", timeout=10)


async def test_an_offerless_invite_with_early_media_is_answered_in_the_prack(
        devserver: DevServer, uas: list[UA]) -> None:
    alice, bob = await pair(devserver, uas)
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob", invite_without_sdp=True)
    answered = await ringing
    with pytest.raises(ValueError, match="reliable"):
        answered.progress(183, rel100=False)
    answered.progress(183, rel100=True)
    await until(lambda: answered.machine.unacknowledged is None)
    await until(lambda: answered.sdh.remote_description is not None)  # type: ignore
    answered.accept()
    await call.wait_for("confirmed", timeout=10)
    await answered.wait_for("confirmed", timeout=10)
    assert answered.state is InviteState.CONFIRMED
    call.bye()
    await answered.wait_for("terminated", timeout=10)


async def test_an_anonymous_call_hides_the_caller(devserver: DevServer, uas: list[UA]) -> None:
    alice, bob = await pair(devserver, uas)
    ringing = asyncio.ensure_future(incoming(bob))
    call = alice.invite("bob", anonymous=True)
    answered = await ringing
    invite = answered.request
    assert invite is not None and invite.from_ is not None
    assert str(invite.from_.uri) == "sip:anonymous@anonymous.invalid"
    assert invite.from_.display_name == "Anonymous"
    assert invite.headers.get("Privacy") == "id"
    assert "alice" not in str(invite.contact)
    answered.accept()
    await call.wait_for("confirmed", timeout=10)
    call.bye()
    await answered.wait_for("terminated", timeout=10)


# -- against a scripted caller ------------------------------------------------------------------


OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


async def callee(server: ScriptedServer, **params: Any) -> tuple[UA, Peer]:
    params.setdefault("rel100", "supported")
    ua = UA(uri="sip:alice@sipfsm.test", ws_servers=server.url, register=False,
            log={"builtin_enabled": False}, t1=params.pop("t1", 0.5),
            session_description_handler_factory=signalling_only_factory, **params)
    server.clients.append(ua)
    await ua.wait_for("connected", timeout=5)
    return ua, await server.peer()


def invite(ua: UA, extra: str) -> str:
    uri = f"sip:{ua.identity.contact_user}@{ua.identity.via_host};transport=ws"
    return request_text("INVITE", uri, call_id="prack-call", cseq=5, from_tag="caller",
                        extra=extra + "Contact: <sip:bob@127.0.0.1;transport=ws>\r\n"
                        "Content-Type: application/sdp\r\n", body=OFFER)


async def provisional(peer: Peer, status: int) -> Response:
    while True:
        response = await peer.response()
        if response.status_code == status:
            return response


def prack(ua: UA, response: Response, rack: str | None) -> str:
    assert response.to is not None
    uri = f"sip:{ua.identity.contact_user}@{ua.identity.via_host};transport=ws"
    return request_text("PRACK", uri, call_id="prack-call", cseq=6, from_tag="caller",
                        to=f"<{uri}>;tag={response.to.tag}",
                        extra=f"RAck: {rack}\r\n" if rack is not None else "")


async def test_no_prack_retransmits_then_answers_504_no_prack(server: ScriptedServer) -> None:
    ua, peer = await callee(server, t1=0.02)
    ended: list[Any] = []
    ua.on("invite", lambda e: e.session.on("terminated", ended.append))
    await peer.send(invite(ua, "Require: 100rel\r\n"))
    first = await provisional(peer, 180)
    assert list(first.require) == ["100rel"] and first.rseq is not None
    again = await provisional(peer, 180)
    assert again.rseq == first.rseq  # a retransmission, not a new response
    final = await provisional(peer, 504)
    assert final.status_code == 504
    await until(lambda: bool(ended))
    assert ended[0].cause is Cause.NO_PRACK
    assert len(ua.core.transactions) <= 1  # only the 504's transaction, ending


async def test_a_prack_is_checked_against_its_rack(server: ScriptedServer) -> None:
    ua, peer = await callee(server)
    sessions: list[Session] = []
    ua.on("invite", lambda e: sessions.append(e.session))
    await peer.send(invite(ua, "Supported: 100rel\r\nRequire: 100rel\r\n"))
    reliable = await provisional(peer, 180)
    assert reliable.rseq is not None
    for rack, status in ((None, 400), (f"{reliable.rseq + 1} 5 INVITE", 481),
                         (f"{reliable.rseq} 4 INVITE", 481),
                         (f"{reliable.rseq} 5 INVITE", 200),
                         (f"{reliable.rseq} 5 INVITE", 481)):  # already acknowledged
        await peer.send(prack(ua, reliable, rack))
        answer = await provisional(peer, status)
        assert answer.cseq is not None and answer.cseq.method == "PRACK", (rack, status)
    assert sessions[0].state is InviteState.RINGING


async def test_an_invite_requiring_100rel_gets_420_when_it_is_unsupported(
        server: ScriptedServer) -> None:
    ua, peer = await callee(server, rel100="none")
    await peer.send(invite(ua, "Require: 100rel\r\n"))
    refused = await provisional(peer, 420)
    assert refused.headers.get("Unsupported") == "100rel"


async def test_a_prack_carrying_an_unexpected_offer_gets_488(server: ScriptedServer) -> None:
    ua, peer = await callee(server)
    await peer.send(invite(ua, "Require: 100rel\r\n"))
    reliable = await provisional(peer, 180)
    assert reliable.to is not None
    uri = f"sip:{ua.identity.contact_user}@{ua.identity.via_host};transport=ws"
    await peer.send(request_text(
        "PRACK", uri, call_id="prack-call", cseq=6, from_tag="caller",
        to=f"<{uri}>;tag={reliable.to.tag}", body=OFFER,
        extra=f"RAck: {reliable.rseq} 5 INVITE\r\nContent-Type: application/sdp\r\n"))
    assert (await provisional(peer, 488)).cseq.method == "PRACK"  # type: ignore[union-attr]
