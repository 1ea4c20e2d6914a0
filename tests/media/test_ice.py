"""Pinning aioice connections to loopback, without aiortc on top."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aioice.ice
import pytest
from aioice import Candidate, Connection, TransportPolicy, stun

from sipfsm.media.ice import PinnedConnection, PinnedStunProtocol, pin_connection

from .support import LOOPBACK


def host(address: str, port: int = 5000, foundation: str = "1") -> Candidate:
    return Candidate(foundation=foundation, component=1, transport="udp", priority=2130706431,
                     host=address, port=port, type="host")


class SendSpy:
    """Replaces a protocol's transport: records ``sendto`` and sends nothing."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@pytest.fixture
async def pinned() -> AsyncIterator[PinnedConnection]:
    connection = pin_connection(Connection(ice_controlling=False), [LOOPBACK])
    await connection.gather_candidates()
    yield connection
    await connection.close()


async def test_host_candidates_on_the_pinned_addresses_only(pinned: PinnedConnection) -> None:
    assert [c.host for c in pinned.local_candidates] == [LOOPBACK]
    assert pinned.pinned_addresses == (LOOPBACK,)
    for protocol in pinned._protocols:
        assert type(protocol) is PinnedStunProtocol
        assert protocol.transport.get_extra_info("sockname")[0] == LOOPBACK


async def test_pinning_is_per_instance() -> None:
    method = Connection.get_component_candidates
    plain = Connection(ice_controlling=True)
    pin_connection(Connection(ice_controlling=True), [LOOPBACK])
    assert type(plain) is Connection
    assert Connection.get_component_candidates is method
    assert aioice.ice.StunProtocol.send_stun is not PinnedStunProtocol.send_stun


async def test_remote_candidates_from_elsewhere_are_ignored(pinned: PinnedConnection) -> None:
    await pinned.add_remote_candidate(host("192.0.2.1"))
    await pinned.add_remote_candidate(host("2001:db8::1"))
    await pinned.add_remote_candidate(host("0b5d8f3e-52a1-4a83-93c5-0a9b3c1d2e4f.local"))
    await pinned.add_remote_candidate(host(LOOPBACK, 5002))
    assert [c.host for c in pinned.remote_candidates] == [LOOPBACK]
    assert pinned.refusals.candidates == 3
    assert [pair.remote_addr for pair in pinned._check_list] == [(LOOPBACK, 5002)]


def binding_request(pinned: PinnedConnection) -> stun.Message:
    request = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{pinned.local_username}:peer"
    request.attributes["PRIORITY"] = 1853824767
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(pinned.local_password.encode())
    return request


async def test_checks_from_elsewhere_are_not_answered(pinned: PinnedConnection) -> None:
    protocol = pinned._protocols[0]
    spy = SendSpy(protocol.transport)
    protocol.transport = spy  # type: ignore[assignment]
    pinned.request_received(binding_request(pinned), ("192.0.2.1", 3478), protocol)
    assert spy.sent == [] and pinned.refusals.checks == 1
    assert pinned.remote_candidates == []  # no peer-reflexive candidate learned
    pinned.request_received(binding_request(pinned), (LOOPBACK, 3478), protocol)
    assert [addr for _, addr in spy.sent] == [(LOOPBACK, 3478)]  # answered
    protocol.transport = spy.transport


async def test_sockets_refuse_other_destinations_and_sources(pinned: PinnedConnection) -> None:
    protocol = pinned._protocols[0]
    spy = SendSpy(protocol.transport)
    protocol.transport = spy  # type: ignore[assignment]
    protocol.send_stun(binding_request(pinned), ("198.51.100.1", 3478))
    await protocol.send_data(b"\x80" * 20, ("198.51.100.1", 5000))
    assert spy.sent == [] and pinned.refusals.datagrams_out == 2
    await protocol.send_data(b"\x80" * 20, (LOOPBACK, 5000))
    assert len(spy.sent) == 1
    protocol.datagram_received(b"\x80" * 20, ("198.51.100.1", 5000))
    assert pinned.refusals.datagrams_in == 1
    assert pinned._queue.empty()
    protocol.transport = spy.transport


async def test_pin_connection_checks() -> None:
    connection = Connection(ice_controlling=True)
    with pytest.raises(ValueError, match="at least one"):
        pin_connection(connection, [])
    pinned = pin_connection(connection, ["127.0.0.1", LOOPBACK])  # duplicates collapse
    assert pin_connection(pinned, ["127.0.0.2"]) is pinned  # already pinned: unchanged
    assert pinned.pinned_addresses == (LOOPBACK,)
    late = Connection(ice_controlling=True)
    await late.gather_candidates()
    try:
        with pytest.raises(RuntimeError, match="before"):
            pin_connection(late, [LOOPBACK])
    finally:
        await late.close()
        await pinned.close()


async def test_relay_only_policy_gathers_no_host_candidate() -> None:
    connection = pin_connection(
        Connection(ice_controlling=True, transport_policy=TransportPolicy.RELAY), [LOOPBACK])
    await connection.gather_candidates()
    assert connection.local_candidates == []
    await connection.close()


async def test_two_pinned_connections_talk_over_loopback() -> None:
    a = pin_connection(Connection(ice_controlling=True), [LOOPBACK])
    b = pin_connection(Connection(ice_controlling=False), [LOOPBACK])
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for local, remote in ((a, b), (b, a)):
        for candidate in remote.local_candidates:
            await local.add_remote_candidate(candidate)
        await local.add_remote_candidate(None)
        local.remote_username, local.remote_password = remote.local_username, remote.local_password
    await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 5)
    await a.send(b"ping")
    assert await asyncio.wait_for(b.recv(), 5) == b"ping"
    for connection in (a, b):
        pair = connection._nominated[1]
        assert pair.local_addr[0] == pair.remote_addr[0] == LOOPBACK
        assert connection.refusals.datagrams_out == 0
    await a.close()
    await b.close()
