"""The UA core over a real WebSocket to a scripted peer: the request gate's answers, OPTIONS,
MESSAGE both ways, stray responses, Timer F, a dropped socket, digest, and the requests the UA
writes (every configuration hack)."""

from __future__ import annotations

from typing import Any

import pytest
from scripted import Peer, ScriptedServer, request_text

from sipfsm.causes import Cause
from sipfsm.events import MessageReceived
from sipfsm.sip import Request, Response
from sipfsm.sip.digest import make_challenge, verify
from sipfsm.ua import UA


def make_ua(server: ScriptedServer, **params: Any) -> UA:
    params.setdefault("register", False)
    ua = UA(uri="sip:alice@sipfsm.test", ws_servers=server.url,
            log={"builtin_enabled": False}, t1=params.pop("t1", 0.5), **params)
    server.clients.append(ua)
    return ua


async def connect(server: ScriptedServer, **params: Any) -> tuple[UA, Peer]:
    ua = make_ua(server, **params)
    await ua.wait_for("connected", timeout=5)
    return ua, await server.peer()


def our_uri(ua: UA) -> str:
    return f"sip:{ua.identity.contact_user}@{ua.identity.via_host};transport=ws"


async def ask(peer: Peer, text: str) -> Response:
    await peer.send(text)
    return await peer.response()


async def test_options_is_answered_200(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    response = await ask(peer, request_text("OPTIONS", our_uri(ua), branch="z9hG4bKopt1"))
    assert response.status_code == 200
    assert response.top_via is not None and response.top_via.branch == "z9hG4bKopt1"
    assert response.to is not None and response.to.tag
    assert "INVITE" in response.allow and "MESSAGE" in response.allow
    assert response.headers.get("Accept") is not None
    assert response.user_agent == ua.config.user_agent_string
    await ua.stop()


async def test_message_is_received_and_answered(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    got: list[MessageReceived] = []
    ua.on("message", got.append)
    text = request_text("MESSAGE", "sip:alice@sipfsm.test", body="Hi Alice ☕",
                        extra="Content-Type: text/plain;charset=utf-8\r\n")
    assert (await ask(peer, text)).status_code == 200
    (event,) = got
    assert event.request.text == "Hi Alice ☕"
    assert event.request.content_type is not None
    assert event.request.content_type.mime == "text/plain"
    await ua.stop()


@pytest.mark.parametrize(("case", "status"), [
    ("bad-framing", 400), ("not-ours", 404), ("unknown-method", 501), ("not-allowed", 405),
    ("tel-uri", 416), ("bye-out-of-dialog", 481), ("missing-from", 400),
    ("require-unknown", 420), ("version", 505),
])
async def test_the_gate(server: ScriptedServer, case: str, status: int) -> None:
    ua, peer = await connect(server)
    uri = our_uri(ua)
    text = {
        "bad-framing": request_text("MESSAGE", uri, body="short", content_length=99),
        "not-ours": request_text("OPTIONS", "sip:mallory@sipfsm.test"),
        "unknown-method": request_text("FOO", uri),
        "not-allowed": request_text("PUBLISH", uri),
        "tel-uri": request_text("OPTIONS", "tel:+12015550123"),
        "bye-out-of-dialog": request_text("BYE", uri, to=f"<{uri}>;tag=x"),
        "missing-from": "\r\n".join(line for line in request_text("OPTIONS", uri).split("\r\n")
                                    if not line.startswith("From")),
        "require-unknown": request_text("OPTIONS", uri, extra="Require: teleportation\r\n"),
        "version": request_text("OPTIONS", uri).replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1),
    }[case]
    response = await ask(peer, text)
    assert response.status_code == status
    if status == 405:
        assert "INVITE" in response.allow
    if status == 420:
        assert response.unsupported == ("teleportation",)
    assert ua.is_connected()
    await ua.stop()


async def test_loops_and_merged_requests_get_482(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    ua.message(our_uri(ua), "to myself")
    mine = await peer.request("MESSAGE")
    await peer.send(str(mine))  # the edge hands our own request back to us
    looped = await peer.response()
    assert looped.status_code == 482
    invite = request_text("INVITE", our_uri(ua), from_tag="f1", call_id="merged", cseq=7,
                          extra="Contact: <sip:bob@127.0.0.1;transport=ws>\r\n")
    assert (await ask(peer, invite)).status_code == 100
    assert (await peer.response()).status_code == 180  # ringing: a live INVITE transaction
    copy = request_text("INVITE", our_uri(ua), from_tag="f1", call_id="merged", cseq=7,
                        extra="Contact: <sip:bob@127.0.0.1;transport=ws>\r\n")
    assert (await ask(peer, copy)).status_code == 100
    merged = await peer.response()
    assert merged.status_code == 482
    await ua.stop()


async def test_stray_responses_are_ignored(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    await peer.send("SIP/2.0 200 OK\r\nVia: SIP/2.0/WS " + ua.identity.via_host +
                    ";branch=z9hG4bKnobody\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n"
                    "Call-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n")
    await peer.send("not SIP at all")
    assert await peer.silence(0.2) == []
    response = await ask(peer, request_text("OPTIONS", our_uri(ua)))
    assert response.status_code == 200  # still serving
    await ua.stop()


async def test_message_sent_and_accepted(server: ScriptedServer) -> None:
    ua, peer = await connect(server, display_name='Alice "A"', user_agent_string="Bot/1")
    outcome: list[str] = []
    handle = ua.message("bob", "hello")
    handle.on("accepted", lambda response, cause: outcome.append("accepted"))
    sent = await peer.request("MESSAGE")
    assert str(sent.uri) == "sip:bob@sipfsm.test"
    assert sent.from_ is not None and sent.from_.display_name == 'Alice "A"'
    assert (sent.headers.get("From") or "").startswith('"Alice \\"A\\"" <sip:alice@sipfsm.test>')
    assert sent.user_agent == "Bot/1" and sent.body == b"hello"
    assert sent.top_via is not None and sent.top_via.transport == "WS"
    assert sent.top_via.branch is not None and len(sent.top_via.branch) >= 7 + 16
    await peer.send(_answer(sent, 200))
    final = await handle.result(5)
    assert final.status_code == 200 and outcome == ["accepted"]
    await ua.stop()


def _answer(request: Request, status: int, *extra: str) -> str:
    lines = [f"SIP/2.0 {status} Whatever"]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if name == "To":
            value = f"{value};tag=srv"
        lines.append(f"{name}: {value}")
    lines += list(extra)
    return "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"


async def test_a_failure_carries_its_cause(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    failed: list[tuple[object, object]] = []
    handle = ua.message("carol", "anyone?")
    handle.on("failed", lambda response, cause: failed.append((response, cause)))
    sent = await peer.request("MESSAGE")
    await peer.send(_answer(sent, 404))
    assert (await handle.result(5)).status_code == 404
    assert handle.cause is Cause.NOT_FOUND and failed[0][1] is Cause.NOT_FOUND
    await ua.stop()


async def test_timer_f_fails_with_request_timeout(server: ScriptedServer) -> None:
    ua, peer = await connect(server, t1=0.01)  # F = 64 x T1 = 0.64 s
    handle = ua.message("bob", "are you there?")
    await peer.request("MESSAGE")
    final = await handle.result(5)
    assert final.status_code == 408 and handle.cause is Cause.REQUEST_TIMEOUT
    assert len(ua.core.transactions) == 0
    await ua.stop()


async def test_a_dropped_socket_fails_the_transaction(server: ScriptedServer) -> None:
    ua, peer = await connect(server, connection_recovery_min_interval=60,
                             connection_recovery_max_interval=60)
    handle = ua.message("bob", "hello?")
    await peer.request("MESSAGE")
    await peer.close(code=1011)
    final = await handle.result(5)
    assert handle.cause is Cause.CONNECTION_ERROR and final.status_code == 503
    assert len(ua.core.transactions) == 0
    await ua.stop()


async def test_requests_wait_for_the_connection(server: ScriptedServer) -> None:
    ua = make_ua(server, autostart=False)
    handle = ua.message("bob", "queued")
    ua.start()
    peer = await server.peer()
    sent = await peer.request("MESSAGE")
    assert sent.body == b"queued"
    await peer.send(_answer(sent, 202))
    assert (await handle.result(5)).status_code == 202
    await ua.stop()


async def test_digest_challenge_is_answered_once(server: ScriptedServer) -> None:
    ua, peer = await connect(server, password="s3cret-pw")
    handle = ua.message("bob", "auth me")
    first = await peer.request("MESSAGE")
    challenge = make_challenge("sipfsm.test", qop=("auth",))
    await peer.send(_answer(first, 407, f"Proxy-Authenticate: {challenge}"))
    second = await peer.request("MESSAGE")
    (credentials,) = second.proxy_authorization
    assert verify(credentials, "MESSAGE", password="s3cret-pw")  # type: ignore[arg-type]
    assert second.cseq is not None and first.cseq is not None
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.top_via is not None and first.top_via is not None
    assert second.top_via.branch != first.top_via.branch
    await peer.send(_answer(second, 407, f"Proxy-Authenticate: {challenge}"))
    final = await handle.result(5)  # a second plain challenge is not answered again
    assert final.status_code == 407 and handle.cause is Cause.AUTHENTICATION_ERROR
    assert "s3cret-pw" not in str(second)
    await ua.stop()


async def test_configuration_hacks_shape_the_requests(server: ScriptedServer) -> None:
    ua, peer = await connect(server, hack_via_tcp=True, hack_ip_in_contact="198.51.100.7",
                             hack_wss_in_transport=True, use_preloaded_route=True)
    ua.request("OPTIONS", "bob")
    sent = await peer.request("OPTIONS")
    assert sent.top_via is not None
    assert (sent.top_via.transport, sent.top_via.host) == ("TCP", "198.51.100.7")
    (contact,) = sent.contact
    assert contact.uri.host == "198.51.100.7" and contact.uri.params["transport"] == "wss"
    (route,) = sent.route
    assert route.uri.host == "127.0.0.1" and "lr" in route.uri.params
    assert route.uri.params["transport"] == "ws"
    await ua.stop()


def test_dialog_responses_copy_record_route() -> None:
    from sipfsm.core import make_response
    from sipfsm.sip import parse

    invite = parse(request_text("INVITE", "sip:a@b.test",
                                extra="Record-Route: <sip:p1.test;lr>\r\n"
                                      "Record-Route: <sip:p2.test;lr>\r\n"))
    message = parse(request_text("MESSAGE", "sip:a@b.test",
                                 extra="Record-Route: <sip:p1.test;lr>\r\n"))
    assert isinstance(invite, Request) and isinstance(message, Request)
    ok = make_response(invite, 200, to_tag="t")
    assert ok.headers.get_all("Record-Route") == ["<sip:p1.test;lr>", "<sip:p2.test;lr>"]
    assert make_response(invite, 100).headers.get_all("Record-Route") == []
    assert make_response(invite, 486).headers.get_all("Record-Route") == []
    assert make_response(message, 200).headers.get_all("Record-Route") == []
