"""The rules around transfers and dialogs, against a scripted peer over a real WebSocket:
INVITEs with Replaces that cannot be honoured (RFC 3891 §3), out-of-dialog REFER (decision 2),
REFERs that cannot be followed, NOTIFYs with no subscription (legacy notifications), UPDATE
(RFC 3311), and a 481 or 408 to a request in a call ending it (RFC 3261 §12.2.1.2)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import pytest
from scripted import Peer, ScriptedServer, request_text

from sipfsm.causes import Cause
from sipfsm.events import InviteReceived, NotifyReceived, OutOfDialogReferRequested
from sipfsm.fsm.invite import InviteState
from sipfsm.media import signalling_only_factory
from sipfsm.refer import ReferRequest, sipfrag_status
from sipfsm.session import Session
from sipfsm.sip import Request, Response
from sipfsm.ua import UA

OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
PEER_CONTACT = "Contact: <sip:bob@127.0.0.1;transport=ws>\r\n"


async def connect(server: ScriptedServer, **params: Any) -> tuple[UA, Peer]:
    ua = UA(uri="sip:alice@sipfsm.test", ws_servers=server.url, register=False,
            session_description_handler_factory=signalling_only_factory, **params)
    server.clients.append(ua)
    await ua.wait_for("connected", timeout=5)
    return ua, await server.peer()


def uri(ua: UA) -> str:
    return f"sip:{ua.identity.contact_user}@{ua.identity.via_host};transport=ws"


async def final(peer: Peer, method: str) -> Response:
    """The UA's next final response to a request of ``method``."""
    while True:
        response = await peer.response()
        if response.status_code >= 200 and response.cseq is not None \
                and response.cseq.method == method:
            return response


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def a_call(ua: UA, peer: Peer, call_id: str, *, answer: bool = True
                 ) -> tuple[Session, Response]:
    """The peer calls the UA; the UA answers (or leaves it ringing).  Returns the session and
    the UA's last response (its 2xx, or its 180)."""
    calls: list[Session] = []
    ua.on("invite", lambda e: calls.append(e.session))
    await peer.send(request_text("INVITE", uri(ua), call_id=call_id, from_tag="peer", cseq=1,
                                 extra=PEER_CONTACT + "Content-Type: application/sdp\r\n",
                                 body=OFFER))
    await until(lambda: bool(calls))
    if not answer:
        while True:
            response = await peer.response()
            if response.status_code == 180:
                return calls[0], response
    calls[0].accept()
    ok = await final(peer, "INVITE")
    assert ok.to is not None
    await peer.send(request_text("ACK", uri(ua), call_id=call_id, from_tag="peer", cseq=1,
                                 to=f"<{uri(ua)}>;tag={ok.to.tag}"))
    await until(lambda: calls[0].state is InviteState.CONFIRMED)
    return calls[0], ok


def replacing(ua: UA, replaces: str, call_id: str = "new-call") -> str:
    return request_text("INVITE", uri(ua), call_id=call_id, from_tag="other", cseq=1,
                        extra=PEER_CONTACT + f"Replaces: {replaces}\r\n"
                        "Content-Type: application/sdp\r\n", body=OFFER)


async def test_replaces_that_cannot_be_honoured(server: ScriptedServer) -> None:
    ua, peer = await connect(server, replaces="supported")
    session, ok = await a_call(ua, peer, "first")
    assert ok.to is not None
    ours = ok.to.tag
    offered: list[InviteReceived] = []
    ua.on("invite", offered.append)
    cases = [
        ("first;to-tag=wrong;from-tag=peer", 481),  # no such dialog
        (f"first;to-tag=peer;from-tag={ours}", 481),  # the tags the wrong way round
        (f"first;to-tag={ours};from-tag=peer;early-only", 486),  # the call is confirmed
        ("first;from-tag=peer", 400),  # not a Replaces value
    ]
    for number, (value, status) in enumerate(cases):
        await peer.send(replacing(ua, value, call_id=f"new-{number}"))
        assert (await final(peer, "INVITE")).status_code == status, value
    assert session.state is InviteState.CONFIRMED, "the call named is untouched"
    # once that call is over, a Replaces naming it gets 603
    session.bye()
    await peer.send(str(_ok(await peer.request("BYE"))))
    await until(lambda: session.state is InviteState.TERMINATED)
    await peer.send(replacing(ua, f"first;to-tag={ours};from-tag=peer", call_id="late"))
    assert (await final(peer, "INVITE")).status_code == 603
    assert len(offered) == 0


async def test_an_early_dialog_the_peer_began_cannot_be_replaced(
        server: ScriptedServer) -> None:
    ua, peer = await connect(server, replaces="supported")
    session, ringing = await a_call(ua, peer, "ringing", answer=False)
    assert ringing.to is not None
    await peer.send(replacing(ua, f"ringing;to-tag={ringing.to.tag};from-tag=peer"))
    assert (await final(peer, "INVITE")).status_code == 481
    assert session.state is InviteState.RINGING


async def test_with_replaces_unsupported_the_header_is_not_honoured(
        server: ScriptedServer) -> None:
    ua, peer = await connect(server)  # replaces: none (the default)
    session, ok = await a_call(ua, peer, "first")
    assert ok.to is not None
    offered: list[InviteReceived] = []
    ua.on("invite", offered.append)
    await peer.send(replacing(ua, f"first;to-tag={ok.to.tag};from-tag=peer"))
    await until(lambda: len(offered) == 1)
    new = offered[0].session
    assert isinstance(new, Session) and new.replaces is None
    assert session.state is InviteState.CONFIRMED


def refer(ua: UA, refer_to: str | None, **kwargs: Any) -> str:
    extra = PEER_CONTACT + (f"Refer-To: {refer_to}\r\n" if refer_to is not None else "")
    return request_text("REFER", uri(ua), call_id=kwargs.get("call_id", "refer-call"),
                        from_tag="referrer", cseq=3, extra=extra + "Referred-By: <sip:bob@x>\r\n")


async def test_out_of_dialog_refer_is_refused_405_by_default(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    await peer.send(refer(ua, "<sip:carol@sipfsm.test>"))
    refused = await final(peer, "REFER")
    assert refused.status_code == 405
    assert await peer.silence(0.2) == [], "nothing else happens"


async def test_out_of_dialog_refer_with_a_listener(server: ScriptedServer) -> None:
    ua, peer = await connect(server, allow_out_of_dialog_refers=True)
    got: list[OutOfDialogReferRequested] = []
    ua.on("out_of_dialog_refer_requested", got.append)
    await peer.send(refer(ua, "<sip:carol@sipfsm.test?Replaces=c%3Bto-tag%3Da%3Bfrom-tag%3Db>"))
    await until(lambda: bool(got))
    request = got[0].refer
    assert isinstance(request, ReferRequest)
    assert str(request.target) == "sip:carol@sipfsm.test"
    assert request.replaces is not None and request.replaces.to_tag == "a"
    assert request.referred_by == "<sip:bob@x>"
    request.accept(follow=False)
    accepted = await final(peer, "REFER")
    assert accepted.status_code == 202
    notify = await peer.request("NOTIFY")
    assert notify.headers.get("Event") == "refer;id=3"
    assert (notify.headers.get("Subscription-State") or "").startswith("active")
    assert sipfrag_status(notify.text) == 100
    assert notify.to is not None and notify.to.tag == "referrer"
    await peer.send(str(_ok(notify)))
    request.notify(486, "Busy Here")
    last = await peer.request("NOTIFY")
    assert sipfrag_status(last.text) == 486
    assert last.headers.get("Subscription-State") == "terminated;reason=noresource"
    assert last.cseq is not None and notify.cseq is not None
    assert last.cseq.seq == notify.cseq.seq + 1


async def test_out_of_dialog_refer_without_a_listener_is_followed_with_a_warning(
        server: ScriptedServer) -> None:
    log = io.StringIO()
    ua, peer = await connect(server, allow_out_of_dialog_refers=True, log_stream=log)
    await peer.send(refer(ua, "<sip:carol@sipfsm.test>"))
    assert (await final(peer, "REFER")).status_code == 202
    invite = await peer.request("INVITE")
    assert str(invite.uri) == "sip:carol@sipfsm.test"
    assert "<sip:bob@x>" in (invite.headers.get("Referred-By") or "")
    assert "anyone who can reach this UA" in log.getvalue()


@pytest.mark.parametrize(("refer_to", "status"), [
    (None, 400), ("<tel:+15550100>", 416), ("<sip:c@x?Replaces=bad>", 400), ("<<<", 400)])
async def test_a_refer_that_cannot_be_followed(server: ScriptedServer, refer_to: str | None,
                                               status: int) -> None:
    ua, peer = await connect(server, allow_out_of_dialog_refers=True)
    await peer.send(refer(ua, refer_to))
    assert (await final(peer, "REFER")).status_code == status


async def test_legacy_notifications(server: ScriptedServer) -> None:
    def notify(number: int) -> str:
        return request_text("NOTIFY", uri(ua), call_id=f"legacy-{number}", cseq=number,
                            extra="Event: message-summary\r\nSubscription-State: active\r\n"
                            "Content-Type: application/simple-message-summary\r\n",
                            body="Messages-Waiting: yes\r\n")

    ua, peer = await connect(server)
    await peer.send(notify(1))
    assert (await final(peer, "NOTIFY")).status_code == 481
    await ua.stop()
    ua, peer = await connect(server, allow_legacy_notifications=True)
    await peer.send(notify(2))
    assert (await final(peer, "NOTIFY")).status_code == 481, "no listener: 481"
    got: list[NotifyReceived] = []
    ua.on("notify", got.append)
    await peer.send(notify(3))
    assert (await final(peer, "NOTIFY")).status_code == 200
    assert got[0].request.body == b"Messages-Waiting: yes\r\n"


async def test_notifies_in_a_call_without_a_refer(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    session, ok = await a_call(ua, peer, "call")
    assert ok.to is not None
    await peer.send(request_text(
        "NOTIFY", uri(ua), call_id="call", from_tag="peer", cseq=2,
        to=f"<{uri(ua)}>;tag={ok.to.tag}", extra="Event: refer\r\nSubscription-State: active\r\n"
        "Content-Type: message/sipfrag\r\n", body="SIP/2.0 100 Trying\r\n"))
    assert (await final(peer, "NOTIFY")).status_code == 481
    assert session.state is InviteState.CONFIRMED


def test_sipfrag_status_lines() -> None:
    assert sipfrag_status("SIP/2.0 200 OK\r\n") == 200
    assert sipfrag_status("SIP/2.0 100 Trying") == 100
    assert sipfrag_status("\r\nSIP/2.0 486 Busy Here\r\nVia: x\r\n") == 486
    for bad in ("", "HTTP/1.1 200 OK", "SIP/2.0 2000 X", "SIP/2.0 099 X", "SIP/2.0 abc"):
        assert sipfrag_status(bad) is None, bad


def _ok(request: Request) -> Response:
    from sipfsm.core import make_response

    return make_response(request, 200, to_tag="referrer")


async def test_update_in_a_call(server: ScriptedServer) -> None:
    """RFC 3311: an UPDATE without a body refreshes the target (session timers) → 200; one
    with an offer gets our answer; one we cannot take → 488 and the call goes on; one while
    the peer's re-INVITE is unacknowledged (an offer outstanding) → 491."""
    ua, peer = await connect(server)
    session, ok = await a_call(ua, peer, "upd")
    assert ok.to is not None
    to = f"<{uri(ua)}>;tag={ok.to.tag}"

    def update(cseq: int, body: str = "", contact: str = PEER_CONTACT) -> str:
        extra = contact + ("Content-Type: application/sdp\r\n" if body else "")
        return request_text("UPDATE", uri(ua), call_id="upd", from_tag="peer", cseq=cseq,
                            to=to, extra=extra, body=body)

    await peer.send(update(2, contact="Contact: <sip:moved@127.0.0.1;transport=ws>\r\n"))
    refreshed = await final(peer, "UPDATE")
    assert refreshed.status_code == 200 and refreshed.contact
    assert session.dialog is not None
    assert str(session.dialog.remote_target) == "sip:moved@127.0.0.1;transport=ws"
    await peer.send(update(3, OFFER))
    answered = await final(peer, "UPDATE")
    assert answered.status_code == 200 and b"m=audio" in answered.body
    await peer.send(update(4, "v=0\r\nm=video 9 RTP/AVP 96\r\n"))
    assert (await final(peer, "UPDATE")).status_code == 488
    assert session.state is InviteState.CONFIRMED
    # the peer's re-INVITE, answered but not yet acknowledged: an UPDATE offer must wait
    await peer.send(request_text("INVITE", uri(ua), call_id="upd", from_tag="peer", cseq=5,
                                 to=to, extra=PEER_CONTACT + "Content-Type: application/sdp\r\n",
                                 body=OFFER))
    assert (await final(peer, "INVITE")).status_code == 200
    await peer.send(update(6, OFFER, contact="Contact: <sip:nope@127.0.0.1;transport=ws>\r\n"))
    assert (await final(peer, "UPDATE")).status_code == 491
    assert str(session.dialog.remote_target) == "sip:bob@127.0.0.1;transport=ws", \
        "a refused UPDATE refreshes nothing (RFC 6141)"
    await peer.send(request_text("ACK", uri(ua), call_id="upd", from_tag="peer", cseq=5, to=to))
    await until(lambda: session.state is InviteState.CONFIRMED)


@pytest.mark.parametrize(("request_kind", "status"), [("info", 481), ("reinvite", 408),
                                                      ("refer", 481), ("message", 408)])
async def test_a_481_or_408_in_the_call_ends_it(server: ScriptedServer, request_kind: str,
                                                status: int) -> None:
    """RFC 3261 §12.2.1.2: the dialog is gone, so is the call (cause ``Dialog Error``)."""
    ua, peer = await connect(server)
    session, _ = await a_call(ua, peer, "gone")
    if request_kind == "info":
        session.dtmf("5")
    elif request_kind == "reinvite":
        asyncio.ensure_future(session.hold(timeout=5)).add_done_callback(
            lambda task: task.exception())
    elif request_kind == "refer":
        session.refer("sip:carol@sipfsm.test")
    else:
        session.message("hello")
    method = {"info": "INFO", "reinvite": "INVITE", "refer": "REFER", "message": "MESSAGE"}
    sent = await peer.request(method[request_kind])
    await peer.send(str(_answer(sent, status)))
    bye = await peer.request("BYE")
    await peer.send(str(_answer(bye, 481)))
    await until(lambda: session.state is InviteState.TERMINATED)
    assert session.cause is Cause.DIALOG_ERROR


def _answer(request: Request, status: int) -> Response:
    from sipfsm.core import make_response

    return make_response(request, status, to_tag=request.to.tag if request.to else None)
