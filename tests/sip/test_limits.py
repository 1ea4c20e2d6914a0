"""The parser's limits (message size, header lines, line length) and the Limits record that
carries them from the UA to the parser and the WebSocket."""

from __future__ import annotations

import pytest

from sipfsm import ConfigurationError, ParseError
from sipfsm.config import Limits
from sipfsm.sip import Request, parse
from sipfsm.sip.message import MAX_HEADERS, MAX_LINE_LENGTH, MAX_MESSAGE_SIZE


def options(*extra: str, uri: str = "sip:alice@example.com", body: str = "") -> str:
    return (f"OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bKlim\r\n"
            "From: <sip:bob@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n"
            "Call-ID: limits\r\nCSeq: 1 OPTIONS\r\n"
            + "".join(f"{line}\r\n" for line in extra)
            + f"Content-Length: {len(body.encode())}\r\n\r\n{body}")


def test_the_defaults() -> None:
    assert (MAX_MESSAGE_SIZE, MAX_HEADERS, MAX_LINE_LENGTH) == (256 * 1024, 256, 8192)
    limits = Limits()
    assert limits.max_message_size == MAX_MESSAGE_SIZE and limits.max_frame_size == 1 << 20
    assert limits.parse_options() == {"max_size": MAX_MESSAGE_SIZE, "max_headers": MAX_HEADERS,
                                      "max_line_length": MAX_LINE_LENGTH}


def test_header_lines() -> None:
    # Six headers in options() itself: fill up to the limit exactly, then one more.
    at_limit = options(*["X-Pad: 1"] * (MAX_HEADERS - 6))
    assert isinstance(parse(at_limit), Request)
    with pytest.raises(ParseError, match=f"more than {MAX_HEADERS} header lines") as info:
        parse(options(*["X-Pad: 1"] * (MAX_HEADERS - 5)))
    assert info.value.status == 400
    assert isinstance(parse(options(*["X-Pad: 1"] * 2000), max_headers=3000), Request)
    with pytest.raises(ParseError, match="more than 7 header lines"):
        parse(options("X-Pad: 1", "X-Pad: 2"), max_headers=7)


def test_continuation_lines_count() -> None:
    folded = "X-Folded: a" + "\r\n b" * 10
    assert isinstance(parse(options(folded), max_headers=17), Request)
    with pytest.raises(ParseError, match="header lines"):
        parse(options(folded), max_headers=16)


@pytest.mark.parametrize("where", ["header", "start line"])
def test_line_length(where: str) -> None:
    def message(length: int) -> str:
        if where == "header":
            return options("X-Long: " + "a" * (length - len("X-Long: ")))
        uri = "sip:alice@example.com;x="
        return options(uri=uri + "a" * (length - len(f"OPTIONS {uri} SIP/2.0")))

    assert isinstance(parse(message(MAX_LINE_LENGTH)), Request)
    with pytest.raises(ParseError, match="longer than 8192 characters") as info:
        parse(message(MAX_LINE_LENGTH + 1))
    assert info.value.status == 400
    assert isinstance(parse(message(MAX_LINE_LENGTH + 1), max_line_length=10**5), Request)


def test_a_folded_line_counts_once_unfolded() -> None:
    # Found by benchmarks/fuzz_parser.py: short physical lines that unfold into one longer than
    # the limit parsed, but the message they serialise to (one line per header) did not.
    folded = "X-Folded: " + "\r\n ".join(["a" * 4000] * 3)
    with pytest.raises(ParseError, match="folded line longer than 8192") as info:
        parse(options(folded))
    assert info.value.status == 400
    message = parse(options(folded), max_line_length=20000)
    assert isinstance(message, Request)
    assert parse(bytes(message), max_line_length=20000) == message


def test_a_long_body_is_not_a_long_line() -> None:
    assert isinstance(parse(options(body="x" * (MAX_LINE_LENGTH * 4))), Request)


def test_message_size() -> None:
    body = "x" * (MAX_MESSAGE_SIZE - len(options(body="x" * 100000)) + 100000)
    assert len(options(body=body).encode()) == MAX_MESSAGE_SIZE
    assert isinstance(parse(options(body=body)), Request)
    with pytest.raises(ParseError, match="larger than") as info:
        parse(options(body=body + "x"))
    assert info.value.status == 413


@pytest.mark.parametrize(("given", "message"), [
    ({"max_headers": 0}, "must be at least 1"),
    ({"max_line_length": -5}, "must be at least 1"),
    ({"max_message_size": "1024"}, "must be an integer"),
    ({"max_frame_size": 1.5}, "must be an integer"),
    ({"max_headers": True}, "must be an integer"),
    ({"max_message_size": 2048, "max_frame_size": 1024}, "at least max_message_size"),
])
def test_limits_are_checked(given: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        Limits(**given)  # type: ignore[arg-type]
    assert info.value.parameter.startswith("limits.")


def test_limits_are_frozen_and_keyword_only() -> None:
    limits = Limits(max_headers=10, max_message_size=100, max_frame_size=100)
    with pytest.raises(AttributeError):
        limits.max_headers = 11  # type: ignore[misc]
    with pytest.raises(TypeError):
        Limits(10)  # type: ignore[call-arg]
