"""Framing, start lines, the Headers container and every typed header."""

from __future__ import annotations

import pytest

from sipfsm import ParseError
from sipfsm.sip import NameAddr, Request, Response, parse, parse_uri
from sipfsm.sip.headers import header_key

INVITE = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/WSS a1.invalid;branch=z9hG4bK776asdhds;rport\r\n"
    "v: SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bKx;received=192.0.2.1;ttl=16\r\n"
    "Max-Forwards: 70\r\n"
    'f: "Alice \\"A\\"" <sip:alice@example.com>;tag=1928301774\r\n'
    "t: sip:bob@example.com\r\n"
    "i: a84b4c76e66710@pc33.atlanta.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    'm: <sip:alice@pc33.example.com;transport=ws>;+sip.instance="<urn:uuid:1>";expires=60;q=0.5\r\n'
    "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    "Route: <sip:p3.example.com;lr>\r\n"
    "k: 100rel, replaces\r\n"
    "Require: 100rel\r\n"
    "Allow: INVITE, ACK, BYE\r\n"
    "Replaces: 425928@bobster.example.org;to-tag=7743;from-tag=6472;early-only\r\n"
    "Reason: SIP;cause=200;text=\"Call completed elsewhere\", Q.850;cause=16\r\n"
    "c: application/sdp;charset=utf-8\r\n"
    "l: 4\r\n"
    "\r\n"
    "v=0\n"
)


def test_typed_headers() -> None:
    msg = parse(INVITE)
    assert isinstance(msg, Request)
    assert (msg.method, str(msg.uri)) == ("INVITE", "sip:bob@example.com")
    top, second = msg.via
    assert (top.transport, top.host, top.branch, top.rport) == ("WSS", "a1.invalid",
                                                               "z9hG4bK776asdhds", True)
    assert (second.host, second.port, second.received, second.ttl) == ("[2001:db8::9]", 5061,
                                                                      "192.0.2.1", 16)
    assert msg.top_via == top
    assert msg.max_forwards == 70
    assert msg.from_ is not None and msg.from_.display_name == 'Alice "A"'
    assert msg.from_.tag == "1928301774"
    assert msg.to is not None and msg.to.tag is None and msg.to.uri.user == "bob"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert msg.cseq is not None and (msg.cseq.seq, msg.cseq.method) == (314159, "INVITE")
    (contact,) = msg.contact
    assert contact.param("+sip.instance") == "<urn:uuid:1>"
    assert (contact.expires, contact.q) == (60, 0.5)
    assert [r.uri.host for r in msg.route] == ["p1.example.com", "p2.example.com", "p3.example.com"]
    assert msg.supported == ("100rel", "replaces") and msg.require == ("100rel",)
    assert msg.allow == ("INVITE", "ACK", "BYE")
    assert msg.replaces is not None
    assert (msg.replaces.call_id, msg.replaces.to_tag, msg.replaces.from_tag,
            msg.replaces.early_only) == ("425928@bobster.example.org", "7743", "6472", True)
    sip_reason, q850 = msg.reason
    assert (sip_reason.protocol, sip_reason.cause, sip_reason.text) == (
        "SIP", 200, "Call completed elsewhere")
    assert (q850.protocol, q850.cause) == ("Q.850", 16)
    assert msg.content_type is not None and msg.content_type.mime == "application/sdp"
    assert msg.content_length == 4 and msg.body == b"v=0\n"
    assert msg.record_route == () and msg.expires is None and msg.rack is None


def test_more_typed_headers() -> None:
    msg = parse(
        "NOTIFY sip:a@b SIP/2.0\r\nVia: SIP/2.0/WS h.invalid;branch=z9hG4bK1\r\n"
        "CSeq: 2 NOTIFY\r\no: refer;id=93809824\r\n"
        "Subscription-State: terminated;reason=noresource;retry-after=5\r\n"
        "RAck: 776656 1 INVITE\r\nRSeq: 988789\r\nMin-Expires: 3600\r\nExpires: 0\r\n"
        "r: <sip:carol@example.com?Replaces=abc%40x%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n"
        "b: <sip:bob@example.com>\r\nContact: *\r\nUser-Agent: sipfsm/1 (test)\r\n\r\n")
    assert msg.event is not None and (msg.event.package, msg.event.id) == ("refer", "93809824")
    state = msg.subscription_state
    assert state is not None and (state.state, state.reason, state.retry_after) == (
        "terminated", "noresource", 5)
    assert msg.rack is not None and (msg.rack.rseq, msg.rack.cseq, msg.rack.method) == (
        776656, 1, "INVITE")
    assert (msg.rseq, msg.min_expires, msg.expires) == (988789, 3600, 0)
    assert msg.refer_to is not None
    assert msg.refer_to.uri.headers == {"Replaces": "abc@x;to-tag=1;from-tag=2"}
    assert msg.referred_by is not None and msg.referred_by.uri.user == "bob"
    assert msg.contact_is_star and msg.contact == ()
    assert msg.user_agent == "sipfsm/1 (test)"


@pytest.mark.parametrize(("header", "value"), [
    ("Via", "SIP/2.0/UDP host;branch"),  # fine: a valueless param parses
    ("From", "<sip:a@b"),
    ("From", '"unterminated <sip:a@b>'),
    ("To", "sip:a@b?x=y"),
    ("To", "<sip:a@b>, <sip:c@d>"),
    ("Contact", "<sip:a@b>;;"),
    ("Contact", "<sip:a@b> junk"),
    ("Max-Forwards", "256"),
    ("Max-Forwards", "-1"),
    ("Expires", "soon"),
    ("RSeq", "0"),
    ("RAck", "1 2"),
    ("Require", "100rel,,x"),
    ("Content-Type", "application"),
    ("Event", ";id=1"),
    ("Replaces", "abc;to-tag=1"),
    ("Call-ID", "has space"),
    ("WWW-Authenticate", 'Digest realm="x"'),
    ("Authorization", 'Digest username="a"'),
    ("User-Agent", "bad\x01char"),
])
def test_malformed_header_raises_on_read(header: str, value: str) -> None:
    msg = parse(f"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n{header}: {value}\r\n\r\n")
    key = header_key(header)
    if header == "Via":
        assert msg.via[0].params == {"branch": None}
        return
    with pytest.raises(ParseError) as info:
        msg.headers.typed(key)
    assert info.value.header is not None and info.value.status == 400
    with pytest.raises(ParseError):
        msg.parse_all()


@pytest.mark.parametrize(("data", "status", "reason"), [
    (b"", 400, "no empty line"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n", 400, "no empty line"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\nVia: x\r\n\r\n", 400, "bare"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\rX: y\r\n\r\n", 400, "bare"),
    (b"OPTIONS sip:a@b SIP/2.0\r\n CSeq: 1 OPTIONS\r\n\r\n", 400, "continuation"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", 400, "header name"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nVia\r\n\r\n", 400, "Via"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nX-\xff: y\r\n\r\n", 400, "UnicodeDecodeError"),
    (b"OPTIONS sip:a@b SIP/3.0\r\n\r\n", 505, "version"),
    (b"OPTIONS sip:a@b HTTP/1.1\r\n\r\n", 400, "version"),
    (b"OPT(ONS sip:a@b SIP/2.0\r\n\r\n", 400, "method"),
    (b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n", 400, "request line"),
    (b"SIP/2.0 99 Too Small\r\n\r\n", 400, "status code"),
    (b"SIP/2.0 700 Too Big\r\n\r\n", 400, "status code"),
    (b"SIP/2.0 2000 OK\r\n\r\n", 400, "status code"),
    (b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nshort", 400, "Content-Length"),
    (b"SIP/2.0 200 OK\r\nContent-Length: 1x\r\n\r\n", 400, "Content-Length"),
    (b"SIP/2.0 200 OK\r\nCSeq: x OPTIONS\r\n\r\n", 400, "CSeq"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n", 400, "CSeq method"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP\r\n\r\n", 400, "Via"),
])
def test_refused(data: bytes, status: int, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.status == status
    assert reason.lower() in str(info.value).lower()


def test_size_limit() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n" + b"x" * 100
    with pytest.raises(ParseError) as info:
        parse(data, max_size=64)
    assert info.value.status == 413
    assert parse(data).body == b"x" * 100  # no Content-Length: the frame ends the body


def test_leading_crlf_and_response_without_reason() -> None:
    msg = parse(b"\r\n\r\nSIP/2.0 180\r\nCSeq: 1 INVITE\r\n\r\n")
    assert isinstance(msg, Response)
    assert (msg.status_code, msg.reason_phrase, msg.is_provisional) == (180, "", True)


def test_str_input_counts_octets() -> None:
    body = "héllo"
    msg = parse(f"MESSAGE sip:a@b SIP/2.0\r\nCSeq: 1 MESSAGE\r\nl: 6\r\n\r\n{body}")
    assert msg.body == body.encode() and msg.text == body


def test_headers_container() -> None:
    msg = parse(INVITE)
    headers = msg.headers
    assert headers.get("FROM") == headers.get("f") == headers.get("From")
    assert headers.get("X-Missing") is None and headers.get("X-Missing", "d") == "d"
    assert len(headers.get_all("route")) == 2 and headers.count("Via") == 2
    assert "call-id" in headers and "i" in headers and 3 not in headers
    names = [name for name, _ in headers]
    assert names[:3] == ["Via", "v", "Max-Forwards"]
    copy = headers.copy()
    copy.add("Via", "SIP/2.0/WS new.invalid;branch=z9hG4bKnew", first=True)
    assert copy.count("via") == 3 and headers.count("via") == 2
    assert copy != headers
    copy.set("Max-Forwards", "69")
    assert copy.keys().index("max-forwards") == headers.keys().index("max-forwards") + 1
    assert copy.remove("route") == 2 and "Route" not in copy
    with pytest.raises(ValueError, match="CR or LF"):
        copy.add("Subject", "a\r\nInjected: yes")
    with pytest.raises(ParseError):
        copy.add("Bad Name", "x")


def test_typed_cache_follows_mutation() -> None:
    msg = parse(INVITE)
    assert msg.max_forwards == 70
    msg.headers.set("Max-Forwards", "69")
    assert msg.max_forwards == 69
    msg.headers.remove("Max-Forwards")
    assert msg.max_forwards is None


def test_build_and_serialise() -> None:
    request = Request("MESSAGE", parse_uri("sip:bob@example.com"),
                      [("Via", "SIP/2.0/WSS x.invalid;branch=z9hG4bKabc"), ("CSeq", "1 MESSAGE"),
                       ("call-id", "c1"), ("from", "<sip:a@example.com>;tag=1"),
                       ("to", "<sip:bob@example.com>")])
    request.set_body("hello ✓", "text/plain;charset=utf-8")
    data = bytes(request)
    assert b"Call-ID: c1\r\n" in data and b"Content-Length: 9\r\n" in data
    assert data.endswith("\r\n\r\nhello ✓".encode())
    again = parse(data)
    assert again == request
    assert again.content_type is not None and again.content_type.params == {"charset": "utf-8"}
    assert "MESSAGE sip:bob@example.com" in repr(request)
    response = Response(200, "OK", request.headers.copy())
    assert parse(bytes(response)) == response and response.is_success
    with pytest.raises(ParseError):
        Response(99)
    with pytest.raises(ParseError):
        Request("BAD METHOD", "sip:a@b")


def test_name_addr_rendering() -> None:
    addr = NameAddr(parse_uri("sip:alice@example.com"), 'Al "the" Ice', {"tag": "x"})
    assert str(addr) == '"Al \\"the\\" Ice" <sip:alice@example.com>;tag=x'
    msg = parse(f"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nFrom: {addr}\r\n\r\n")
    assert msg.from_ == addr
    assert addr.with_params(tag="y").tag == "y"


def test_request_uri_is_checked_at_parse() -> None:
    for uri in ("sip:[zz]", "sip:a@b?x=y", "<sip:a@b>", "sip:a@b:70000"):
        with pytest.raises(ParseError):
            parse(f"OPTIONS {uri} SIP/2.0\r\n\r\n")
    assert parse("OPTIONS urn:service:sos SIP/2.0\r\n\r\n").uri.scheme == "urn"  # type: ignore[union-attr]
