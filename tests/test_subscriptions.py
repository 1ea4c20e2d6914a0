"""Subscriptions between two UAs over real WebSockets, through the devserver and a real Kamailio:
alice subscribes, bob plays the notifier (sipfsm has no notifier API: a request handler of his
UA core answers the SUBSCRIBEs and writes the NOTIFYs in their dialogs)."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from edges import Edge
from scripted import Peer, ScriptedServer, request_text

from sipfsm.causes import Cause
from sipfsm.core import OutgoingRequest
from sipfsm.devserver import DevServer
from sipfsm.events import InviteReceived, SubscriptionNotify
from sipfsm.fsm.dialog import Dialog
from sipfsm.fsm.invite import InviteState
from sipfsm.fsm.subscription import SubscriberState
from sipfsm.fsm.transaction import ServerTransaction
from sipfsm.media import signalling_only_factory
from sipfsm.outgoing import new_tag
from sipfsm.session import Session
from sipfsm.sip import Request, Response
from sipfsm.ua import UA

S = SubscriberState
PIDF = "application/pidf+xml"


class Notifier:
    """Bob's side of RFC 6665, scripted: answers every SUBSCRIBE (``status``, granting at most
    ``grant`` seconds), sends the first NOTIFY after the 2xx (before it with ``early``), and
    ``notify()`` sends more in the dialog of a subscription."""

    def __init__(self, ua: UA, *, status: int = 200, grant: int = 600,
                 early: bool = False) -> None:
        self.ua = ua
        self.status = status
        self.grant = grant
        self.early = early
        self.first_state = "active"
        self.dialogs: dict[str, Dialog] = {}  # by Call-ID
        self.subscribes: asyncio.Queue[Request] = asyncio.Queue()
        self.answers: asyncio.Queue[Response] = asyncio.Queue()  # to our NOTIFYs
        ua.core.handlers["SUBSCRIBE"] = self._on_subscribe

    def _on_subscribe(self, request: Request, transaction: ServerTransaction) -> None:
        core, call_id = self.ua.core, request.call_id or ""
        self.subscribes.put_nowait(request)
        to = request.to
        if to is not None and to.tag:  # a refresh or an unsubscribe
            dialog = self.dialogs.get(call_id)
            if dialog is None or dialog.received(request) is not None:
                core.respond(transaction, 481)
                return
        else:
            dialog = Dialog.as_uas(request, new_tag(), confirmed=True)
            self.dialogs[call_id] = dialog
        expires = min(request.expires if request.expires is not None else 3600, self.grant)
        state = self.first_state if expires else "terminated;reason=timeout"
        if self.early and not (to is not None and to.tag):
            self.notify(call_id, f"{state};expires={expires}" if expires else state)
        core.respond(transaction, self.status, to_tag=dialog.local_tag, headers=[
            ("Contact", f"<{self.ua.factory.contact_uri}>"), ("Expires", str(expires))])
        if self.status < 300 and not (self.early and not (to is not None and to.tag)):
            self.notify(call_id, f"{state};expires={expires}" if expires else state)

    def notify(self, call_id: str, state: str, body: str = "") -> None:
        """A NOTIFY in the dialog of the subscription with ``call_id``."""
        ua, dialog = self.ua, self.dialogs[call_id]
        request = dialog.request(
            "NOTIFY", via=ua.factory.via(ua.core.new_branch()),
            extra_headers=[("Event", "presence"), ("Subscription-State", state),
                           ("Contact", f"<{ua.factory.contact_uri}>")],
            body=body, content_type=PIDF if body else None)
        outgoing = OutgoingRequest(ua.core, request, None)
        ua.core.send(request, owner=outgoing)
        outgoing.on("accepted", lambda response, cause: self.answers.put_nowait(response))
        outgoing.on("rejected", lambda response, cause: self.answers.put_nowait(response))

    async def subscribe_request(self, timeout: float = 10) -> Request:
        return await asyncio.wait_for(self.subscribes.get(), timeout)

    async def answer(self, timeout: float = 10) -> Response:
        return await asyncio.wait_for(self.answers.get(), timeout)


Make = Callable[..., UA]


@pytest.fixture
async def make(edge: Edge) -> AsyncIterator[Make]:
    made: list[UA] = []

    def build(user: str, **params: Any) -> UA:
        ua = UA(uri=f"sip:{user}@{edge.domain}", ws_servers=edge.ws_url,
                password=edge.users[user], log={"builtin_enabled": False},
                session_description_handler_factory=signalling_only_factory, **params)
        made.append(ua)
        return ua

    yield build
    for ua in made:
        await ua.stop()


async def pair(make: Make) -> tuple[UA, UA]:
    alice, bob = make("alice"), make("bob")
    await asyncio.gather(alice.wait_for("registered", timeout=10),
                         bob.wait_for("registered", timeout=10))
    return alice, bob


async def test_subscribe_notify_and_unsubscribe(make: Make) -> None:
    alice, bob = await pair(make)
    notifier = Notifier(bob)
    sub = alice.subscribe("bob", "presence", expires=600)
    notified: list[SubscriptionNotify] = []
    sub.on("notify", notified.append)
    accepted = await sub.wait_for("accepted", timeout=10)
    assert accepted.response.status_code == 200
    subscribe = await notifier.subscribe_request()
    assert subscribe.headers.get("Event") == "presence" and subscribe.expires == 600
    assert subscribe.headers.get("Accept") == PIDF and subscribe.contact
    if sub.state is S.NOTIFY_WAIT:
        await sub.wait_for("notify", timeout=10)
    assert sub.state is S.ACTIVE and (await notifier.answer()).status_code == 200
    call_id = subscribe.call_id or ""
    news = asyncio.ensure_future(sub.wait_for("notify", timeout=10))
    notifier.notify(call_id, "active;expires=500", body="<presence>open</presence>")
    event = await news
    assert (event.state, event.body) == ("active", "<presence>open</presence>")
    assert (await notifier.answer()).status_code == 200
    assert [e.state for e in notified] == ["active", "active"]
    ended = asyncio.ensure_future(sub.wait_for("terminated", timeout=10))
    sub.unsubscribe()
    unsubscribe = await notifier.subscribe_request()
    assert unsubscribe.expires == 0 and unsubscribe.call_id == call_id
    assert unsubscribe.to is not None and unsubscribe.to.tag
    assert (await ended).reason == "unsubscribed"
    assert sub.state is S.TERMINATED and alice._subscriptions == {}
    assert [e.state for e in notified][-1] == "terminated"


async def test_refreshed_in_the_dialog_before_it_expires(make: Make) -> None:
    alice, bob = await pair(make)
    notifier = Notifier(bob, grant=1)  # refreshed 0.9 s after each 2xx
    sub = alice.subscribe("bob", "presence", expires=3600)
    first = await notifier.subscribe_request()
    refresh = await notifier.subscribe_request()
    again = await notifier.subscribe_request()
    assert refresh.call_id == again.call_id == first.call_id
    assert refresh.to is not None and refresh.to.tag and refresh.expires == 3600
    seqs = [r.cseq.seq for r in (first, refresh, again) if r.cseq is not None]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    assert sub.state in (S.ACTIVE, S.REFRESHING)
    sub.unsubscribe()


async def test_a_notify_that_overtakes_the_2xx(make: Make) -> None:
    alice, bob = await pair(make)
    notifier = Notifier(bob, early=True)
    sub = alice.subscribe("bob", "presence")
    order: list[str] = []
    sub.on("notify", lambda event: order.append("notify"))
    sub.on("accepted", lambda event: order.append("accepted"))
    first = await sub.wait_for("notify", timeout=10)
    assert first.state == "active" and (await notifier.answer()).status_code == 200
    if sub.machine.in_flight:
        await sub.wait_for("accepted", timeout=10)
    assert sub.state is S.ACTIVE and sub.dialog is not None
    assert order == ["notify", "accepted"]  # the NOTIFY made the dialog
    subscribe = await notifier.subscribe_request()
    assert sub.dialog.call_id == subscribe.call_id


async def test_a_refused_subscribe_fails(make: Make) -> None:
    alice, bob = await pair(make)
    Notifier(bob, status=403)
    sub = alice.subscribe("bob", "presence")
    failed = await sub.wait_for("failed", timeout=10)
    assert failed.response.status_code == 403 and failed.cause is Cause.REJECTED
    assert sub.state is S.TERMINATED and sub.reason == "failed"


async def test_a_ua_without_a_notifier_answers_489(make: Make) -> None:
    alice, _ = await pair(make)
    sub = alice.subscribe("bob", "presence")
    failed = await sub.wait_for("failed", timeout=10)
    assert failed.response.status_code == 489


async def test_ended_by_the_notifier_then_notify_gets_481(make: Make) -> None:
    alice, bob = await pair(make)
    notifier = Notifier(bob)
    sub = alice.subscribe("bob", "presence")
    subscribe = await notifier.subscribe_request()
    await notifier.answer()
    ended = asyncio.ensure_future(sub.wait_for("terminated", timeout=10))
    notifier.notify(subscribe.call_id or "", "terminated;reason=noresource")
    assert (await ended).reason == "noresource"
    assert (await notifier.answer()).status_code == 200
    notifier.notify(subscribe.call_id or "", "active;expires=60")  # too late
    assert (await notifier.answer()).status_code == 481


async def test_deactivated_subscribes_again(make: Make) -> None:
    alice, bob = await pair(make)
    notifier = Notifier(bob)
    sub = alice.subscribe("bob", "presence")
    first = await notifier.subscribe_request()
    await sub.wait_for("notify", timeout=10)
    again = asyncio.ensure_future(sub.wait_for("accepted", timeout=10))
    notifier.notify(first.call_id or "", "terminated;reason=deactivated")
    second = await notifier.subscribe_request()
    assert second.call_id != first.call_id and second.to is not None and second.to.tag is None
    await again
    assert sub.dialog is not None and sub.dialog.call_id == second.call_id
    sub.unsubscribe()
    await sub.wait_for("terminated", timeout=10)


async def test_stopping_the_ua_unsubscribes(make: Make) -> None:
    alice, bob = await pair(make)
    notifier = Notifier(bob)
    sub = alice.subscribe("bob", "presence")
    await notifier.subscribe_request()
    if sub.state is not S.ACTIVE:
        await sub.wait_for("notify", timeout=10)
    await alice.stop()
    unsubscribe = await notifier.subscribe_request()
    assert unsubscribe.expires == 0 and sub.state is S.TERMINATED


async def test_bad_arguments_are_refused() -> None:
    alice = UA(uri="sip:alice@example.test", ws_servers="ws://127.0.0.1:9", autostart=False,
               log={"builtin_enabled": False})
    with pytest.raises(ValueError, match="expires"):
        alice.subscribe("bob", "presence", expires=-1)
    with pytest.raises(ValueError, match="content_type"):
        alice.subscribe("bob", "presence", body="x")
    with pytest.raises(ValueError, match="Event"):
        alice.subscribe("bob", "not an event")
    sub = alice.subscribe("bob", "dialog", accept="application/x-mine", expires=0)
    with pytest.raises(ValueError, match="unknown subscription event"):
        sub.on("nonsense", print)
    assert sub.accept == "application/x-mine" and "dialog" in repr(sub)
    await sub._stop()  # never connected: ended on the spot
    assert sub.state is S.TERMINATED and sub.reason == "unsubscribed"


# -- MESSAGE inside a call -----------------------------------------------------------------------


@pytest.fixture
async def devserver() -> AsyncIterator[DevServer]:
    async with DevServer(min_expires=5) as server:
        yield server


async def test_message_inside_a_call(devserver: DevServer) -> None:
    alice, bob = (UA(uri=f"sip:{name}@{devserver.domain}", ws_servers=devserver.ws_url,
                     password=f"{name}-secret", log={"builtin_enabled": False},
                     session_description_handler_factory=signalling_only_factory)
                  for name in ("alice", "bob"))
    try:
        await asyncio.gather(alice.wait_for("registered", timeout=10),
                             bob.wait_for("registered", timeout=10))
        ringing = asyncio.ensure_future(bob.wait_for("invite", timeout=10))
        call = alice.invite("bob")
        event: InviteReceived = await ringing
        answered = event.session
        assert isinstance(answered, Session)
        with pytest.raises(Exception, match="cannot send a MESSAGE"):
            answered.message("too early")
        confirmed = asyncio.ensure_future(answered.wait_for("confirmed", timeout=10))
        answered.accept()
        await call.wait_for("confirmed", timeout=10)
        await confirmed
        outside: list[Any] = []
        bob.on("message", outside.append)
        got = asyncio.ensure_future(answered.wait_for("message", timeout=10))
        sent = call.message("hello in the call", content_type="text/plain")
        response = await sent.result(timeout=10)
        assert response.status_code == 200
        message = (await got).request
        assert call.dialog is not None and message.call_id == call.dialog.call_id
        assert message.text == "hello in the call"
        assert outside == []  # an in-dialog MESSAGE is the session's, not the UA's
        reply = asyncio.ensure_future(call.wait_for("message", timeout=10))
        answered.message("and back")
        assert (await reply).request.text == "and back"
        with pytest.raises(ValueError, match="body"):
            call.message("")
        assert call.state is InviteState.CONFIRMED
        call.bye()
        await call.wait_for("terminated", timeout=10)
    finally:
        await alice.stop()
        await bob.stop()


# -- the wire, against a scripted edge -----------------------------------------------------------


async def connect(server: ScriptedServer) -> tuple[UA, Peer]:
    ua = UA(uri="sip:alice@sipfsm.test", ws_servers=server.url, register=False,
            password="alice-secret", log={"builtin_enabled": False})
    server.clients.append(ua)
    await ua.wait_for("connected", timeout=5)
    return ua, await server.peer()


def reply(request: Request, status: int, *headers: str, to_tag: str = "") -> str:
    to = request.headers.get("To") or ""
    if to_tag:
        to += f";tag={to_tag}"
    lines = [f"SIP/2.0 {status} X", *(f"Via: {v}" for v in request.headers.get_all("Via")),
             f"From: {request.headers.get('From')}", f"To: {to}",
             f"Call-ID: {request.call_id}", f"CSeq: {request.headers.get('CSeq')}", *headers,
             "Content-Length: 0"]
    return "\r\n".join(lines) + "\r\n\r\n"


async def test_on_the_wire_digest_then_a_notify_before_the_2xx(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    sub = ua.subscribe("bob", "message-summary", expires=120, extra_headers=[("X-Mine", "1")])
    first = await peer.request("SUBSCRIBE")
    assert first.headers.get("Event") == "message-summary" and first.expires == 120
    assert first.headers.get("Accept") == "application/simple-message-summary"
    assert first.headers.get("X-Mine") == "1" and first.contact and first.headers.get("Allow")
    await peer.send(reply(first, 401, 'WWW-Authenticate: Digest realm="sipfsm.test", '
                                      'nonce="abc", qop="auth"', to_tag="n1"))
    retried = await peer.request("SUBSCRIBE")
    assert retried.authorization and retried.call_id == first.call_id
    assert retried.cseq is not None and first.cseq is not None
    assert retried.cseq.seq == first.cseq.seq + 1
    assert retried.from_ is not None and retried.from_.tag
    # The NOTIFY overtakes the 2xx: it makes the dialog, with the retried SUBSCRIBE's CSeq.
    notify = request_text(
        "NOTIFY", our_uri(ua), from_tag="n1", call_id=retried.call_id,
        to=f"<sip:alice@sipfsm.test>;tag={retried.from_.tag}", cseq=7,
        extra="Event: message-summary\r\nSubscription-State: active;expires=100\r\n"
              "Contact: <sip:bob@127.0.0.1;transport=ws>\r\n"
              "Record-Route: <sip:127.0.0.1:5066;transport=ws;lr>\r\n"
              "Content-Type: application/simple-message-summary\r\n",
        body="Messages-Waiting: yes\r\n")
    notified = asyncio.ensure_future(sub.wait_for("notify", timeout=5))
    await peer.send(notify)
    answer = await peer.response()
    assert answer.status_code == 200 and (await notified).body == "Messages-Waiting: yes\r\n"
    accepted = asyncio.ensure_future(sub.wait_for("accepted", timeout=5))
    await peer.send(reply(retried, 200, "Expires: 100", "Contact: <sip:bob@127.0.0.1>",
                          to_tag="n1"))
    await accepted
    sub.unsubscribe()
    unsubscribe = await peer.request("SUBSCRIBE")
    assert unsubscribe.expires == 0 and unsubscribe.cseq is not None
    assert unsubscribe.cseq.seq == retried.cseq.seq + 1
    assert str(unsubscribe.uri) == "sip:bob@127.0.0.1;transport=ws"  # the NOTIFY's Contact
    assert [str(r.uri) for r in unsubscribe.route] == ["sip:127.0.0.1:5066;transport=ws;lr"]
    assert unsubscribe.to is not None and unsubscribe.to.tag == "n1"
    assert unsubscribe.headers.get("X-Mine") == "1"
    await peer.send(reply(unsubscribe, 200, "Expires: 0"))
    ended = asyncio.ensure_future(sub.wait_for("terminated", timeout=5))
    await peer.send(notify.replace("CSeq: 7", "CSeq: 8").replace("active;expires=100",
                                                                 "terminated;reason=timeout"))
    assert (await peer.response()).status_code == 200
    assert (await ended).reason == "unsubscribed"


async def test_stray_notify_and_message_with_a_to_tag(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    notify = request_text("NOTIFY", our_uri(ua), to="<sip:alice@sipfsm.test>;tag=nobody",
                          extra="Event: presence\r\nSubscription-State: active\r\n")
    await peer.send(notify)
    assert (await peer.response()).status_code == 481
    got: list[Any] = []
    ua.on("message", got.append)
    message = request_text("MESSAGE", our_uri(ua), to="<sip:alice@sipfsm.test>;tag=nobody",
                           extra="Content-Type: text/plain\r\n", body="hi")
    await peer.send(message)
    assert (await peer.response()).status_code == 200  # as before: 200 and the UA's event
    assert [event.request.text for event in got] == ["hi"]


async def test_a_lost_connection_ends_the_subscription(server: ScriptedServer) -> None:
    ua, peer = await connect(server)
    sub = ua.subscribe("bob", "presence")
    subscribe = await peer.request("SUBSCRIBE")
    await peer.send(reply(subscribe, 200, "Expires: 600", "Contact: <sip:bob@127.0.0.1>",
                          to_tag="n1"))
    await sub.wait_for("accepted", timeout=5)
    failed = asyncio.ensure_future(sub.wait_for("failed", timeout=5))
    await peer.close()
    assert (await failed).cause is Cause.CONNECTION_ERROR
    assert sub.state is S.TERMINATED and ua.subscriptions() == []


def our_uri(ua: UA) -> str:
    return f"sip:{ua.identity.contact_user}@{ua.identity.via_host};transport=ws"
