"""REGISTER as the UA writes it, and its digest dance, against a scripted registrar."""

from __future__ import annotations

from scripted import Peer, ScriptedServer

from sipfsm.causes import Cause
from sipfsm.sip import Request
from sipfsm.sip.digest import Credentials, make_challenge, verify
from sipfsm.ua import UA

INSTANCE = "4f5c2a38-1d3b-4c6e-9a7f-0b1c2d3e4f50"


async def registering(server: ScriptedServer, **params: object) -> tuple[UA, Peer]:
    ua = UA(uri="sip:alice@sipfsm.test", ws_servers=server.url, password="alice-pw",
            instance_id=INSTANCE, log={"builtin_enabled": False}, **params)  # type: ignore[arg-type]
    server.clients.append(ua)
    return ua, await server.peer()


def reply(request: Request, status: int, *extra: str) -> str:
    lines = [f"SIP/2.0 {status} Whatever"]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        lines.append(f"{name}: {value};tag=reg" if name == "To" else f"{name}: {value}")
    lines += list(extra)
    return "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"


def binding(request: Request, expires: int) -> str:
    (contact,) = request.contact
    return (f"Contact: <{contact.uri}>;expires={expires};reg-id=1;"
            f'+sip.instance="<urn:uuid:{INSTANCE}>"')


async def test_the_register_request(server: ScriptedServer) -> None:
    ua, peer = await registering(server, display_name="Alice", register_expires=300)
    first = await peer.request("REGISTER")
    assert str(first.uri) == "sip:sipfsm.test"
    assert first.to is not None and first.to.tag is None
    assert first.headers.get("To") == '"Alice" <sip:alice@sipfsm.test>'
    assert first.from_ is not None and first.from_.tag and first.from_.display_name == "Alice"
    (contact,) = first.contact
    assert contact.uri.user == ua.identity.contact_user
    assert contact.uri.host == ua.identity.via_host and contact.uri.host.endswith(".invalid")
    assert contact.uri.params == {"transport": "ws"}
    assert contact.params["reg-id"] == "1" and contact.expires == 300
    assert contact.param("+sip.instance") == f"<urn:uuid:{INSTANCE}>"
    assert first.expires == 300
    assert {"path", "gruu", "outbound"} <= set(first.supported)
    assert "INVITE" in first.allow and first.user_agent == ua.config.user_agent_string
    await peer.send(reply(first, 200, binding(first, 300)))
    await ua.wait_for("registered", timeout=5)
    ua.unregister()
    second = await peer.request("REGISTER")
    assert second.call_id == first.call_id  # one Call-ID for the UA's life
    assert second.cseq is not None and first.cseq is not None
    assert second.cseq.seq > first.cseq.seq
    assert second.expires == 0 and second.contact[0].expires == 0
    await peer.send(reply(second, 200))
    await ua.wait_for("unregistered", timeout=5)


async def test_challenge_then_stale_then_success(server: ScriptedServer) -> None:
    ua, peer = await registering(server)
    first = await peer.request("REGISTER")
    challenge = make_challenge("sipfsm.test", algorithm="SHA-256", qop=("auth",))
    await peer.send(reply(first, 401, f"WWW-Authenticate: {challenge}"))
    second = await peer.request("REGISTER")
    (answer,) = second.authorization
    assert isinstance(answer, Credentials) and answer.algorithm == "SHA-256"
    assert verify(answer, "REGISTER", password="alice-pw") and answer.nc == "00000001"
    assert second.call_id == first.call_id
    assert second.cseq is not None and first.cseq is not None
    assert second.cseq.seq == first.cseq.seq + 1
    stale = make_challenge("sipfsm.test", qop=("auth",), stale=True)
    await peer.send(reply(second, 401, f"WWW-Authenticate: {stale}"))
    third = await peer.request("REGISTER")  # stale: answered once more, with the new nonce
    (again,) = third.authorization
    assert isinstance(again, Credentials) and again.nonce == stale.nonce
    await peer.send(reply(third, 200, binding(third, 600)))
    registered = await ua.wait_for("registered", timeout=5)
    assert registered.expires == 600 and ua.is_registered()
    assert "alice-pw" not in str(third)


async def test_a_second_plain_challenge_fails(server: ScriptedServer) -> None:
    ua, peer = await registering(server)
    first = await peer.request("REGISTER")
    challenge = make_challenge("sipfsm.test")
    await peer.send(reply(first, 401, f"WWW-Authenticate: {challenge}"))
    second = await peer.request("REGISTER")
    await peer.send(reply(second, 401, f"WWW-Authenticate: {make_challenge('sipfsm.test')}"))
    failed = await ua.wait_for("registration_failed", timeout=5)
    assert failed.cause is Cause.AUTHENTICATION_ERROR and not ua.is_registered()
    assert await peer.silence(0.2) == []  # no third attempt: no auth loop


async def test_the_next_register_answers_the_last_challenge_up_front(
        server: ScriptedServer) -> None:
    ua, peer = await registering(server)
    first = await peer.request("REGISTER")
    challenge = make_challenge("sipfsm.test", qop=("auth",))
    await peer.send(reply(first, 401, f"WWW-Authenticate: {challenge}"))
    second = await peer.request("REGISTER")
    await peer.send(reply(second, 200, binding(second, 600)))
    await ua.wait_for("registered", timeout=5)
    ua.unregister()
    third = await peer.request("REGISTER")  # no 401 round trip this time
    (answer,) = third.authorization
    assert isinstance(answer, Credentials)
    assert answer.nonce == challenge.nonce and answer.nc == "00000002"
    assert verify(answer, "REGISTER", password="alice-pw")
    # the registrar has forgotten the nonce: a fresh 401 is answered as usual
    fresh = make_challenge("sipfsm.test", qop=("auth",))
    await peer.send(reply(third, 401, f"WWW-Authenticate: {fresh}"))
    fourth = await peer.request("REGISTER")
    (again,) = fourth.authorization
    assert isinstance(again, Credentials) and again.nonce == fresh.nonce
    await peer.send(reply(fourth, 200))
    await ua.wait_for("unregistered", timeout=5)
