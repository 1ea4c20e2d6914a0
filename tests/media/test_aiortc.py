"""AiortcSDH end to end: two handlers in one process, real ICE/DTLS-SRTP/RTP on 127.0.0.1.

A plays 440 Hz and offers, B plays 660 Hz and answers (the ``call`` fixture); each checks with
Goertzel that it hears the other.  Every test asserts, one way or another, that no ICE pair,
candidate or socket involves an address other than 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import struct
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from aioice import stun

from sipfsm import ConfigurationError, InvalidStateError
from sipfsm.media import AiortcSDH, IncompatibleSDP, MediaError, aiortc_factory, hold_modifier
from sipfsm.media.dtmf import detect_tone, tone_frequency
from sipfsm.media.sdp import SessionDescription, candidate_address

from .support import LOOPBACK, Ear, MakeSDH, negotiate, wait_until

Call = tuple[AiortcSDH, Ear, AiortcSDH, Ear]


def assert_loopback_only(*sdhs: AiortcSDH) -> None:
    """No candidate, pair or socket of these handlers uses anything but 127.0.0.1."""
    for sdh in sdhs:
        connection = sdh.ice_connection
        assert connection is not None
        assert {c.host for c in connection.local_candidates} <= {LOOPBACK}
        assert {c.host for c in connection.remote_candidates} <= {LOOPBACK}
        pairs = sdh.ice_pairs()
        assert pairs, "no ICE pair at all"
        for local, remote, _ in pairs:
            assert local[0] == remote[0] == LOOPBACK, (local, remote)
        for protocol in connection._protocols:
            assert protocol.transport.get_extra_info("sockname")[0] == LOOPBACK
        refusals = sdh.ice_refusals
        assert refusals is not None and refusals.datagrams_out == 0


def audio_section(sdp: str) -> Any:
    audio = SessionDescription.parse(sdp).first_audio()
    assert audio is not None
    return audio


async def hears(ear: Ear, frequency: float, seconds: float = 0.4, settle: int = 0) -> None:
    """``ear`` hears ``frequency`` in the next ``seconds``, after skipping ``settle`` frames."""
    if settle:
        await ear.wait_frames(settle)
    frames = await ear.wait_frames(int(seconds * 50))
    assert tone_frequency(frames) == pytest.approx(frequency, abs=2.0)
    assert detect_tone(frames, frequency)


# -- the basic call --------------------------------------------------------------------------


async def test_call_connects_on_loopback_and_each_hears_the_other(call: Call) -> None:
    a, ear_a, b, ear_b = call
    await hears(ear_b, 440)
    await hears(ear_a, 660)
    assert a.direction == b.direction == "sendrecv"
    assert a.remote_direction == b.remote_direction == "sendrecv"
    assert ear_a.directions == ear_b.directions == [("sendrecv", "sendrecv")]
    assert_loopback_only(a, b)
    selected = a.selected_pair()
    assert selected is not None and selected[0][0] == selected[1][0] == LOOPBACK
    assert a.connection_state == b.connection_state == "connected"


async def test_descriptions_are_webrtc_and_non_trickle(make_sdh: MakeSDH) -> None:
    a, b = make_sdh(), make_sdh()
    offer, content_type = await a.get_description()
    assert content_type == "application/sdp"
    assert "a=group:BUNDLE 0\r\n" in offer
    audio = audio_section(offer)
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert audio.has_attribute("rtcp-mux") and audio.attributes("setup") == ["actpass"]
    assert audio.has_attribute("end-of-candidates")  # gathering was complete
    assert [candidate_address(line) for line in audio.candidate_lines()] == [LOOPBACK]
    assert [(c.name, c.rate) for c in audio.codecs()] == [
        ("opus", 48000), ("PCMU", 8000), ("PCMA", 8000),
        ("telephone-event", 48000), ("telephone-event", 8000)]
    assert audio.direction == "sendrecv"
    await b.set_description(offer)
    answer, _ = await b.get_description()
    answered = audio_section(answer)
    assert answered.attributes("setup") == ["active"]
    assert [(c.name, c.rate) for c in answered.codecs()] == [
        ("opus", 48000), ("PCMU", 8000), ("PCMA", 8000),
        ("telephone-event", 48000), ("telephone-event", 8000)]
    assert [c.pt for c in answered.codecs()] == [c.pt for c in audio.codecs()]


async def test_codec_preferences(make_sdh: MakeSDH) -> None:
    ear_b = Ear()
    a = make_sdh(codecs=["PCMA"], tone_hz=1000)
    b = make_sdh(ear_b, codecs=["opus", "pcmu", "PCMA"])
    await negotiate(a, b)
    answered = audio_section(b.local_description or "")
    assert [c.name for c in answered.codecs()] == ["PCMA", "telephone-event"]
    await b.wait_connected()
    frames = await ear_b.wait_frames(20)
    assert frames[0].sample_rate == 8000
    assert tone_frequency(frames) == pytest.approx(1000, abs=2.0)


async def test_unpinned_handlers_use_aioice_gathering(make_sdh: MakeSDH) -> None:
    # The autouse fixture limits aioice's interface scan to loopback, so this stays local too.
    ear = Ear()
    a, b = make_sdh(ice_addresses=None), make_sdh(ear, ice_addresses=None)
    await negotiate(a, b)
    await b.wait_connected()
    assert a.ice_refusals is None
    await hears(ear, 440)


# -- hold ------------------------------------------------------------------------------------


async def test_hold_and_unhold(call: Call) -> None:
    a, ear_a, b, ear_b = call
    await ear_a.wait_frames(5)
    await negotiate(a, b, modifiers=[hold_modifier])
    assert (a.direction, a.remote_direction) == ("sendonly", "recvonly")
    assert (b.direction, b.remote_direction) == ("recvonly", "sendonly")
    assert ear_b.directions[-1] == ("recvonly", "sendonly")
    assert not b.send_dtmf("1")  # held: B does not send
    await asyncio.sleep(0.1)  # packets in flight
    held_at = len(ear_a.frames)
    await hears(ear_b, 440)  # B still hears A…
    assert len(ear_a.frames) == held_at  # …but A, holding, receives nothing from B
    await negotiate(a, b)
    assert a.direction == b.direction == "sendrecv"
    assert ear_a.directions[-1] == ("sendrecv", "sendrecv")
    # the first frames after the gap are the decoder's concealment and the jitter buffer's
    # catching up: skip them
    await hears(ear_a, 660, settle=10)
    assert_loopback_only(a, b)


async def test_held_by_the_peer(call: Call) -> None:
    a, ear_a, b, _ = call
    await negotiate(b, a, modifiers=[hold_modifier])  # B re-INVITEs with hold
    assert (a.direction, a.remote_direction) == ("recvonly", "sendonly")
    assert ear_a.directions[-1] == ("recvonly", "sendonly")
    assert not a.send_dtmf("1")
    await hears(ear_a, 660)
    # A answers the next offer with hold too: both inactive
    offer, _ = await a.get_description(modifiers=[hold_modifier])
    assert audio_section(offer).direction == "sendonly"
    await b.set_description(offer)
    answer, _ = await b.get_description(modifiers=[hold_modifier])
    assert audio_section(answer).direction == "inactive"
    await a.set_description(answer)
    assert a.direction == b.direction == "inactive"


async def test_answer_cannot_widen_what_we_offered(call: Call) -> None:
    a, ear_a, b, _ = call
    offer, _ = await a.get_description(modifiers=[hold_modifier])
    await b.set_description(offer)
    answer, _ = await b.get_description()
    assert audio_section(answer).direction == "recvonly"

    def widen(sdp: str) -> str:  # a peer that answers sendrecv to our sendonly
        return sdp.replace("a=recvonly", "a=sendrecv")

    await a.set_description(answer, modifiers=[widen])
    assert (a.direction, a.remote_direction) == ("sendonly", "sendrecv")
    await asyncio.sleep(0.1)
    count = len(ear_a.frames)
    await asyncio.sleep(0.3)
    assert len(ear_a.frames) == count


# -- DTMF ------------------------------------------------------------------------------------


def record_outgoing(sdh: AiortcSDH) -> list[bytes]:
    """Record the plain RTP the splice hands to SRTP (the final packets, before protection)."""
    splice = sdh.rtp_splice
    assert splice is not None and splice._send is not None
    sent: list[bytes] = []
    original = splice._send

    async def recording(data: bytes) -> None:
        sent.append(data)
        await original(data)

    splice._send = recording
    return sent


async def test_rfc4733_digits_arrive_in_order(call: Call) -> None:
    a, _, b, ear_b = call
    await ear_b.wait_frames(5)
    outgoing = record_outgoing(a)
    tones = "1234567890*#ABCD"
    assert a.send_dtmf(tones.lower(), duration=80, inter_tone_gap=50)
    await wait_until(lambda: len(ear_b.dtmf) == len(tones), timeout=10)
    assert ear_b.tones == tones
    assert {ms for _, ms, _ in ear_b.dtmf} == {80}
    gaps = [t2 - t1 for (_, _, t1), (_, _, t2) in itertools.pairwise(ear_b.dtmf)]
    assert min(gaps) > 0.1 and max(gaps) < 0.2  # 80 ms tone + 50 ms gap, with jitter
    assert b.dtmf_received == [(t, 80) for t in tones]
    await wait_until(lambda: not a.dtmf_sending)  # the last end packets
    # one SSRC, one gap-free sequence through the events, the marker on each first packet
    ssrc = int.from_bytes(outgoing[0][8:12], "big")
    rtp = [p for p in outgoing if p[1] < 192 or p[1] > 208]
    assert {int.from_bytes(p[8:12], "big") for p in rtp} == {ssrc}
    seqs = [int.from_bytes(p[2:4], "big") for p in rtp]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    events = [p for p in rtp if p[1] & 0x7F == 110]
    assert sum(1 for p in events if p[1] & 0x80) == len(tones)
    assert all(p[0] & 0x10 for p in events)  # header extension (the MID) as on audio
    assert len(events) >= 5 * len(tones)
    await hears(ear_b, 440, settle=10)  # and the audio is back


async def test_dtmf_both_ways_at_8khz(make_sdh: MakeSDH) -> None:
    ear_a, ear_b = Ear(), Ear()
    a = make_sdh(ear_a, codecs=["PCMU"])
    b = make_sdh(ear_b)
    await negotiate(a, b)
    await a.wait_connected()
    answer = audio_section(b.local_description or "")
    assert [(c.pt, c.name, c.rate) for c in answer.codecs()] == [
        (0, "PCMU", 8000), (126, "telephone-event", 8000)]
    assert a.send_dtmf("159", duration=100)
    assert b.send_dtmf("#", duration=250)
    await wait_until(lambda: len(ear_b.dtmf) == 3 and len(ear_a.dtmf) == 1, timeout=10)
    assert [(t, ms) for t, ms, _ in ear_b.dtmf] == [("1", 100), ("5", 100), ("9", 100)]
    assert [(t, ms) for t, ms, _ in ear_a.dtmf] == [("#", 250)]
    assert not a.dtmf_sending or await _until_idle(a)


async def _until_idle(sdh: AiortcSDH) -> bool:
    await wait_until(lambda: not sdh.dtmf_sending)
    return True


async def test_long_tone_in_segments_at_48khz(call: Call) -> None:
    a, _, _, ear_b = call
    assert a.send_dtmf("0", duration=1600)  # 76 800 samples: more than 16 bits hold
    await wait_until(lambda: len(ear_b.dtmf) == 1, timeout=5)
    assert [(t, ms) for t, ms, _ in ear_b.dtmf] == [("0", 1600)]


async def test_no_telephone_event_means_info_fallback(make_sdh: MakeSDH) -> None:
    a = make_sdh()
    b = make_sdh(telephone_event=False)
    assert not a.send_dtmf("1")  # nothing negotiated yet
    await negotiate(a, b)
    assert "telephone-event" not in (b.local_description or "")
    assert not a.send_dtmf("1") and not b.send_dtmf("1")
    with pytest.raises(ValueError, match="invalid DTMF"):
        a.send_dtmf("1x")


# -- a browser's offer -----------------------------------------------------------------------

CHROME_OFFER = """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS 9f2c4e6a
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1467250027 1 udp 2122260223 127.0.0.1 {port} typ host generation 0 network-id 1
a=candidate:3715843546 1 udp 2122194687 192.0.2.10 {port} typ host generation 0 network-id 2
a=candidate:2999745851 1 udp 2122129151 4b1c9e0a-6a4f-4f3e-9f0e-2c1d7e8a9b10.local {port} typ \
host generation 0 network-id 3
a=ice-ufrag:ChRm
a=ice-pwd:Zq8u1Fe0wWn3mJcV7pXr2sKd
a=ice-options:trickle
a=fingerprint:sha-256 \
3C:4E:1A:77:0B:92:DE:5F:61:08:AA:C3:19:E4:70:2D:B5:88:4F:06:D1:3E:9A:C7:52:6B:F0:21:8D:94:E3:7A
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:9f2c4e6a 7d3b2a1c
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3735928559 cname:Xk2f9QbLr0Tz1mNc
a=ssrc:3735928559 msid:9f2c4e6a 7d3b2a1c
""".replace("\\\n", "")

CHROME_VIDEO = """m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:ChRm
a=ice-pwd:Zq8u1Fe0wWn3mJcV7pXr2sKd
a=fingerprint:sha-256 \
3C:4E:1A:77:0B:92:DE:5F:61:08:AA:C3:19:E4:70:2D:B5:88:4F:06:D1:3E:9A:C7:52:6B:F0:21:8D:94:E3:7A
a=setup:actpass
a=mid:1
a=sendrecv
a=rtcp-mux
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
""".replace("\\\n", "")


class FakeBrowser(asyncio.DatagramProtocol):
    """A socket on 127.0.0.1 standing where the browser's host candidate points."""

    def __init__(self) -> None:
        self.requests: list[tuple[stun.Message, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        self.requests.append((message, addr))


@pytest.fixture
async def browser() -> AsyncIterator[tuple[FakeBrowser, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(FakeBrowser,
                                                              local_addr=(LOOPBACK, 0))
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


async def test_browser_offer_is_answered_and_filtered(
        make_sdh: MakeSDH, browser: tuple[FakeBrowser, int]) -> None:
    fake, port = browser
    b = make_sdh()
    await b.set_description(CHROME_OFFER.format(port=port))
    answer, _ = await b.get_description()
    assert "a=group:BUNDLE 0" in answer
    audio = audio_section(answer)
    assert audio.attributes("mid") == ["0"]
    assert audio.attributes("setup") == ["active"]  # we are the DTLS client
    assert audio.has_attribute("rtcp-mux")
    assert [(c.pt, c.name, c.rate) for c in audio.codecs()] == [
        (111, "opus", 48000), (0, "PCMU", 8000), (8, "PCMA", 8000),
        (110, "telephone-event", 48000), (126, "telephone-event", 8000)]
    assert [candidate_address(line) for line in audio.candidate_lines()] == [LOOPBACK]
    assert b.direction == "sendrecv" and b.remote_direction == "sendrecv"
    # the browser's non-loopback and mDNS candidates never reached ICE…
    connection = b.ice_connection
    assert connection is not None
    assert [(c.host, c.port) for c in connection.remote_candidates] == [(LOOPBACK, port)]
    # …and ICE checks go to the loopback candidate, with the browser's ufrag first
    await wait_until(lambda: len(fake.requests) >= 2, timeout=5)
    ufrag = audio.attributes("ice-ufrag")[0]
    for message, source in fake.requests:
        assert message.message_method == stun.Method.BINDING
        assert message.attributes["USERNAME"] == f"ChRm:{ufrag}"
        assert source[0] == LOOPBACK
    assert_loopback_only(b)


async def test_browser_offer_with_video_gets_audio_only(
        make_sdh: MakeSDH, browser: tuple[FakeBrowser, int]) -> None:
    _, port = browser
    b = make_sdh()
    offer = CHROME_OFFER.format(port=port).replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1")
    await b.set_description(offer + CHROME_VIDEO)
    answer = SessionDescription.parse((await b.get_description())[0])
    assert [m.kind for m in answer.media] == ["audio", "video"]
    assert answer.media[0].direction == "sendrecv"
    assert answer.media[1].direction == "inactive"
    # the browser listed candidates in the first section only; ICE still gets them
    await wait_until(lambda: bool(b.ice_pairs()))
    assert_loopback_only(b)


# -- what cannot be used ----------------------------------------------------------------------

PLAIN_RTP_OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda sdp: PLAIN_RTP_OFFER, "DTLS-SRTP is required"),
    (lambda sdp: sdp.replace("111 63 9 0 8 13 110 126", "18 13 110")
     .replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:18 G729/8000"), "no audio codec"),
    (lambda sdp: "\n".join(line for line in sdp.split("\n")
                           if not line.startswith("a=fingerprint")), "fingerprint"),
    (lambda sdp: sdp.replace("m=audio 9", "m=audio 0"), "no audio stream"),
    (lambda sdp: "v=0\r\n", "no audio stream"),
    (lambda sdp: "", "not an SDP body"),
])
async def test_unusable_offers_raise_incompatible_sdp(
        make_sdh: MakeSDH, edit: Callable[[str], str], reason: str) -> None:
    b = make_sdh()
    with pytest.raises(IncompatibleSDP, match=reason) as info:
        await b.set_description(edit(CHROME_OFFER.format(port=9)))
    assert info.value.status == 488
    # nothing was applied: the handler can still make an offer of its own
    offer, _ = await b.get_description()
    assert "m=audio" in offer


async def test_modifier_removing_audio_is_a_media_error(make_sdh: MakeSDH) -> None:
    a = make_sdh()
    with pytest.raises(MediaError, match="no audio stream"):
        await a.get_description(modifiers=[lambda sdp: sdp.replace("m=audio 9", "m=audio 0")
                                           .split("m=audio")[0] + "m=audio 0 X 0\r\n"])


# -- sources, sinks, servers ------------------------------------------------------------------


def write_tone(path: Path, frequency: float, seconds: float, rate: int = 48000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * i / rate)))
            for i in range(int(rate * seconds))))


async def test_file_source_and_recording(make_sdh: MakeSDH, tmp_path: Path) -> None:
    source, recording = tmp_path / "tone.wav", tmp_path / "heard.wav"
    write_tone(source, 523.0, 3.0)
    a = make_sdh(audio_source=str(source))
    b = make_sdh(record_to=str(recording))
    await negotiate(a, b)
    await b.wait_connected()
    await asyncio.sleep(1.2)
    await b.close()
    await a.close()
    with wave.open(str(recording), "rb") as heard:
        channels, rate = heard.getnchannels(), heard.getframerate()
        pcm = heard.readframes(heard.getnframes())
    assert len(pcm) > rate  # more than a quarter of a second of audio
    if channels == 2:  # keep the left channel
        pcm = b"".join(pcm[i:i + 2] for i in range(0, len(pcm), 4))
    assert tone_frequency(pcm, sample_rate=rate) == pytest.approx(523.0, abs=2.0)


async def test_silence_source(make_sdh: MakeSDH) -> None:
    ear = Ear()
    a = make_sdh(audio_source="silence")
    b = make_sdh(ear)
    await negotiate(a, b)
    frames = await ear.wait_frames(20)
    assert tone_frequency(frames) == 0.0


async def test_track_source(make_sdh: MakeSDH) -> None:
    from sipfsm.media.tracks import ToneTrack

    ear = Ear()
    a = make_sdh(audio_source=ToneTrack(1500.0, amplitude=0.5))
    b = make_sdh(ear)
    await negotiate(a, b)
    await hears(ear, 1500)


async def test_missing_file_is_a_media_error(make_sdh: MakeSDH, tmp_path: Path) -> None:
    a = make_sdh(audio_source=str(tmp_path / "missing.wav"))
    with pytest.raises(MediaError, match="audio source"):
        await a.get_description()


class FakeStunServer(asyncio.DatagramProtocol):
    """Answers STUN binding requests on 127.0.0.1 with the source address."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        self.requests += 1
        response = stun.Message(message_method=stun.Method.BINDING,
                                message_class=stun.Class.RESPONSE,
                                transaction_id=request.transaction_id)
        response.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1] + 1)
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


async def test_stun_server_from_options(make_sdh: MakeSDH) -> None:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(FakeStunServer,
                                                            local_addr=(LOOPBACK, 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        a = make_sdh(ice_servers=[f"stun:{LOOPBACK}:{port}"])
        offer, _ = await a.get_description()
        assert server.requests >= 1
        kinds = [line.split()[7] for line in audio_section(offer).candidate_lines()]
        assert kinds == ["host", "srflx"]
    finally:
        transport.close()


@pytest.mark.parametrize(("options", "parameter"), [
    ({"ice_addresses": "127.0.0.1"}, "ice_addresses"),
    ({"ice_addresses": ["localhost"]}, "ice_addresses"),
    ({"ice_servers": ["http://stun.example.com"]}, "ice_servers"),
    ({"ice_servers": [{"url": "stun:x"}]}, "ice_servers"),
    ({"audio_source": 5}, "audio_source"),
    ({"tone_hz": 0}, "tone_hz"),
    ({"tone_hz": "440"}, "tone_hz"),
    ({"codecs": ["VP8"]}, "codecs"),
    ({"on_audio": "print"}, "on_audio"),
    ({"on_audio": print, "record_to": "x.wav"}, "record_to"),
    ({"tone": 440}, "tone"),
])
def test_bad_options(options: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AiortcSDH(options)
    assert info.value.parameter == parameter


def test_turn_credentials_never_show_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        AiortcSDH({"ice_servers": [{"urls": "turn:x", "credential": "s3cret", "user": "u"}]})
    assert "s3cret" not in str(info.value)


async def test_close_releases_everything(make_sdh: MakeSDH) -> None:
    before = asyncio.all_tasks()
    ear_a = Ear()
    a = aiortc_factory(object(), {"ice_addresses": [LOOPBACK], **ear_a.options()})
    b = make_sdh()
    await negotiate(a, b)
    await a.wait_connected()
    await ear_a.wait_frames(5)
    a.send_dtmf("123")
    connection = a.ice_connection
    assert connection is not None
    await a.close()
    await a.close()  # idempotent
    assert a.connection_state == "closed"
    assert connection._protocols == []  # sockets closed
    assert not a.send_dtmf("1")
    with pytest.raises(InvalidStateError):
        await a.get_description()
    await b.close()
    await asyncio.sleep(0.05)
    left = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert left == set(), left
