"""The embedded devserver over real WebSockets: aiohttp clients speaking raw SIP text.

Requests are written as text by small helpers; everything received is read back with
:func:`sipfsm.sip.parse`, so the server's output is also checked against our grammar.  The
server's clock is a fake one, so expiry is tested without waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipfsm.devserver import DEFAULT_USERS, DevServer
from sipfsm.sip import Request, Response, parse

TIMEOUT = 5.0
QUIET = 0.2  # how long "nothing arrives" is watched for


# ----------------------------------------------------------------- helpers


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(6)


class Client:
    """One raw SIP-over-WebSocket client (RFC 7118): its socket, user and made-up host."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, server: DevServer, user: str) -> None:
        self.ws = ws
        self.server = server
        self.user = user
        self.host = f"{secrets.token_hex(4)}.invalid"
        self.contact = f"sip:{user}@{self.host};transport=ws"
        self.aor = server.aor(user)
        self.reg_call_id = secrets.token_hex(8)
        self.reg_cseq = 0

    # -- building -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        uri: str,
        *,
        to: str | None = None,
        from_tag: str | None = None,
        to_tag: str | None = None,
        call_id: str | None = None,
        cseq: int = 1,
        branch: str | None = None,
        max_forwards: int | None = 70,
        contact: bool = False,
        extra: Sequence[str] = (),
        body: str = "",
    ) -> str:
        """A request as a WebSocket UA writes it (Via host ``*.invalid``, transport WS)."""
        to_value = f"<{to or uri}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/WS {self.host};branch={branch or _branch()}",
            *([f"Max-Forwards: {max_forwards}"] if max_forwards is not None else []),
            f"To: {to_value}",
            f"From: <{self.aor}>;tag={from_tag or secrets.token_hex(4)}",
            f"Call-ID: {call_id or secrets.token_hex(8)}",
            f"CSeq: {cseq} {method}",
            *([f"Contact: <{self.contact}>"] if contact else []),
            *extra,
            f"Content-Length: {len(body.encode())}",
        ]
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def register_request(self, *, contact: str | None = None, expires: int | None = 300,
                         authorization: str | None = None, extra: Sequence[str] = (),
                         aor: str | None = None) -> str:
        self.reg_cseq += 1
        contact_value = contact if contact is not None else f"<{self.contact}>"
        if expires is not None and contact is None:
            contact_value += f";expires={expires}"
        return self.request(
            "REGISTER", f"sip:{self.server.domain}", to=aor or self.aor,
            call_id=self.reg_call_id, cseq=self.reg_cseq,
            extra=(f"Contact: {contact_value}",
                   *([f"Authorization: {authorization}"] if authorization else []), *extra),
        )

    # -- I/O ------------------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def receive_text(self) -> str:
        frame = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
        if frame.type is aiohttp.WSMsgType.TEXT:
            assert isinstance(frame.data, str)
            return frame.data
        if frame.type is aiohttp.WSMsgType.BINARY:
            assert isinstance(frame.data, bytes)
            return frame.data.decode()
        raise AssertionError(f"{self.user}: unexpected WebSocket frame {frame.type!r}")

    async def receive(self) -> Request | Response:
        return parse(await self.receive_text())

    async def response(self) -> Response:
        message = await self.receive()
        assert isinstance(message, Response), f"{self.user} expected a response: {message!r}"
        return message

    async def final(self) -> Response:
        """The next final response, skipping 1xx."""
        while True:
            response = await self.response()
            if response.status_code >= 200:
                return response

    async def incoming(self, method: str | None = None, call_id: str | None = None) -> Request:
        """The next request (of ``method`` / ``call_id`` when given; others are skipped)."""
        while True:
            message = await self.receive()
            if not isinstance(message, Request):
                continue
            if (method is None or message.method == method) and (
                    call_id is None or message.call_id == call_id):
                return message

    async def silent(self, seconds: float = QUIET) -> None:
        """Assert that nothing arrives for ``seconds``."""
        try:
            frame = await asyncio.wait_for(self.ws.receive(), seconds)
        except TimeoutError:
            return
        pytest.fail(f"{self.user} received {frame.data!r}")

    async def answer(self, request: Request, status: int, reason: str, *,
                     to_tag: str | None = None, contact: bool = True) -> str:
        """Send a response to ``request`` as a UAS (RFC 3261 §8.2.6); return the To tag."""
        text, tag = respond(request, status, reason, to_tag=to_tag,
                            contact=self.contact if contact else None)
        await self.send(text)
        return tag

    async def register(self, *, password: str | None = None, auth_user: str | None = None,
                       expires: int | None = 300, contact: str | None = None,
                       extra: Sequence[str] = ()) -> Response:
        """REGISTER with digest authentication; the final response to the authorised try."""
        await self.send(self.register_request(contact=contact, expires=expires, extra=extra))
        challenge = await self.final()
        assert challenge.status_code == 401, challenge
        authorization = authorize(
            challenge, user=auth_user or self.user,
            password=password if password is not None else DEFAULT_USERS[auth_user or self.user],
            method="REGISTER", uri=f"sip:{self.server.domain}")
        await self.send(self.register_request(contact=contact, expires=expires,
                                              authorization=authorization, extra=extra))
        return await self.final()


def respond(request: Request, status: int, reason: str, *, to_tag: str | None = None,
            contact: str | None = None) -> tuple[str, str]:
    """A response to ``request`` as text, and the To tag it carries."""
    tag = to_tag or (request.to.tag if request.to and request.to.tag else secrets.token_hex(4))
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {value}" for value in request.headers.get_all("Via")]
    if request.method in ("INVITE", "SUBSCRIBE", "REFER", "NOTIFY"):
        lines += [f"Record-Route: {value}" for value in request.headers.get_all("Record-Route")]
    lines.append(f"From: {request.headers.get('From')}")
    to = request.headers.get("To") or ""
    lines.append(f"To: {to}" if request.to and request.to.tag else f"To: {to};tag={tag}")
    lines += [f"Call-ID: {request.call_id}", f"CSeq: {request.cseq}"]
    if contact is not None and status < 300:
        lines.append(f"Contact: <{contact}>")
    lines.append("Content-Length: 0")
    return "\r\n".join(lines) + "\r\n\r\n", tag


def authorize(challenge: Response, *, user: str, password: str, method: str, uri: str,
              proxy: bool = False, nc: int = 1) -> str:
    """Digest credentials (MD5, qop=auth) answering ``challenge``, computed independently."""
    offered = challenge.proxy_authenticate if proxy else challenge.www_authenticate
    assert offered, challenge
    realm, nonce = offered[0].realm, offered[0].nonce
    assert realm is not None and nonce is not None
    cnonce, count = secrets.token_hex(8), f"{nc:08x}"
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    response = _md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, qop=auth, nc={count}, cnonce="{cnonce}"')


Connect = Callable[..., Awaitable[Client]]


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log() -> list[str]:
    return []


@pytest.fixture
async def server(clock: FakeClock, log: list[str]) -> AsyncIterator[DevServer]:
    async with DevServer(clock=clock, log=log.append) as dev:
        yield dev


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def connect(server: DevServer,
                  session: aiohttp.ClientSession) -> AsyncIterator[Connect]:
    """Open raw SIP clients on ``server``; every one is closed after the test."""
    clients: list[Client] = []

    async def open_client(user: str = "alice", target: DevServer | None = None) -> Client:
        dev = target or server
        ws = await session.ws_connect(dev.ws_url, protocols=("sip",))
        assert ws.protocol == "sip"
        client = Client(ws, dev, user)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.ws.close()


async def _registered(connect: Connect, *users: str) -> list[Client]:
    clients = []
    for user in users:
        client = await connect(user)
        ok = await client.register()
        assert ok.status_code == 200, ok
        clients.append(client)
    return clients


async def _eventually(condition: Callable[[], bool]) -> None:
    for _ in range(int(TIMEOUT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


# ------------------------------------------------------------ WebSocket layer


async def test_start_sets_port_and_url() -> None:
    async with DevServer() as dev:
        assert dev.port > 0
        assert dev.ws_url == f"ws://127.0.0.1:{dev.port}"
        assert dev.running
    assert not dev.running


@pytest.mark.parametrize("protocols", [(), ("chat",)])
async def test_client_without_sip_subprotocol_is_refused(
        server: DevServer, session: aiohttp.ClientSession, protocols: tuple[str, ...]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(server.ws_url, protocols=protocols)
    assert refused.value.status == 400
    assert server.connections == 0


async def test_keepalive_ping_gets_crlf_pong(connect: Connect) -> None:
    client = await connect()
    await client.send("\r\n\r\n")
    assert await client.receive_text() == "\r\n"
    await client.ws.send_bytes(b"\r\n\r\n")
    assert await client.receive_text() == "\r\n"
    await client.send("\r\n")  # a pong from the client is not answered
    await client.silent()


async def test_binary_frames_are_sip_too(connect: Connect, server: DevServer) -> None:
    client = await connect()
    text = client.request("OPTIONS", f"sip:{server.domain}")
    await client.ws.send_bytes(text.encode())
    assert (await client.final()).status_code == 200


async def test_stop_closes_clients_and_leaves_no_task(session: aiohttp.ClientSession) -> None:
    before = asyncio.all_tasks()
    dev = DevServer()
    await dev.start()
    ws = await session.ws_connect(dev.ws_url, protocols=("sip",))
    await _eventually(lambda: dev.connections == 1)
    receiving = asyncio.ensure_future(ws.receive())
    await dev.stop()
    frame = await asyncio.wait_for(receiving, TIMEOUT)
    assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()
    assert dev.connections == 0
    assert not dev.running
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not [t for t in leftover if not t.done()], leftover
    await dev.stop()  # idempotent


async def test_options_to_the_server(connect: Connect, server: DevServer) -> None:
    client = await connect()
    await client.send(client.request("OPTIONS", f"sip:{server.domain}"))
    ok = await client.final()
    assert ok.status_code == 200
    assert "REGISTER" in ok.allow
    assert ok.to is not None and ok.to.tag is not None


async def test_options_for_an_unknown_user_of_ours_is_for_the_server(
        connect: Connect, server: DevServer) -> None:
    client = await connect()
    await client.send(client.request("OPTIONS", f"sip:nobody@{server.domain}"))
    assert (await client.final()).status_code == 200


async def test_request_without_user_is_484(connect: Connect, server: DevServer) -> None:
    client = await connect()
    await client.send(client.request("MESSAGE", f"sip:{server.domain}"))
    assert (await client.final()).status_code == 484


# ---------------------------------------------------------------- registrar


async def test_register_is_challenged_then_bound(
        connect: Connect, server: DevServer, clock: FakeClock) -> None:
    alice = await connect("alice")
    await alice.send(alice.register_request())
    challenge = await alice.final()
    assert challenge.status_code == 401
    (offer,) = challenge.www_authenticate
    assert offer.is_digest
    assert offer.realm == server.domain
    assert offer.qop == ("auth",)
    assert offer.algorithm == "MD5"
    assert not offer.stale
    authorization = authorize(challenge, user="alice", password="alice-secret",
                              method="REGISTER", uri=f"sip:{server.domain}")
    await alice.send(alice.register_request(authorization=authorization))
    ok = await alice.final()
    assert ok.status_code == 200, ok
    (contact,) = ok.contact
    assert str(contact.uri) == alice.contact
    assert contact.expires == 300
    (binding,) = server.bindings()["alice"]
    assert str(binding.uri) == alice.contact
    assert binding.expires_in(clock()) == 300
    assert binding.call_id == alice.reg_call_id


async def test_register_refresh_reuses_the_nonce_with_a_higher_count(
        connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    await alice.send(alice.register_request())
    challenge = await alice.final()
    uri = f"sip:{server.domain}"
    first = authorize(challenge, user="alice", password="alice-secret", method="REGISTER",
                      uri=uri)
    await alice.send(alice.register_request(authorization=first))
    assert (await alice.final()).status_code == 200
    second = authorize(challenge, user="alice", password="alice-secret", method="REGISTER",
                       uri=uri, nc=2)
    await alice.send(alice.register_request(authorization=second))
    assert (await alice.final()).status_code == 200
    # The same nonce count again is a replay.
    await alice.send(alice.register_request(authorization=second))
    assert (await alice.final()).status_code == 401


async def test_wrong_password_is_challenged_again(connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    response = await alice.register(password="not-the-password")
    assert response.status_code == 401
    assert response.www_authenticate and not response.www_authenticate[0].stale
    assert "alice" not in server.bindings()


async def test_unknown_user_is_challenged_again(connect: Connect, server: DevServer) -> None:
    mallory = await connect("mallory")
    response = await mallory.register(auth_user="alice", password="guess")
    assert response.status_code == 401


async def test_auth_user_other_than_to_user_is_403(connect: Connect, server: DevServer) -> None:
    bob = await connect("bob")
    await bob.send(bob.register_request(aor=server.aor("alice")))
    challenge = await bob.final()
    authorization = authorize(challenge, user="bob", password="bob-secret",
                              method="REGISTER", uri=f"sip:{server.domain}")
    await bob.send(bob.register_request(aor=server.aor("alice"), authorization=authorization))
    forbidden = await bob.final()
    assert forbidden.status_code == 403
    assert server.bindings() == {}


async def test_register_for_another_domain_is_403(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.send(alice.register_request(aor="sip:alice@example.org"))
    assert (await alice.final()).status_code == 403


async def test_expired_nonce_is_stale(
        connect: Connect, server: DevServer, clock: FakeClock) -> None:
    alice = await connect("alice")
    await alice.send(alice.register_request())
    challenge = await alice.final()
    clock.advance(DevServer.NONCE_LIFETIME + 1)
    authorization = authorize(challenge, user="alice", password="alice-secret",
                              method="REGISTER", uri=f"sip:{server.domain}")
    await alice.send(alice.register_request(authorization=authorization))
    stale = await alice.final()
    assert stale.status_code == 401
    assert stale.www_authenticate[0].stale
    # The fresh nonce works at once.
    authorization = authorize(stale, user="alice", password="alice-secret",
                              method="REGISTER", uri=f"sip:{server.domain}")
    await alice.send(alice.register_request(authorization=authorization))
    assert (await alice.final()).status_code == 200


async def test_digest_uri_must_be_the_request_uri(connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    await alice.send(alice.register_request())
    challenge = await alice.final()
    authorization = authorize(challenge, user="alice", password="alice-secret",
                              method="REGISTER", uri="sip:elsewhere.test")
    await alice.send(alice.register_request(authorization=authorization))
    assert (await alice.final()).status_code == 400


async def test_too_brief_expires_is_423_with_min_expires(
        connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    response = await alice.register(expires=30)
    assert response.status_code == 423
    assert response.min_expires == 60
    assert server.bindings() == {}


async def test_expires_header_applies_and_long_expiry_is_clamped(
        connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    ok = await alice.register(expires=None, extra=("Expires: 7200",))
    assert ok.status_code == 200
    assert ok.contact[0].expires == 3600


async def test_default_expiry_is_3600(connect: Connect) -> None:
    alice = await connect("alice")
    ok = await alice.register(expires=None)
    assert ok.contact[0].expires == 3600


async def test_200_lists_every_binding_and_expires_zero_removes_one(
        connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    other = f"sip:alice@{secrets.token_hex(4)}.invalid;transport=ws"
    assert (await alice.register()).status_code == 200
    ok = await alice.register(contact=f"<{other}>;expires=120")
    assert sorted(str(c.uri) for c in ok.contact) == sorted([alice.contact, other])
    assert {str(c.uri): c.expires for c in ok.contact}[other] == 120
    ok = await alice.register(contact=f"<{other}>;expires=0")
    assert [str(c.uri) for c in ok.contact] == [alice.contact]
    assert [str(b.uri) for b in server.bindings()["alice"]] == [alice.contact]


async def test_contact_star_removes_every_binding(connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    await alice.register()
    await alice.register(contact=f"<sip:alice@{secrets.token_hex(4)}.invalid>;expires=600")
    assert len(server.bindings()["alice"]) == 2
    refused = await alice.register(contact="*", expires=None, extra=("Expires: 60",))
    assert refused.status_code == 400
    ok = await alice.register(contact="*", expires=None, extra=("Expires: 0",))
    assert ok.status_code == 200
    assert ok.contact == ()
    assert "alice" not in server.bindings()


async def test_register_without_contact_queries(connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    await alice.register()
    await alice.send(alice.request("REGISTER", f"sip:{server.domain}", to=alice.aor))
    challenge = await alice.final()
    authorization = authorize(challenge, user="alice", password="alice-secret",
                              method="REGISTER", uri=f"sip:{server.domain}")
    await alice.send(alice.request("REGISTER", f"sip:{server.domain}", to=alice.aor, cseq=2,
                                   extra=(f"Authorization: {authorization}",)))
    ok = await alice.final()
    assert ok.status_code == 200
    assert [str(c.uri) for c in ok.contact] == [alice.contact]


async def test_out_of_order_cseq_is_refused(connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    assert (await alice.register()).status_code == 200
    alice.reg_cseq = 0  # the next REGISTERs reuse CSeq 1 and 2 with the same Call-ID
    response = await alice.register()
    assert response.status_code == 400


async def test_unsupported_require_is_420(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.send(alice.register_request(extra=("Require: foo, outbound",)))
    refused = await alice.final()
    assert refused.status_code == 420
    assert refused.unsupported == ("foo",)


async def test_unknown_supported_is_ignored(connect: Connect) -> None:
    alice = await connect("alice")
    assert (await alice.register(extra=("Supported: path, gruu, frobnicate",))).status_code == 200


async def test_instance_and_reg_id_replace_the_old_flow(
        connect: Connect, server: DevServer) -> None:
    instance = '"<urn:uuid:00000000-0000-4000-8000-000000000001>"'
    first = await connect("alice")
    ok = await first.register(
        contact=f"<{first.contact};ob>;+sip.instance={instance};reg-id=1;expires=600",
        extra=("Supported: outbound, path",))
    assert ok.status_code == 200
    assert "outbound" in ok.require
    second = await connect("alice")
    ok = await second.register(
        contact=f"<{second.contact};ob>;+sip.instance={instance};reg-id=1;expires=600",
        extra=("Supported: outbound",))
    assert [str(c.uri) for c in ok.contact] == [f"{second.contact};ob"]
    (binding,) = server.bindings()["alice"]
    assert binding.instance == "<urn:uuid:00000000-0000-4000-8000-000000000001>"
    assert binding.reg_id == 1
    assert str(binding.uri) == f"{second.contact};ob"
    # A second reg-id is a second flow of the same instance.
    ok = await first.register(
        contact=f"<{first.contact};ob>;+sip.instance={instance};reg-id=2;expires=600")
    assert len(ok.contact) == 2


async def test_binding_removed_when_its_socket_closes(
        connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    assert set(server.bindings()) == {"alice", "bob"}
    await bob.ws.close()
    await _eventually(lambda: "bob" not in server.bindings())
    assert "alice" in server.bindings()
    await alice.send(alice.request("MESSAGE", server.aor("bob"), body="anyone?"))
    assert (await alice.final()).status_code == 480


async def test_binding_expires(connect: Connect, server: DevServer, clock: FakeClock) -> None:
    alice, _ = await _registered(connect, "alice", "bob")
    clock.advance(299)
    (binding,) = server.bindings()["bob"]
    assert binding.expires_in(clock()) == 1
    clock.advance(1)
    assert "bob" not in server.bindings()
    await alice.send(alice.request("MESSAGE", server.aor("bob"), body="late"))
    assert (await alice.final()).status_code == 480


async def test_register_without_auth_when_not_required(session: aiohttp.ClientSession) -> None:
    async with DevServer(require_auth=False, users={}) as dev:
        ws = await session.ws_connect(dev.ws_url, protocols=("sip",))
        client = Client(ws, dev, "zed")
        await client.send(client.register_request())
        ok = await client.final()
        assert ok.status_code == 200
        assert "zed" in dev.bindings()
        await ws.close()


# -------------------------------------------------------------------- proxy


async def test_message_is_routed_with_stacked_vias(
        connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    alice_branch = _branch()
    call_id = secrets.token_hex(8)
    await alice.send(alice.request("MESSAGE", server.aor("bob"), branch=alice_branch,
                                   call_id=call_id, extra=("Content-Type: text/plain",),
                                   body="hello bob"))
    incoming = await bob.incoming("MESSAGE")
    assert incoming.call_id == call_id
    assert str(incoming.uri) == bob.contact
    assert incoming.text == "hello bob"
    assert incoming.record_route == ()
    assert incoming.max_forwards == 69
    ours, hers = incoming.via
    assert (ours.host, ours.port, ours.transport) == ("127.0.0.1", server.port, "WS")
    assert ours.branch is not None and ours.branch.startswith("z9hG4bK")
    assert ours.branch != alice_branch
    assert hers.branch == alice_branch
    assert hers.host == alice.host
    assert hers.received == "127.0.0.1"
    assert isinstance(hers.rport, int)

    await bob.answer(incoming, 200, "OK", contact=False)
    ok = await alice.final()
    assert ok.status_code == 200
    (top,) = ok.via
    assert top.branch == alice_branch
    assert top.host == alice.host
    await alice.silent()


async def test_message_to_unknown_user_is_404(connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    await alice.send(alice.request("MESSAGE", server.aor("dave"), body="hi"))
    assert (await alice.final()).status_code == 404


async def test_message_to_known_but_unregistered_user_is_480(
        connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    await alice.send(alice.request("MESSAGE", server.aor("carol"), body="hi"))
    assert (await alice.final()).status_code == 480


async def test_message_to_another_domain_is_403(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.send(alice.request("MESSAGE", "sip:bob@example.org", body="hi"))
    assert (await alice.final()).status_code == 403


async def test_max_forwards_zero_is_483(connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("MESSAGE", server.aor("bob"), max_forwards=0, body="x"))
    assert (await alice.final()).status_code == 483
    await bob.silent()


async def test_proxy_require_is_420(connect: Connect, server: DevServer) -> None:
    alice, _bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("MESSAGE", server.aor("bob"), extra=("Proxy-Require: x",)))
    refused = await alice.final()
    assert refused.status_code == 420
    assert refused.unsupported == ("x",)


async def test_request_to_127_0_0_1_is_ours(connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("MESSAGE", "sip:bob@127.0.0.1", body="by address"))
    incoming = await bob.incoming("MESSAGE")
    await bob.answer(incoming, 202, "Accepted", contact=False)
    assert (await alice.final()).status_code == 202


async def test_non_invite_without_answer_times_out_with_408(
        connect: Connect, server: DevServer) -> None:
    server.TIMER_F = 0.2
    alice, bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("MESSAGE", server.aor("bob"), body="anyone?"))
    await bob.incoming("MESSAGE")
    assert (await alice.final()).status_code == 408


async def test_invite_dialog_through_record_route(connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    call_id, from_tag, branch = secrets.token_hex(8), secrets.token_hex(4), _branch()
    await alice.send(alice.request("INVITE", server.aor("bob"), call_id=call_id,
                                   from_tag=from_tag, branch=branch, contact=True))
    trying = await alice.response()
    assert trying.status_code == 100

    invite = await bob.incoming("INVITE")
    (record_route,) = invite.record_route
    assert str(record_route.uri) == f"sip:127.0.0.1:{server.port};transport=ws;lr"
    assert str(invite.uri) == bob.contact
    bob_tag = await bob.answer(invite, 180, "Ringing")
    ringing = await alice.response()
    assert ringing.status_code == 180
    assert [str(r.uri) for r in ringing.record_route] == [str(record_route.uri)]
    await bob.answer(invite, 200, "OK", to_tag=bob_tag)
    ok = await alice.final()
    assert ok.status_code == 200
    assert ok.to is not None and ok.to.tag == bob_tag
    assert [str(c.uri) for c in ok.contact] == [bob.contact]
    assert ok.via[0].branch == branch

    # ACK and BYE follow the route set: Route = the Record-Route, R-URI = the remote Contact.
    route = f"Route: <{record_route.uri}>"
    await alice.send(alice.request("ACK", bob.contact, to=bob.aor, to_tag=bob_tag,
                                   from_tag=from_tag, call_id=call_id, extra=(route,)))
    ack = await bob.incoming("ACK")
    assert str(ack.uri) == bob.contact
    assert ack.route == ()
    assert len(ack.via) == 2
    await bob.send(bob.request("BYE", alice.contact, to=alice.aor, to_tag=from_tag,
                               from_tag=bob_tag, call_id=call_id, cseq=1, extra=(route,)))
    bye = await alice.incoming("BYE")
    assert str(bye.uri) == alice.contact
    assert bye.route == ()
    await alice.answer(bye, 200, "OK", contact=False)
    bye_ok = await bob.final()
    assert bye_ok.status_code == 200
    assert bye_ok.cseq is not None and bye_ok.cseq.method == "BYE"
    assert len(bye_ok.via) == 1


async def test_in_dialog_request_to_an_unknown_contact_is_404(
        connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    route = f"Route: <sip:127.0.0.1:{server.port};transport=ws;lr>"
    await alice.send(alice.request("BYE", "sip:ghost@nowhere.invalid;transport=ws",
                                   to_tag="abc", extra=(route,)))
    assert (await alice.final()).status_code == 404


async def test_cancel_of_a_ringing_invite(connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    call_id, from_tag, branch = secrets.token_hex(8), secrets.token_hex(4), _branch()
    invite_text = alice.request("INVITE", server.aor("bob"), call_id=call_id, from_tag=from_tag,
                                branch=branch, contact=True)
    await alice.send(invite_text)
    assert (await alice.response()).status_code == 100
    invite = await bob.incoming("INVITE")
    bob_tag = await bob.answer(invite, 180, "Ringing")
    assert (await alice.response()).status_code == 180

    await alice.send(alice.request("CANCEL", server.aor("bob"), call_id=call_id,
                                   from_tag=from_tag, branch=branch))
    cancel_ok = await alice.response()
    assert cancel_ok.status_code == 200
    assert cancel_ok.cseq is not None and cancel_ok.cseq.method == "CANCEL"

    cancel = await bob.incoming("CANCEL")
    assert cancel.via[0].branch == invite.via[0].branch
    assert str(cancel.uri) == str(invite.uri)
    assert cancel.cseq is not None and invite.cseq is not None
    assert cancel.cseq.seq == invite.cseq.seq
    await bob.answer(cancel, 200, "OK", to_tag=bob_tag, contact=False)
    await bob.answer(invite, 487, "Request Terminated", to_tag=bob_tag, contact=False)
    ack = await bob.incoming("ACK")  # the proxy ACKs the 487 hop by hop
    assert ack.via[0].branch == invite.via[0].branch
    assert ack.to is not None and ack.to.tag == bob_tag

    terminated = await alice.final()
    assert terminated.status_code == 487
    assert terminated.via[0].branch == branch
    # Alice's ACK for the 487 ends at the proxy.
    await alice.send(alice.request("ACK", server.aor("bob"), call_id=call_id, from_tag=from_tag,
                                   to_tag=bob_tag, branch=branch))
    await bob.silent()
    await alice.silent()


async def test_cancel_matching_nothing_is_481(connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    await alice.send(alice.request("CANCEL", server.aor("bob")))
    assert (await alice.final()).status_code == 481


async def test_forked_invite_cancels_the_other_branch(
        connect: Connect, server: DevServer) -> None:
    alice, desk, mobile = await _registered(connect, "alice", "bob", "bob")
    assert len(server.bindings()["bob"]) == 2
    call_id = secrets.token_hex(8)
    await alice.send(alice.request("INVITE", server.aor("bob"), call_id=call_id, contact=True))
    assert (await alice.response()).status_code == 100
    on_desk = await desk.incoming("INVITE")
    on_mobile = await mobile.incoming("INVITE")
    assert on_desk.via[0].branch != on_mobile.via[0].branch
    assert str(on_desk.uri) == desk.contact and str(on_mobile.uri) == mobile.contact
    await mobile.answer(on_mobile, 180, "Ringing")
    assert (await alice.response()).status_code == 180

    await desk.answer(on_desk, 200, "OK")
    ok = await alice.final()
    assert ok.status_code == 200
    assert [str(c.uri) for c in ok.contact] == [desk.contact]

    cancel = await mobile.incoming("CANCEL")
    assert cancel.via[0].branch == on_mobile.via[0].branch
    assert cancel.reason and cancel.reason[0].cause == 200
    await mobile.answer(cancel, 200, "OK", contact=False)
    await mobile.answer(on_mobile, 487, "Request Terminated", contact=False)
    assert (await mobile.incoming("ACK")).via[0].branch == on_mobile.via[0].branch
    await alice.silent()  # the 487 of the losing branch is not relayed


async def test_all_branches_failing_relays_the_best_response(
        connect: Connect, server: DevServer) -> None:
    alice, desk, mobile = await _registered(connect, "alice", "bob", "bob")
    await alice.send(alice.request("INVITE", server.aor("bob"), contact=True))
    assert (await alice.response()).status_code == 100
    on_desk = await desk.incoming("INVITE")
    on_mobile = await mobile.incoming("INVITE")
    await desk.answer(on_desk, 503, "Service Unavailable", contact=False)
    await desk.incoming("ACK")
    await alice.silent()  # still waiting for the other branch
    await mobile.answer(on_mobile, 486, "Busy Here", contact=False)
    await mobile.incoming("ACK")
    busy = await alice.final()
    assert busy.status_code == 486


async def test_callee_disconnecting_while_ringing_gives_480(
        connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("INVITE", server.aor("bob"), contact=True))
    invite = await bob.incoming("INVITE")
    await bob.answer(invite, 180, "Ringing")
    assert (await alice.response()).status_code == 100
    assert (await alice.response()).status_code == 180
    await bob.ws.close()
    final = await alice.final()
    assert final.status_code == 480


async def test_unanswered_invite_is_cancelled_and_408_after_timer_c(
        connect: Connect, server: DevServer) -> None:
    server.TIMER_C = 0.3
    alice, bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("INVITE", server.aor("bob"), contact=True))
    invite = await bob.incoming("INVITE")
    await bob.answer(invite, 180, "Ringing")
    cancel = await bob.incoming("CANCEL")
    assert cancel.via[0].branch == invite.via[0].branch
    assert (await alice.final()).status_code == 408
    # The callee's late 487 is ACKed by the proxy and goes no further.
    await bob.answer(invite, 487, "Request Terminated", contact=False)
    await bob.incoming("ACK")
    await alice.silent()


async def test_503_is_relayed_as_500(connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("INVITE", server.aor("bob"), contact=True))
    invite = await bob.incoming("INVITE")
    await bob.answer(invite, 503, "Service Unavailable", contact=False)
    assert (await alice.final()).status_code == 500


async def test_6xx_cancels_the_other_branches(connect: Connect, server: DevServer) -> None:
    alice, desk, mobile = await _registered(connect, "alice", "bob", "bob")
    await alice.send(alice.request("INVITE", server.aor("bob"), contact=True))
    on_desk = await desk.incoming("INVITE")
    on_mobile = await mobile.incoming("INVITE")
    await mobile.answer(on_mobile, 180, "Ringing")
    await desk.answer(on_desk, 603, "Decline", contact=False)
    await desk.incoming("ACK")
    cancel = await mobile.incoming("CANCEL")
    await mobile.answer(cancel, 200, "OK", contact=False)
    await mobile.answer(on_mobile, 487, "Request Terminated", contact=False)
    assert (await alice.final()).status_code == 603


async def test_2xx_retransmission_after_the_transaction_is_relayed_statelessly(
        connect: Connect, server: DevServer) -> None:
    server.LINGER = 0.0
    alice, bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("INVITE", server.aor("bob"), contact=True))
    invite = await bob.incoming("INVITE")
    tag = await bob.answer(invite, 200, "OK")
    assert (await alice.final()).status_code == 200
    await asyncio.sleep(0.05)  # LINGER ends: the proxy forgets the transaction
    await bob.answer(invite, 200, "OK", to_tag=tag)
    again = await alice.final()
    assert again.status_code == 200
    assert len(again.via) == 1


async def test_retransmitted_invite_is_absorbed(connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    text = alice.request("INVITE", server.aor("bob"), contact=True)
    await alice.send(text)
    await bob.incoming("INVITE")
    await alice.send(text)
    await bob.silent()


async def test_in_dialog_request_for_an_aor_uses_the_location_service(
        connect: Connect, server: DevServer) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    await alice.send(alice.request("MESSAGE", server.aor("bob"), to_tag="t1", body="aor"))
    incoming = await bob.incoming("MESSAGE")
    assert str(incoming.uri) == bob.contact
    await bob.answer(incoming, 200, "OK", contact=False)
    assert (await alice.final()).status_code == 200


async def test_response_from_another_connection_is_dropped(
        connect: Connect, server: DevServer, log: list[str]) -> None:
    alice, bob, carol = await _registered(connect, "alice", "bob", "carol")
    await alice.send(alice.request("MESSAGE", server.aor("bob"), body="for bob"))
    incoming = await bob.incoming("MESSAGE")
    forged, _ = respond(incoming, 200, "OK")
    await carol.send(forged)
    await alice.silent()
    assert any("another connection" in line for line in log)
    await bob.answer(incoming, 200, "OK", contact=False)
    assert (await alice.final()).status_code == 200


async def test_options_to_the_server_with_unsupported_require_is_420(
        connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    await alice.send(alice.request("OPTIONS", f"sip:{server.domain}", extra=("Require: foo",)))
    assert (await alice.final()).status_code == 420


async def test_response_with_a_foreign_via_is_dropped(
        connect: Connect, server: DevServer, log: list[str]) -> None:
    alice, bob = await _registered(connect, "alice", "bob")
    stray = Request("MESSAGE", "sip:x@y.invalid", [
        ("Via", "SIP/2.0/WS elsewhere.invalid;branch=z9hG4bKstray"), ("From", "<sip:a@b>;tag=1"),
        ("To", "<sip:c@d>"), ("Call-ID", "stray"), ("CSeq", "1 MESSAGE")])
    text, _ = respond(stray, 200, "OK")
    await bob.send(text)
    await alice.silent()
    assert any("not ours" in line for line in log)


# ------------------------------------------------------------- robustness


async def test_request_with_a_bad_header_gets_400(connect: Connect, server: DevServer) -> None:
    alice = await connect("alice")
    text = alice.request("MESSAGE", server.aor("bob"), extra=("Contact: <sip:broken",))
    await alice.send(text)
    assert (await alice.final()).status_code == 400


@pytest.mark.parametrize(("fault", "status"), [
    (("Content-Length: 0", "Content-Length: 0\r\nBad@Name: 1"), 400),
    (("Content-Length: 0", "Content-Length: 99"), 400),
    ((" SIP/2.0\r\n", " SIP/3.0\r\n"), 505),
])
async def test_unparsable_request_with_copyable_headers_is_answered(
        connect: Connect, server: DevServer, fault: tuple[str, str], status: int) -> None:
    alice = await connect("alice")
    call_id = secrets.token_hex(8)
    text = alice.request("MESSAGE", server.aor("bob"), call_id=call_id).replace(*fault, 1)
    await alice.send(text)
    bad = await alice.final()
    assert bad.status_code == status
    assert bad.call_id == call_id


async def test_unparsable_request_with_a_malformed_cseq_is_dropped(
        connect: Connect, server: DevServer, log: list[str]) -> None:
    alice = await connect("alice")
    text = alice.request("MESSAGE", server.aor("bob")).replace("CSeq: 1 MESSAGE", "CSeq: x y z")
    await alice.send(text)
    await alice.silent()  # an answer would echo the bad CSeq, which the UA cannot match
    assert any("unparsable" in line for line in log)


async def test_garbage_is_dropped_and_the_connection_still_works(
        connect: Connect, server: DevServer, log: list[str]) -> None:
    alice = await connect("alice")
    await alice.send("this is not SIP")
    await alice.ws.send_bytes(b"\xff\xfe\x00 nor is this\r\n\r\n")
    await alice.send("SIP/2.0 200 OK\r\nVia: bogus\r\n\r\n")
    await alice.send(alice.request("OPTIONS", f"sip:{server.domain}"))
    assert (await alice.final()).status_code == 200
    assert sum("unparsable" in line for line in log) >= 3


async def test_an_internal_error_answers_500_and_the_server_goes_on(
        connect: Connect, server: DevServer, monkeypatch: pytest.MonkeyPatch,
        log: list[str]) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    alice = await connect("alice")
    monkeypatch.setattr(server, "_options", broken)
    await alice.send(alice.request("OPTIONS", f"sip:{server.domain}"))
    assert (await alice.final()).status_code == 500
    assert any("internal error" in line for line in log)
    monkeypatch.undo()
    await alice.send(alice.request("OPTIONS", f"sip:{server.domain}"))
    assert (await alice.final()).status_code == 200


_valid_request = st.builds(
    lambda user, body: (
        f"MESSAGE sip:{user}@sipfsm.test SIP/2.0\r\nVia: SIP/2.0/WS g.invalid;branch=z9hG4bK1\r\n"
        f"To: <sip:{user}@sipfsm.test>\r\nFrom: <sip:g@sipfsm.test>;tag=1\r\nCall-ID: g\r\n"
        f"CSeq: 1 MESSAGE\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"),
    st.sampled_from(["carol", "dave", "x"]), st.text(max_size=20))


@st.composite
def _mangled(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(_valid_request).encode())
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@pytest.fixture
def shared() -> dict[str, list[Client]]:
    """State kept across the examples of one Hypothesis test (fixtures are not reset)."""
    return {}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.one_of(st.binary(max_size=200), st.text(max_size=200), _mangled()),
                       min_size=1, max_size=5),
       as_text=st.booleans())
async def test_one_clients_garbage_never_disturbs_another(
        connect: Connect, server: DevServer, shared: dict[str, list[Client]],
        frames: list[bytes | str], as_text: bool) -> None:
    if not shared:
        shared["clients"] = [*await _registered(connect, "alice", "bob"), await connect("carol")]
    alice, bob, vandal = shared["clients"]
    for frame in frames:
        if isinstance(frame, bytes) and as_text:
            frame = frame.decode("utf-8", "replace")
        if isinstance(frame, str):
            await vandal.send(frame)
        else:
            await vandal.ws.send_bytes(frame)
    call_id = secrets.token_hex(8)
    await alice.send(alice.request("MESSAGE", server.aor("bob"), call_id=call_id, body="still?"))
    incoming = await bob.incoming("MESSAGE", call_id=call_id)
    await bob.answer(incoming, 200, "OK", contact=False)
    ok = await alice.final()
    assert ok.status_code == 200
    assert ok.call_id == call_id
    assert set(server.bindings()) == {"alice", "bob"}
    assert server.connections == 3


# ------------------------------------------------------------- proxy auth


async def test_proxy_auth_challenges_out_of_dialog_requests(
        session: aiohttp.ClientSession, connect: Connect) -> None:
    async with DevServer(proxy_auth=True) as dev:
        alice = await connect("alice", dev)
        bob = await connect("bob", dev)
        for client in (alice, bob):
            assert (await client.register()).status_code == 200
        message = alice.request("MESSAGE", dev.aor("bob"), body="who am I?")
        await alice.send(message)
        challenge = await alice.final()
        assert challenge.status_code == 407
        assert challenge.proxy_authenticate[0].realm == dev.realm

        credentials = authorize(challenge, user="alice", password="alice-secret",
                                method="MESSAGE", uri=dev.aor("bob"), proxy=True)
        await alice.send(alice.request("MESSAGE", dev.aor("bob"), cseq=2, body="alice",
                                       extra=(f"Proxy-Authorization: {credentials}",)))
        incoming = await bob.incoming("MESSAGE")
        assert "Proxy-Authorization" not in incoming.headers  # consumed by the proxy
        await bob.answer(incoming, 200, "OK", contact=False)
        assert (await alice.final()).status_code == 200

        # Bob's credentials do not let a request claim to be from alice.
        await alice.send(message)
        challenge = await alice.final()
        credentials = authorize(challenge, user="bob", password="bob-secret",
                                method="MESSAGE", uri=dev.aor("bob"), proxy=True)
        await alice.send(alice.request("MESSAGE", dev.aor("bob"), cseq=3,
                                       extra=(f"Proxy-Authorization: {credentials}",)))
        assert (await alice.final()).status_code == 403
        for client in (alice, bob):
            await client.ws.close()
