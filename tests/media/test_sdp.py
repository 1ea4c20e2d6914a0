"""The SDP text model, directions, the hold modifier and option checking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipfsm import ConfigurationError, SipfsmError
from sipfsm.causes import Cause
from sipfsm.media import IncompatibleSDP, MediaError, SessionDescriptionHandler, hold_modifier
from sipfsm.media.base import (
    DIRECTIONS,
    and_direction,
    apply_modifiers,
    check_options,
    is_sdp_content_type,
    reverse_direction,
)
from sipfsm.media.sdp import Codec, SessionDescription, candidate_address, is_mdns_name

OFFER = (
    "v=0\r\n"
    "o=- 20518 0 IN IP4 203.0.113.1\r\n"
    "s=-\r\n"
    "c=IN IP4 203.0.113.1\r\n"
    "t=0 0\r\n"
    "m=audio 54400 RTP/AVP 0 8 97 101\r\n"
    "a=rtpmap:97 opus/48000/2\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
    "a=candidate:2 1 udp 2130706175 192.0.2.7 5000 typ host\r\n"
    "a=candidate:3 1 udp 2130705919 5c3b1f6e-0e5b-4b4a-9d1a-1c2f.local 5000 typ host\r\n"
    "m=video 0 RTP/AVP 31\r\n"
)


def test_parse_round_trip_keeps_every_line() -> None:
    description = SessionDescription.parse(OFFER.replace("\r\n", "\n"))
    assert str(description) == OFFER
    assert [m.kind for m in description.media] == ["audio", "video"]
    assert description.media[1].rejected
    assert description.first_audio() is description.media[0]


def test_codecs_use_static_payload_types_rtpmap_and_fmtp() -> None:
    audio = SessionDescription.parse(OFFER).media[0]
    assert audio.codecs() == [
        Codec(0, "PCMU", 8000), Codec(8, "PCMA", 8000), Codec(97, "opus", 48000, 2),
        Codec(101, "telephone-event", 8000, 1, "0-16"),
    ]
    assert [c.is_media for c in audio.codecs()] == [True, True, True, False]
    assert Codec(0, "pcmu", 8000).same_format(Codec(96, "PCMU", 8000))
    assert not Codec(0, "opus", 48000, 2).same_format(Codec(0, "opus", 48000, 1))


def test_add_codecs_extends_the_m_line_and_the_rtpmaps() -> None:
    description = SessionDescription.parse(OFFER)
    audio = description.media[0]
    audio.add_codecs([Codec(110, "telephone-event", 48000, 1, "0-16"), Codec(0, "PCMU", 8000)])
    assert audio.fmts == ["0", "8", "97", "101", "110"]
    text = str(description)
    assert "a=rtpmap:110 telephone-event/48000\r\na=fmtp:110 0-16\r\n" in text
    assert text.index("a=fmtp:110") < text.index("a=candidate:1")


def test_filter_candidates_keeps_only_allowed_addresses() -> None:
    description = SessionDescription.parse(OFFER)
    dropped = description.filter_candidates(["127.0.0.1"])
    assert [candidate_address(line) for line in dropped] == [
        "192.0.2.7", "5c3b1f6e-0e5b-4b4a-9d1a-1c2f.local"]
    assert [candidate_address(line) for line in description.media[0].candidate_lines()] == [
        "127.0.0.1"]
    assert is_mdns_name("x.local") and not is_mdns_name("127.0.0.1")


def test_mark_candidates_complete_skips_rejected_streams() -> None:
    description = SessionDescription.parse(OFFER)
    description.mark_candidates_complete()
    description.mark_candidates_complete()
    assert description.media[0].attributes("end-of-candidates") == [""]
    assert not description.media[1].has_attribute("end-of-candidates")


@pytest.mark.parametrize("text", ["", "hello", "v=0\r\nm=audio\r\n", "v=0\r\nbad line\r\n",
                                  "v=0\r\nm=audio x RTP/AVP 0\r\n"])
def test_not_sdp_is_incompatible(text: str) -> None:
    with pytest.raises(IncompatibleSDP) as info:
        SessionDescription.parse(text)
    assert info.value.status == 488
    assert info.value.cause is Cause.INCOMPATIBLE_SDP
    assert isinstance(info.value, SipfsmError)


def test_errors_carry_status_and_cause() -> None:
    error = MediaError("ICE failed")
    assert (error.status, error.cause, error.reason) == (480, Cause.WEBRTC_ERROR, "ICE failed")
    assert issubclass(IncompatibleSDP, MediaError)


def test_directions() -> None:
    assert reverse_direction("sendonly") == "recvonly"
    assert reverse_direction("recvonly") == "sendonly"
    assert reverse_direction("sendrecv") == "sendrecv"
    assert reverse_direction("inactive") == "inactive"
    assert and_direction("sendrecv", "recvonly") == "recvonly"
    assert and_direction("sendonly", "recvonly") == "inactive"


@given(st.sampled_from(DIRECTIONS), st.sampled_from(DIRECTIONS))
def test_direction_algebra(a: str, b: str) -> None:
    assert reverse_direction(reverse_direction(a)) == a  # type: ignore[arg-type]
    assert and_direction(a, b) == and_direction(b, a)  # type: ignore[arg-type]
    assert reverse_direction(and_direction(a, b)) == and_direction(  # type: ignore[arg-type]
        reverse_direction(a), reverse_direction(b))  # type: ignore[arg-type]


@pytest.mark.parametrize(("before", "after"), [
    ("sendrecv", "sendonly"), ("recvonly", "inactive"),
    ("sendonly", "sendonly"), ("inactive", "inactive"),
])
def test_hold_modifier_rfc3264_8_4(before: str, after: str) -> None:
    held = hold_modifier(OFFER.replace("m=video", f"a={before}\r\nm=video"))
    audio, video = SessionDescription.parse(held).media
    assert audio.direction == after
    assert video.direction is None  # port 0: left alone


def test_hold_modifier_adds_a_direction_before_the_first_attribute() -> None:
    held = SessionDescription.parse(hold_modifier(OFFER))
    audio = held.media[0]
    assert audio.direction == "sendonly"
    assert audio.lines[0] == "a=sendonly"  # before a=rtpmap, after nothing else (no c=)


def test_hold_modifier_respects_a_session_level_direction() -> None:
    text = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n")
    held = SessionDescription.parse(hold_modifier(text))
    assert held.session_direction == "inactive"
    assert held.direction_of(held.media[0]) == "inactive"


def test_hold_modifier_is_idempotent() -> None:
    once = hold_modifier(OFFER)
    assert hold_modifier(once) == once


def test_apply_modifiers_in_order_and_checks_the_result() -> None:
    def first(sdp: str) -> str:
        return sdp + "a=x-first\r\n"

    def second(sdp: str) -> str:
        return sdp + "a=x-second\r\n"

    result = apply_modifiers(OFFER, [first, second])
    assert result.endswith("a=x-first\r\na=x-second\r\n")
    with pytest.raises(TypeError):
        apply_modifiers(OFFER, [lambda sdp: None])  # type: ignore[list-item,return-value]


def test_content_type() -> None:
    assert is_sdp_content_type("application/sdp")
    assert is_sdp_content_type("Application/SDP; charset=utf-8")
    assert not is_sdp_content_type("application/dtmf-relay")


def test_check_options_is_strict_and_suggests() -> None:
    assert check_options(None, {"port"}, "x") == {}
    assert check_options({"port": None, "address": "a"}, {"port", "address"}, "x") == {
        "address": "a"}
    with pytest.raises(ConfigurationError, match="did you mean 'tone_hz'"):
        check_options({"tone_hx": 1}, {"tone_hz"}, "x")
    with pytest.raises(ConfigurationError):
        check_options(["port"], {"port"}, "x")  # type: ignore[arg-type]


def test_the_protocol_is_runtime_checkable() -> None:
    from sipfsm.media import AiortcSDH, SignallingOnlySDH

    assert isinstance(SignallingOnlySDH(), SessionDescriptionHandler)
    assert isinstance(AiortcSDH(), SessionDescriptionHandler)


def test_implementations_conform_statically() -> None:
    # mypy checks these assignments against the Protocol and the factory type
    from sipfsm.media import (
        AiortcSDH,
        SessionDescriptionHandlerFactory,
        SignallingOnlySDH,
        aiortc_factory,
        signalling_only_factory,
    )

    handlers: list[SessionDescriptionHandler] = [SignallingOnlySDH(), AiortcSDH()]
    factories: list[SessionDescriptionHandlerFactory] = [signalling_only_factory,
                                                         aiortc_factory]
    assert len(handlers) == len(factories) == 2
