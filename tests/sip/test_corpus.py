"""RFC 4475 and RFC 5118 torture messages, read from the shared corpus.

* ``valid``: parses, every typed header reads, and the message round-trips.
* ``invalid``: ParseError, unless the INDEX lets a liberal parser accept it; for those the table
  below says what sipfsm does, and the test holds it to that.
* ``semantic-error-but-parseable``: parses, and ``check_request`` gives the status the RFC expects.
"""

from __future__ import annotations

import pytest
from corpus import Entry, entries, missing_corpus

from sipfsm import ParseError
from sipfsm.sip import Request, Response, check_request, check_response, parse
from sipfsm.sip.check import KNOWN_METHODS

ALL = entries("rfc4475") + entries("rfc5118")


def _ids(items: list[Entry]) -> list[str]:
    return [e.name for e in items]


def _of(kind: str) -> list[Entry]:
    return [e for e in ALL if e.expected == kind]


def test_corpus_present() -> None:
    if not ALL:
        missing_corpus()
    assert len(entries("rfc4475")) == 50
    assert len(entries("rfc5118")) == 12


# -- invalid ------------------------------------------------------------------------------------

# What sipfsm does with the messages a liberal parser *may* accept.  "parse": parse() refuses
# it; "read": parse() frames it, and reading the faulty header raises ParseError (so
# check_request answers 400); "accept": it is accepted as the INDEX allows.
LIBERAL = {
    "quotbal": ("read", "To"),
    "ltgtruri": ("parse", None),
    "lwsruri": ("parse", None),
    "lwsstart": ("parse", None),
    "trws": ("parse", None),
    "escruri": ("parse", None),
    "baddate": ("accept", None),  # Date is informational to a UA; it is kept as text
    "regbadct": ("read", "Contact"),
    "badaspec": ("read", "To"),
    "baddn": ("parse", None),  # the archive's copy is not even framed (no empty line)
}
STATUS = {"badvers": 505}


@pytest.mark.parametrize("entry", _of("invalid"), ids=_ids(_of("invalid")))
def test_invalid(entry: Entry) -> None:
    if entry.liberal == "yes":
        outcome, header = LIBERAL[entry.name]
        if outcome == "parse":
            with pytest.raises(ParseError):
                parse(entry.data)
        elif outcome == "read":
            message = parse(entry.data)
            with pytest.raises(ParseError) as info:
                message.parse_all()
            assert info.value.header == header
            assert isinstance(message, Request)
            rejection = check_request(message, allowed_methods=KNOWN_METHODS)
            assert rejection is not None and rejection.status == 400
        else:
            message = parse(entry.data)
            message.parse_all()
            assert message.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"
        return
    # "no", "partly" and the unreferenced "test": a strict parser refuses them outright.
    with pytest.raises(ParseError) as info:
        parse(entry.data)
    assert info.value.status == STATUS.get(entry.name, 400)
    assert info.value.reason


def test_liberal_table_covers_the_index() -> None:
    if not ALL:
        missing_corpus()
    assert {e.name for e in ALL if e.liberal == "yes"} == set(LIBERAL)


# -- valid ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", _of("valid"), ids=_ids(_of("valid")))
def test_valid_parses_reads_and_round_trips(entry: Entry) -> None:
    data = entry.data
    message = parse(data)
    message.parse_all()
    again = parse(bytes(message))
    assert again == message
    assert bytes(again) == bytes(message)
    head = data.split(b"\r\n\r\n", 1)[0]
    if b"\r\n " not in head and b"\r\n\t" not in head:
        # Unfolded messages come back byte for byte (dblreq's trailing octets excepted).
        assert data.startswith(bytes(message))
    if isinstance(message, Request) and message.method in KNOWN_METHODS:
        assert check_request(message, allowed_methods=KNOWN_METHODS,
                             supported=("100rel", "replaces", "path", "gruu")) is None
    if isinstance(message, Response):
        assert check_response(message) is None


# -- semantic errors ------------------------------------------------------------------------------

SEMANTIC = {
    "badbranch": 400,
    "insuf": 400,
    "unkscm": 416,
    "novelsc": 416,
    "unksm2": 400,  # as a registrar: the To of a REGISTER is not a SIP URI
    "bext01": 420,
    "invut": 415,
    "multi01": 400,
    "mcl01": 400,
    "sdp01": 406,
}


@pytest.mark.parametrize("entry", _of("semantic-error-but-parseable"),
                         ids=_ids(_of("semantic-error-but-parseable")))
def test_semantic_errors_parse_and_are_rejected(entry: Entry) -> None:
    message = parse(entry.data)
    if entry.name == "bcast":
        assert isinstance(message, Response)
        assert check_response(message) == "a response reaching its UAC must have exactly one Via"
        return
    assert isinstance(message, Request)
    if entry.name == "port-ambiguous":
        # Well-formed: the port is inside the brackets, so it is part of the address.
        assert message.uri.host == "[2001:db8::10:5070]"
        assert message.uri.port is None
        return
    if entry.name == "regaut01":
        # A UA is no registrar: 405 with Allow; a registrar reads the unknown scheme as such.
        rejection = check_request(message)
        assert rejection is not None and rejection.status == 405
        assert dict(rejection.headers)["Allow"].startswith("ACK")
        (credentials,) = message.authorization
        assert credentials.scheme.lower() == "nooneknowsthisscheme"
        return
    rejection = check_request(message, allowed_methods=KNOWN_METHODS)
    assert rejection is not None
    assert rejection.status == SEMANTIC[entry.name]
    if entry.name == "bext01":
        unsupported = dict(rejection.headers)["Unsupported"]
        assert unsupported == "nothingSupportsThis, nothingSupportsThisEither"


def test_semantic_table_covers_the_index() -> None:
    if not ALL:
        missing_corpus()
    named = {e.name for e in _of("semantic-error-but-parseable")}
    assert named == set(SEMANTIC) | {"bcast", "port-ambiguous", "regaut01"}


# -- what the torture messages are about ------------------------------------------------------


def _load(name: str) -> Request | Response:
    for entry in ALL:
        if entry.name == name:
            return parse(entry.data)
    missing_corpus()
    raise AssertionError("unreachable")


def test_escapes_are_resolved_once() -> None:
    esc01 = _load("esc01")
    assert isinstance(esc01, Request)
    assert esc01.uri.user == "sips:user@example.com"
    assert esc01.to is not None and esc01.to.uri.user == "user"
    assert esc01.from_ is not None and esc01.from_.uri.user == "I have spaces"
    (contact,) = esc01.contact
    assert contact.uri.user == "caller"
    assert contact.uri.params == {"lr": None, "name": "value%41"}  # not "valueA"


def test_escaped_nul_does_not_truncate() -> None:
    escnull = _load("escnull")
    assert escnull.to is not None and escnull.to.uri.user == "null-\x00-null"
    assert [c.uri.user for c in escnull.contact] == ["\x00", "\x00\x00"]  # two bindings


def test_percent_outside_uris_is_literal() -> None:
    esc02 = _load("esc02")
    assert isinstance(esc02, Request)
    assert esc02.method == "RE%47IST%45R"
    assert len(esc02.contact) == 2
    assert esc02.headers.count("C%6Fntact") == 1
    assert check_request(esc02).status == 501  # type: ignore[union-attr]


def test_wsinv_values() -> None:
    wsinv = _load("wsinv")
    assert wsinv.to is not None and wsinv.to.tag == "1918181833n"
    assert wsinv.from_ is not None and wsinv.from_.display_name == 'J Rosenberg \\"'
    assert wsinv.from_.tag == "98asjd8"
    assert wsinv.max_forwards == 68
    assert wsinv.cseq is not None and (wsinv.cseq.seq, wsinv.cseq.method) == (9, "INVITE")
    assert [v.branch for v in wsinv.via] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert [v.transport for v in wsinv.via] == ["UDP", "TCP", "UDP"]
    (contact,) = wsinv.contact
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert wsinv.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert wsinv.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert wsinv.headers.get("Subject") == ""
    assert len(wsinv.body) == 150


def test_unusual_characters() -> None:
    intmeth = _load("intmeth")
    assert isinstance(intmeth, Request)
    assert intmeth.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert intmeth.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert intmeth.to is not None and intmeth.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert intmeth.from_ is not None
    assert intmeth.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert intmeth.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert intmeth.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"


def test_semicolon_in_user_part_and_display_name_tokens() -> None:
    semiuri = _load("semiuri")
    assert isinstance(semiuri, Request)
    assert semiuri.uri.user == "user;par=u@example.net"
    assert semiuri.uri.host == "example.com"
    lwsdisp = _load("lwsdisp")
    assert lwsdisp.from_ is not None and lwsdisp.from_.display_name == "caller"


def test_contact_params_versus_uri_params() -> None:
    (addr_spec,) = _load("cparam01").contact
    assert "unknownparam" in addr_spec.params and "unknownparam" not in addr_spec.uri.params
    (name_addr,) = _load("cparam02").contact
    assert "unknownparam" in name_addr.uri.params and "unknownparam" not in name_addr.params
    (escaped,) = _load("regescrt").contact
    assert escaped.uri.headers == {"Route": "<sip:sip.example.com>"}


def test_framing_corner_cases() -> None:
    dblreq = _load("dblreq")
    assert isinstance(dblreq, Request) and dblreq.method == "REGISTER" and dblreq.body == b""
    mpart = _load("mpart01")
    assert mpart.content_length == len(mpart.body) and b"\x00" in mpart.body
    inv2543 = _load("inv2543")
    assert "content-length" not in inv2543.headers and inv2543.body.startswith(b"v=0")
    assert _load("zeromf").max_forwards == 0


def test_reason_phrases() -> None:
    unreason = _load("unreason")
    assert isinstance(unreason, Response) and unreason.status_code == 200
    assert unreason.reason_phrase == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = _load("noreason")
    assert isinstance(noreason, Response) and noreason.reason_phrase == ""


def test_ipv6_references() -> None:
    good = _load("ipv6-good")
    assert isinstance(good, Request) and good.uri.host == "[2001:db8::10]"
    assert _load("port-unambiguous").uri.port == 5070  # type: ignore[union-attr]
    assert _load("via-received-param-with-delim").top_via.received == "[2001:db8::9:255]"  # type: ignore[union-attr]
    assert _load("via-received-param-no-delim").top_via.received == "2001:db8::9:255"  # type: ignore[union-attr]
    three = _load("ipv6-bug-abnf-3-colons")
    assert isinstance(three, Request) and three.uri.host == "[2001:db8:::192.0.2.1]"
    hosts = [v.host for v in _load("mult-ip-in-header").via]
    assert any(h.startswith("[") for h in hosts) and any(not h.startswith("[") for h in hosts)
