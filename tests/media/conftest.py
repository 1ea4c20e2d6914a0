"""Fixtures for the media tests: pinned aiortc handlers and connected calls.

Every media test keeps its packets on 127.0.0.1.  Handlers made by ``make_sdh`` are pinned to
it; as a second net, aioice's interface scan is replaced for the duration of each test, so even
an unpinned connection would only find the loopback address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aioice.ice
import pytest

from sipfsm.media import AiortcSDH

from .support import LOOPBACK, Ear, MakeSDH, negotiate


@pytest.fixture(autouse=True)
def loopback_interfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice sees no interface but loopback while a media test runs."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses",
                        lambda use_ipv4, use_ipv6: [LOOPBACK])


@pytest.fixture
async def make_sdh() -> AsyncIterator[MakeSDH]:
    """``make_sdh(ear=None, **options)``: an AiortcSDH pinned to 127.0.0.1, closed afterwards."""
    made: list[AiortcSDH] = []

    def make(ear: Ear | None = None, **options: Any) -> AiortcSDH:
        options.setdefault("ice_addresses", (LOOPBACK,))
        if ear is not None:
            options = {**ear.options(), **options}
        sdh = AiortcSDH(options)
        made.append(sdh)
        return sdh

    yield make
    for sdh in made:
        await sdh.close()
        refusals = sdh.ice_refusals
        assert refusals is None or refusals.datagrams_out == 0, refusals


@pytest.fixture
async def call(make_sdh: MakeSDH) -> tuple[AiortcSDH, Ear, AiortcSDH, Ear]:
    """A connected pair: A plays 440 Hz and offers, B plays 660 Hz and answers."""
    ear_a, ear_b = Ear(), Ear()
    a = make_sdh(ear_a, tone_hz=440)
    b = make_sdh(ear_b, tone_hz=660)
    await negotiate(a, b)
    await a.wait_connected()
    await b.wait_connected()
    return a, ear_a, b, ear_b
