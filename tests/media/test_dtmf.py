"""RFC 4733 events without a network: the splice, the sender's packets, the receiver, Goertzel."""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import av
import pytest
from aiortc.rtp import RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from sipfsm.media import dtmf
from sipfsm.media.dtmf import (
    DtmfReceiver,
    DtmfSender,
    RtpSplice,
    TelephoneEvent,
    detect_tone,
    goertzel_power,
    normalise_tones,
    tone_frequency,
)

SSRC = 0x11223344
AUDIO_PT = 96
EVENT_PT = 110
RATE = 48000


class FakeTransport:
    """Stands in for RTCDtlsTransport: records what would be protected and sent or routed."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.routed: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append((asyncio.get_running_loop().time(), data))

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self.routed.append(data)


def audio(seq: int, ts: int, ssrc: int = SSRC) -> bytes:
    return RtpPacket(payload_type=AUDIO_PT, sequence_number=seq & 0xFFFF, timestamp=ts,
                     ssrc=ssrc, payload=b"\x00" * 20).serialize()


@dataclass
class Sent:
    time: float
    packet: RtpPacket

    @property
    def event(self) -> TelephoneEvent | None:
        if self.packet.payload_type != EVENT_PT:
            return None
        return TelephoneEvent.decode(self.packet.payload)


def parse_sent(transport: FakeTransport) -> list[Sent]:
    return [Sent(t, RtpPacket.parse(data)) for t, data in transport.sent]


def assert_gap_free(packets: list[Sent]) -> None:
    seqs = [p.packet.sequence_number for p in packets if p.packet.ssrc == SSRC]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))], seqs


@pytest.fixture
async def line() -> AsyncIterator[tuple[FakeTransport, RtpSplice]]:
    """A fake transport with a splice and an audio sender pumping 20 ms packets into it."""
    transport = FakeTransport()
    splice = RtpSplice(transport, SSRC, mid="0")
    splice.install()
    stop = asyncio.Event()

    async def pump() -> None:
        seq, ts = 65530, 0xFFFFF000  # both wrap during the test
        while not stop.is_set():
            await transport._send_rtp(audio(seq, ts & 0xFFFFFFFF))
            seq, ts = seq + 1, ts + RATE // 50
            await asyncio.sleep(0.02)

    task = asyncio.get_running_loop().create_task(pump())
    await splice.audio_started.wait()
    yield transport, splice
    stop.set()
    await task
    splice.uninstall()


def test_tones_are_validated() -> None:
    assert normalise_tones("12ab#*,") == "12AB#*,"
    assert normalise_tones(1234) == "1234"
    for bad in ("", "1E", "12 3", "x"):
        with pytest.raises(ValueError, match="invalid DTMF"):
            normalise_tones(bad)


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_event_block_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    block = TelephoneEvent(event, end, volume, duration)
    encoded = block.encode()
    assert len(encoded) == 4
    assert TelephoneEvent.decode(encoded + b"\x01\x02\x03\x04") == block


def test_event_block_layout() -> None:
    # RFC 4733 §2.3: event 8 bits, E, R, volume 6 bits, duration 16 bits
    assert TelephoneEvent(11, True, 10, 800).encode() == bytes([11, 0x80 | 10, 0x03, 0x20])
    with pytest.raises(ValueError, match="shorter than 4 bytes"):
        TelephoneEvent.decode(b"\x01\x02")


async def test_splice_renumbers_injected_and_suppressed_packets() -> None:
    transport = FakeTransport()
    splice = RtpSplice(transport, SSRC, mid="0")
    splice.install()
    await transport._send_rtp(audio(100, 1000))
    await transport._send_rtp(audio(101, 1960))
    await splice.send_event(EVENT_PT, 2000, True, b"\x01\x0a\x00\xa0")
    splice.suppress_audio = True
    await transport._send_rtp(audio(102, 2920))
    await transport._send_rtp(audio(103, 3880))
    splice.suppress_audio = False
    await splice.send_event(EVENT_PT, 2000, False, b"\x01\x8a\x01\x40")
    await transport._send_rtp(audio(104, 4840))
    await transport._send_rtp(audio(105, 5800, ssrc=999))  # another SSRC: untouched
    rtcp = bytes([0x80, 200]) + bytes(26)
    await transport._send_rtp(rtcp)  # RTCP passes through as is
    packets = [RtpPacket.parse(data) for _, data in transport.sent[:-1]]
    assert [(p.sequence_number, p.payload_type, p.ssrc) for p in packets] == [
        (100, AUDIO_PT, SSRC), (101, AUDIO_PT, SSRC), (102, EVENT_PT, SSRC),
        (103, EVENT_PT, SSRC), (104, AUDIO_PT, SSRC), (105, AUDIO_PT, 999)]
    assert packets[2].marker == 1 and packets[3].marker == 0
    assert packets[2].extensions.mid is None  # no extension map on the fake transport
    assert transport.sent[-1][1] == rtcp
    assert (splice.packets_injected, splice.packets_suppressed) == (2, 2)
    splice.uninstall()
    assert "_send_rtp" not in vars(transport) and "_handle_rtp_data" not in vars(transport)


async def test_splice_diverts_event_payload_types_on_receipt() -> None:
    transport = FakeTransport()
    splice = RtpSplice(transport, SSRC)
    splice.install()
    seen: list[RtpPacket] = []
    splice.event_pts[EVENT_PT] = seen.append
    event = RtpPacket(payload_type=EVENT_PT, sequence_number=7, timestamp=9, ssrc=5,
                      payload=b"\x05\x0a\x00\xa0").serialize()
    await transport._handle_rtp_data(audio(1, 2), 0)
    await transport._handle_rtp_data(event, 0)
    await transport._handle_rtp_data(event[:12] + b"", 0)  # empty payload: still diverted
    assert transport.routed == [audio(1, 2)]
    assert [p.sequence_number for p in seen] == [7, 7]


async def test_sender_event_layout(line: tuple[FakeTransport, RtpSplice]) -> None:
    transport, splice = line
    sender = DtmfSender(splice)
    assert not sender.insert("1")  # not configured yet
    sender.configure(lambda pt: (EVENT_PT, RATE) if pt == AUDIO_PT else None)
    assert sender.insert("1", duration=120)
    while sender.busy:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    packets = parse_sent(transport)
    assert_gap_free(packets)
    events = [p for p in packets if p.event is not None]
    blocks = [p.event for p in events if p.event is not None]
    assert [b.duration for b in blocks] == [2400, 4800, 5760, 5760, 5760, 5760]
    assert [b.end for b in blocks] == [False, False, False, True, True, True]
    assert {(b.event, b.volume) for b in blocks} == {(1, 10)}
    assert [p.packet.marker for p in events] == [1, 0, 0, 0, 0, 0]
    assert len({p.packet.timestamp for p in events}) == 1
    # no audio between the first and the last event packet
    first, last = packets.index(events[0]), packets.index(events[-1])
    assert all(p.event is not None for p in packets[first:last + 1])
    # the event starts where the audio clock was: between the audio before and after it
    before, after = packets[first - 1].packet.timestamp, packets[last + 1].packet.timestamp
    start = events[0].packet.timestamp
    assert 0 < (start - before) & 0xFFFFFFFF < RATE // 10
    assert 0 < (after - start) & 0xFFFFFFFF < RATE // 2
    # 50 ms updates, then the end three times 20 ms apart
    times = [p.time - events[0].time for p in events]
    assert times[1] == pytest.approx(0.05, abs=0.015)
    assert times[2] == pytest.approx(0.10, abs=0.015)
    assert times[3] == pytest.approx(0.12, abs=0.015)
    assert times[5] - times[3] == pytest.approx(0.04, abs=0.015)
    assert sender.sent == ["1"]


async def test_durations_are_clamped_and_gaps_raised(
        line: tuple[FakeTransport, RtpSplice], monkeypatch: pytest.MonkeyPatch) -> None:
    assert (dtmf.MIN_DURATION, dtmf.MAX_DURATION, dtmf.MIN_GAP) == (70, 6000, 50)
    monkeypatch.setattr(dtmf, "MAX_DURATION", 300)  # the real 6 s would make a slow test
    transport, splice = line
    sender = DtmfSender(splice)
    sender.configure(lambda pt: (EVENT_PT, RATE))
    assert sender.insert("12", duration=10, inter_tone_gap=0)
    assert sender.insert("3", duration=10_000)  # appended to the running queue
    while sender.busy:
        await asyncio.sleep(0.02)
    events = [p for p in parse_sent(transport) if p.event is not None]
    finals: dict[int, int] = {}
    starts: dict[int, float] = {}
    for p in events:
        assert p.event is not None
        starts.setdefault(p.event.event, p.time)
        if p.event.end:
            finals[p.event.event] = p.event.duration
    assert finals[1] == finals[2] == 70 * RATE // 1000
    assert starts[2] - starts[1] == pytest.approx(0.070 + 0.050, abs=0.02)
    assert finals[3] == 300 * RATE // 1000
    assert sender.sent == ["1", "2", "3"]


async def test_long_events_are_segmented_and_reassembled(
        line: tuple[FakeTransport, RtpSplice], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dtmf, "_MAX_DURATION_FIELD", 4000)  # segments every 83 ms at 48 kHz
    transport, splice = line
    sender = DtmfSender(splice)
    sender.configure(lambda pt: (EVENT_PT, RATE))
    sender.insert("#", duration=250)
    while sender.busy:
        await asyncio.sleep(0.01)
    packets = parse_sent(transport)
    assert_gap_free(packets)
    events = [p for p in packets if p.event is not None]
    timestamps = list(dict.fromkeys(p.packet.timestamp for p in events))
    assert len(timestamps) == 3  # 250 ms = 12000 samples = three segments of 4000
    assert [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(timestamps)] == [4000] * 2
    closing = [p.event for p in events if p.event is not None and p.event.duration == 4000]
    assert len(closing) >= 2 * 3 and not any(b.end for b in closing[:6])
    assert sum(p.packet.marker for p in events) == 1
    receiver = DtmfReceiver(None)
    for p in events:
        receiver.packet(p.packet.ssrc, p.packet.timestamp, bool(p.packet.marker),
                        p.packet.payload, RATE)
    assert receiver.received == [("#", 250)]


async def test_comma_is_a_pause(line: tuple[FakeTransport, RtpSplice],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert dtmf.PAUSE == 2.0
    monkeypatch.setattr(dtmf, "PAUSE", 0.3)
    transport, splice = line
    sender = DtmfSender(splice)
    sender.configure(lambda pt: (EVENT_PT, RATE))
    sender.insert("4,5", duration=70, inter_tone_gap=50)
    while sender.busy:
        await asyncio.sleep(0.01)
    starts: dict[int, float] = {}
    for p in parse_sent(transport):
        if p.event is not None:
            starts.setdefault(p.event.event, p.time)
    assert starts[5] - starts[4] == pytest.approx(0.070 + 0.050 + 0.3, abs=0.03)
    assert sender.sent == ["4", "5"]


async def test_no_event_at_the_audio_clock_rate_drops_the_tone(
        line: tuple[FakeTransport, RtpSplice]) -> None:
    transport, splice = line
    sender = DtmfSender(splice)
    sender.configure(lambda pt: None)
    assert sender.insert("7")
    while sender.busy:
        await asyncio.sleep(0.01)
    assert not [p for p in parse_sent(transport) if p.event is not None]
    assert sender.sent == []


async def test_close_stops_playing_and_restores_audio(
        line: tuple[FakeTransport, RtpSplice]) -> None:
    transport, splice = line
    sender = DtmfSender(splice)
    sender.configure(lambda pt: (EVENT_PT, RATE))
    sender.insert("123", duration=1000)
    await asyncio.sleep(0.1)
    assert splice.suppress_audio
    await sender.close()
    assert not splice.suppress_audio and not sender.busy
    await asyncio.sleep(0.05)
    assert_gap_free(parse_sent(transport))


# -- receiver --------------------------------------------------------------------------------


def feed(receiver: DtmfReceiver, *packets: tuple[int, int, bool, int, bool, int],
         rate: int = 8000) -> None:
    for ssrc, ts, marker, event, end, duration in packets:
        receiver.packet(ssrc, ts, marker, TelephoneEvent(event, end, 10, duration).encode(),
                        rate)


def test_receiver_reports_each_event_once() -> None:
    got: list[tuple[str, int]] = []
    receiver = DtmfReceiver(lambda tone, ms: got.append((tone, ms)))
    feed(receiver,
         (1, 1000, True, 9, False, 400), (1, 1000, False, 9, False, 800),
         (1, 1000, False, 9, True, 960), (1, 1000, False, 9, True, 960),
         (1, 1000, False, 9, True, 960),
         (1, 3000, True, 10, True, 800), (1, 3000, False, 10, True, 800))
    assert got == [("9", 120), ("*", 100)]
    assert receiver.received == got


def test_receiver_recovers_lost_ends_and_ignores_late_packets() -> None:
    got: list[tuple[str, int]] = []
    receiver = DtmfReceiver(lambda tone, ms: got.append((tone, ms)))
    feed(receiver,
         (1, 1000, True, 1, False, 400), (1, 1000, False, 1, False, 800),  # end lost
         (1, 5000, True, 2, False, 400),  # the next event: "1" is over
         (1, 1000, False, 1, True, 800),  # a late end of "1": ignored
         (1, 5000, False, 2, True, 560))
    assert got == [("1", 100), ("2", 70)]


def test_receiver_keeps_sources_apart_and_skips_non_dtmf_events() -> None:
    receiver = DtmfReceiver(None)
    feed(receiver,
         (1, 1000, True, 3, False, 400), (2, 1000, True, 4, False, 400),
         (2, 1000, False, 4, True, 800), (1, 1000, False, 3, True, 800),
         (1, 9000, True, 70, True, 800))  # event 70 is not DTMF
    receiver.packet(1, 20000, True, b"\x01", 8000)  # too short: ignored
    assert receiver.received == [("4", 100), ("3", 100)]


def test_receiver_survives_a_failing_callback() -> None:
    class Log:
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def debug(self, event: str, /, **fields: object) -> None:
            pass

        def warn(self, event: str, /, **fields: object) -> None:
            self.warnings.append(event)

    def boom(tone: str, ms: int) -> None:
        raise RuntimeError("listener bug")

    log = Log()
    receiver = DtmfReceiver(boom, log)
    feed(receiver, (1, 1000, True, 0, True, 800), (1, 2000, True, 1, True, 800))
    assert [tone for tone, _ in receiver.received] == ["0", "1"]
    assert log.warnings == ["on_dtmf_failed", "on_dtmf_failed"]


def test_receiver_handler_reads_rtp_packets() -> None:
    receiver = DtmfReceiver(None)
    handle = receiver.handler(48000)
    for ts, end in ((480, False), (480, True)):
        handle(RtpPacket(payload_type=EVENT_PT, marker=int(not end), timestamp=ts, ssrc=3,
                         payload=TelephoneEvent(15, end, 10, 4800).encode()))
    assert receiver.received == [("D", 100)]


# -- Goertzel --------------------------------------------------------------------------------


def sine(frequency: float, rate: int, seconds: float, amplitude: float = 0.3,
         channels: int = 1) -> bytes:
    samples = array.array("h")
    for i in range(int(rate * seconds)):
        value = int(32767 * amplitude * math.sin(2 * math.pi * frequency * i / rate))
        samples.extend([value] * channels)
    return samples.tobytes()


def frames_of(pcm: bytes, rate: int, layout: str = "mono") -> list[av.AudioFrame]:
    channels = 2 if layout == "stereo" else 1
    size = rate // 50 * 2 * channels
    frames = []
    for start in range(0, len(pcm) - size + 1, size):
        frame = av.AudioFrame(format="s16", layout=layout, samples=rate // 50)
        frame.planes[0].update(pcm[start:start + size])
        frame.sample_rate = rate
        frames.append(frame)
    return frames


@pytest.mark.parametrize("frequency", [300.0, 440.0, 660.0, 1209.0, 2500.0])
@pytest.mark.parametrize("rate", [8000, 48000])
def test_tone_frequency_of_bytes(frequency: float, rate: int) -> None:
    pcm = sine(frequency, rate, 0.5)
    assert tone_frequency(pcm, sample_rate=rate) == pytest.approx(frequency, abs=1.0)
    assert detect_tone(pcm, frequency, sample_rate=rate)
    assert not detect_tone(pcm, frequency * 1.2, sample_rate=rate)


def test_tone_frequency_of_frames_in_any_layout() -> None:
    stereo = frames_of(sine(660, 48000, 0.4, channels=2), 48000, "stereo")
    assert tone_frequency(stereo) == pytest.approx(660, abs=1.0)
    mono8k = frames_of(sine(440, 8000, 0.4), 8000)
    assert tone_frequency(mono8k) == pytest.approx(440, abs=1.0)
    assert detect_tone(mono8k, 440) and not detect_tone(mono8k, 660)


def test_silence_and_noise() -> None:
    assert tone_frequency(bytes(16000), sample_rate=8000) == 0.0
    assert not detect_tone(bytes(16000), 440, sample_rate=8000)
    assert goertzel_power([], 8000, 440) == 0.0
    mixed = array.array("h", (a // 2 + b // 2 for a, b in zip(
        array.array("h", sine(440, 8000, 0.5)), array.array("h", sine(1000, 8000, 0.5)),
        strict=True)))
    assert not detect_tone(mixed.tobytes(), 440, sample_rate=8000, threshold=0.8)
    assert detect_tone(mixed.tobytes(), 440, sample_rate=8000, threshold=0.3)


async def test_close_waits_for_nothing_when_idle() -> None:
    sender = DtmfSender(RtpSplice(FakeTransport(), SSRC))
    with contextlib.suppress(asyncio.CancelledError):
        await sender.close()
    assert not sender.busy
