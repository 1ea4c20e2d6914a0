"""The Kamailio fixtures work: real SIP over a real WebSocket (aiohttp), raw SIP text."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket

import aiohttp
import pytest
from kamailio import Kamailio

pytestmark = pytest.mark.kamailio

TIMEOUT = 5.0


# ----------------------------------------------------------------- helpers


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _request(
    method: str,
    uri: str,
    *,
    from_uri: str,
    to_uri: str,
    call_id: str | None = None,
    cseq: int = 1,
    extra: tuple[str, ...] = (),
    body: str = "",
) -> str:
    """An RFC 3261 request as a WebSocket client (RFC 7118) sends it."""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/WS xyz.invalid;branch=z9hG4bK{secrets.token_hex(8)}",
        "Max-Forwards: 70",
        f"To: <{to_uri}>",
        f"From: <{from_uri}>;tag={secrets.token_hex(4)}",
        f"Call-ID: {call_id or secrets.token_hex(10)}",
        f"CSeq: {cseq} {method}",
        *extra,
        f"Content-Length: {len(body.encode())}",
    ]
    return "\r\n".join(lines) + "\r\n\r\n" + body


def _status(message: str) -> int:
    first = message.split("\r\n", 1)[0]
    assert first.startswith("SIP/2.0 "), first
    return int(first.split(" ", 2)[1])


def _header(message: str, name: str) -> str | None:
    head = message.split("\r\n\r\n", 1)[0]
    for line in head.split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            return value.strip()
    return None


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> str:
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    if msg.type is aiohttp.WSMsgType.TEXT:
        assert isinstance(msg.data, str)
        return msg.data
    if msg.type is aiohttp.WSMsgType.BINARY:
        assert isinstance(msg.data, bytes)
        return msg.data.decode()
    raise AssertionError(f"unexpected WebSocket message {msg.type!r}: {msg.data!r}")


async def _final_response(ws: aiohttp.ClientWebSocketResponse) -> str:
    """Next final (>= 200) response, skipping 1xx."""
    while True:
        message = await _receive(ws)
        if message.startswith("SIP/2.0 ") and _status(message) >= 200:
            return message


async def _options(session: aiohttp.ClientSession, server: Kamailio) -> str:
    async with session.ws_connect(server.ws_url, protocols=("sip",)) as ws:
        assert ws.protocol == "sip"
        await ws.send_str(
            _request(
                "OPTIONS",
                f"sip:{server.domain}",
                from_uri=f"sip:alice@{server.domain}",
                to_uri=f"sip:{server.domain}",
            )
        )
        return await _final_response(ws)


def _digest_authorization(
    challenge: str, *, user: str, password: str, method: str, uri: str
) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.removeprefix("Digest ")))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    fields += [f'response="{response}"', "algorithm=MD5"]
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)


async def _register(ws: aiohttp.ClientWebSocketResponse, server: Kamailio, user: str) -> str:
    """REGISTER ``user`` with digest auth over ``ws``; returns the final response."""
    aor = f"sip:{user}@{server.domain}"
    registrar = f"sip:{server.domain}"
    call_id = secrets.token_hex(10)
    contact = f"Contact: <sip:{user}@{secrets.token_hex(4)}.invalid;transport=ws>;expires=300"
    await ws.send_str(
        _request("REGISTER", registrar, from_uri=aor, to_uri=aor, call_id=call_id, extra=(contact,))
    )
    challenge = await _final_response(ws)
    assert _status(challenge) == 401, challenge
    authenticate = _header(challenge, "WWW-Authenticate")
    assert authenticate is not None
    authorization = _digest_authorization(
        authenticate, user=user, password=server.users[user], method="REGISTER", uri=registrar
    )
    await ws.send_str(
        _request(
            "REGISTER",
            registrar,
            from_uri=aor,
            to_uri=aor,
            call_id=call_id,
            cseq=2,
            extra=(contact, f"Authorization: {authorization}"),
        )
    )
    return await _final_response(ws)


# ------------------------------------------------------------------- tests


async def test_options_to_server_over_websocket(kamailio: Kamailio) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(kamailio.ws_url, protocols=("sip",)) as ws,
    ):
        assert ws.protocol == "sip"
        call_id = secrets.token_hex(10)
        await ws.send_str(
            _request(
                "OPTIONS",
                f"sip:{kamailio.domain}",
                from_uri=f"sip:alice@{kamailio.domain}",
                to_uri=f"sip:{kamailio.domain}",
                call_id=call_id,
            )
        )
        response = await _receive(ws)
    assert response.startswith("SIP/2.0 200"), response
    assert _header(response, "Call-ID") == call_id
    assert _header(response, "CSeq") == "1 OPTIONS"


async def test_register_without_credentials_is_challenged(kamailio: Kamailio) -> None:
    aor = f"sip:alice@{kamailio.domain}"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(kamailio.ws_url, protocols=("sip",)) as ws,
    ):
        await ws.send_str(
            _request(
                "REGISTER",
                f"sip:{kamailio.domain}",
                from_uri=aor,
                to_uri=aor,
                extra=("Contact: <sip:alice@abc.invalid;transport=ws>",),
            )
        )
        response = await _receive(ws)
    assert response.startswith("SIP/2.0 401"), response
    authenticate = _header(response, "WWW-Authenticate")
    assert authenticate is not None
    assert authenticate.startswith("Digest ")
    assert f'realm="{kamailio.domain}"' in authenticate


async def test_kill_refuses_connections_and_restart_recovers(fresh_kamailio: Kamailio) -> None:
    server = fresh_kamailio
    ws_url, udp_port = server.ws_url, server.udp_port
    async with aiohttp.ClientSession() as session:
        assert (await _options(session, server)).startswith("SIP/2.0 200")

        server.kill()
        assert not server.running
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.ws_port), timeout=TIMEOUT).close()
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.ws_connect(server.ws_url, protocols=("sip",))

        server.restart()
        assert server.running
        assert (server.ws_url, server.udp_port) == (ws_url, udp_port)
        assert (await _options(session, server)).startswith("SIP/2.0 200")


async def test_ul_dump_returns_text(kamailio: Kamailio) -> None:
    dump = kamailio.ul_dump()
    assert isinstance(dump, str)
    assert "location" in dump


async def test_registered_users_reach_each_other(fresh_kamailio: Kamailio) -> None:
    """Digest REGISTER over WS, then MESSAGE alice -> bob relayed to bob's WS connection."""
    server = fresh_kamailio
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.ws_url, protocols=("sip",)) as alice,
        session.ws_connect(server.ws_url, protocols=("sip",)) as bob,
    ):
        for ws, user in ((alice, "alice"), (bob, "bob")):
            ok = await _register(ws, server, user)
            assert ok.startswith("SIP/2.0 200"), ok
        dump = server.ul_dump()
        assert "alice" in dump
        assert "bob" in dump

        bob_aor = f"sip:bob@{server.domain}"
        await alice.send_str(
            _request(
                "MESSAGE",
                bob_aor,
                from_uri=f"sip:alice@{server.domain}",
                to_uri=bob_aor,
                extra=("Content-Type: text/plain",),
                body="hello bob",
            )
        )
        incoming = await _receive(bob)
        assert incoming.startswith("MESSAGE sip:bob@"), incoming
        assert incoming.endswith("hello bob")
        assert _header(incoming, "Record-Route") is not None

        # bob answers 200 on his side: copy Via/From/To/Call-ID/CSeq (RFC 3261 8.2.6)
        reply = ["SIP/2.0 200 OK"]
        for line in incoming.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
            name = line.partition(":")[0].strip().lower()
            if name in ("via", "from", "call-id", "cseq"):
                reply.append(line)
            elif name == "to":
                reply.append(f"{line};tag={secrets.token_hex(4)}")
        reply.append("Content-Length: 0")
        await bob.send_str("\r\n".join(reply) + "\r\n\r\n")
        answered = await _final_response(alice)
        assert answered.startswith("SIP/2.0 200"), answered


async def test_request_to_unregistered_user_is_404(kamailio: Kamailio) -> None:
    carol_aor = f"sip:carol@{kamailio.domain}"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(kamailio.ws_url, protocols=("sip",)) as ws,
    ):
        await ws.send_str(
            _request(
                "MESSAGE",
                carol_aor,
                from_uri=f"sip:alice@{kamailio.domain}",
                to_uri=carol_aor,
                extra=("Content-Type: text/plain",),
                body="hi",
            )
        )
        response = await _final_response(ws)
    assert _status(response) in (404, 480), response
