"""Helpers for the media tests: an ear that collects audio and DTMF, one-call negotiation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import av
import pytest

from sipfsm.media import AiortcSDH, Modifier

LOOPBACK = "127.0.0.1"

class Ear:
    """Collects what one handler receives: audio frames, DTMF, direction changes."""

    def __init__(self) -> None:
        self.frames: list[av.AudioFrame] = []
        self.dtmf: list[tuple[str, int, float]] = []  # tone, ms, loop time of arrival
        self.directions: list[tuple[str, str]] = []

    def on_audio(self, frame: av.AudioFrame) -> None:
        self.frames.append(frame)

    def on_dtmf(self, tone: str, duration: int) -> None:
        self.dtmf.append((tone, duration, asyncio.get_running_loop().time()))

    def on_direction(self, local: str, remote: str) -> None:
        self.directions.append((local, remote))

    def options(self) -> dict[str, Any]:
        return {"on_audio": self.on_audio, "on_dtmf": self.on_dtmf,
                "on_direction": self.on_direction}

    async def wait_frames(self, count: int, timeout: float = 5.0) -> list[av.AudioFrame]:
        """Wait until ``count`` more frames have arrived; return those frames."""
        start = len(self.frames)
        await wait_until(lambda: len(self.frames) >= start + count, timeout)
        return self.frames[start:start + count]

    @property
    def tones(self) -> str:
        return "".join(tone for tone, _, _ in self.dtmf)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` every 10 ms; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


async def negotiate(offerer: Any, answerer: Any, modifiers: Sequence[Modifier] = ()) -> None:
    """One RFC 3264 exchange: ``offerer`` offers (with ``modifiers``), ``answerer`` answers."""
    offer, content_type = await offerer.get_description(modifiers=modifiers)
    assert content_type == "application/sdp"
    await answerer.set_description(offer)
    answer, _ = await answerer.get_description()
    await offerer.set_description(answer)


MakeSDH = Callable[..., AiortcSDH]
