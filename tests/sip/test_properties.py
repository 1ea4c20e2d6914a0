"""Property tests of the grammar: any input gives a message or ParseError, nothing else; what we
write, we read back."""

from __future__ import annotations

from typing import Any

from corpus import entries, websocket_messages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipfsm import ParseError
from sipfsm.sip import URI, NameAddr, Request, Response, Via, check_request, check_response, parse
from sipfsm.sip.check import KNOWN_METHODS

SEEDS = [p.read_bytes() for p in websocket_messages()] + [
    e.data for e in entries("rfc4475") + entries("rfc5118")
] or [b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"]


def _exercise(data: bytes) -> None:
    """The invariant: a message or ParseError; and a message survives everything we do to it."""
    try:
        message = parse(data)
    except ParseError as exc:
        assert 400 <= exc.status <= 599 and exc.reason  # noqa: PT017
        return
    try:
        message.parse_all()
    except ParseError as exc:
        assert exc.status == 400  # noqa: PT017
    if isinstance(message, Request):
        rejection = check_request(message, allowed_methods=KNOWN_METHODS)
        assert rejection is None or 400 <= rejection.status <= 599
    else:
        assert check_response(message) is None or True  # a reason or None; it must not raise
    again = parse(bytes(message))
    assert again == message
    str(message)
    repr(message)


@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    _exercise(data)


@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    _exercise(text.encode("utf-8", "surrogatepass"))


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=20)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("duplicate-line"), st.integers(0, 10**6)),
    st.tuples(st.just("insert-special"), st.integers(0, 10**6),
              st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\n ", b":", b";", b",", b"<", b">",
                               b'"', b"\\", b"\x00", b"%", b"[", b"]", b" ", b"\t", b"@"])),
)


def _mutate(data: bytes, mutation: tuple[object, ...]) -> bytes:
    kind, at = mutation[0], int(mutation[1]) % (len(data) + 1)  # type: ignore[call-overload]
    if kind == "flip":
        return data[:at] + bytes([int(mutation[2])]) + data[at + 1 :]  # type: ignore[call-overload]
    if kind == "delete":
        return data[:at] + data[at + int(mutation[2]) :]  # type: ignore[call-overload]
    if kind in ("insert", "insert-special"):
        return data[:at] + mutation[2] + data[at:]  # type: ignore[operator]
    if kind == "truncate":
        return data[:at]
    lines = data.split(b"\r\n")
    index = at % len(lines)
    return b"\r\n".join([*lines[: index + 1], lines[index], *lines[index + 1 :]])


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(_MUTATION, min_size=1, max_size=6))
def test_mutated_corpus(seed: bytes, mutations: list[tuple[object, ...]]) -> None:
    data = seed
    for mutation in mutations:
        data = _mutate(data, mutation)
    _exercise(data)


# -- generated messages round-trip ----------------------------------------------------------------

_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
                 min_size=1, max_size=12)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_HOST = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda q: ".".join(map(str, q))),
    st.sampled_from(["[2001:db8::1]", "[::1]", "[2001:db8:0:0:0:0:0:2]", "[::ffff:192.0.2.1]"]),
)
_PARAM_VALUE = st.one_of(st.none(), _TOKEN)
# (typed Any: hypothesis wants Literal category names)
_SURROGATES: Any = ("Cs",)
_SURROGATES_AND_CONTROLS: Any = ("Cs", "Cc")
_USER = st.text(st.characters(codec="utf-8", exclude_categories=_SURROGATES), min_size=1,
                max_size=12)


@st.composite
def uris(draw: st.DrawFn, *, headers: bool = True) -> URI:
    return URI(
        draw(st.sampled_from(["sip", "sips"])),
        draw(st.one_of(st.none(), _USER)),
        draw(_HOST),
        draw(st.one_of(st.none(), st.integers(1, 65535))),
        draw(st.dictionaries(_TOKEN.map(str.lower), _PARAM_VALUE, max_size=3)),
        draw(st.dictionaries(_TOKEN, _TOKEN, max_size=2)) if headers else None,
    )


@given(uris())
def test_uri_round_trip(uri: URI) -> None:
    from sipfsm.sip import parse_uri

    again = parse_uri(str(uri))
    assert again == uri
    assert (again.user, again.host, again.port, dict(again.params), dict(again.headers)) == (
        uri.user, uri.host, uri.port, dict(uri.params), dict(uri.headers))


_DISPLAY = st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_categories=_SURROGATES,
                                                      exclude_characters="\r\n"), max_size=16))


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    return NameAddr(draw(uris()), draw(_DISPLAY) or None,
                    draw(st.dictionaries(_TOKEN.map(str.lower), _PARAM_VALUE, max_size=3)))


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params = draw(st.dictionaries(_TOKEN.map(str.lower), _PARAM_VALUE, max_size=3))
    params["branch"] = "z9hG4bK" + draw(_TOKEN)
    return Via(draw(st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS"])), draw(_HOST),
               draw(st.one_of(st.none(), st.integers(1, 65535))), params)


@given(
    method=st.sampled_from(sorted(KNOWN_METHODS)),
    target=uris(headers=False),
    via=st.lists(vias(), min_size=1, max_size=3),
    from_=name_addrs(),
    to=name_addrs(),
    contacts=st.lists(name_addrs(), max_size=3),
    call_id=_TOKEN,
    seq=st.integers(0, 2**32 - 1),
    body=st.binary(max_size=64),
    extra=st.lists(st.tuples(_TOKEN.map(lambda t: "X-" + t), st.text(
        st.characters(codec="utf-8", exclude_categories=_SURROGATES_AND_CONTROLS), max_size=20)
        .map(str.strip)), max_size=3),
)
def test_generated_request_round_trip(
    method: str, target: URI, via: list[Via], from_: NameAddr, to: NameAddr,
    contacts: list[NameAddr], call_id: str, seq: int, body: bytes,
    extra: list[tuple[str, str]],
) -> None:
    headers = [("Via", str(v)) for v in via]
    headers += [("From", str(from_)), ("To", str(to)), ("Call-ID", call_id),
                ("CSeq", f"{seq} {method}"), ("Max-Forwards", "70")]
    if contacts:
        headers.append(("Contact", ", ".join(map(str, contacts))))
    headers += extra
    request = Request(method, target, headers, body)
    parsed = parse(bytes(request))
    assert parsed == request
    assert isinstance(parsed, Request)
    parsed.parse_all()
    assert parsed.uri == target
    assert list(parsed.via) == via
    assert parsed.from_ == from_ and parsed.to == to
    assert list(parsed.contact) == contacts
    assert parsed.cseq is not None and (parsed.cseq.seq, parsed.cseq.method) == (seq, method)
    assert parsed.body == body and parsed.content_length == len(body)


@given(status=st.integers(100, 699), reason=st.text(
    st.characters(codec="utf-8", exclude_categories=_SURROGATES_AND_CONTROLS), max_size=20),
    via=vias(), body=st.binary(max_size=32))
def test_generated_response_round_trip(status: int, reason: str, via: Via, body: bytes) -> None:
    response = Response(status, reason, [("Via", str(via)), ("CSeq", "1 INVITE")], body)
    parsed = parse(bytes(response))
    assert parsed == response
    assert isinstance(parsed, Response) and parsed.status_code == status
    assert parsed.top_via == via
