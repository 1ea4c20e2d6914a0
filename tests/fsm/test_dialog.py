"""The dialog: identity, route set, in-dialog requests and their checks (RFC 3261 §12)."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from sipfsm.fsm.dialog import Dialog, DialogState
from sipfsm.sip import Request, Response, parse

INVITE = parse(
    "INVITE sip:bob@x.test SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bK1\r\n"
    'From: "Alice" <sip:alice@x.test>;tag=a1\r\nTo: <sip:bob@x.test>\r\nCall-ID: c1\r\n'
    "CSeq: 10 INVITE\r\nContact: <sip:al@a.invalid;transport=ws>\r\n"
    "Record-Route: <sip:p1.test;lr>, <sip:p2.test;lr>\r\n\r\n")
assert isinstance(INVITE, Request)
INVITE_REQUEST: Request = INVITE


def response(status: int) -> Response:
    message = parse(
        f"SIP/2.0 {status} X\r\nFrom: \"Alice\" <sip:alice@x.test>;tag=a1\r\n"
        "To: <sip:bob@x.test>;tag=b1\r\nCall-ID: c1\r\nCSeq: 10 INVITE\r\n"
        "Contact: <sip:bb@b.invalid;transport=ws>\r\n"
        "Record-Route: <sip:p1.test;lr>, <sip:p2.test;lr>\r\n\r\n")
    assert isinstance(message, Response)
    return message


def test_caller_side() -> None:
    early = Dialog.as_uac(INVITE_REQUEST, response(180))
    assert early.state is DialogState.EARLY and early.key == ("c1", "a1", "b1")
    early.confirm()
    assert early.state is DialogState.CONFIRMED
    dialog = Dialog.as_uac(INVITE_REQUEST, response(200))
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.route_set == ["<sip:p2.test;lr>", "<sip:p1.test;lr>"]  # reversed (§12.1.2)
    bye = dialog.request("BYE", via="SIP/2.0/WS a.invalid;branch=z9hG4bK2")
    assert str(bye.uri) == "sip:bb@b.invalid;transport=ws"
    assert [str(r.uri) for r in bye.route] == ["sip:p2.test;lr", "sip:p1.test;lr"]
    assert bye.headers.get("From") == '"Alice" <sip:alice@x.test>;tag=a1'
    assert bye.headers.get("To") == "<sip:bob@x.test>;tag=b1"
    assert bye.cseq is not None and (bye.cseq.seq, bye.cseq.method) == (11, "BYE")
    ack = dialog.request("ACK", via="SIP/2.0/WS a.invalid;branch=z9hG4bK3", cseq=10)
    assert ack.cseq is not None and ack.cseq.seq == 10
    dialog.terminate()
    assert dialog.state is DialogState.TERMINATED


def test_callee_side_and_incoming_checks() -> None:
    dialog = Dialog.as_uas(INVITE_REQUEST, "b1")
    assert dialog.key == ("c1", "b1", "a1") and dialog.state is DialogState.EARLY
    assert dialog.route_set == ["<sip:p1.test;lr>", "<sip:p2.test;lr>"]  # as received
    assert str(dialog.remote_target) == "sip:al@a.invalid;transport=ws"

    def incoming(method: str, cseq: int, contact: str = "") -> Request:
        message = parse(f"{method} sip:bb@b.invalid SIP/2.0\r\nCSeq: {cseq} {method}\r\n"
                        f"{contact}\r\n")
        assert isinstance(message, Request)
        return message

    assert dialog.received(incoming("BYE", 9)) == 500  # lower than the INVITE's 10
    assert dialog.received(incoming("ACK", 10)) is None
    reinvite = incoming("INVITE", 11, "Contact: <sip:new@a.invalid>\r\n")
    assert dialog.received(reinvite) is None
    assert str(dialog.remote_target) == "sip:al@a.invalid;transport=ws"  # not before its 2xx
    dialog.refresh_target(reinvite)  # accepted: a target refresh (RFC 6141 §3.3)
    assert str(dialog.remote_target) == "sip:new@a.invalid"
    dialog.refresh_target(incoming("INFO", 12, "Contact: <sip:other@a.invalid>\r\n"))
    assert str(dialog.remote_target) == "sip:new@a.invalid"  # INFO refreshes nothing
    dialog.terminate()
    assert dialog.received(incoming("BYE", 12)) == 481
