"""A hostile WebSocket server: the UA, registered and in a call, is fed random bytes, truncated
and mutated corpus messages, oversized messages and frames, thousands of headers, huge
Content-Lengths, CRLF floods, responses for no transaction, requests for no dialog and malformed
requests.  It must never raise out of its tasks, must answer what deserves an answer (400, 413,
481…), and afterwards still be registered, still in its call, and back to its baseline of live
transactions."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import random
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from corpus import websocket_messages
from scripted import Peer, ScriptedServer, request_text

from sipfsm import InvalidStateError, ParseError
from sipfsm.config import Limits
from sipfsm.events import InviteReceived
from sipfsm.fsm.invite import InviteState
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.sip import Request, Response, parse
from sipfsm.ua import UA

LIMITS = Limits(max_message_size=16 * 1024, max_frame_size=64 * 1024, max_headers=256,
                max_line_length=8192)
SDP = ("v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
CONTACT = "Contact: <sip:bob@127.0.0.1:5066;transport=ws>\r\n"


def _fuzz_module() -> Any:
    """The benchmark's mutations (benchmarks/fuzz_parser.py), to mangle corpus messages."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_parser.py"
    spec = importlib.util.spec_from_file_location("fuzz_parser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Wire:
    """Everything the UA sends on one connection, read by a background task: responses by the
    branch of their Via, requests in order, keep-alive pongs counted, frames that do not parse
    kept.  A final non-2xx response to an INVITE is ACKed at once, as an edge would."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.responses: dict[str, list[Response]] = {}
        self.requests: asyncio.Queue[Request] = asyncio.Queue()
        self.pongs = 0
        self.unparsable: list[str] = []
        self.invites: dict[str, str] = {}  # branch -> Request-URI of INVITEs we sent
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def send(self, text: str) -> None:
        """Send one text frame (noting INVITEs, so that their failures can be ACKed)."""
        with contextlib.suppress(ParseError):
            message = parse(text)
            if isinstance(message, Request) and message.method == "INVITE":
                top = message.top_via
                if top is not None and top.branch:
                    self.invites[top.branch] = message._uri_text
        await self.peer.send(text)

    async def _read(self) -> None:
        while True:
            data = await self.peer.inbox.get()
            if not data.strip("\r\n"):
                self.pongs += 1
            else:
                try:
                    message = parse(data)
                except ParseError:
                    self.unparsable.append(data)
                    continue
                if isinstance(message, Request):
                    self.requests.put_nowait(message)
                else:
                    await self._response(message)
            async with self._changed:
                self._changed.notify_all()

    async def _response(self, response: Response) -> None:
        top = response.top_via
        branch = top.branch if top is not None and top.branch else ""
        self.responses.setdefault(branch, []).append(response)
        cseq = response.cseq
        if (cseq is not None and cseq.method == "INVITE" and response.status_code >= 300
                and branch in self.invites):
            with contextlib.suppress(ConnectionError):  # the connection may be going away
                await self.peer.send(ack(response, self.invites[branch], branch))

    def status(self, branch: str) -> int | None:
        """The status of the final response to the request sent with ``branch`` (if any yet)."""
        return next((r.status_code for r in self.responses.get(branch, ())
                     if r.status_code >= 200), None)

    async def final(self, branch: str, timeout: float = 10.0) -> Response:
        """The final response to the request sent with ``branch`` (waited for)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(
                lambda: self.status(branch) is not None), timeout)
        return next(r for r in self.responses[branch] if r.status_code >= 200)

    async def ask(self, text: str, branch: str) -> Response:
        await self.send(text)
        return await self.final(branch)

    async def request(self, method: str, timeout: float = 10.0) -> Request:
        while True:
            request = await asyncio.wait_for(self.requests.get(), timeout)
            if request.method == method:
                return request

    def close(self) -> None:
        self._task.cancel()


def ack(response: Response, uri: str, branch: str) -> str:
    """The ACK of a non-2xx final response: same branch, hop by hop (RFC 3261 §17.1.1.3)."""
    cseq = response.cseq
    assert cseq is not None
    lines = [f"ACK {uri} SIP/2.0", f"Via: {response.headers.get('Via')}", "Max-Forwards: 70"]
    lines += [f"{name}: {response.headers.get(name)}" for name in ("From", "To", "Call-ID")]
    lines += [f"CSeq: {cseq.seq} ACK", "Content-Length: 0"]
    assert branch in lines[1]
    return "\r\n".join(lines) + "\r\n\r\n"


def registered(request: Request) -> str:
    """A 200 to the UA's REGISTER that grants its binding for 600 s."""
    (contact,) = request.contact
    lines = ["SIP/2.0 200 OK"]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        lines.append(f"{name}: {value};tag=reg" if name == "To" else f"{name}: {value}")
    lines.append(f"Contact: <{contact.uri}>;expires=600;reg-id=1;"
                 f"+sip.instance=\"{contact.param('+sip.instance')}\"")
    return "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"


def branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


class Call:
    """The established call, seen from the server: what an in-dialog request needs."""

    def __init__(self, ua: UA, session: Session, ok: Response) -> None:
        self.ua = ua
        self.session = session
        (contact,) = ok.contact
        self.target = str(contact.uri)
        to = ok.headers.get("To")
        assert to is not None and ok.to is not None and ok.to.tag
        self.to = to
        self.cseq = 1

    def request(self, method: str, via_branch: str, *, body: str = "", extra: str = "",
                to: str | None = None, from_tag: str = "caller", cseq: int | None = None) -> str:
        if cseq is None:
            self.cseq += 1
        return request_text(method, self.target, branch=via_branch, call_id="hostile-call",
                            from_tag=from_tag, to=to or self.to, cseq=cseq or self.cseq,
                            body=body, extra=extra)

    def dtmf(self, via_branch: str, duration: str = "160") -> str:
        return self.request("INFO", via_branch, body=f"Signal=5\r\nDuration={duration}\r\n",
                            extra="Content-Type: application/dtmf-relay\r\n")


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Whatever reaches the loop's exception handler (an exception raised out of a task or a
    callback) during the test."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield errors
    gc.collect()  # a task that died unobserved reports when it is collected
    loop.set_exception_handler(previous)


async def setup_call(server: ScriptedServer, logs: list[tuple[str, str]]) -> tuple[UA, Wire, Call]:
    """A UA registered at the scripted server and in a confirmed call from it."""
    def connector(level: str, category: str, label: str | None, content: str) -> None:
        logs.append((level, content))

    ua = UA(uri="sip:alice@sipfsm.test", ws_servers=server.url, limits=LIMITS,
            session_description_handler_factory=signalling_only_factory,
            connection_recovery_min_interval=1, connection_recovery_max_interval=2,
            log={"builtin_enabled": False, "level": "warn", "connector": connector})
    server.clients.append(ua)
    sessions: list[Session] = []

    def on_invite(event: InviteReceived) -> None:
        session = event.session
        assert isinstance(session, Session)
        sessions.append(session)
        # The first call is answered; any INVITE a mangled message turns into a call is not.
        answer: Callable[[], None] = session.accept if len(sessions) == 1 else (
            lambda: session.reject(486))

        def settle() -> None:
            with contextlib.suppress(InvalidStateError):
                answer()

        asyncio.get_running_loop().call_soon(settle)

    ua.on("invite", on_invite)
    wire = Wire(await server.peer())
    done = asyncio.ensure_future(ua.wait_for("registered", timeout=10))
    await wire.send(registered(await wire.request("REGISTER")))
    await done
    invite_branch = branch()
    invite = request_text("INVITE", f"sip:alice@{ua.identity.via_host}", branch=invite_branch,
                          call_id="hostile-call", from_tag="caller", cseq=1, body=SDP,
                          extra=CONTACT + "Content-Type: application/sdp\r\n")
    ok = await wire.ask(invite, invite_branch)
    assert ok.status_code == 200
    (session,) = sessions
    confirmed = asyncio.ensure_future(session.wait_for("confirmed", timeout=10))
    call = Call(ua, session, ok)
    await wire.send(call.request("ACK", branch(), cseq=1))
    await confirmed
    return ua, wire, call


def options(ua: UA, via_branch: str, *, extra: str = "", body: str = "",
            content_length: int | None = None) -> str:
    return request_text("OPTIONS", f"sip:alice@{ua.identity.via_host}", branch=via_branch,
                        extra=extra, body=body, content_length=content_length)


async def test_the_ua_survives_a_hostile_server(server: ScriptedServer,
                                                loop_errors: list[dict[str, Any]]) -> None:
    logs: list[tuple[str, str]] = []
    ua, wire, call = await setup_call(server, logs)
    baseline = set(ua.core.transactions)
    rng = random.Random(20261127)
    uri = f"sip:alice@{ua.identity.via_host}"
    expected: dict[str, int | None] = {}  # branch -> the status the UA must answer with
    dropped: list[str] = []  # branches of requests that cannot be answered
    ws = wire.peer.ws

    # Random bytes, as text and as binary frames.
    for _ in range(60):
        await ws.send_str("".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0x80,
                                  0xD800), 13, 10))) for _ in range(rng.randrange(1, 400))))
        await ws.send_bytes(rng.randbytes(rng.randrange(1, 400)))

    # The corpus, truncated and mutated (addressed to us, half of the requests).
    fuzz = _fuzz_module()
    corpus = [path.read_bytes() for path in websocket_messages()] or fuzz.builtin_seeds()
    for data in corpus:
        if not data.startswith(b"SIP/") and rng.random() < 0.5:
            method, _, rest = data.partition(b" ")
            data = method + b" " + uri.encode() + b" " + rest.partition(b" ")[2]
        await wire.send(data[: rng.randrange(len(data))].decode("utf-8", "replace"))
        for _ in range(3):
            mutant = fuzz.mutate(rng, data, corpus)[: LIMITS.max_message_size]
            await wire.send(mutant.decode("utf-8", "replace"))

    # Too big: a message over max_message_size (within max_frame_size) is answered 413 and the
    # connection stays; thousands of headers or an overlong line: 400 from the headers a
    # response copies; a thousand Vias: nothing to answer with.
    b = branch()
    expected[b] = 413
    await wire.send(options(ua, b, body="x" * LIMITS.max_message_size))
    b = branch()
    expected[b] = 400
    await wire.send(options(ua, b, extra="X: y\r\n" * 2000))
    b = branch()
    expected[b] = 400
    await wire.send(options(ua, b, extra=f"X-Long: {'a' * 9000}\r\n"))
    b = branch()
    dropped.append(b)
    await wire.send(options(ua, b).replace(
        "Max-Forwards", "Via: SIP/2.0/WS x.invalid;branch=z9hG4bKx\r\n" * 1000 + "Max-Forwards"))

    # Huge Content-Lengths.
    for value in ("4294967296000", "9" * 5000, "-1", "1e3"):
        b = branch()
        expected[b] = 400
        await wire.send(options(ua, b).replace("Content-Length: 0", f"Content-Length: {value}"))

    # CRLF floods: keep-alive pings are answered (one pong each), pongs and empty lines ignored,
    # and CRLFs before a request are skipped.
    b = branch()  # first a barrier: a ping among the mangled frames has had its pong by then
    assert (await wire.ask(options(ua, b), b)).status_code == 200
    pongs = wire.pongs
    for _ in range(300):
        await ws.send_str("\r\n\r\n")
        await ws.send_str("\r\n")
    await ws.send_str("\r\n" * (LIMITS.max_frame_size // 2 - 16))
    b = branch()
    expected[b] = 200
    await wire.send("\r\n" * 1000 + options(ua, b))

    # Responses for no transaction of ours.
    via = f"Via: SIP/2.0/WS {ua.identity.via_host};branch={branch()}"
    challenge = 'WWW-Authenticate: Digest realm="x", nonce="y"\r\n'
    for start_line, extra in [
        ("SIP/2.0 200 OK", ""), ("SIP/2.0 180 Ringing", ""), ("SIP/2.0 401 Nope", challenge),
        ("SIP/2.0 603 Decline", ""), ("SIP/2.0 999 Odd", ""),
        ("SIP/2.0 200 OK", "Via: SIP/2.0/WS other.invalid;branch=z9hG4bKo\r\n"),
    ]:
        for method in ("INVITE", "REGISTER", "BYE"):
            await ws.send_str(f"{start_line}\r\n{via}\r\n{extra}From: <sip:alice@sipfsm.test>;"
                              f"tag=x\r\nTo: <sip:bob@sipfsm.test>;tag=y\r\nCall-ID: nobody\r\n"
                              f"CSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n")

    # Requests for dialogs we do not have: 481.  (A re-INVITE's 481 is ACKed by the Wire.)
    bogus = call.to + "-bogus"
    for method, to, from_tag in [
        ("BYE", bogus, "caller"), ("INFO", bogus, "caller"), ("BYE", call.to, "impostor"),
        ("UPDATE", bogus, "caller"), ("INVITE", bogus, "caller"), ("NOTIFY", bogus, "caller"),
        ("PRACK", bogus, "caller"),
    ]:
        b = branch()
        expected[b] = 481
        await wire.send(call.request(method, b, to=to, from_tag=from_tag))
    b = branch()
    expected[b] = 481
    await wire.send(request_text("CANCEL", uri, branch=b, call_id="no-such-invite"))

    # Malformed requests: 400 when they can be answered, 505 for another SIP version.
    for text, status in [
        (options(ua, "BRANCH").replace("From: ", "From: <sip:bob@", 1), 400),
        (options(ua, "BRANCH").replace("\r\nCall-ID", "\r\nX-Bare: a\nb\r\nCall-ID", 1), 400),
        (options(ua, "BRANCH", content_length=50), 400),
        (options(ua, "BRANCH", extra="Max-Forwards: 99999999999\r\n"), 400),
        (options(ua, "BRANCH", extra=f"Expires: {'7' * 5000}\r\n"), 400),
        (options(ua, "BRANCH", extra="Require: no-such-extension\r\n"), 420),
        (options(ua, "BRANCH").replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1), 505),
        ("\r\n".join(line for line in options(ua, "BRANCH").split("\r\n")
                     if not line.startswith("Call-ID")), 400),
        (options(ua, "BRANCH").replace("Call-ID: ", "Call-ID: ١", 1), 400),
        (call.request("BYE", "BRANCH").replace("Call-ID: ", "Call-ID: ١", 1), 400),
        (request_text("INVITE", uri, body=SDP, extra="Contact: <sip:\r\n"
                      "Content-Type: application/sdp\r\n", branch="BRANCH"), 400),
        (request_text("INVITE", uri, body=SDP, branch="BRANCH",
                      extra="Content-Type: application/sdp\r\n"), 400),  # no Contact
    ]:
        b = branch()
        expected[b] = status
        await wire.send(text.replace("BRANCH", b))

    # ACKs with nothing to answer: for no dialog, or unreadable.
    b = branch()
    dropped.append(b)
    await wire.send(call.request("ACK", b, to=call.to + "-bogus"))
    b = branch()
    dropped.append(b)
    await wire.send(call.request("ACK", b).replace("Call-ID: ", "Call-ID: ١", 1))

    # In the real dialog: a DTMF INFO whose duration is not a usable number is still a tone.
    for duration in ("²", "9" * 5000):
        b = branch()
        expected[b] = 200
        await wire.send(call.dtmf(b, duration))

    # A barrier: frames are handled in order, so once this is answered every one before it was.
    b = branch()
    assert (await wire.ask(options(ua, b), b)).status_code == 200
    answers = {b: wire.status(b) for b in expected}
    assert answers == expected
    assert all(b not in wire.responses for b in dropped)
    assert wire.pongs - pongs == 300
    assert ua.is_connected() and ua.is_registered()

    # A frame over max_frame_size cannot be read: the connection is closed and the UA comes
    # back, registers again, and keeps its confirmed call.
    lost = asyncio.ensure_future(ua.wait_for("disconnected", timeout=30))
    again = asyncio.ensure_future(ua.wait_for("registered", timeout=30))
    await ws.send_str("x" * (LIMITS.max_frame_size + 1))
    assert (await lost).code == 1009  # message too big
    wire.close()
    wire = Wire(await server.peer(timeout=30))
    await wire.send(registered(await wire.request("REGISTER", timeout=30)))
    await again
    assert ua.is_registered()
    b = branch()
    tone = asyncio.ensure_future(call.session.wait_for("dtmf", timeout=10))
    assert (await wire.ask(call.dtmf(b), b)).status_code == 200
    assert (await tone).tone == "5"
    assert call.session.state is InviteState.CONFIRMED
    assert ua.sessions() == [call.session]
    b = branch()
    assert (await wire.ask(options(ua, b), b)).status_code == 200

    # Nothing escaped: no loop errors, no error lines (a failing listener logs one), every frame
    # the UA wrote parses; and the transaction table is back to its baseline.
    for _ in range(200):
        if set(ua.core.transactions) <= baseline:
            break
        await asyncio.sleep(0.05)
    assert set(ua.core.transactions) <= baseline
    assert wire.unparsable == []
    assert [content for level, content in logs if level == "error"] == []
    gc.collect()
    await asyncio.sleep(0)
    assert loop_errors == []
    wire.close()
