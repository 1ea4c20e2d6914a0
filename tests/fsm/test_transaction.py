"""The four transaction machines, driven with a fake clock: every path of every table, the ACK
they build, and the matching helpers on realistic messages.

The last test checks that the tests above exercised every transition the four tables declare.
"""

# The tests assert a state, call an input, and assert the new state; mypy would keep the first
# narrowing across the call and call the second comparison impossible.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from harness import Driver

from sipfsm import InvalidStateError
from sipfsm.events import (
    AckReceived,
    RequestReceived,
    TransactionFailed,
    TransactionResponse,
    TransactionTerminated,
)
from sipfsm.fsm.base import MACHINES, CancelTimer, Emit, StartTimer, Transmit, observe_transitions
from sipfsm.fsm.transaction import (
    MAGIC_COOKIE,
    ClientTransaction,
    InviteClientState,
    InviteClientTransaction,
    InviteServerState,
    InviteServerTransaction,
    NonInviteClientState,
    NonInviteClientTransaction,
    NonInviteServerState,
    NonInviteServerTransaction,
    ServerTransaction,
    Transaction,
    TransactionTable,
    build_ack,
    matching_key_for_request,
    matching_key_for_response,
    new_branch,
)
from sipfsm.sip import Request, Response, parse

IC, NC = InviteClientState, NonInviteClientState
IS, NS = InviteServerState, NonInviteServerState

# -- recording which declared transitions the tests take ---------------------------------------

SEEN: set[tuple[str, str, str, str]] = set()


@pytest.fixture(autouse=True)
def _record_transitions() -> Iterator[None]:
    stop = observe_transitions(lambda *transition: SEEN.add(transition))
    yield
    stop()


# -- messages ----------------------------------------------------------------------------------

SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def outgoing(method: str = "INVITE", *, branch: str | None = None, cseq: int = 1) -> Request:
    """A request as our UA writes it over WebSocket (one Via, a preloaded Route set)."""
    body = SDP if method == "INVITE" else ""
    text = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch={branch or new_branch()};rport\r\n"
        "Route: <sip:edge.example.com;transport=ws;lr>\r\n"
        "Route: <sip:core.example.com;lr>\r\n"
        "Max-Forwards: 70\r\n"
        'To: "Bob" <sip:bob@example.com>\r\n'
        'From: "Alice" <sip:alice@example.com>;tag=9fxced76sl\r\n'
        "Call-ID: 3848276298220188511@df7jal23ls0d.invalid\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:kn3b2y8l@df7jal23ls0d.invalid;transport=ws;ob>\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
        "Supported: outbound\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    message = parse(text)
    assert isinstance(message, Request)
    return message


def incoming(method: str = "INVITE", *, branch: str = "z9hG4bK4b43c2ff8.1",
             host: str = "edge.example.com", cseq: int = 101) -> Request:
    """A request as it reaches our UA through the edge proxy (its Via on top of the caller's)."""
    body = SDP if method == "INVITE" else ""
    text = (
        f"{method} sip:kn3b2y8l@df7jal23ls0d.invalid;transport=ws SIP/2.0\r\n"
        f"Via: SIP/2.0/WSS {host}:443;branch={branch}\r\n"
        "Via: SIP/2.0/UDP 198.51.100.20:5060;received=198.51.100.20;"
        "branch=z9hG4bKnashds8;rport=5060\r\n"
        "Record-Route: <sip:edge.example.com;transport=ws;lr>\r\n"
        "Max-Forwards: 69\r\n"
        "To: <sip:alice@example.com>\r\n"
        "From: Carol <sip:carol@example.net>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.example.net\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Timestamp: 54\r\n"
        "Contact: <sip:carol@198.51.100.20>\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    message = parse(text)
    assert isinstance(message, Request)
    return message


def reply(request: Request, status: int, reason: str = "", *, tag: str | None = "8321234356",
          received: bool = False, method: str | None = None) -> Response:
    """A response to ``request``, as a peer writes it (``received``: as the edge returns it to
    us, with received/rport filled in).  ``method`` overrides the CSeq method."""
    lines = [f"SIP/2.0 {status} {reason or 'Whatever'}"]
    for via in request.headers.get_all("Via"):
        if received:
            via = via.replace(";rport", ";received=192.0.2.33;rport=49152")
        lines.append(f"Via: {via}")
    to = request.headers.get("To") or ""
    if tag is not None and status > 100 and ";tag=" not in to:
        to += f";tag={tag}"
    cseq = request.cseq
    assert cseq is not None
    lines += [f"From: {request.headers.get('From')}", f"To: {to}",
              f"Call-ID: {request.headers.get('Call-ID')}",
              f"CSeq: {cseq.seq} {method or cseq.method}", "Content-Length: 0"]
    message = parse("\r\n".join(lines) + "\r\n\r\n")
    assert isinstance(message, Response)
    return message


def drive(transaction: Transaction) -> Driver:
    driver = Driver(transaction, transaction.timer_fired)
    driver.run()  # a server transaction has effects from its constructor
    return driver


def ict(**kwargs: Any) -> tuple[InviteClientTransaction, Driver]:
    transaction = InviteClientTransaction(outgoing(), **kwargs)
    driver = drive(transaction)
    driver(transaction.start)
    return transaction, driver


def nict(method: str = "OPTIONS") -> tuple[NonInviteClientTransaction, Driver]:
    transaction = NonInviteClientTransaction(outgoing(method))
    driver = drive(transaction)
    driver(transaction.start)
    return transaction, driver


def ist(**kwargs: Any) -> tuple[InviteServerTransaction, Driver]:
    transaction = InviteServerTransaction(incoming(), **kwargs)
    return transaction, drive(transaction)


def nist(method: str = "MESSAGE") -> tuple[NonInviteServerTransaction, Driver]:
    transaction = NonInviteServerTransaction(incoming(method))
    return transaction, drive(transaction)


def statuses(driver: Driver) -> list[int]:
    """The status codes the TU was given, in order."""
    return [e.response.status_code for e in driver.of(TransactionResponse)]


def ended_once(transaction: Transaction, driver: Driver) -> None:
    assert transaction.terminated
    assert driver.of(TransactionTerminated) == [
        TransactionTerminated(transaction=transaction.id, kind=transaction.kind)]
    assert isinstance(driver.log[-1], Emit) and driver.log[-1].event == \
        driver.of(TransactionTerminated)[0]
    assert driver.timers == {} and transaction.armed == frozenset()


def header_lines(message: Request | Response) -> list[tuple[str, str]]:
    return list(message.headers)


# -- INVITE client transaction -----------------------------------------------------------------


def test_ict_start_sends_the_invite_and_arms_timer_b() -> None:
    transaction, driver = ict()
    assert transaction.state is IC.CALLING
    assert driver.transmitted == [transaction.request]
    assert driver.timers == {"B": 32.0}  # 64 × T1, T1 = 0.5 s
    assert transaction.last_response is None and transaction.ack is None
    with pytest.raises(InvalidStateError, match="already started"):
        transaction.start(1.0)
    assert transaction.state is IC.CALLING and transaction.take_effects() == []


def test_ict_t1_is_configurable() -> None:
    transaction, driver = ict(t1=2.0)
    assert driver.timers == {"B": 128.0}
    driver.advance(127.9)
    assert transaction.state is IC.CALLING
    driver.advance(0.1)
    assert transaction.terminated


def test_ict_provisional_then_2xx_then_timer_m() -> None:
    transaction, driver = ict()
    invite = transaction.request
    driver.advance(1)
    trying, ringing = reply(invite, 100, "Trying", received=True), reply(invite, 180, "Ringing")
    driver(transaction.response_received, trying)
    assert transaction.state is IC.PROCEEDING
    assert driver.timers == {}  # Timer B only runs in Calling
    assert CancelTimer("B") in driver.log
    driver(transaction.response_received, ringing)
    assert transaction.state is IC.PROCEEDING
    driver.advance(1000)  # no timer in Proceeding: the TU decides (CANCEL)
    assert transaction.state is IC.PROCEEDING
    ok = reply(invite, 200, "OK")
    driver(transaction.response_received, ok)
    assert transaction.state is IC.ACCEPTED
    assert driver.timers == {"M": driver.now + 32}
    assert driver.transmitted == [invite]  # the ACK of a 2xx is the TU's, not ours
    assert transaction.last_response is None  # accepted: it keeps nothing, the TU has the 2xx
    # RFC 6026 §7.2: a retransmission and another fork's 2xx both go up.
    fork = reply(invite, 200, "OK", tag="f0rk")
    driver(transaction.response_received, ok)
    driver(transaction.response_received, fork)
    assert statuses(driver) == [100, 180, 200, 200, 200]
    assert driver.of(TransactionResponse)[-1].response is fork
    # Anything but a 2xx is dropped in Accepted, and so is a transport error.
    for late in (reply(invite, 183, "Session Progress"), reply(invite, 486, "Busy Here")):
        assert driver(transaction.response_received, late) == []
    assert driver(transaction.transport_error) == []
    assert driver(transaction.abandon) == []
    assert transaction.state is IC.ACCEPTED
    driver.advance(32)
    ended_once(transaction, driver)
    assert driver.of(TransactionFailed) == []
    assert statuses(driver) == [100, 180, 200, 200, 200]


def test_ict_2xx_while_calling() -> None:
    transaction, driver = ict()
    driver.advance(3)
    driver(transaction.response_received, reply(transaction.request, 200, "OK"))
    assert transaction.state is IC.ACCEPTED
    assert driver.timers == {"M": 35.0}  # B is gone, M armed from now
    driver.advance(35)
    ended_once(transaction, driver)


@pytest.mark.parametrize("provisional", [False, True])
def test_ict_non_2xx_is_acked_and_ends_at_once(provisional: bool) -> None:
    transaction, driver = ict()
    invite = transaction.request
    if provisional:
        driver(transaction.response_received, reply(invite, 180, "Ringing"))
    busy = reply(invite, 486, "Busy Here", received=True)
    effects = driver(transaction.response_received, busy)
    # Timer D is zero on a reliable transport: Completed lasts no time.
    ended_once(transaction, driver)
    assert driver.transmitted == [invite, transaction.ack]
    assert transaction.last_response is busy
    assert statuses(driver) == ([180, 486] if provisional else [486])
    assert driver.of(TransactionFailed) == []
    # The ACK first, then the response to the TU, then the end.
    assert effects == [Transmit(transaction.ack),  # type: ignore[arg-type]
                       Emit(TransactionResponse(transaction=transaction.id, response=busy)),
                       *([] if provisional else [CancelTimer("B")]),
                       Emit(TransactionTerminated(transaction=transaction.id, kind="ict"))]


def test_ict_a_final_retransmitted_after_the_end_is_ignored() -> None:
    # Over a reliable hop no final response is retransmitted (Timer G is unreliable-only),
    # which is why Timer D is zero; a stray copy finds a transaction that ignores it.
    transaction, driver = ict()
    busy = reply(transaction.request, 486, "Busy Here")
    driver(transaction.response_received, busy)
    assert driver(transaction.response_received, busy) == []
    assert len(driver.transmitted) == 2 and statuses(driver) == [486]


def test_the_ack_of_a_non_2xx_is_exactly_right() -> None:
    invite = outgoing(cseq=4711)
    transaction = InviteClientTransaction(invite)
    driver = drive(transaction)
    driver(transaction.start)
    rejected = reply(invite, 603, "Decline", tag="a6c85cf", received=True)
    driver(transaction.response_received, rejected)
    ack = transaction.ack
    assert ack is not None and driver.transmitted[-1] is ack
    again = parse(bytes(ack))  # it survives the wire
    assert isinstance(again, Request) and again == ack
    assert ack.method == "ACK"
    assert str(ack.uri) == str(invite.uri) == "sip:bob@example.com"
    assert header_lines(ack) == [
        # one Via, the INVITE's top one: same branch (RFC 3261 §17.1.1.3, decision 11)
        ("Via", invite.headers.get("Via")),
        # the INVITE's Route set, in order
        ("Route", "<sip:edge.example.com;transport=ws;lr>"),
        ("Route", "<sip:core.example.com;lr>"),
        ("Max-Forwards", "70"),
        # the To of the response, tag included
        ("To", '"Bob" <sip:bob@example.com>;tag=a6c85cf'),
        ("From", '"Alice" <sip:alice@example.com>;tag=9fxced76sl'),
        ("Call-ID", "3848276298220188511@df7jal23ls0d.invalid"),
        # the INVITE's number, method ACK
        ("CSeq", "4711 ACK"),
        ("Content-Length", "0"),
    ]
    assert ack.body == b""
    assert ack.top_via == invite.top_via and len(ack.via) == 1
    assert ack.top_via is not None and ack.top_via.branch == transaction.request.top_via.branch  # type: ignore[union-attr]
    assert ack.to is not None and ack.to.tag == "a6c85cf"
    assert ack.cseq is not None and (ack.cseq.seq, ack.cseq.method) == (4711, "ACK")
    # and it matches the server transaction of the INVITE it acknowledges (§17.2.3)
    assert matching_key_for_request(ack) == matching_key_for_request(invite)


def test_build_ack_without_route() -> None:
    invite = outgoing()
    invite.headers.remove("Route")
    ack = build_ack(invite, reply(invite, 404, "Not Found"))
    assert "Route" not in ack.headers and ack.headers.keys()[:2] == ["via", "max-forwards"]
    invite.headers.remove("CSeq")
    with pytest.raises(ValueError, match="CSeq"):
        build_ack(invite, reply(outgoing(), 404))


def test_ict_timer_b_reports_a_synthesized_408() -> None:
    transaction, driver = ict()
    driver.advance(31.9)
    assert transaction.state is IC.CALLING and driver.events == []
    driver.advance(0.1)
    ended_once(transaction, driver)
    (response,) = driver.of(TransactionResponse)
    timeout = response.response
    assert (timeout.status_code, timeout.reason_phrase) == (408, "Request Timeout")
    invite = transaction.request
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        assert timeout.headers.get_all(name) == invite.headers.get_all(name)
    assert driver.of(TransactionFailed) == [
        TransactionFailed(transaction=transaction.id, cause="Request Timeout", status=408)]
    assert driver.transmitted == [invite]  # Timer B sends no ACK
    assert transaction.last_response is None  # nothing came from the network


@pytest.mark.parametrize("provisional", [False, True])
def test_ict_transport_error_reports_a_synthesized_503(provisional: bool) -> None:
    transaction, driver = ict()
    if provisional:
        driver(transaction.response_received, reply(transaction.request, 180, "Ringing"))
    driver(transaction.transport_error)
    ended_once(transaction, driver)
    assert statuses(driver)[-1] == 503
    assert driver.of(TransactionResponse)[-1].response.reason_phrase == "Service Unavailable"
    assert driver.of(TransactionFailed) == [
        TransactionFailed(transaction=transaction.id, cause="Connection Error", status=503)]


@pytest.mark.parametrize("provisional", [False, True])
def test_ict_abandon_counts_as_a_timeout(provisional: bool) -> None:
    transaction, driver = ict()
    if provisional:
        driver(transaction.response_received, reply(transaction.request, 180, "Ringing"))
    driver.advance(10)
    driver(transaction.abandon)
    ended_once(transaction, driver)
    assert statuses(driver)[-1] == 408
    assert [e.cause for e in driver.of(TransactionFailed)] == ["Request Timeout"]


def test_ict_before_start_takes_nothing() -> None:
    transaction = InviteClientTransaction(outgoing())
    driver = drive(transaction)
    for call, args in ((transaction.response_received, (reply(transaction.request, 200),)),
                       (transaction.transport_error, ()), (transaction.abandon, ()),
                       (transaction.timer_fired, ("B",))):
        assert driver(call, *args) == []
    assert transaction.state is IC.CREATED


# -- non-INVITE client transaction -------------------------------------------------------------


def test_nict_final_while_trying_ends_at_once() -> None:
    transaction, driver = nict("REGISTER")
    assert transaction.state is NC.TRYING and driver.timers == {"F": 32.0}
    assert driver.transmitted == [transaction.request]
    with pytest.raises(InvalidStateError):
        transaction.start(0.0)
    ok = reply(transaction.request, 200, "OK", received=True)
    driver(transaction.response_received, ok)
    ended_once(transaction, driver)  # Timer K is zero
    assert statuses(driver) == [200] and transaction.last_response is ok
    assert driver(transaction.response_received, ok) == []


def test_nict_provisional_keeps_timer_f() -> None:
    transaction, driver = nict("MESSAGE")
    driver.advance(5)
    driver(transaction.response_received, reply(transaction.request, 100, "Trying"))
    assert transaction.state is NC.PROCEEDING and driver.timers == {"F": 32.0}
    driver(transaction.response_received, reply(transaction.request, 182, "Queued"))
    assert transaction.state is NC.PROCEEDING
    driver(transaction.response_received, reply(transaction.request, 404, "Not Found"))
    ended_once(transaction, driver)
    assert statuses(driver) == [100, 182, 404]
    assert driver.transmitted == [transaction.request]  # no ACK for a non-INVITE


@pytest.mark.parametrize("provisional", [False, True])
def test_nict_timer_f_reports_a_synthesized_408(provisional: bool) -> None:
    transaction, driver = nict()
    if provisional:
        driver(transaction.response_received, reply(transaction.request, 100, "Trying"))
    driver.advance(32)
    ended_once(transaction, driver)
    assert statuses(driver)[-1] == 408
    assert driver.of(TransactionFailed) == [
        TransactionFailed(transaction=transaction.id, cause="Request Timeout", status=408)]


@pytest.mark.parametrize("provisional", [False, True])
def test_nict_transport_error(provisional: bool) -> None:
    transaction, driver = nict("BYE")
    if provisional:
        driver(transaction.response_received, reply(transaction.request, 100, "Trying"))
    driver(transaction.transport_error)
    ended_once(transaction, driver)
    assert statuses(driver)[-1] == 503
    assert [e.cause for e in driver.of(TransactionFailed)] == ["Connection Error"]


# -- INVITE server transaction -----------------------------------------------------------------


def test_ist_is_created_proceeding_and_sends_100_trying() -> None:
    transaction, driver = ist()
    invite = transaction.request
    assert transaction.state is IS.PROCEEDING and driver.timers == {}
    assert driver.of(RequestReceived) == [RequestReceived(transaction=transaction.id,
                                                          request=invite)]
    (trying,) = driver.transmitted
    assert isinstance(trying, Response) and (trying.status_code, trying.reason_phrase) == (
        100, "Trying")
    for name in ("Via", "From", "To", "Call-ID", "CSeq", "Timestamp"):
        assert trying.headers.get_all(name) == invite.headers.get_all(name)
    assert trying.to is not None and trying.to.tag is None
    assert transaction.last_response is trying
    driver(transaction.request_received, invite)  # a retransmission gets the 100 again
    assert driver.transmitted == [trying, trying]
    assert len(driver.of(RequestReceived)) == 1  # and never reaches the TU


def test_ist_without_100_trying() -> None:
    transaction, driver = ist(trying=False)
    assert driver.transmitted == [] and len(driver.of(RequestReceived)) == 1
    driver(transaction.request_received, transaction.request)
    assert driver.transmitted == []  # nothing to re-send yet


def test_ist_2xx_accepted_then_timer_l() -> None:
    transaction, driver = ist()
    invite = transaction.request
    ringing, ok = reply(invite, 180, "Ringing"), reply(invite, 200, "OK")
    driver(transaction.respond, ringing)
    assert transaction.state is IS.PROCEEDING and driver.transmitted[-1] is ringing
    driver(transaction.request_received, invite)
    assert driver.transmitted[-1] is ringing  # the latest provisional
    driver.advance(2)
    driver(transaction.respond, ok)
    assert transaction.state is IS.ACCEPTED and driver.timers == {"L": 34.0}
    assert driver.transmitted[-1] is ok
    sent = len(driver.transmitted)
    # RFC 6026 §7.1: retransmitted INVITEs are absorbed; the TU retransmits its 2xx itself.
    assert driver(transaction.request_received, invite) == []
    driver.advance(0.5)
    driver(transaction.respond, ok)
    assert driver.transmitted[sent:] == [ok]
    assert transaction.last_response is None  # accepted: it keeps nothing, the TU has the 2xx
    # The ACK of a 2xx is not the transaction's: the caller passes it to the dialog layer.
    ack = build_ack(invite, ok)
    assert transaction.ack_received(ack, driver.now) is False
    assert driver.run() == [] and driver.of(AckReceived) == []
    assert transaction.state is IS.ACCEPTED
    for wrong in (reply(invite, 486, "Busy Here"), reply(invite, 183, "Session Progress")):
        with pytest.raises(InvalidStateError, match="while accepted"):
            transaction.respond(wrong, driver.now)
    assert transaction.state is IS.ACCEPTED and driver.run() == []
    driver.advance(32)
    ended_once(transaction, driver)
    assert driver.of(TransactionFailed) == []


def test_ist_non_2xx_then_ack() -> None:
    transaction, driver = ist()
    invite = transaction.request
    busy = reply(invite, 486, "Busy Here")
    driver.advance(1)
    driver(transaction.respond, busy)
    assert transaction.state is IS.COMPLETED and driver.timers == {"H": 33.0}
    assert transaction.last_response is busy
    driver(transaction.request_received, invite)  # retransmitted INVITE: the final again
    assert driver.transmitted[-2:] == [busy, busy]
    for second in (reply(invite, 500, "Server Internal Error"), reply(invite, 200, "OK"),
                   reply(invite, 180, "Ringing")):
        with pytest.raises(InvalidStateError, match="while completed"):
            transaction.respond(second, driver.now)
    assert transaction.state is IS.COMPLETED and driver.run() == []
    ack = build_ack(invite, busy)
    assert transaction.ack_received(ack, driver.now) is True
    driver.run()
    # Timer I is zero: Confirmed lasts no time.
    ended_once(transaction, driver)
    assert driver.of(AckReceived) == [AckReceived(transaction=transaction.id, request=ack)]
    assert CancelTimer("H") in driver.log
    assert driver.of(TransactionFailed) == []


def test_ist_timer_h_without_ack() -> None:
    transaction, driver = ist()
    driver(transaction.respond, reply(transaction.request, 404, "Not Found"))
    driver.advance(32)
    ended_once(transaction, driver)
    assert driver.of(TransactionFailed) == [
        TransactionFailed(transaction=transaction.id, cause="No ACK", status=408)]


def test_ist_ack_before_any_final_is_ignored() -> None:
    transaction, driver = ist()
    ack = build_ack(transaction.request, reply(transaction.request, 486))
    assert transaction.ack_received(ack, 0.0) is False
    assert driver.run() == [] and transaction.state is IS.PROCEEDING


@pytest.mark.parametrize("where", ["proceeding", "completed", "accepted"])
def test_ist_transport_error(where: str) -> None:
    transaction, driver = ist()
    status = {"proceeding": 180, "completed": 603, "accepted": 200}[where]
    driver(transaction.respond, reply(transaction.request, status))
    assert transaction.state.value == where
    driver(transaction.transport_error)
    ended_once(transaction, driver)
    assert driver.of(TransactionFailed) == [
        TransactionFailed(transaction=transaction.id, cause="Connection Error", status=503)]


# -- non-INVITE server transaction -------------------------------------------------------------


def test_nist_trying_proceeding_then_final() -> None:
    transaction, driver = nist("MESSAGE")
    request = transaction.request
    assert transaction.state is NS.TRYING and driver.transmitted == [] and driver.timers == {}
    assert driver.of(RequestReceived) == [RequestReceived(transaction=transaction.id,
                                                          request=request)]
    assert driver(transaction.request_received, request) == []  # discarded in Trying
    trying, queued = reply(request, 100, "Trying"), reply(request, 182, "Queued")
    driver(transaction.respond, trying)
    assert transaction.state is NS.PROCEEDING and driver.transmitted == [trying]
    driver(transaction.request_received, request)
    assert driver.transmitted == [trying, trying]
    driver(transaction.respond, queued)
    driver(transaction.request_received, request)
    assert driver.transmitted[-2:] == [queued, queued]
    ok = reply(request, 202, "Accepted")
    driver(transaction.respond, ok)
    ended_once(transaction, driver)  # Timer J is zero
    assert driver.transmitted[-1] is ok and transaction.last_response is ok
    # A second final response finds the transaction gone: ignored, like everything else.
    transaction.respond(reply(request, 500), driver.now)
    assert driver.run() == []


def test_nist_final_while_trying() -> None:
    transaction, driver = nist("OPTIONS")
    ok = reply(transaction.request, 200, "OK")
    driver(transaction.respond, ok)
    ended_once(transaction, driver)
    assert driver.transmitted == [ok]


@pytest.mark.parametrize("provisional", [False, True])
def test_nist_transport_error(provisional: bool) -> None:
    transaction, driver = nist("BYE")
    if provisional:
        driver(transaction.respond, reply(transaction.request, 100, "Trying"))
    driver(transaction.transport_error)
    ended_once(transaction, driver)
    assert [e.cause for e in driver.of(TransactionFailed)] == ["Connection Error"]


def test_nist_has_no_timer() -> None:
    transaction, driver = nist()
    for name in ("B", "F", "H", "J", "L", "M", "nonsense"):
        assert driver(transaction.timer_fired, name) == []
    assert transaction.state is NS.TRYING


# -- every machine, once it has ended ----------------------------------------------------------


def finished() -> Iterator[tuple[Transaction, Driver]]:
    transaction: Transaction
    transaction, driver = ict()
    driver(transaction.response_received, reply(transaction.request, 480))
    yield transaction, driver
    transaction, driver = ict()
    driver(transaction.response_received, reply(transaction.request, 200))
    driver.advance(32)
    yield transaction, driver
    transaction, driver = nict()
    driver.advance(32)
    yield transaction, driver
    transaction, driver = ist()
    driver(transaction.respond, reply(transaction.request, 200))
    driver.advance(32)
    yield transaction, driver
    transaction, driver = ist()
    driver(transaction.respond, reply(transaction.request, 486))
    transaction.ack_received(build_ack(transaction.request, reply(transaction.request, 486)), 0)
    driver.run()
    yield transaction, driver
    transaction, driver = nist()
    driver(transaction.transport_error)
    yield transaction, driver


def test_a_terminated_transaction_ignores_everything() -> None:
    for transaction, driver in finished():
        ended_once(transaction, driver)
        request = transaction.request
        events, sent = len(driver.events), len(driver.transmitted)
        for name in ("B", "F", "H", "L", "M"):
            assert driver(transaction.timer_fired, name) == []
        assert driver(transaction.transport_error) == []
        if isinstance(transaction, ClientTransaction):
            assert driver(transaction.start) == []
            for status in (100, 180, 200, 302, 486, 503, 699):
                assert driver(transaction.response_received, reply(request, status)) == []
        if isinstance(transaction, InviteClientTransaction):
            assert driver(transaction.abandon) == []
        if isinstance(transaction, ServerTransaction):
            assert driver(transaction.request_received, request) == []
            for status in (100, 180, 200, 302, 486, 503, 699):
                assert driver(transaction.respond, reply(request, status)) == []
        if isinstance(transaction, InviteServerTransaction):
            ack = build_ack(request, reply(request, 486))
            assert transaction.ack_received(ack, driver.now) is False
        driver.advance(10_000)
        assert driver.run() == []
        assert transaction.terminated and driver.timers == {}
        assert (len(driver.events), len(driver.transmitted)) == (events, sent)


# -- construction, ids and logging -------------------------------------------------------------


def test_constructors_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="INVITE client"):
        InviteClientTransaction(outgoing("OPTIONS"))
    with pytest.raises(ValueError, match="non-INVITE client"):
        NonInviteClientTransaction(outgoing("INVITE"))
    with pytest.raises(ValueError, match="INVITE server"):
        InviteServerTransaction(incoming("BYE"))
    with pytest.raises(ValueError, match="non-INVITE server"):
        NonInviteServerTransaction(incoming("INVITE"))
    with pytest.raises(ValueError, match="non-INVITE server"):
        NonInviteServerTransaction(incoming("ACK"))
    with pytest.raises(ValueError, match="t1"):
        InviteClientTransaction(outgoing(), t1=0)
    no_branch = outgoing("OPTIONS")
    no_branch.headers.set("Via", "SIP/2.0/WSS df7jal23ls0d.invalid;rport")
    with pytest.raises(ValueError, match="branch"):
        NonInviteClientTransaction(no_branch)


def test_ids() -> None:
    branch = new_branch()
    assert InviteClientTransaction(outgoing(branch=branch)).id == f"ict:{branch}:INVITE"
    cancel = NonInviteClientTransaction(outgoing("CANCEL", branch=branch))
    assert (cancel.id, cancel.kind) == (f"nict:{branch}:CANCEL", "nict")
    server = InviteServerTransaction(incoming(branch="z9hG4bKx1"))
    assert server.id == "ist:z9hG4bKx1:edge.example.com:443:INVITE"
    assert NonInviteServerTransaction(incoming("BYE")).id.startswith("nist:z9hG4bK")
    old = NonInviteServerTransaction(incoming("BYE", branch="1234"))  # RFC 2543: no cookie
    assert re.fullmatch(r"nist:[0-9a-f]{16}::BYE", old.id)
    assert InviteServerTransaction(incoming(), id="mine").id == "mine"
    assert NonInviteClientTransaction(outgoing("BYE"), id="t-7").id == "t-7"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def transition(self, **kw: Any) -> None:
        self.lines.append(kw)


def test_every_transition_is_logged_with_the_transaction_id() -> None:
    log = Recorder()
    transaction = InviteClientTransaction(outgoing(), id="t1", log=log)
    transaction.start(0.0)
    transaction.response_received(reply(transaction.request, 180), 0.0)
    assert log.lines == [
        {"machine": "ict", "id": "t1", "source": "CREATED", "trigger": "start",
         "dest": "CALLING"},
        {"machine": "ict", "id": "t1", "source": "CALLING", "trigger": "recv_1xx",
         "dest": "PROCEEDING"},
    ]


def test_timers_are_effects_with_absolute_deadlines() -> None:
    transaction = NonInviteClientTransaction(outgoing("OPTIONS"), t1=0.25)
    transaction.start(100.0)
    assert transaction.take_effects() == [Transmit(transaction.request), StartTimer("F", 116.0)]
    assert transaction.armed == {"F"}
    transaction.timer_fired("F", 116.0)
    assert transaction.armed == frozenset() and transaction.terminated


# -- matching ----------------------------------------------------------------------------------


def test_new_branch() -> None:
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000
    for branch in branches:
        assert branch.startswith(MAGIC_COOKIE)
        assert re.fullmatch(r"[0-9a-f]{16,}", branch[len(MAGIC_COOKIE):])  # ≥ 64 bits


def test_matching_key_for_response() -> None:
    invite = outgoing(branch="z9hG4bKa1")
    assert matching_key_for_response(reply(invite, 180, received=True)) == ("z9hG4bKa1",
                                                                             "INVITE")
    # The 200 for a CANCEL shares the INVITE's branch; the CSeq method tells them apart.
    assert matching_key_for_response(reply(invite, 200, method="CANCEL")) == ("z9hG4bKa1",
                                                                               "CANCEL")
    no_via = parse("SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(no_via, Response) and matching_key_for_response(no_via) is None
    no_branch = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS h.invalid\r\nCSeq: 1 INVITE\r\n"
                      "Content-Length: 0\r\n\r\n")
    assert isinstance(no_branch, Response) and matching_key_for_response(no_branch) is None
    no_cseq = parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bKq\r\n"
                    "Content-Length: 0\r\n\r\n")
    assert isinstance(no_cseq, Response) and matching_key_for_response(no_cseq) is None


def test_matching_key_for_request() -> None:
    invite = incoming(branch="z9hG4bK4b43c2ff8.1")
    key = ("z9hG4bK4b43c2ff8.1", "edge.example.com:443", "INVITE")
    assert matching_key_for_request(invite) == key
    # The ACK of a non-2xx carries the INVITE's branch, and maps to the INVITE.
    assert matching_key_for_request(build_ack(invite, reply(invite, 486))) == key
    # A CANCEL has the INVITE's branch but its own transaction.
    assert matching_key_for_request(incoming("CANCEL", branch="z9hG4bK4b43c2ff8.1")) == (
        key[0], key[1], "CANCEL")
    # Host names compare without regard to case; another sent-by is another transaction.
    assert matching_key_for_request(incoming(host="EDGE.Example.COM")) == key
    assert matching_key_for_request(incoming(host="edge2.example.com")) != key
    # Without the magic cookie (RFC 2543) or without a Via, nothing matches.
    assert matching_key_for_request(incoming(branch="4b43c2ff8.1")) is None
    bare = incoming("OPTIONS")
    bare.headers.remove("Via")
    assert matching_key_for_request(bare) is None
    bad = incoming("OPTIONS")
    bad.headers.set("Via", "SIP/2.0/WSS bad_host!;branch=z9hG4bKz")
    assert matching_key_for_request(bad) is None


def test_transaction_table() -> None:
    table = TransactionTable()
    invite = outgoing()
    client = InviteClientTransaction(invite)
    cancel = NonInviteClientTransaction(outgoing("CANCEL", branch=invite.top_via.branch))  # type: ignore[union-attr]
    server = InviteServerTransaction(incoming())
    server_cancel = NonInviteServerTransaction(incoming("CANCEL"))
    bye = NonInviteServerTransaction(incoming("BYE", branch="1234"))  # no key: by id only
    for transaction in (client, cancel, server, server_cancel, bye):
        table.add(transaction)
    assert len(table) == 5 and server.id in table and "nope" not in table
    everything = [client, cancel, server, server_cancel, bye]
    assert list(table) == table.keys() == [t.id for t in everything]
    assert table.values() == everything
    assert table.items() == [(t.id, t) for t in everything]
    assert table.get(client.id) is client and table[client.id] is client
    assert table.get("nope") is None
    with pytest.raises(KeyError):
        table["nope"]
    with pytest.raises(ValueError, match="exists already"):
        table.add(client)
    with pytest.raises(ValueError, match="matching"):
        table.add(InviteServerTransaction(incoming(), id="other"))

    assert table.find_client(reply(invite, 180, received=True)) is client
    assert table.find_client(reply(invite, 200, method="CANCEL")) is cancel
    assert table.find_client(reply(outgoing(), 200)) is None
    assert table.find_server(incoming()) is server  # a retransmission
    assert table.find_server(build_ack(server.request, reply(server.request, 486))) is server
    assert table.find_server(incoming("ACK", branch="z9hG4bKnew")) is None  # a 2xx's ACK
    assert table.find_server(incoming("CANCEL")) is server_cancel
    assert table.find_cancelled(incoming("CANCEL")) is server
    assert table.find_cancelled(incoming("CANCEL", branch="z9hG4bKother")) is None
    assert table.find_cancelled(incoming("CANCEL", branch="nocookie")) is None
    assert table.find_server(incoming("BYE", branch="1234")) is None

    assert table.remove(server.id) is server
    assert table.find_server(incoming()) is None and table.find_cancelled(incoming("CANCEL")) \
        is None
    assert table.remove(server.id) is None
    assert table.remove(bye.id) is bye
    assert table.remove(client.id) is client and table.find_client(reply(invite, 180)) is None
    assert len(table) == 2
    table.add(InviteServerTransaction(incoming(), id="again"))  # the key is free again
    assert len(table) == 3


def test_merged_requests() -> None:
    # RFC 3261 §8.2.2.2: the same request, forked upstream, reaches us by a second path.
    table = TransactionTable()
    first = InviteServerTransaction(incoming(branch="z9hG4bKpath1"))
    table.add(first)
    assert not table.is_merged(incoming(branch="z9hG4bKpath1"))  # a retransmission
    assert table.is_merged(incoming(branch="z9hG4bKpath2"))  # the same, another path
    assert table.is_merged(incoming(branch="z9hG4bKpath1", host="edge2.example.com"))
    assert not table.is_merged(incoming(branch="z9hG4bKpath2", cseq=102))
    assert not table.is_merged(incoming("CANCEL", branch="z9hG4bKpath2"))
    in_dialog = incoming(branch="z9hG4bKpath2")
    in_dialog.headers.set("To", "<sip:alice@example.com>;tag=abc")
    assert not table.is_merged(in_dialog)  # only requests without a To tag
    other_caller = incoming(branch="z9hG4bKpath2")
    other_caller.headers.set("From", "<sip:carol@example.net>;tag=other")
    assert not table.is_merged(other_caller)
    broken = incoming(branch="z9hG4bKpath2")
    broken.headers.set("CSeq", "not a cseq")
    assert not table.is_merged(broken)
    table.remove(first.id)
    assert not table.is_merged(incoming(branch="z9hG4bKpath2"))


# -- coverage of the tables (keep this test last) ----------------------------------------------


def declared(name: str) -> set[tuple[str, str, str, str]]:
    """Every (machine, source, trigger, dest) the table of machine ``name`` declares."""
    out = set()
    for row in MACHINES[name].table:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        for source in sources:
            dest = row["dest"] if row["dest"] is not None else source
            out.add((name, source.name, row["trigger"], dest.name))
    return out


def test_every_declared_transition_was_exercised(request: pytest.FixtureRequest) -> None:
    module = request.node.module
    wanted = {name for name in vars(module) if name.startswith("test_")}
    selected = {getattr(item, "originalname", item.name) for item in request.session.items
                if getattr(item, "module", None) is module}
    if not wanted <= selected:
        pytest.skip("only meaningful when the whole module runs")
    for name in ("ict", "nict", "ist", "nist"):
        missing = declared(name) - SEEN
        assert not missing, f"{name}: no test takes {sorted(missing)}"
