"""URIs: components, escaping, IPv6, tel, other schemes, and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pickle

import pytest

from sipfsm import ParseError
from sipfsm.sip import URI, parse_uri


def test_components() -> None:
    uri = parse_uri("sips:alice:pw@Example.COM:5061;transport=tls;lr?subject=hi%20there&x=1")
    assert uri.scheme == "sips"
    assert (uri.user, uri.password, uri.host, uri.port) == ("alice", "pw", "Example.COM", 5061)
    assert uri.params == {"transport": "tls", "lr": None}
    assert uri.headers == {"subject": "hi there", "x": "1"}
    assert uri.transport == "tls"
    assert uri.hostport == "Example.COM:5061"
    assert uri.aor == "sips:alice@example.com"


def test_text_is_kept_and_rendered() -> None:
    text = "sip:%61lice@example.com;Transport=TCP"
    assert str(parse_uri(text)) == text
    built = URI("sip", "a b;c", "example.com", 5060, {"lr": None, "x": "y z"})
    assert str(built) == "sip:a%20b;c@example.com:5060;lr;x=y%20z"
    assert parse_uri(str(built)) == built


def test_replace_and_immutability() -> None:
    uri = parse_uri("sip:alice@example.com;transport=ws")
    bare = uri.replace(user=None, params={})
    assert str(bare) == "sip:example.com"
    with pytest.raises(AttributeError):
        uri.user = "bob"
    with pytest.raises(TypeError):
        uri.replace(colour="red")


def test_ipv6() -> None:
    assert parse_uri("sip:[2001:db8::10]:5070").host == "[2001:db8::10]"
    assert parse_uri("sip:[::ffff:192.0.2.2]").host == "[::ffff:192.0.2.2]"
    for bad in ("sip:2001:db8::10", "sip:[2001:db8::10::1]", "sip:[12345::1]", "sip:[1:2]"):
        with pytest.raises(ParseError):
            parse_uri(bad)


def test_tel_and_other_schemes() -> None:
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert tel.scheme == "tel" and tel.user == "+1-201-555-0123" and not tel.is_sip
    assert tel == parse_uri("tel:+12015550123;Phone-Context=EXAMPLE.com")
    urn = parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert urn.scheme == "urn" and urn.opaque == "uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"


@pytest.mark.parametrize("bad", [
    "", "sip:", "sip:@example.com", "sip:alice@", "sip:alice@exa mple.com", "<sip:a@b>",
    "sip:a@b:99999", "sip:a@b;=x", "sip:a@-b.com", "tel:", "1abc:x", "sip:a@b?x",
])
def test_malformed(bad: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(bad)


def test_request_uri_refuses_headers() -> None:
    with pytest.raises(ParseError, match="headers"):
        parse_uri("sip:a@example.com?Route=%3Csip:x%3E", allow_headers=False)


# RFC 3261 §19.1.4 gives these pairs.
EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
]
DIFFERENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@example.com", "sips:alice@example.com"),
    ("sip:alice@example.com;user=phone", "sip:alice@example.com"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_rfc_equal(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua == ub and ub == ua
    assert hash(ua) == hash(ub)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_rfc_different(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


def test_password_is_hidden_in_repr_and_pickles() -> None:
    uri = parse_uri("sip:alice:s3cret@example.com")
    assert "s3cret" not in repr(uri)
    assert pickle.loads(pickle.dumps(uri)) == uri
