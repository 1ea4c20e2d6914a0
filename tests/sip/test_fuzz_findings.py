"""Regressions found by benchmarks/fuzz_parser.py: each input once broke "a message or
ParseError, nothing else" (or made the gate raise instead of answering)."""

from __future__ import annotations

import pytest

from sipfsm import ParseError
from sipfsm.sip import Request, Response, check_request, check_response, parse, parse_uri
from sipfsm.sip.headers import bounded_int

# int() refuses more than 4300 digits with a ValueError (CPython's limit on str -> int).
HUGE = "1" * 5000


def request(*extra: str, method: str = "OPTIONS", uri: str = "sip:alice@example.com") -> str:
    return (f"{method} {uri} SIP/2.0\r\n"
            "Via: SIP/2.0/WS a.invalid;branch=z9hG4bKfuzz\r\n"
            "From: <sip:bob@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n"
            f"Call-ID: fuzz\r\nCSeq: 1 {method}\r\n"
            + "".join(f"{line}\r\n" for line in extra) + "Content-Length: 0\r\n\r\n")


def response(*extra: str) -> str:
    return ("SIP/2.0 200 OK\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bKfuzz\r\n"
            "From: <sip:bob@example.com>;tag=1\r\nTo: <sip:alice@example.com>;tag=2\r\n"
            "Call-ID: fuzz\r\nCSeq: 1 REGISTER\r\n"
            + "".join(f"{line}\r\n" for line in extra) + "Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("line", [
    f"Expires: {HUGE}", f"Max-Forwards: {HUGE}", f"Min-Expires: {HUGE}", f"RSeq: {HUGE}",
    f"RAck: {HUGE} 1 INVITE", f"RAck: 1 {HUGE} INVITE",
], ids=lambda line: line.split(":")[0])
def test_a_huge_number_is_a_parse_error_and_a_400(line: str) -> None:
    message = parse(request(line))
    assert isinstance(message, Request)
    with pytest.raises(ParseError, match="exceeds"):
        message.parse_all()
    rejection = check_request(message)
    assert rejection is not None and rejection.status == 400


def test_a_huge_via_rport_or_cseq() -> None:
    message = parse(request().replace("z9hG4bKfuzz", f"z9hG4bKfuzz;rport={HUGE}"))
    with pytest.raises(ParseError, match="exceeds"):
        message.parse_all()
    with pytest.raises(ParseError):
        parse(request().replace("CSeq: 1 OPTIONS", f"CSeq: {HUGE} OPTIONS"))
    with pytest.raises(ParseError):
        parse(request().replace("Content-Length: 0", f"Content-Length: {HUGE}"))


@pytest.mark.parametrize(("value", "expected"), [
    ("600", 600), ("0", 0), ("000600", 600), ("4294967295", 2**32 - 1), ("4294967296", None),
    (HUGE, None), ("0" * 5000 + "7", 7), ("-1", None), ("1e3", None),
], ids=lambda value: str(value)[:12])
def test_parameter_numbers_are_bounded(value: str, expected: int | None) -> None:
    # RFC 4475 §3.1.2.4: an overlarge expiry may be treated as absent.  One message per header:
    # two such numbers on one line would pass the line length limit.
    def read(line: str) -> Response:
        message = parse(response(line))
        assert isinstance(message, Response)
        message.parse_all()
        assert check_response(message) is None
        return message

    assert read(f"Contact: <sip:a@b.invalid>;expires={value}").contact[0].expires == expected
    state = read(f"Subscription-State: active;expires={value}").subscription_state
    assert state is not None and state.expires == expected
    state = read(f"Subscription-State: active;retry-after={value}").subscription_state
    assert state is not None and state.retry_after == expected
    assert read(f"Reason: SIP;cause={value}").reason[0].cause == expected
    assert bounded_int(value) == expected


def test_bounded_int_reads_ascii_digits_only() -> None:
    assert [bounded_int(text) for text in ("²", "١٢", "", None, " 1", "12", "99", "100")] == [
        None, None, None, None, None, 12, 99, 100]
    assert bounded_int("100", limit=99) is None


def test_an_ipv4_tail_of_an_ipv6_reference_with_a_huge_quad() -> None:
    with pytest.raises(ParseError, match="IPv6"):
        parse_uri(f"sip:[::ffff:1.2.3.{HUGE}]")
    message = parse(request(f"Route: <sip:[::ffff:1.2.3.{HUGE}];lr>"))
    assert isinstance(message, Request)
    with pytest.raises(ParseError):
        message.parse_all()
    assert check_request(message) is not None


def test_the_parser_caches_keep_no_long_strings() -> None:
    # Header names and Request-URIs seen are cached (bounded in count); long ones must not be,
    # or a peer's junk would stay pinned in memory (4096 names of 8 KiB each).
    from sipfsm.sip import headers, message

    name = "X-" + "n" * 5000
    uri = "sip:alice@example.com;x=" + "u" * 5000
    parsed = parse(request(f"{name}: 1", uri=uri))
    assert isinstance(parsed, Request) and parsed.headers.get(name) == "1"
    assert check_request(parsed) is None
    assert name not in headers._NAME_CACHE and name.lower() not in headers._NAME_CACHE
    assert uri not in message._VALID_SIP_RURIS
    assert all(len(key) <= 64 for key in headers._NAME_CACHE)
    assert all(len(key) <= 256 for key in message._VALID_SIP_RURIS)
