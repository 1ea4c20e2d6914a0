"""Pinning one aioice connection to a fixed set of local addresses (e.g. only 127.0.0.1).

Why: aioice gathers a host candidate on every interface address *except* loopback, and accepts
connectivity checks, peer-reflexive candidates and data from whatever address sends them.  Tests
(and hosts that must keep media on one interface) need the opposite: candidates on exactly the
addresses given, and nothing sent to or accepted from anywhere else.

How: :func:`pin_connection` changes the class of *one* :class:`aioice.Connection` instance to
:class:`PinnedConnection`, a subclass that only overrides hooks aioice already routes through:

* ``get_component_candidates(component, addresses)`` is where aioice binds host sockets for the
  addresses it found; the override substitutes the pinned addresses (STUN/TURN still run);
* ``add_remote_candidate`` ignores candidates whose address is not allowed (mDNS names
  included, which would otherwise trigger multicast queries);
* ``request_received`` drops connectivity checks from addresses that are not allowed, before
  aioice could answer them or learn a peer-reflexive candidate;
* the host sockets' protocols become :class:`PinnedStunProtocol`, which drops datagrams from
  and refuses to send to any other address (the last line of defence: it counts what it
  refused, so a test can assert that nothing was).

Nothing module-level in aioice is patched, so every other user of aioice in the process (another
UA, another library) keeps the stock behaviour.  The class swap is safe because the subclasses
add no instance layout of their own (only an attribute in ``__dict__``) and call ``super()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aioice import Candidate, Connection, TransportPolicy, stun
from aioice.ice import StunProtocol

from .sdp import is_mdns_name, normalise_address

__all__ = ["PinnedConnection", "PinnedStunProtocol", "Refusals", "pin_connection"]


class Refusals:
    """What a pinned connection refused, by kind; shared by the connection and its sockets."""

    __slots__ = ("candidates", "checks", "datagrams_in", "datagrams_out")

    def __init__(self) -> None:
        self.candidates = 0  #: remote candidates ignored
        self.checks = 0  #: STUN requests dropped (never answered)
        self.datagrams_in = 0  #: other datagrams dropped on receipt
        self.datagrams_out = 0  #: datagrams not sent because of their destination

    def __repr__(self) -> str:
        return (f"Refusals(candidates={self.candidates}, checks={self.checks}, "
                f"datagrams_in={self.datagrams_in}, datagrams_out={self.datagrams_out})")


class PinnedStunProtocol(StunProtocol):
    """A host socket that only talks to allowed addresses (and the configured STUN server)."""

    _sipfsm_allowed: frozenset[str]
    _sipfsm_refusals: Refusals

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if normalise_address(str(addr[0])) not in self._sipfsm_allowed:
            self._sipfsm_refusals.datagrams_in += 1
            return
        super().datagram_received(data, addr)

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        if normalise_address(addr[0]) not in self._sipfsm_allowed:
            self._sipfsm_refusals.datagrams_out += 1
            return
        super().send_stun(message, addr)

    async def send_data(self, data: bytes, addr: tuple[str, int]) -> None:
        if normalise_address(addr[0]) not in self._sipfsm_allowed:
            self._sipfsm_refusals.datagrams_out += 1
            return
        await super().send_data(data, addr)


class PinnedConnection(Connection):
    """An aioice connection whose host candidates and peers are limited to fixed addresses.

    Made with :func:`pin_connection`, never constructed directly.
    """

    _sipfsm_addresses: tuple[str, ...]
    _sipfsm_allowed: frozenset[str]
    _sipfsm_refusals: Refusals

    @property
    def refusals(self) -> Refusals:
        """What was ignored or dropped because of its address."""
        return self._sipfsm_refusals

    @property
    def pinned_addresses(self) -> tuple[str, ...]:
        """The local addresses host candidates are gathered on."""
        return self._sipfsm_addresses

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        # ``addresses`` is aioice's interface scan; the pinned list replaces it, except under
        # the relay-only policy, which gathers no host candidate at all.
        relay_only = self._transport_policy == TransportPolicy.RELAY
        pinned = [] if relay_only else list(self._sipfsm_addresses)
        before = len(self._protocols)
        candidates = await super().get_component_candidates(component, pinned, timeout)
        for protocol in self._protocols[before:]:
            if type(protocol) is StunProtocol:  # host sockets; TURN keeps its own class
                _pin_protocol(protocol, self._sipfsm_allowed, self._sipfsm_refusals)
        return candidates

    async def add_remote_candidate(self, remote_candidate: Candidate | None) -> None:
        if remote_candidate is not None and not self._allowed(remote_candidate.host):
            self._sipfsm_refusals.candidates += 1
            return
        await super().add_remote_candidate(remote_candidate)

    def request_received(
        self, message: stun.Message, addr: tuple[str, int], protocol: StunProtocol
    ) -> None:
        if not self._allowed(addr[0]):
            self._sipfsm_refusals.checks += 1
            return
        super().request_received(message, addr, protocol)

    def _allowed(self, host: str) -> bool:
        return not is_mdns_name(host) and normalise_address(host) in self._sipfsm_allowed


def _pin_protocol(protocol: StunProtocol, allowed: frozenset[str], refusals: Refusals) -> None:
    protocol.__class__ = PinnedStunProtocol
    pinned: Any = protocol
    pinned._sipfsm_allowed = allowed
    pinned._sipfsm_refusals = refusals


def pin_connection(
    connection: Connection, addresses: Iterable[str], *, also_allow: Iterable[str] = ()
) -> PinnedConnection:
    """Pin ``connection`` (before it gathers) to host candidates on ``addresses`` only.

    Remote candidates, checks and datagrams are accepted from ``addresses`` and ``also_allow``
    (say, the peer's addresses on another interface, or a STUN server) and nothing else.
    Pinning an already pinned connection changes nothing and returns it.
    """
    if isinstance(connection, PinnedConnection):
        return connection
    if connection.local_candidates:
        raise RuntimeError("pin_connection() must run before the connection gathers candidates")
    pinned_addresses = tuple(dict.fromkeys(normalise_address(a) for a in addresses))
    if not pinned_addresses:
        raise ValueError("pin_connection() needs at least one address")
    allowed = frozenset(pinned_addresses) | {normalise_address(a) for a in also_allow}
    stun_server = connection.stun_server
    if stun_server is not None:
        allowed |= {normalise_address(stun_server[0])}
    connection.__class__ = PinnedConnection
    pinned: Any = connection
    pinned._sipfsm_addresses = pinned_addresses
    pinned._sipfsm_allowed = allowed
    pinned._sipfsm_refusals = Refusals()
    assert isinstance(connection, PinnedConnection)
    return connection
