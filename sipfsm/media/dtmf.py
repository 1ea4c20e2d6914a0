"""RFC 4733 telephone-events over aiortc, and a Goertzel tone detector for tests.

aiortc has no DTMF sender and drops RTP packets of payload types it did not negotiate itself,
which telephone-event never is.  Both directions therefore go through :class:`RtpSplice`, which
sits on *one* :class:`aiortc.RTCDtlsTransport` instance (the BUNDLE transport of the audio
stream) between the RTP sender and SRTP, and between SRTP and the RTP router:

* **Sending.**  The audio sender keeps encoding and calling ``transport._send_rtp(packet)``;
  the splice sees every packet of the audio SSRC before SRTP protects it.  It owns the stream's
  final sequence numbers: ``out = in + offset``.  Injecting an event packet takes the next
  number and adds one to ``offset``; dropping an audio packet (audio is suppressed while an
  event plays, so that a receiver never mixes the event with the tone's audio) subtracts one.
  The receiver therefore sees one SSRC with a gap-free sequence (no false loss, no SRTP
  replay drop) whose timestamps are the sender's own: an event starts at the timestamp the
  audio would have had.
* **Receiving.**  Decrypted RTP whose payload type is a negotiated telephone-event is parsed
  and handed to a :class:`DtmfReceiver` instead of the router; everything else goes on as
  before.

The seam is two attributes set on that one transport object (``_send_rtp``,
``_handle_rtp_data``, which aiortc looks up on the instance for every packet) and removed by
:meth:`RtpSplice.uninstall`; no aiortc class or module is patched.  The alternatives were
worse: the sender's sequence counter is a local variable of its RTP loop (unreachable), and an
encoder cannot change the payload type of the packets the sender builds.

Event timing (:class:`DtmfSender`): the first packet of an event has the marker bit; updates
follow every 50 ms, each carrying the duration up to the end of its 50 ms slice; at the end the
final packet (E bit, full duration) is sent three times, 20 ms apart, so that all three fit in
the minimum 50 ms gap; volume is 10 (-10 dBm0).  Durations are clamped to 70–6000 ms and gaps
raised to at least 50 ms; ``,`` is a two-second pause.  An event longer than the 16-bit
duration field allows (1.36 s at 48 kHz) is split into segments (RFC 4733 §2.5.1.3).
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import math
import re
import struct
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import av
from aiortc.rtp import RtpPacket, is_rtcp

__all__ = [
    "DTMF_EVENTS",
    "DtmfReceiver",
    "DtmfSender",
    "RtpSplice",
    "TelephoneEvent",
    "detect_tone",
    "goertzel_power",
    "normalise_tones",
    "tone_frequency",
]

DTMF_EVENTS: Final = "0123456789*#ABCD"
"""RFC 4733 §3.2: event code ``i`` is the character ``DTMF_EVENTS[i]``."""

MIN_DURATION: Final = 70
MAX_DURATION: Final = 6000
MIN_GAP: Final = 50
PAUSE: Final = 2.0  # seconds, for ","
UPDATE_MS: Final = 50
END_INTERVAL: Final = 0.020
END_REPEATS: Final = 3
VOLUME: Final = 10
_MAX_DURATION_FIELD: Final = 0xFFFF
_TONES: Final = re.compile(r"^[0-9A-D#*,]+$", re.IGNORECASE)


class _Log(Protocol):
    def debug(self, event: str, /, **fields: Any) -> None: ...
    def warn(self, event: str, /, **fields: Any) -> None: ...


def normalise_tones(tones: str | int) -> str:
    """Check ``tones`` against ``[0-9A-D#*,]+`` (case-insensitive); return them upper-case."""
    text = str(tones)
    if not _TONES.match(text):
        raise ValueError(f"invalid DTMF tones {text!r}: use 0-9, A-D, *, # and , only")
    return text.upper()


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 event block: event code, end bit, volume, duration (in RTP units)."""

    event: int
    end: bool
    volume: int
    duration: int

    def encode(self) -> bytes:
        """The four payload bytes."""
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | (self.volume & 0x3F),
                           self.duration)

    @classmethod
    def decode(cls, payload: bytes) -> TelephoneEvent:
        """The first event block of a payload (``ValueError`` if shorter than four bytes)."""
        if len(payload) < 4:
            raise ValueError("telephone-event payload shorter than 4 bytes")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)


# -- the splice ------------------------------------------------------------------------------


class RtpSplice:
    """Owns one transport's outgoing sequence space for an SSRC and diverts event packets in.

    ``transport`` is an :class:`aiortc.RTCDtlsTransport`; ``ssrc`` the audio sender's SSRC.
    """

    def __init__(self, transport: Any, ssrc: int, mid: str | None = None) -> None:
        self._transport = transport
        self._ssrc = ssrc
        self.mid = mid
        self._offset = 0
        self._last_seq: int | None = None
        self._last_ts = 0
        self._last_time = 0.0
        self.audio_pt: int | None = None  #: payload type of the audio packets seen last
        self.audio_started = asyncio.Event()  #: set by the first audio packet
        self.suppress_audio = False
        self.event_pts: dict[int, Callable[[Any], None]] = {}  #: PT → handler of parsed packets
        self._send: Callable[[bytes], Awaitable[None]] | None = None
        self._handle: Callable[[bytes, int], Awaitable[None]] | None = None
        self.packets_injected = 0
        self.packets_suppressed = 0

    def install(self) -> None:
        """Put the splice on the transport (instance attributes; the class is untouched)."""
        if self._send is not None:
            return
        self._send = self._transport._send_rtp
        self._handle = self._transport._handle_rtp_data
        self._transport._send_rtp = self._send_rtp
        self._transport._handle_rtp_data = self._handle_rtp_data

    def uninstall(self) -> None:
        """Take the splice off again."""
        if self._send is None:
            return
        for name in ("_send_rtp", "_handle_rtp_data"):
            if name in vars(self._transport):
                delattr(self._transport, name)
        self._send = self._handle = None

    def timestamp_now(self, clock_rate: int) -> int:
        """The RTP timestamp the audio stream has at this moment (extrapolated, wrapped)."""
        elapsed = asyncio.get_running_loop().time() - self._last_time
        return (self._last_ts + round(elapsed * clock_rate)) & 0xFFFFFFFF

    async def send_event(self, pt: int, timestamp: int, marker: bool, payload: bytes) -> None:
        """Send one packet in the audio stream's SSRC and sequence space."""
        if self._send is None or self._last_seq is None:
            return
        seq = (self._last_seq + 1) & 0xFFFF
        self._last_seq = seq
        self._offset += 1
        packet = RtpPacket(payload_type=pt, marker=int(marker), sequence_number=seq,
                           timestamp=timestamp, ssrc=self._ssrc, payload=payload)
        packet.extensions.mid = self.mid
        extensions = getattr(self._transport, "_rtp_header_extensions_map", None)
        data = packet.serialize(extensions) if extensions is not None else packet.serialize()
        self.packets_injected += 1
        with contextlib.suppress(ConnectionError):  # closing: the event is moot
            await self._send(data)

    async def _send_rtp(self, data: bytes) -> None:
        assert self._send is not None
        if (len(data) >= 12 and not is_rtcp(data)
                and int.from_bytes(data[8:12], "big") == self._ssrc):
            self._last_ts = int.from_bytes(data[4:8], "big")
            self._last_time = asyncio.get_running_loop().time()
            self.audio_pt = data[1] & 0x7F
            self.audio_started.set()
            if self.suppress_audio:
                self._offset -= 1
                self.packets_suppressed += 1
                return
            seq = (int.from_bytes(data[2:4], "big") + self._offset) & 0xFFFF
            self._last_seq = seq
            if self._offset:
                data = data[:2] + seq.to_bytes(2, "big") + data[4:]
        await self._send(data)

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        assert self._handle is not None
        handler = self.event_pts.get(data[1] & 0x7F) if len(data) >= 12 else None
        if handler is None:
            await self._handle(data, arrival_time_ms)
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        handler(packet)


# -- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tone:
    tone: str
    duration: int  # ms
    gap: int  # ms


class DtmfSender:
    """Queues tones and plays them as RFC 4733 events through an :class:`RtpSplice`.

    ``payload_type`` and ``clock_rate`` are set by the owner once telephone-event is negotiated
    (:meth:`configure`); until then, and while they are ``None``, :meth:`insert` refuses.
    """

    def __init__(self, splice: RtpSplice, log: _Log | None = None) -> None:
        self._splice = splice
        self._log = log
        self._queue: collections.deque[_Tone] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._choose: Callable[[int], tuple[int, int] | None] | None = None
        self.sent: list[str] = []  #: tones played so far, for introspection

    def configure(self, choose: Callable[[int], tuple[int, int] | None] | None) -> None:
        """``choose(audio_pt) -> (event_pt, clock_rate)`` or ``None`` if events can't be sent."""
        self._choose = choose

    @property
    def busy(self) -> bool:
        """Whether tones are queued or playing."""
        return self._task is not None and not self._task.done()

    def insert(self, tones: str, duration: int = 100, inter_tone_gap: int = 70) -> bool:
        """Queue ``tones`` (validated); ``False`` if not configured.  Later calls append."""
        text = normalise_tones(tones)
        if self._choose is None:
            return False
        duration = min(max(int(duration), MIN_DURATION), MAX_DURATION)
        gap = max(int(inter_tone_gap), MIN_GAP)
        self._queue.extend(_Tone(t, duration, gap) for t in text)
        if not self.busy:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                               name="sipfsm-dtmf-sender")
        return True

    async def close(self) -> None:
        """Drop the queue and stop playing (an event cut short gets no end packets)."""
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._splice.suppress_audio = False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            item = self._queue.popleft()
            if item.tone == ",":
                await asyncio.sleep(PAUSE)
                continue
            await self._splice.audio_started.wait()
            audio_pt = self._splice.audio_pt
            chosen = self._choose(audio_pt) if (self._choose and audio_pt is not None) else None
            if chosen is None:
                if self._log is not None:
                    self._log.warn("dtmf_not_sent", tone=item.tone, reason="no telephone-event "
                                   "at the audio codec's clock rate")
                continue
            ended = await self._play(item, *chosen)
            self.sent.append(item.tone)
            remaining = item.gap / 1000 - (loop.time() - ended)
            if remaining > 0:
                await asyncio.sleep(remaining)

    async def _play(self, item: _Tone, pt: int, rate: int) -> float:
        """Send one event; return the loop time at which it ended (before the end repeats)."""
        loop = asyncio.get_running_loop()
        splice = self._splice
        code = DTMF_EVENTS.index(item.tone)
        total = round(item.duration * rate / 1000)
        splice.suppress_audio = True
        try:
            start = loop.time()
            segment_ts = splice.timestamp_now(rate)
            segment_base = 0  # samples covered by the segments already closed
            marker = True
            k = 0
            while k * UPDATE_MS < item.duration:
                await _sleep_until(start + k * UPDATE_MS / 1000)
                covered = min(round((k + 1) * UPDATE_MS * rate / 1000), total)
                if covered - segment_base > _MAX_DURATION_FIELD:  # close the segment
                    closing = TelephoneEvent(code, False, VOLUME, _MAX_DURATION_FIELD).encode()
                    for _ in range(END_REPEATS):
                        await splice.send_event(pt, segment_ts, marker, closing)
                        marker = False
                    segment_base += _MAX_DURATION_FIELD
                    segment_ts = (segment_ts + _MAX_DURATION_FIELD) & 0xFFFFFFFF
                block = TelephoneEvent(code, False, VOLUME, covered - segment_base)
                await splice.send_event(pt, segment_ts, marker, block.encode())
                marker = False
                k += 1
            ended = start + item.duration / 1000
            final = TelephoneEvent(code, True, VOLUME, total - segment_base).encode()
            for i in range(END_REPEATS):
                await _sleep_until(ended + i * END_INTERVAL)
                await splice.send_event(pt, segment_ts, marker, final)
                marker = False
            return ended
        finally:
            splice.suppress_audio = False


async def _sleep_until(when: float) -> None:
    delay = when - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


# -- receiving -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Current:
    timestamp: int  # of the current segment
    event: int
    base: int  # samples in the segments before this one
    duration: int  # in this segment, the largest seen
    reported: bool


class DtmfReceiver:
    """Turns received telephone-event packets into ``on_dtmf(tone, duration_ms)`` calls.

    One call per event, when its end (E bit) first arrives; the repeated end packets are
    ignored, and so are events outside 0–15 (they are not DTMF).  An event whose end packets
    were all lost is reported when the next event starts.  Long events spread over several
    segments (same event, no marker, timestamp advanced by the previous segment's duration)
    are reported once, with the total duration.
    """

    def __init__(self, on_dtmf: Callable[[str, int], object] | None,
                 log: _Log | None = None) -> None:
        self.on_dtmf = on_dtmf
        self._log = log
        self._current: dict[int, _Current] = {}  # by SSRC
        self.received: list[tuple[str, int]] = []  #: (tone, ms) reported so far

    def handler(self, clock_rate: int) -> Callable[[Any], None]:
        """A packet handler for a telephone-event payload type of ``clock_rate``."""
        return lambda packet: self.packet(packet.ssrc, packet.timestamp, bool(packet.marker),
                                          packet.payload, clock_rate)

    def packet(self, ssrc: int, timestamp: int, marker: bool, payload: bytes,
               clock_rate: int) -> None:
        """Handle one packet's fields."""
        try:
            block = TelephoneEvent.decode(payload)
        except ValueError:
            return
        current = self._current.get(ssrc)
        if current is not None and timestamp == current.timestamp:
            current.duration = max(current.duration, block.duration)
        elif current is not None and _older(timestamp, current.timestamp):
            return  # a late packet of an event already superseded
        elif (current is not None and not current.reported and not marker
              and block.event == current.event
              and timestamp == (current.timestamp + current.duration) & 0xFFFFFFFF):
            current.base += current.duration  # the next segment of a long event
            current.timestamp, current.duration = timestamp, block.duration
        else:
            if current is not None and not current.reported:
                self._report(current, clock_rate)  # its end packets were lost
            current = _Current(timestamp, block.event, 0, block.duration, False)
            self._current[ssrc] = current
        if block.end and not current.reported:
            self._report(current, clock_rate)

    def _report(self, current: _Current, clock_rate: int) -> None:
        current.reported = True
        if current.event >= len(DTMF_EVENTS):
            return
        tone = DTMF_EVENTS[current.event]
        ms = round((current.base + current.duration) * 1000 / clock_rate)
        self.received.append((tone, ms))
        if self._log is not None:
            self._log.debug("dtmf_received", tone=tone, duration=ms)
        if self.on_dtmf is not None:
            try:
                self.on_dtmf(tone, ms)
            except Exception as exc:
                if self._log is not None:
                    self._log.warn("on_dtmf_failed", error=repr(exc))


def _older(a: int, b: int) -> bool:
    """RTP timestamp ``a`` is before ``b`` (serial number arithmetic, RFC 1982)."""
    return a != b and (b - a) & 0xFFFFFFFF < 0x80000000


# -- tone detection (Goertzel) ---------------------------------------------------------------

AudioInput = Sequence[av.AudioFrame] | bytes | bytearray | memoryview
_ANALYSIS_RATE: Final = 8000


def _mono_samples(frames: AudioInput, sample_rate: float) -> tuple[list[float], float]:
    """Mono samples of ``frames`` (int16 bytes at ``sample_rate``, or AudioFrames)."""
    if isinstance(frames, (bytes, bytearray, memoryview)):
        pcm = array.array("h")
        pcm.frombytes(bytes(frames)[: len(frames) // 2 * 2])
        if sys.byteorder != "little":  # pragma: no cover
            pcm.byteswap()
        return [float(x) for x in pcm], sample_rate
    samples: list[float] = []
    rate = float(sample_rate)
    resampler: av.AudioResampler | None = None
    for frame in frames:
        rate = float(frame.sample_rate or rate)
        if resampler is None:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=int(rate))
        for out in resampler.resample(frame):
            pcm = array.array("h")
            pcm.frombytes(bytes(out.planes[0])[: out.samples * 2])
            if sys.byteorder != "little":  # pragma: no cover
                pcm.byteswap()
            samples.extend(float(x) for x in pcm)
    return samples, rate


def _decimate(samples: list[float], rate: float) -> tuple[list[float], float]:
    """Average groups of samples down to about 8 kHz (a box filter is enough for test tones)."""
    factor = max(1, int(rate // _ANALYSIS_RATE))
    if factor == 1:
        return samples, rate
    out = [sum(samples[i:i + factor]) / factor
           for i in range(0, len(samples) - factor + 1, factor)]
    return out, rate / factor


def goertzel_power(samples: Sequence[float], sample_rate: float, frequency: float) -> float:
    """How much of the signal's energy is at ``frequency``: about 1 for a pure tone, 0 for none.

    The Goertzel filter's output power, normalised by the signal energy (``2|X|² / (N·Σx²)``).
    """
    n = len(samples)
    energy = math.fsum(x * x for x in samples)
    if n == 0 or energy == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * frequency / sample_rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * power / (n * energy)


def _prepare(frames: AudioInput, sample_rate: float, seconds: float) -> tuple[list[float], float]:
    samples, rate = _mono_samples(frames, sample_rate)
    samples, rate = _decimate(samples, rate)
    keep = int(rate * seconds)
    if len(samples) > keep:  # the most recent part
        samples = samples[-keep:]
    return samples, rate


def detect_tone(frames: AudioInput, frequency: float, *, sample_rate: int = 48000,
                threshold: float = 0.5, seconds: float = 0.5) -> bool:
    """Whether the last ``seconds`` of audio are mostly a tone at ``frequency`` Hz.

    ``frames`` are :class:`av.AudioFrame` objects (any format/layout/rate) or raw little-endian
    int16 mono bytes at ``sample_rate``.
    """
    samples, rate = _prepare(frames, sample_rate, seconds)
    return goertzel_power(samples, rate, frequency) >= threshold


def tone_frequency(frames: AudioInput, *, sample_rate: int = 48000, low: float = 100.0,
                   high: float = 3800.0, seconds: float = 0.5) -> float:
    """The dominant frequency (Hz) of the last ``seconds`` of audio; 0.0 for silence.

    A coarse Goertzel scan every 10 Hz over a short window finds the peak; a second scan
    every 1 Hz around it over the whole window, with a parabola through the top three points,
    refines it to well under 1 Hz for a clean tone.
    """
    samples, rate = _prepare(frames, sample_rate, seconds)
    if not samples or not any(samples):
        return 0.0
    high = min(high, rate / 2 - 10)
    coarse = samples[-min(len(samples), 400):]
    candidates = _frange(low, high, 10.0)
    best = max(candidates, key=lambda f: goertzel_power(coarse, rate, f))
    fine = [best + d for d in range(-15, 16)]
    powers = [goertzel_power(samples, rate, f) for f in fine]
    i = max(range(len(fine)), key=powers.__getitem__)
    if 0 < i < len(fine) - 1:
        left, mid, right = powers[i - 1], powers[i], powers[i + 1]
        denominator = left - 2 * mid + right
        if denominator:
            return fine[i] + 0.5 * (left - right) / denominator
    return float(fine[i])


def _frange(start: float, stop: float, step: float) -> Iterable[float]:
    count = int((stop - start) / step) + 1
    return [start + i * step for i in range(max(count, 0))]
