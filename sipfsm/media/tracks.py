"""Audio sources and sinks for :class:`~sipfsm.media.AiortcSDH`.

:class:`ToneTrack` is the default source: a sine (or silence) as 20 ms signed 16-bit mono
frames at 48 kHz, paced in real time the way a microphone would be, so that the sender's RTP
timestamps follow the wall clock.  It needs no numpy: samples are packed with :mod:`array`.

:func:`consume` is the receiving end: it drains a remote track until it ends, handing each frame
to a callback, or to nobody (the frames still have to be read, or they pile up in memory).
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import sys
from collections.abc import Callable
from typing import Final

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "ToneTrack", "consume"]

SAMPLE_RATE: Final = 48000
FRAME_SAMPLES: Final = 960  # 20 ms
_TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)


class ToneTrack(MediaStreamTrack):
    """A live audio track playing a sine of ``frequency`` Hz, or silence if it is ``None``/0.

    ``amplitude`` is a fraction of full scale (default 0.25, about -12 dBFS).  The phase runs on
    across frames, so the tone is clean at every frame boundary.
    """

    kind = "audio"

    def __init__(self, frequency: float | None = 440.0, amplitude: float = 0.25) -> None:
        super().__init__()
        if frequency is not None and not 0 <= frequency < SAMPLE_RATE / 2:
            raise ValueError(f"frequency must be in [0, {SAMPLE_RATE // 2}) Hz")
        if not 0 <= amplitude <= 1:
            raise ValueError("amplitude must be in [0, 1]")
        self.frequency = frequency or 0.0
        self.amplitude = amplitude
        self._pts = 0
        self._start: float | None = None
        self._phase = 0.0
        self._silence = bytes(2 * FRAME_SAMPLES)

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms, no earlier than its time (the first one at once)."""
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            delay = self._start + self._pts / SAMPLE_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self._samples())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = _TIME_BASE
        self._pts += FRAME_SAMPLES
        return frame

    def _samples(self) -> bytes:
        if not self.frequency or not self.amplitude:
            return self._silence
        step = 2 * math.pi * self.frequency / SAMPLE_RATE
        scale = 32767 * self.amplitude
        phase = self._phase
        samples = array.array("h", (int(scale * math.sin(phase + i * step))
                                    for i in range(FRAME_SAMPLES)))
        self._phase = (phase + FRAME_SAMPLES * step) % (2 * math.pi)
        if sys.byteorder != "little":  # pragma: no cover - s16 means little-endian samples
            samples.byteswap()
        return samples.tobytes()


async def consume(
    track: MediaStreamTrack,
    on_frame: Callable[[av.AudioFrame], object] | None = None,
    on_error: Callable[[Exception], object] | None = None,
) -> None:
    """Read ``track`` until it ends, passing each audio frame to ``on_frame`` (if given).

    A callback that raises does not stop the reading (one bad listener must not stall the
    receiver, whose frames would then queue up without bound): the exception goes to
    ``on_error``, if given.
    """
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if on_frame is not None and isinstance(frame, av.AudioFrame):
            try:
                on_frame(frame)
            except Exception as exc:
                if on_error is not None:
                    on_error(exc)
