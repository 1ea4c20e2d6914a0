"""SignallingOnlySDH: RFC 4566 offers, RFC 3264 answers, hold, errors; no media at all."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipfsm import ConfigurationError, InvalidStateError
from sipfsm.media import IncompatibleSDP, SignallingOnlySDH, hold_modifier, signalling_only_factory
from sipfsm.media.sdp import SessionDescription

from .support import negotiate


def lines(sdp: str) -> list[str]:
    assert sdp.endswith("\r\n") and "\n" not in sdp.replace("\r\n", "")
    return sdp.split("\r\n")[:-1]


async def test_offer_is_valid_rfc4566() -> None:
    sdh = SignallingOnlySDH({"address": "192.0.2.10", "port": 40000})
    body, content_type = await sdh.get_description()
    assert content_type == "application/sdp"
    got = lines(body)
    assert [line[0] for line in got[:5]] == ["v", "o", "s", "c", "t"]
    assert got[0] == "v=0"
    assert re.fullmatch(r"o=- \d+ \d+ IN IP4 192\.0\.2\.10", got[1])
    assert got[2] == "s=-" and got[3] == "c=IN IP4 192.0.2.10" and got[4] == "t=0 0"
    assert got[5] == "m=audio 40000 RTP/AVP 0 8 101"
    assert got[6:] == ["a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
                       "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20",
                       "a=sendrecv"]
    assert sdh.direction is None  # nothing negotiated yet
    assert sdh.has_description("application/sdp")
    assert not sdh.has_description("text/plain")


async def test_ipv6_address() -> None:
    body, _ = await SignallingOnlySDH({"address": "2001:db8::1"}).get_description()
    assert "c=IN IP6 2001:db8::1\r\n" in body


async def test_round_trip_offer_answer() -> None:
    seen: list[tuple[str, str]] = []
    a = SignallingOnlySDH({"on_direction": lambda local, remote: seen.append((local, remote))})
    b = SignallingOnlySDH({"codecs": ["PCMA", "PCMU"], "port": 5004})
    await negotiate(a, b)
    assert a.direction == b.direction == "sendrecv"
    assert a.remote_direction == b.remote_direction == "sendrecv"
    assert seen == [("sendrecv", "sendrecv")]
    answer = SessionDescription.parse(b.local_description or "")
    audio = answer.media[0]
    assert audio.m_line == "m=audio 5004 RTP/AVP 0 8 101"  # the offer's order and PTs
    assert b.remote_description is not None and a.remote_description is not None


async def test_answer_intersects_codecs_and_keeps_offer_payload_types() -> None:
    offer = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
             "m=audio 6000 RTP/AVP 18 96 8 100 101\r\n"
             "a=rtpmap:96 opus/48000/2\r\na=rtpmap:100 telephone-event/48000\r\n"
             "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n")
    b = SignallingOnlySDH({"codecs": ["PCMU", "PCMA", "opus"]})
    await b.set_description(offer)
    answer = SessionDescription.parse((await b.get_description())[0])
    audio = answer.media[0]
    assert audio.fmts == ["96", "8", "100", "101"]  # G.729 dropped; te at both kept rates
    assert [(c.pt, c.name, c.rate) for c in audio.codecs()] == [
        (96, "opus", 48000), (8, "PCMA", 8000), (100, "telephone-event", 48000),
        (101, "telephone-event", 8000)]
    assert "a=fmtp:101 0-15" in audio.lines


async def test_telephone_event_only_at_accepted_rates() -> None:
    offer = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"
             "m=audio 6000 RTP/AVP 0 100\r\nc=IN IP4 192.0.2.1\r\n"
             "a=rtpmap:100 telephone-event/48000\r\n")
    b = SignallingOnlySDH()
    await b.set_description(offer)
    answer = SessionDescription.parse((await b.get_description())[0])
    assert answer.media[0].fmts == ["0"]


@pytest.mark.parametrize(("offered", "answered", "local_b", "local_a"), [
    ("sendrecv", "sendrecv", "sendrecv", "sendrecv"),
    ("sendonly", "recvonly", "recvonly", "sendonly"),
    ("recvonly", "sendonly", "sendonly", "recvonly"),
    ("inactive", "inactive", "inactive", "inactive"),
])
async def test_direction_inversion(offered: str, answered: str, local_b: str,
                                   local_a: str) -> None:
    a = SignallingOnlySDH({"direction": offered})
    b = SignallingOnlySDH()
    await negotiate(a, b)
    answer = SessionDescription.parse(b.local_description or "")
    assert answer.media[0].direction == answered
    assert (b.direction, b.remote_direction) == (local_b, offered)
    assert (a.direction, a.remote_direction) == (local_a, answered)


async def test_answerer_limits_direction_by_its_own() -> None:
    a = SignallingOnlySDH()
    b = SignallingOnlySDH({"direction": "recvonly"})
    await negotiate(a, b)
    assert (a.direction, b.direction) == ("sendonly", "recvonly")


async def test_hold_and_unhold_by_reinvite() -> None:
    directions: list[tuple[str, str]] = []
    a = SignallingOnlySDH()
    b = SignallingOnlySDH({"on_direction": lambda lo, re_: directions.append((lo, re_))})
    await negotiate(a, b)
    first = a.local_description or ""
    await negotiate(a, b, modifiers=[hold_modifier])
    assert (a.direction, b.direction, b.remote_direction) == ("sendonly", "recvonly", "sendonly")
    held = a.local_description or ""
    version = [int(line.split()[2]) for line in (first, held) for line in lines(line)
               if line.startswith("o=")]
    assert version[1] == version[0] + 1  # the body changed: RFC 3264 §8
    await negotiate(a, b)
    assert a.direction == b.direction == "sendrecv"
    assert directions == [("sendrecv", "sendrecv"), ("recvonly", "sendonly"),
                          ("sendrecv", "sendrecv")]


async def test_both_holding_gives_inactive() -> None:
    a, b = SignallingOnlySDH(), SignallingOnlySDH()
    await negotiate(a, b, modifiers=[hold_modifier])
    # b holds too, by re-INVITE; a, still holding, answers through the hold modifier as well
    offer, _ = await b.get_description(modifiers=[hold_modifier])
    await a.set_description(offer)
    answer, _ = await a.get_description(modifiers=[hold_modifier])
    await b.set_description(answer)
    assert SessionDescription.parse(answer).media[0].direction == "inactive"  # recvonly, held
    assert a.direction == b.direction == "inactive"


async def test_a_failing_direction_callback_is_logged_not_raised() -> None:
    class Log:
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def debug(self, event: str, /, **fields: object) -> None:
            pass

        def warn(self, event: str, /, **fields: object) -> None:
            self.warnings.append(event)

    def boom(local: str, remote: str) -> None:
        raise RuntimeError("listener bug")

    log = Log()
    a = SignallingOnlySDH({"on_direction": boom, "logger": log})
    await negotiate(a, SignallingOnlySDH())
    assert a.direction == "sendrecv"
    assert log.warnings == ["on_direction_failed"]


async def test_unchanged_offer_keeps_its_version() -> None:
    a = SignallingOnlySDH()
    first, _ = await a.get_description()
    second, _ = await a.get_description()
    assert first == second


async def test_no_common_codec_is_incompatible() -> None:
    a = SignallingOnlySDH({"codecs": ["G722"]})
    b = SignallingOnlySDH({"codecs": ["PCMU"]})
    offer, _ = await a.get_description()
    with pytest.raises(IncompatibleSDP, match="no audio stream"):
        await b.set_description(offer)
    # b is still usable: it makes its own offer
    body, _ = await b.get_description()
    assert "m=audio" in body


@pytest.mark.parametrize("offer", [
    "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",  # no media
    "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 31\r\n",
    "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",  # rejected
    "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n",
    "not sdp at all",
])
async def test_unusable_offers_are_incompatible(offer: str) -> None:
    with pytest.raises(IncompatibleSDP):
        await SignallingOnlySDH().set_description(offer)


async def test_answer_rejects_extra_streams_with_port_zero() -> None:
    offer = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
             "m=video 5002 RTP/AVP 31\r\nm=audio 5000 RTP/AVP 0\r\nm=audio 5004 RTP/AVP 0\r\n")
    b = SignallingOnlySDH()
    await b.set_description(offer)
    answer = SessionDescription.parse((await b.get_description())[0])
    assert [m.m_line for m in answer.media] == [
        "m=video 0 RTP/AVP 31", "m=audio 9 RTP/AVP 0", "m=audio 0 RTP/AVP 0"]
    assert b.direction == "sendrecv"


async def test_answer_checks() -> None:
    a = SignallingOnlySDH()
    await a.get_description()
    with pytest.raises(IncompatibleSDP, match="media streams"):
        await a.set_description("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"
                                "m=audio 5000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n")
    with pytest.raises(IncompatibleSDP, match="no audio stream"):
        await a.set_description("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"
                                "m=audio 0 RTP/AVP 0\r\n")
    await a.set_description("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"
                            "m=audio 5000 RTP/AVP 8\r\na=recvonly\r\n")
    assert (a.direction, a.remote_direction) == ("sendonly", "recvonly")


async def test_modifiers_apply_to_remote_descriptions_too() -> None:
    a, b = SignallingOnlySDH(), SignallingOnlySDH()
    offer, _ = await a.get_description()
    await b.set_description(offer, modifiers=[hold_modifier])  # as if a had held
    answer, _ = await b.get_description()
    assert "a=recvonly" in answer
    assert (b.direction, b.remote_direction) == ("recvonly", "sendonly")


async def test_dtmf_is_not_carried_and_close_is_final() -> None:
    sdh = signalling_only_factory(object(), None)
    assert sdh.send_dtmf("123") is False
    await sdh.close()
    await sdh.close()
    with pytest.raises(InvalidStateError):
        await sdh.get_description()
    with pytest.raises(InvalidStateError):
        await sdh.set_description("v=0\r\n")


@pytest.mark.parametrize(("options", "parameter"), [
    ({"codecs": ["G729"]}, "codecs"),
    ({"codecs": "PCMU"}, "codecs"),
    ({"codecs": []}, "codecs"),
    ({"port": 0}, "port"),
    ({"port": True}, "port"),
    ({"address": "a b"}, "address"),
    ({"direction": "both"}, "direction"),
    ({"prot": 5}, "prot"),
    ({"on_direction": "print"}, "on_direction"),
])
def test_bad_options(options: dict[str, object], parameter: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SignallingOnlySDH(options)
    assert info.value.parameter == parameter


@given(st.lists(st.sampled_from(["PCMU", "PCMA", "G722", "opus"]), min_size=1, max_size=4),
       st.lists(st.sampled_from(["PCMU", "PCMA", "G722", "opus"]), min_size=1, max_size=4),
       st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]),
       st.booleans())
async def test_any_pair_either_agrees_or_refuses(offer_codecs: list[str],
                                                 answer_codecs: list[str], direction: str,
                                                 hold: bool) -> None:
    a = SignallingOnlySDH({"codecs": offer_codecs, "direction": direction})
    b = SignallingOnlySDH({"codecs": answer_codecs})
    common = {c.lower() for c in offer_codecs} & {c.lower() for c in answer_codecs}
    if not common:
        with pytest.raises(IncompatibleSDP):
            await negotiate(a, b, modifiers=[hold_modifier] if hold else [])
        return
    await negotiate(a, b, modifiers=[hold_modifier] if hold else [])
    assert a.direction is not None and b.direction is not None
    # each side's direction is the other's, seen from the other end (RFC 3264 §6.1)
    from sipfsm.media.base import reverse_direction

    assert a.direction == reverse_direction(b.direction)
    answer = SessionDescription.parse(b.local_description or "").media[0]
    assert {c.name.lower() for c in answer.codecs() if c.is_media} <= common
