"""Registration and messaging through a real SIP edge: Kamailio (auth_db, usrloc) and the
devserver, with the same tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from edges import Edge, KamailioEdge

from sipfsm.causes import Cause
from sipfsm.events import MessageReceived, Registered, RegistrationFailed, Unregistered
from sipfsm.sip.digest import DigestAuthenticator
from sipfsm.ua import UA

Make = Callable[..., UA]


@pytest.fixture
async def make(edge: Edge) -> AsyncIterator[Make]:
    made: list[UA] = []

    def build(user: str = "alice", **params: Any) -> UA:
        params.setdefault("password", edge.users[user])
        ua = UA(uri=f"sip:{user}@{edge.domain}", ws_servers=edge.ws_url,
                log={"builtin_enabled": False}, **params)
        made.append(ua)
        return ua

    yield build
    for ua in made:
        await ua.stop()


def mine(edge: Edge, ua: UA) -> list[str]:
    return [c for c in edge.contacts(ua.config.uri.user or "")
            if ua.identity.contact_user in c]


async def test_register_with_digest_and_unregister(edge: Edge, make: Make) -> None:
    ua = make()
    registered: Registered = await ua.wait_for("registered", timeout=10)
    assert ua.is_registered() and registered.refresh is False
    assert registered.expires == 600
    assert len(mine(edge, ua)) == 1
    ua.unregister()
    gone: Unregistered = await ua.wait_for("unregistered", timeout=10)
    assert gone.cause is None and gone.response is not None
    assert not ua.is_registered() and mine(edge, ua) == []


async def test_wrong_password_fails_with_authentication_error(edge: Edge, make: Make) -> None:
    ua = make(password="not-the-password")
    failed: RegistrationFailed = await ua.wait_for("registration_failed", timeout=10)
    assert failed.cause is Cause.AUTHENTICATION_ERROR
    assert failed.response is not None and failed.response.status_code == 401
    assert not ua.is_registered()


async def test_a_short_expiry_is_refreshed_before_it_lapses(edge: Edge, make: Make) -> None:
    ua = make(register_expires=10)
    first: Registered = await ua.wait_for("registered", timeout=10)
    assert first.expires == 10
    again: Registered = await ua.wait_for("registered", timeout=9)
    assert again.refresh is True and ua.is_registered()
    assert len(mine(edge, ua)) == 1


async def test_a_registrar_demanding_a_longer_expiry(edge: Edge, make: Make) -> None:
    ua = make(register_expires=3)  # both edges want at least 5 (devserver) or 10 (Kamailio)
    registered: Registered = await ua.wait_for("registered", timeout=10)
    assert registered.expires >= 5 and ua.registration.expires == registered.expires


async def test_unregister_all_removes_every_binding(edge: Edge, make: Make) -> None:
    first, second = make(), make()
    await asyncio.gather(first.wait_for("registered", timeout=10),
                         second.wait_for("registered", timeout=10))
    assert len(edge.contacts("alice")) >= 2
    second.unregister(all=True)
    await second.wait_for("unregistered", timeout=10)
    assert edge.contacts("alice") == []


async def test_authentication_factory_sync_and_async(edge: Edge, make: Make) -> None:
    async def later(ua: UA) -> tuple[str, str]:
        await asyncio.sleep(0.05)
        return "bob", edge.users["bob"]

    sync = make("alice", password=None,
                authentication_factory=lambda ua: DigestAuthenticator("alice",
                                                                      edge.users["alice"]))
    asynchronous = make("bob", password=None, authentication_factory=later)
    await asyncio.gather(sync.wait_for("registered", timeout=10),
                         asynchronous.wait_for("registered", timeout=10))
    assert sync.is_registered() and asynchronous.is_registered()


async def test_message_between_two_registered_uas(edge: Edge, make: Make) -> None:
    alice, bob = make("alice"), make("bob")
    await asyncio.gather(alice.wait_for("registered", timeout=10),
                         bob.wait_for("registered", timeout=10))
    arrived = asyncio.ensure_future(bob.wait_for("message", timeout=10))
    handle = alice.message("bob", "Hi Bob — café at 15:00? ☕")
    message: MessageReceived = await arrived
    assert message.request.text == "Hi Bob — café at 15:00? ☕"
    assert message.request.from_ is not None and message.request.from_.uri.user == "alice"
    assert (await handle.result(10)).status_code == 200


async def test_message_to_an_unregistered_user_fails_with_its_cause(edge: Edge,
                                                                     make: Make) -> None:
    alice = make("alice")
    await alice.wait_for("registered", timeout=10)
    handle = alice.message("carol", "are you there?")
    final = await handle.result(10)
    assert final.status_code in (404, 480)
    assert handle.cause in (Cause.NOT_FOUND, Cause.UNAVAILABLE)


async def test_options_to_the_edge_itself(edge: Edge, make: Make) -> None:
    alice = make("alice", register=False)
    await alice.wait_for("connected", timeout=10)
    handle = alice.request("OPTIONS", f"sip:{edge.domain}")
    assert (await handle.result(10)).status_code == 200


@pytest.mark.kamailio
async def test_registered_again_after_kamailio_restarts(fresh_kamailio: Any) -> None:
    ua = UA(uri=f"sip:alice@{fresh_kamailio.domain}", ws_servers=fresh_kamailio.ws_url,
            password="alice-secret", ws_server_reconnection_timeout=1,
            connection_recovery_min_interval=1, connection_recovery_max_interval=2,
            log={"builtin_enabled": False})
    try:
        await ua.wait_for("registered", timeout=10)
        lost = asyncio.ensure_future(ua.wait_for("unregistered", timeout=10))
        fresh_kamailio.kill()
        gone: Unregistered = await lost
        assert gone.cause is Cause.CONNECTION_ERROR and not ua.is_registered()
        back = asyncio.ensure_future(ua.wait_for("registered", timeout=20))
        await asyncio.sleep(1)
        fresh_kamailio.restart()
        started = asyncio.get_running_loop().time()
        again: Registered = await back
        # within the recovery bound: reconnection attempts 1 s apart, recovery at most 2 s
        assert asyncio.get_running_loop().time() - started < 2 + 1 + 3
        assert again.refresh is False and ua.is_registered()
        contacts = [c for c in KamailioEdge(fresh_kamailio).contacts("alice")
                    if ua.identity.contact_user in c]
        assert len(contacts) == 1
    finally:
        await ua.stop()
