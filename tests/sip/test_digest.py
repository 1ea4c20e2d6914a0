"""Tests of sipfsm.sip.digest: RFC example vectors, header grammar, the UAC and registrar roles.

Expected hashes come either from the RFCs' own worked examples (quoted with their section) or
from a separate hashlib expression written out here from the formula, never from the module.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipfsm.errors import ConfigurationError, ParseError, SipfsmError
from sipfsm.sip.digest import (
    ALGORITHMS,
    Challenge,
    Credentials,
    DigestAuthenticator,
    DigestError,
    choose_challenge,
    compute_response,
    ha1,
    make_challenge,
    parse_challenge,
    parse_credentials,
    verify,
)


def md5(text: str | bytes) -> str:
    return hashlib.md5(text.encode() if isinstance(text, str) else text).hexdigest()


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def fixed_cnonce(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Make the authenticator's next cnonces ``value`` so a published example can be replayed."""
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes: value)


def params_of(value: str) -> dict[str, str]:
    """The parameters of a header value as sent, quotes kept, to check quoting choices."""
    _, _, rest = value.partition(" ")
    return dict(part.split("=", 1) for part in rest.split(", "))


# --- RFC 2617 §3.5 --------------------------------------------------------------------------------

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_CREDENTIALS = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, '
    'cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_RESPONSE = "6629fae49393a05397450978507c4ef1"


def test_rfc2617_example_response() -> None:
    key = ha1(username="Mufasa", realm="testrealm@host.com", password="Circle Of Life")
    response = compute_response(
        ha1=key,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == RFC2617_RESPONSE


def test_rfc2617_example_through_the_authenticator(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed_cnonce(monkeypatch, "0a4f113b")
    challenge = parse_challenge(RFC2617_CHALLENGE)
    credentials = DigestAuthenticator("Mufasa", "Circle Of Life").authorize(
        challenge, "GET", "/dir/index.html"
    )
    assert credentials == parse_credentials(RFC2617_CREDENTIALS)
    assert params_of(str(credentials)) == params_of(RFC2617_CREDENTIALS)


def test_rfc2617_example_verifies_on_the_server_side() -> None:
    credentials = parse_credentials(RFC2617_CREDENTIALS)
    assert verify(credentials, "GET", password="Circle Of Life")
    assert verify(credentials, "GET", ha1=md5("Mufasa:testrealm@host.com:Circle Of Life"))
    assert not verify(credentials, "GET", password="Circle of Life")
    assert not verify(credentials, "POST", password="Circle Of Life")


# --- RFC 7616 §3.9.1 (password "Circle of Life", lower-case "of": erratum 4495) -------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


@pytest.mark.parametrize(("algorithm", "expected"), sorted(RFC7616_RESPONSES.items()))
def test_rfc7616_example(monkeypatch: pytest.MonkeyPatch, algorithm: str, expected: str) -> None:
    challenge = parse_challenge(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    fixed_cnonce(monkeypatch, RFC7616_CNONCE)
    credentials = DigestAuthenticator("Mufasa", "Circle of Life").authorize(
        challenge, "GET", "/dir/index.html"
    )
    assert credentials.response == expected
    wire = (
        f'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", nc=00000001, '
        f'cnonce="{RFC7616_CNONCE}", qop=auth, response="{expected}", opaque="{RFC7616_OPAQUE}"'
    )
    assert parse_credentials(wire) == credentials
    assert verify(parse_credentials(wire), "GET", password="Circle of Life")


# --- Other forms, against independent hashlib expressions -----------------------------------------


def test_rfc2069_form_without_qop() -> None:
    challenge = parse_challenge(
        'Digest realm="biloxi.com", nonce="84a4cc6f3082121f32b42a2187831a9e"'
    )
    credentials = DigestAuthenticator("bob", "zanzibar").authorize(
        challenge, "REGISTER", "sip:biloxi.com"
    )
    ha1_ = md5("bob:biloxi.com:zanzibar")
    ha2_ = md5("REGISTER:sip:biloxi.com")
    assert credentials.response == md5(f"{ha1_}:84a4cc6f3082121f32b42a2187831a9e:{ha2_}")
    assert (credentials.qop, credentials.nc, credentials.cnonce) == (None, None, None)
    assert "qop" not in str(credentials)
    assert "nc=" not in str(credentials)


def test_auth_int_hashes_the_raw_body() -> None:
    body = (
        b"v=0\r\no=- 0 0 IN IP4 192.0.2.1\r\n\xff"  # not even UTF-8: bytes are hashed as they are
    )
    response = compute_response(
        ha1="939e7578ed9e3c518a452acee763bce9",
        nonce="n",
        method="INVITE",
        uri="sip:bob@biloxi.com",
        qop="auth-int",
        nc="00000001",
        cnonce="c",
        body=body,
    )
    ha2_ = md5(f"INVITE:sip:bob@biloxi.com:{md5(body)}")
    assert response == md5(f"939e7578ed9e3c518a452acee763bce9:n:00000001:c:auth-int:{ha2_}")


@pytest.mark.parametrize(("algorithm", "h"), [("MD5-sess", md5), ("SHA-256-sess", sha256)])
def test_sess_algorithms_fold_nonce_and_cnonce_into_ha1(
    algorithm: str, h: Callable[[str], str]
) -> None:
    key = ha1(
        username="alice",
        realm="atlanta.com",
        password="pa:ss",
        algorithm=algorithm,
        nonce="N0nce",
        cnonce="CN",
    )
    assert key == h(f"{h('alice:atlanta.com:pa:ss')}:N0nce:CN")
    response = compute_response(
        ha1=key,
        nonce="N0nce",
        method="INVITE",
        uri="sip:bob@b.example",
        algorithm=algorithm,
        qop="auth",
        nc="0000000a",
        cnonce="CN",
    )
    assert response == h(f"{key}:N0nce:0000000a:CN:auth:{h('INVITE:sip:bob@b.example')}")


@pytest.mark.skipif("SHA-512-256" not in ALGORITHMS, reason="no SHA-512/256 in this OpenSSL")
def test_sha512_256() -> None:
    def h(text: str) -> str:
        return hashlib.new("sha512_256", text.encode()).hexdigest()

    key = ha1(username="u", realm="r", password="p", algorithm="sha-512-256")
    assert key == h("u:r:p")
    response = compute_response(
        ha1=key, nonce="n", method="BYE", uri="sip:x@y", algorithm="SHA-512-256"
    )
    assert response == h(f"{key}:n:{h('BYE:sip:x@y')}")


def test_non_ascii_credentials_are_hashed_as_utf8() -> None:
    key = ha1(username="Jäsøn Doe", realm="api@example.org", password="Secret, or not?")
    assert key == md5("Jäsøn Doe:api@example.org:Secret, or not?".encode())


def test_precomputed_ha1_gives_the_same_answer() -> None:
    stored = md5("bob:biloxi.com:zanzibar")
    assert ha1(username="bob", realm="biloxi.com", precomputed=stored.upper()) == stored
    challenge = parse_challenge('Digest realm="biloxi.com", nonce="abc", qop="auth"')
    with_password = DigestAuthenticator("bob", "zanzibar")
    with_ha1 = DigestAuthenticator("bob", ha1=stored)
    a = with_password.authorize(challenge, "REGISTER", "sip:biloxi.com")
    b = with_ha1.authorize(challenge, "REGISTER", "sip:biloxi.com")
    assert verify(a, "REGISTER", ha1=stored)
    assert verify(b, "REGISTER", password="zanzibar")


def test_precomputed_ha1_of_the_wrong_hash_is_refused() -> None:
    stored = md5("bob:biloxi.com:zanzibar")
    challenge = parse_challenge('Digest realm="biloxi.com", nonce="abc", algorithm=SHA-256')
    with pytest.raises(DigestError) as caught:
        DigestAuthenticator("bob", ha1=stored).authorize(challenge, "REGISTER", "sip:biloxi.com")
    assert stored not in str(caught.value)


def test_computation_errors() -> None:
    with pytest.raises(DigestError, match="algorithm"):
        ha1(username="u", realm="r", password="p", algorithm="SHA-1")
    with pytest.raises(DigestError, match="cnonce"):
        ha1(username="u", realm="r", password="p", algorithm="MD5-sess")
    with pytest.raises(ConfigurationError):
        ha1(username="u", realm="r")
    with pytest.raises(DigestError, match="qop"):
        compute_response(ha1="0" * 32, nonce="n", method="M", uri="u", qop="auth-conf")
    with pytest.raises(DigestError, match="nc and cnonce"):
        compute_response(ha1="0" * 32, nonce="n", method="M", uri="u", qop="auth")


# --- Parsing challenges ---------------------------------------------------------------------------


def test_challenge_fields() -> None:
    challenge = parse_challenge(
        'Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth,auth-int", '
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
    )
    assert challenge == Challenge(
        realm="atlanta.com",
        domain="sip:ss1.carrier.com",
        nonce="f84f1cec41e6cbe5aea9c8e88d359",
        opaque="",
        stale=False,
        algorithm="MD5",
        qop=("auth", "auth-int"),
    )
    assert challenge.is_digest


def test_odd_whitespace() -> None:
    challenge = parse_challenge(
        '  Digest \t realm\t=  "r" ,nonce=\t"n"  ,  qop = " auth ,\tauth-int ,"\t, algorithm\t=MD5 '
    )
    assert (challenge.realm, challenge.nonce, challenge.algorithm) == ("r", "n", "MD5")
    assert challenge.qop == ("auth", "auth-int")


def test_escaped_quotes_and_backslashes() -> None:
    challenge = parse_challenge(r'Digest realm="say \"hi\" \\ \o/", nonce="a\,b"')
    assert challenge.realm == 'say "hi" \\ o/'
    assert challenge.nonce == "a,b"
    assert parse_challenge(str(challenge)) == challenge
    assert r'realm="say \"hi\" \\ o/"' in str(challenge)


def test_names_and_scheme_are_case_insensitive() -> None:
    challenge = parse_challenge('dIgEsT REALM="r", Nonce="n", QOP="auth", STALE=True, x-Foo=Bar')
    assert challenge.is_digest
    assert challenge.scheme == "dIgEsT"  # spelling is kept, so str() gives back what came
    assert (challenge.realm, challenge.nonce, challenge.qop, challenge.stale) == (
        "r",
        "n",
        ("auth",),
        True,
    )
    assert challenge.params == (("x-foo", "Bar"),)


def test_unknown_parameters_are_kept_in_order() -> None:
    challenge = parse_challenge(
        'Digest realm="r", charset=UTF-8, nonce="n", userhash=true, ext="a b", z=1'
    )
    assert challenge.params == (
        ("charset", "UTF-8"),
        ("userhash", "true"),
        ("ext", "a b"),
        ("z", "1"),
    )
    assert str(challenge).endswith('charset=UTF-8, userhash=true, ext="a b", z=1')


@pytest.mark.parametrize(
    ("value", "realm", "nonce", "algorithm", "qop"),
    [
        # RFC 3261 §22.4 example shape
        (
            'Digest realm="biloxi.com", qop="auth,auth-int", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
            "biloxi.com",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            None,
            ("auth", "auth-int"),
        ),
        # an algorithm first, RFC 2069 style (no qop), as many PBXs send it
        (
            'Digest algorithm=MD5, realm="asterisk", nonce="1c7b7d5a"',
            "asterisk",
            "1c7b7d5a",
            "MD5",
            (),
        ),
        # RFC 8760 style SHA-256 challenge
        (
            'Digest realm="example.com", nonce="YHx1ZGh1", algorithm=SHA-256, qop="auth"',
            "example.com",
            "YHx1ZGh1",
            "SHA-256",
            ("auth",),
        ),
        # a quoted algorithm and a -sess variant from a sloppy server
        (
            'Digest realm="r", nonce="n", algorithm="MD5-sess", qop="auth-int"',
            "r",
            "n",
            "MD5-sess",
            ("auth-int",),
        ),
    ],
)
def test_several_challenges(
    value: str, realm: str, nonce: str, algorithm: str | None, qop: tuple[str, ...]
) -> None:
    challenge = parse_challenge(value, header="Proxy-Authenticate")
    assert (challenge.realm, challenge.nonce, challenge.algorithm, challenge.qop) == (
        realm,
        nonce,
        algorithm,
        qop,
    )
    assert parse_challenge(str(challenge)) == challenge


@pytest.mark.parametrize(
    ("value", "stale"),
    [("true", True), ("TRUE", True), ('"true"', True), ("false", False), ("maybe", False)],
)
def test_stale_is_true_only_for_true(value: str, stale: bool) -> None:
    assert parse_challenge(f'Digest realm="r", nonce="n", stale={value}').stale is stale


def test_other_schemes_parse_so_they_can_be_skipped() -> None:
    basic = parse_challenge('Basic realm="WallyWorld"')
    assert not basic.is_digest
    assert (basic.scheme, basic.realm, basic.nonce) == ("Basic", "WallyWorld", None)
    assert parse_challenge("Negotiate") == Challenge(scheme="Negotiate")
    assert str(parse_challenge("NTLM ")) == "NTLM"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Digest",  # no realm, no nonce
        'Digest realm="r"',
        'Digest nonce="n"',
        ',Digest realm="r", nonce="n"',
        'Digest, realm="r", nonce="n"',
        'Digest realm="r" nonce="n"',
        'Digest realm="r",, nonce="n"',
        'Digest realm="r", nonce="n",',
        'Digest realm="r", nonce="n", realm="s"',
        'Digest realm="r", nonce="n", REALM="s"',
        'Digest realm="unterminated, nonce="n"',
        'Digest realm=r s, nonce="n"',
        'Digest realm=, nonce="n"',
        'Digest realm="r", nonce="n", ="x"',
        'Digest realm="r", nonce="n", qop="auth, a b"',
        'Digest realm="r", nonce="n", x="\\\u00e9"',  # quoted-pair of a non-ASCII character
        'Digest realm="r\r\n", nonce="n"',
        'Digest realm="r",\r\n nonce="n"',  # folded: the message layer unfolds first
        'Digest realm="r", nonce="n"\x00',
        "Digest realm=\u201cr\u201d, nonce=n",
    ],
)
def test_bad_challenges(value: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_challenge(value, header="Proxy-Authenticate")
    assert caught.value.header == "Proxy-Authenticate"
    assert caught.value.status == 400


# --- Parsing credentials --------------------------------------------------------------------------


def test_credentials_fields() -> None:
    credentials = parse_credentials(
        'Digest  username="bob" , realm="biloxi.com",nonce="n", uri="sip:bob@biloxi.com", '
        'response="0123456789abcdef0123456789abcdef", ALGORITHM=SHA-256, cnonce="c", '
        'opaque="o", qop=auth-int, nc=0000001F, userhash=TRUE, auts="AUTS=="',
        header="Proxy-Authorization",
    )
    assert credentials == Credentials(
        username="bob",
        realm="biloxi.com",
        nonce="n",
        uri="sip:bob@biloxi.com",
        response="0123456789abcdef0123456789abcdef",
        algorithm="SHA-256",
        cnonce="c",
        opaque="o",
        qop="auth-int",
        nc="0000001F",
        userhash=True,
        params=(("auts", "AUTS=="),),
    )


def test_credentials_quoting_follows_rfc7616() -> None:
    credentials = Credentials(
        username="bob",
        realm="biloxi.com",
        nonce="n",
        uri="sip:bob@biloxi.com",
        response="00",
        algorithm="MD5",
        cnonce="c",
        opaque="o",
        qop="auth",
        nc="00000002",
        userhash=True,
    )
    sent = params_of(str(credentials))
    for name in ("username", "realm", "nonce", "uri", "response", "cnonce", "opaque"):
        assert sent[name].startswith('"'), name
    assert (sent["algorithm"], sent["qop"], sent["nc"], sent["userhash"]) == (
        "MD5",
        "auth",
        "00000002",
        "true",
    )
    assert str(credentials).startswith('Digest username="bob", realm="biloxi.com"')


def test_challenge_quoting_follows_rfc7616() -> None:
    challenge = Challenge(realm="r", nonce="n", algorithm="SHA-256", qop=("auth",), stale=True)
    assert (
        str(challenge) == 'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth", stale=true'
    )


def test_control_characters_are_escaped() -> None:
    challenge = Challenge(realm="tab\there\x01\x7f", nonce="n")
    assert '"tab\there\\\x01\\\x7f"' in str(challenge)
    assert parse_challenge(str(challenge)) == challenge


@pytest.mark.parametrize(
    "value",
    [
        'Basic username="u", realm="r", nonce="n", uri="u", response="x"',
        'Digest realm="r", nonce="n", uri="u", response="x"',
        'Digest username="u", realm="r", nonce="n", uri="u"',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=1',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=0000000g',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=000000001',
        'Digest username="u", username="v", realm="r", nonce="n", uri="u", response="x"',
        'Digest username="u" realm="r", nonce="n", uri="u", response="x"',
        "Digest",
        "",
    ],
)
def test_bad_credentials(value: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_credentials(value)
    assert caught.value.header == "Authorization"


def test_construction_refuses_what_could_not_be_sent() -> None:
    with pytest.raises(DigestError):
        Challenge(realm="r\r\nVia: evil", nonce="n")
    with pytest.raises(DigestError):
        Challenge(realm="r")  # a Digest challenge needs a nonce
    with pytest.raises(DigestError):
        Challenge(scheme="Di gest", realm="r", nonce="n")
    with pytest.raises(DigestError):
        Challenge(realm="r", nonce="n", qop=("auth,auth-int",))
    with pytest.raises(DigestError):
        Challenge(realm="r", nonce="n", params=(("realm", "again"),))
    with pytest.raises(DigestError):
        Challenge(realm="r", nonce="n", params=(("X", "upper-case name"),))
    with pytest.raises(DigestError):
        Challenge(realm="r", nonce="n", params=(("x", "1"), ("x", "2")))
    with pytest.raises(DigestError):
        Credentials(username="u", realm="r", nonce="n", uri="u", response="x", nc="1")
    with pytest.raises(DigestError):
        Credentials(scheme="Basic", username="u", realm="r", nonce="n", uri="u", response="x")
    assert issubclass(DigestError, SipfsmError)


# --- Hypothesis: any text parses or raises ParseError; str() round-trips --------------------------

GRAMMAR_ALPHABET = 'Digest realm="\\,= \t\r\nabc-qop"auth-int nc0'


@given(st.one_of(st.text(), st.text(alphabet=GRAMMAR_ALPHABET)))
def test_any_text_is_a_challenge_or_a_parse_error(value: str) -> None:
    for text in (value, "Digest " + value, 'Digest realm="r", nonce="n", ' + value):
        try:
            challenge = parse_challenge(text)
        except ParseError:
            continue
        assert parse_challenge(str(challenge)) == challenge


@given(st.one_of(st.text(), st.text(alphabet=GRAMMAR_ALPHABET)))
def test_any_text_is_credentials_or_a_parse_error(value: str) -> None:
    prefix = 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", '
    for text in (value, prefix + value):
        try:
            credentials = parse_credentials(text)
        except ParseError:
            continue
        assert parse_credentials(str(credentials)) == credentials


TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)
texts = st.text(st.characters(exclude_characters="\r\n"), max_size=20)
optional_texts = st.none() | texts
optional_tokens = st.none() | tokens


def extra_params(known: frozenset[str]) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    names = tokens.map(str.lower).filter(lambda name: name not in known)
    return st.dictionaries(names, texts, max_size=3).map(lambda d: tuple(d.items()))


CHALLENGE_NAMES = frozenset({"realm", "domain", "nonce", "opaque", "stale", "algorithm", "qop"})
CREDENTIALS_NAMES = frozenset(
    {"username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop"}
    | {"nc", "userhash"}
)


@st.composite
def challenges(draw: st.DrawFn) -> Challenge:
    scheme = draw(st.sampled_from(["Digest", "digest", "DIGEST"]) | tokens)
    digest_scheme = scheme.lower() == "digest"
    return Challenge(
        scheme=scheme,
        realm=draw(texts if digest_scheme else optional_texts),
        nonce=draw(texts if digest_scheme else optional_texts),
        opaque=draw(optional_texts),
        algorithm=draw(st.none() | st.sampled_from(ALGORITHMS) | texts),
        qop=tuple(draw(st.lists(tokens, max_size=3))),
        stale=draw(st.booleans()),
        domain=draw(optional_texts),
        params=draw(extra_params(CHALLENGE_NAMES)),
    )


credentials_strategy = st.builds(
    Credentials,
    scheme=st.sampled_from(["Digest", "dIGEST"]),
    username=texts,
    realm=texts,
    nonce=texts,
    uri=texts,
    response=texts,
    algorithm=optional_tokens | texts,
    cnonce=optional_texts,
    opaque=optional_texts,
    qop=st.none() | st.sampled_from(["auth", "auth-int"]) | texts,
    nc=st.none() | st.from_regex(r"[0-9A-Fa-f]{8}", fullmatch=True),
    userhash=st.booleans(),
    params=extra_params(CREDENTIALS_NAMES),
)


@given(challenges())
def test_challenge_round_trip(challenge: Challenge) -> None:
    assert parse_challenge(str(challenge)) == challenge


@given(credentials_strategy)
def test_credentials_round_trip(credentials: Credentials) -> None:
    assert parse_credentials(str(credentials)) == credentials


passwords = st.text(st.characters(codec="utf-8"), max_size=30)


@given(
    password=passwords,
    algorithm=st.sampled_from(ALGORITHMS),
    qop=st.sampled_from([(), ("auth",), ("auth-int",), ("auth", "auth-int")]),
    body=st.binary(max_size=64),
    method=st.sampled_from(["INVITE", "REGISTER", "BYE", "MESSAGE"]),
)
def test_what_the_uac_sends_the_registrar_accepts(
    password: str, algorithm: str, qop: tuple[str, ...], body: bytes, method: str
) -> None:
    challenge = make_challenge("example.com", algorithm=algorithm, qop=qop, opaque="op")
    credentials = DigestAuthenticator("alice", password).authorize(
        parse_challenge(str(challenge)), method, "sip:example.com", body
    )
    received = parse_credentials(str(credentials))
    assert verify(received, method, password=password, body=body)
    assert not verify(received, method, password=password + "x", body=body)
    assert not verify(received, "ACK", password=password, body=body)
    base = algorithm.removesuffix("-sess")  # the stored HA1 never includes the session part
    stored = ha1(username="alice", realm="example.com", password=password, algorithm=base)
    assert verify(received, method, ha1=stored, body=body)


# --- The UAC: nc, cnonce, qop choice, errors ------------------------------------------------------


def test_nc_counts_per_nonce_and_restarts_on_a_new_nonce() -> None:
    uac = DigestAuthenticator("bob", "zanzibar")
    first = Challenge(realm="biloxi.com", nonce="one", qop=("auth",))
    second = Challenge(realm="biloxi.com", nonce="two", qop=("auth",), stale=True)
    counts = [uac.authorize(first, "REGISTER", "sip:biloxi.com").nc for _ in range(3)]
    assert counts == ["00000001", "00000002", "00000003"]
    assert uac.authorize(second, "REGISTER", "sip:biloxi.com").nc == "00000001"
    assert uac.authorize(second, "REGISTER", "sip:biloxi.com").nc == "00000002"
    # A proxy's nonce in between does not make the registrar's count restart (no nc reuse).
    assert uac.authorize(first, "INVITE", "sip:alice@atlanta.com").nc == "00000004"


def test_nc_goes_past_nine_in_hex() -> None:
    uac = DigestAuthenticator("bob", "zanzibar")
    challenge = Challenge(realm="r", nonce="n", qop=("auth",))
    counts = [uac.authorize(challenge, "OPTIONS", "sip:r").nc for _ in range(16)]
    assert counts[9:11] == ["0000000a", "0000000b"]
    assert counts[-1] == "00000010"


def test_old_nonces_are_forgotten() -> None:
    uac = DigestAuthenticator("bob", "zanzibar")
    old = Challenge(realm="r", nonce="old", qop=("auth",))
    uac.authorize(old, "REGISTER", "sip:r")
    for i in range(64):
        uac.authorize(Challenge(realm="r", nonce=f"n{i}", qop=("auth",)), "REGISTER", "sip:r")
    assert uac.authorize(old, "REGISTER", "sip:r").nc == "00000001"


def test_cnonce_is_fresh_and_long() -> None:
    uac = DigestAuthenticator("bob", "zanzibar")
    challenge = Challenge(realm="r", nonce="n", qop=("auth",))
    cnonces = [uac.authorize(challenge, "REGISTER", "sip:r").cnonce for _ in range(200)]
    assert len(set(cnonces)) == len(cnonces)
    for cnonce in cnonces:
        assert cnonce is not None
        assert len(cnonce) * 4 >= 64
        int(cnonce, 16)  # hex: 4 bits a character


def test_sess_without_qop_still_sends_a_cnonce() -> None:
    challenge = Challenge(realm="r", nonce="n", algorithm="MD5-sess")
    credentials = DigestAuthenticator("u", "p").authorize(challenge, "REGISTER", "sip:r")
    assert credentials.cnonce is not None
    assert credentials.nc is None
    assert verify(credentials, "REGISTER", password="p")


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ((), None),
        (("auth",), "auth"),
        (("auth-int", "auth"), "auth"),
        (("AUTH",), "auth"),
        (("auth-int",), "auth-int"),
        (("x-future", "auth-int"), "auth-int"),
    ],
)
def test_qop_choice_prefers_auth(offered: tuple[str, ...], chosen: str | None) -> None:
    challenge = Challenge(realm="r", nonce="n", qop=offered)
    credentials = DigestAuthenticator("u", "p").authorize(challenge, "MESSAGE", "sip:r", b"hi")
    assert credentials.qop == chosen
    assert verify(credentials, "MESSAGE", password="p", body=b"hi")
    assert verify(credentials, "MESSAGE", password="p", body=b"ho") is (chosen != "auth-int")


def test_unsupported_challenges_raise_digest_error_and_keep_the_count() -> None:
    uac = DigestAuthenticator("u", "s3cr3t-pass")
    with pytest.raises(DigestError, match="algorithm") as caught:
        uac.authorize(Challenge(realm="r", nonce="n", algorithm="SHA-1"), "REGISTER", "sip:r")
    assert "s3cr3t-pass" not in str(caught.value)
    with pytest.raises(DigestError, match="qop"):
        uac.authorize(Challenge(realm="r", nonce="n", qop=("auth-conf",)), "REGISTER", "sip:r")
    with pytest.raises(DigestError, match="Basic"):
        uac.authorize(Challenge(scheme="Basic", realm="r"), "REGISTER", "sip:r")
    ok = uac.authorize(Challenge(realm="r", nonce="n", qop=("auth",)), "REGISTER", "sip:r")
    assert ok.nc == "00000001"


def test_credentials_echo_the_challenge() -> None:
    challenge = Challenge(
        realm="r", nonce="n", opaque="op aque", algorithm="sha-256", qop=("auth",)
    )
    credentials = DigestAuthenticator("u", "p").authorize(challenge, "INVITE", "sip:b@r")
    assert (credentials.realm, credentials.nonce, credentials.opaque) == ("r", "n", "op aque")
    assert credentials.algorithm == "sha-256"  # the server's own spelling
    assert (credentials.uri, credentials.username) == ("sip:b@r", "u")
    assert len(credentials.response) == 64


def test_choose_challenge_takes_the_first_supported() -> None:
    offered = [
        parse_challenge('Basic realm="r"'),
        parse_challenge('Digest realm="r", nonce="1", algorithm=SHA-3-512'),
        parse_challenge('Digest realm="r", nonce="2", algorithm=SHA-256'),
        parse_challenge('Digest realm="r", nonce="3"'),
    ]
    chosen = choose_challenge(offered)
    assert chosen is not None
    assert chosen.nonce == "2"
    assert choose_challenge(offered[:2]) is None
    assert choose_challenge([]) is None


# --- Secrets stay secret --------------------------------------------------------------------------

PASSWORD = "Hunter2-very-secret"
STORED = md5(f"u:r:{PASSWORD}")


def test_repr_hides_password_and_ha1() -> None:
    by_password = DigestAuthenticator("alice", PASSWORD)
    by_ha1 = DigestAuthenticator("alice", ha1=STORED)
    for uac in (by_password, by_ha1):
        for text in (repr(uac), str(uac)):
            assert PASSWORD not in text
            assert STORED not in text
            assert "alice" in text
    assert by_password.username == "alice"


def test_errors_hide_secrets() -> None:
    with pytest.raises(ConfigurationError) as both:
        DigestAuthenticator("u", PASSWORD, ha1=STORED)
    with pytest.raises(ConfigurationError) as neither:
        verify(parse_credentials(RFC2617_CREDENTIALS), "GET")
    with pytest.raises(DigestError) as wrong_hash:
        ha1(username="u", realm="r", precomputed=STORED, algorithm="SHA-256")
    with pytest.raises(DigestError) as unencodable:
        ha1(username="u", realm="r", password=PASSWORD + "\ud800")
    for caught in (both, neither, wrong_hash, unencodable):
        for text in (str(caught.value), repr(caught.value)):
            assert PASSWORD not in text
            assert STORED not in text
    # The UnicodeEncodeError (whose .object holds the password) is not shown with it.
    assert unencodable.value.__suppress_context__


def test_credentials_never_carry_the_password() -> None:
    challenge = Challenge(realm="r", nonce="n", qop=("auth",))
    credentials = DigestAuthenticator("u", PASSWORD).authorize(challenge, "REGISTER", "sip:r")
    for text in (str(credentials), repr(credentials)):
        assert PASSWORD not in text
        assert STORED not in text


# --- The registrar side ---------------------------------------------------------------------------


def test_make_challenge() -> None:
    challenge = make_challenge(
        "biloxi.com", algorithm="SHA-256", qop=("auth", "auth-int"), stale=True, opaque="o"
    )
    assert challenge.is_digest
    assert (challenge.realm, challenge.algorithm, challenge.qop) == (
        "biloxi.com",
        "SHA-256",
        ("auth", "auth-int"),
    )
    assert (challenge.stale, challenge.opaque) == (True, "o")
    assert parse_challenge(str(challenge)) == challenge
    nonces = {make_challenge("r").nonce for _ in range(100)}
    assert len(nonces) == 100
    assert all(nonce is not None and len(nonce) >= 22 for nonce in nonces)  # >= 128 bits base64
    assert make_challenge("r").algorithm == "MD5"
    assert make_challenge("r").qop == ("auth",)


def test_make_challenge_refuses_what_verify_cannot_check() -> None:
    with pytest.raises(DigestError):
        make_challenge("r", algorithm="SHA-1")
    with pytest.raises(DigestError):
        make_challenge("r", qop=("auth-conf",))


def test_verify_uses_a_constant_time_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify(parse_credentials(RFC2617_CREDENTIALS), "GET", password="Circle Of Life")
    assert calls == [(RFC2617_RESPONSE.encode(), RFC2617_RESPONSE.encode())]


def test_verify_treats_what_it_cannot_compute_as_a_mismatch() -> None:
    good = parse_credentials(RFC2617_CREDENTIALS)
    upper = replace(good, response=RFC2617_RESPONSE.upper())
    assert verify(upper, "GET", password="Circle Of Life")  # hex compares case-insensitively
    for change in (
        {"algorithm": "SHA-1"},
        {"qop": "auth-conf"},
        {"nc": None},
        {"cnonce": None},
        {"response": "\u00e9" * 32},
        {"response": "\ud800"},
        {"response": ""},
        {"algorithm": "MD5-sess", "cnonce": None, "qop": None, "nc": None},
    ):
        tampered = replace(good, **change)
        assert not verify(tampered, "GET", password="Circle Of Life"), change


def test_verify_needs_exactly_one_secret() -> None:
    credentials = parse_credentials(RFC2617_CREDENTIALS)
    with pytest.raises(ConfigurationError):
        verify(credentials, "GET", password="a", ha1=STORED)
    with pytest.raises(ConfigurationError):
        DigestAuthenticator("u")
