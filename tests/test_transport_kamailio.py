"""The transport over real WebSockets to a real Kamailio on 127.0.0.1."""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any

import pytest
from kamailio import Kamailio

from sipfsm import UAConfig
from sipfsm.events import FrameReceived, TransportConnected, TransportDisconnected
from sipfsm.sip import Response, parse
from sipfsm.ua import UA

pytestmark = pytest.mark.kamailio


def dead_url() -> str:
    """A ws:// URL on a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


def options_request(domain: str) -> tuple[str, str]:
    branch = "z9hG4bK" + secrets.token_hex(8)
    text = (f"OPTIONS sip:{domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/WS {secrets.token_hex(6)}.invalid;branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            f"To: <sip:{domain}>\r\n"
            f"From: <sip:alice@{domain}>;tag={secrets.token_hex(4)}\r\n"
            f"Call-ID: {secrets.token_hex(10)}\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    return text, branch


def config(kamailio: Kamailio, **params: Any) -> UAConfig:
    return UAConfig(uri=f"sip:alice@{kamailio.domain}",
                    ws_servers=params.pop("ws_servers", kamailio.ws_url),
                    log={"builtin_enabled": False}, register=False, **params)


async def test_connects_and_an_options_is_answered(kamailio: Kamailio) -> None:
    async with UA(config(kamailio)) as ua:
        connected = await ua.wait_for("connected", timeout=5)
        assert connected.server == kamailio.ws_url and ua.is_connected()
        replies: asyncio.Queue[str] = asyncio.Queue()
        ua.bus.subscribe(FrameReceived, lambda event: replies.put_nowait(event.data))
        request, branch = options_request(kamailio.domain)
        ua.send_frame(request)
        response = parse(await asyncio.wait_for(replies.get(), 5))
        assert isinstance(response, Response) and response.status_code == 200
        assert response.top_via is not None and response.top_via.branch == branch
    assert not ua.is_connected()


async def test_weighted_failover_skips_a_dead_heavier_server(kamailio: Kamailio) -> None:
    dead = dead_url()
    seen: list[object] = []
    ua = UA(config(kamailio, ws_servers=[{"ws_uri": dead, "weight": 10},
                                         {"ws_uri": kamailio.ws_url, "weight": 1}],
                   autostart=False))
    for name in ("connecting", "connected", "disconnected"):
        ua.on(name, seen.append)
    async with ua:
        await ua.wait_for("connected", timeout=5)
    kinds = [(type(e).__name__, getattr(e, "server", None)) for e in seen]
    assert kinds[:4] == [("TransportConnecting", dead), ("TransportDisconnected", dead),
                         ("TransportConnecting", kamailio.ws_url),
                         ("TransportConnected", kamailio.ws_url)]
    assert seen[1].given_up  # type: ignore[attr-defined]


async def test_reconnects_after_kamailio_is_killed_and_restarted(
        fresh_kamailio: Kamailio) -> None:
    cfg = config(fresh_kamailio, ws_server_reconnection_timeout=1,
                 connection_recovery_min_interval=1, connection_recovery_max_interval=2)
    async with UA(cfg) as ua:
        await ua.wait_for("connected", timeout=5)
        dropped = asyncio.ensure_future(ua.wait_for(
            "disconnected", timeout=10, predicate=lambda e: not e.given_up))
        fresh_kamailio.kill()
        lost: TransportDisconnected = await dropped
        assert lost.server == fresh_kamailio.ws_url
        assert not ua.is_connected()
        back = asyncio.ensure_future(ua.wait_for("connected", timeout=20))
        await asyncio.sleep(1.5)
        fresh_kamailio.restart()
        again: TransportConnected = await back
        assert again.server == fresh_kamailio.ws_url and ua.is_connected()
        # and the new flow carries SIP
        replies: asyncio.Queue[str] = asyncio.Queue()
        ua.bus.subscribe(FrameReceived, lambda event: replies.put_nowait(event.data))
        ua.send_frame(options_request(fresh_kamailio.domain)[0])
        response = parse(await asyncio.wait_for(replies.get(), 5))
        assert isinstance(response, Response) and response.status_code == 200


async def test_keep_alive_pings_are_answered(kamailio: Kamailio) -> None:
    traced: list[tuple[str, str]] = []

    def connector(level: str, category: str, label: str | None, content: str) -> None:
        if category == "transport" and content.startswith(("sent", "received")):
            traced.append((content.split(" ", 1)[0], content.split("\n", 1)[1]))

    cfg = UAConfig.from_sipjs({"uri": f"sip:alice@{kamailio.domain}",
                               "wsServers": kamailio.ws_url, "keepAliveInterval": 1,
                               "traceSip": True, "register": False,
                               "log": {"builtinEnabled": False, "connector": connector}})
    timeouts: list[object] = []
    async with UA(cfg) as ua:
        ua.on("keep_alive_timeout", timeouts.append)
        await ua.wait_for("connected", timeout=5)
        await asyncio.sleep(2.6)
        assert ua.is_connected()
    assert timeouts == []
    pings = [t for t in traced if t == ("sent", "\r\n\r\n")]
    pongs = [t for t in traced if t == ("received", "\r\n")]
    assert len(pings) >= 2 and len(pongs) >= 2
