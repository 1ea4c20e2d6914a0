# mypy: disable-error-code="comparison-overlap"

"""Faults between three UAs and the devserver: a WebSocket proxy in the middle drops, delays
and duplicates frames while a random schedule of user actions runs (register, call, answer,
hold, DTMF, transfer, hang up).  Whatever was lost, once everyone hangs up every session has
ended on both sides with a cause, and each UA's calls, dialogs, transactions, timers and tasks
are back where they were before the first call."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from sipfsm.devserver import DevServer
from sipfsm.errors import InvalidStateError
from sipfsm.events import InviteReceived
from sipfsm.fsm.invite import InviteState
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.ua import UA

NAMES = ("alice", "bob", "carol")
LIVE = (InviteState.CONFIRMED,)


class FaultyProxy:
    """Relays each WebSocket to ``upstream``, dropping, delaying and duplicating frames (each
    direction keeps its order: a delay holds back the frames behind it, as on a stream)."""

    def __init__(self, upstream: str, rng: random.Random) -> None:
        self.upstream = upstream
        self.rng = rng
        self.drop = 0.0
        self.duplicate = 0.0
        self.max_delay = 0.0
        self.url = ""
        self.dropped = self.duplicated = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def calm(self) -> None:
        self.drop = self.duplicate = self.max_delay = 0.0

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse(protocols=("sip",))
        await client.prepare(request)
        assert self._session is not None
        server = await self._session.ws_connect(self.upstream, protocols=("sip",))
        pumps = [asyncio.ensure_future(self._pump(client, server)),
                 asyncio.ensure_future(self._pump(server, client))]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        await server.close()
        await client.close()
        return client

    async def _pump(self, source: Any, sink: Any) -> None:
        async for message in source:
            if message.type is not WSMsgType.TEXT:
                break
            if self.max_delay:
                await asyncio.sleep(self.rng.uniform(0, self.max_delay))
            if self.rng.random() < self.drop:
                self.dropped += 1
                continue
            copies = 2 if self.rng.random() < self.duplicate else 1
            self.duplicated += copies - 1
            for _ in range(copies):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await sink.send_str(message.data)


@pytest.fixture
async def network() -> AsyncIterator[tuple[FaultyProxy, dict[str, UA]]]:
    async with DevServer(min_expires=60) as server:
        proxy = FaultyProxy(server.ws_url, random.Random())
        await proxy.start()
        uas = {name: UA(uri=f"sip:{name}@{server.domain}", ws_servers=proxy.url,
                        password=f"{name}-secret", log={"builtin_enabled": False},
                        replaces="supported", t1=0.05, no_answer_timeout=5,
                        session_description_handler_factory=signalling_only_factory)
               for name in NAMES}
        try:
            await asyncio.gather(*(ua.wait_for("registered", timeout=10)
                                   for ua in uas.values()))
            yield proxy, uas
        finally:
            for ua in uas.values():
                await ua.stop()
            await proxy.stop()


async def until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_random_actions_over_a_lossy_link_leave_nothing_behind(
        network: tuple[FaultyProxy, dict[str, UA]], seed: int) -> None:
    proxy, uas = network
    rng = random.Random(seed)
    proxy.rng = random.Random(seed * 7919)
    baseline = {name: ua.resources() for name, ua in uas.items()}
    sessions: dict[str, list[Session]] = {name: [] for name in NAMES}
    ringing: list[Session] = []
    for name, ua in uas.items():
        def offered(event: InviteReceived, who: str = name) -> None:
            assert isinstance(event.session, Session)
            sessions[who].append(event.session)
            ringing.append(event.session)
        ua.on("invite", offered)

    def live(name: str) -> list[Session]:
        return [s for s in sessions[name] if s.state is not InviteState.TERMINATED]

    proxy.drop, proxy.duplicate, proxy.max_delay = 0.05, 0.05, 0.02
    actions = ["call", "call", "answer", "answer", "hold", "dtmf", "transfer", "hangup",
               "register", "wait"]
    for _ in range(40):
        action = rng.choice(actions)
        name = rng.choice(NAMES)
        ua = uas[name]
        with contextlib.suppress(InvalidStateError, ValueError):
            if action == "call":
                target = rng.choice([n for n in NAMES if n != name])
                sessions[name].append(ua.invite(target))
            elif action == "answer" and ringing:
                session = ringing.pop(rng.randrange(len(ringing)))
                session.accept() if rng.random() < 0.8 else session.reject(486)
            elif action == "hold":
                up = [s for s in live(name) if s.state in LIVE]
                if up:
                    task = asyncio.ensure_future(up[0].hold(timeout=5))
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())
            elif action == "dtmf":
                up = [s for s in live(name) if s.state in LIVE]
                if up:
                    up[0].dtmf(rng.choice(["1", "23", "#"]), duration=70, inter_tone_gap=50)
            elif action == "transfer":
                up = [s for s in live(name) if s.state in LIVE]
                if up:
                    up[0].refer(rng.choice([n for n in NAMES if n != name]))
            elif action == "hangup":
                if live(name):
                    rng.choice(live(name)).terminate()
            elif action == "register":
                ua.register()
        await asyncio.sleep(rng.uniform(0, 0.2))

    # Everyone hangs up; the link is sound again for what follows.
    await asyncio.sleep(0.5)
    proxy.calm()
    for _ in range(3):  # a call set up meanwhile (a transfer's) is hung up too
        for name in NAMES:
            for session in list(uas[name].sessions()):
                with contextlib.suppress(InvalidStateError):
                    session.terminate()
        await asyncio.sleep(1)
    everything = [s for name in NAMES for s in sessions[name]]
    everything += [s for ua in uas.values() for s in ua.sessions() if s not in everything]
    with contextlib.suppress(TimeoutError):
        await until(lambda: all(s.state is InviteState.TERMINATED for s in everything)
                    and not any(ua.sessions() for ua in uas.values()), 30)
    stuck = [(s, s.machine.caller, s.cause) for s in everything
             if s.state is not InviteState.TERMINATED]
    stuck += [(s, s.machine.caller, s.cause) for ua in uas.values() for s in ua.sessions()]
    assert not stuck
    assert all(s.cause is not None for s in everything)
    for ua in uas.values():  # registered again, wherever the faults left it
        if not ua.is_registered():
            ua.register()
    await until(lambda: all(ua.is_registered() for ua in uas.values()), 15)
    # Timers L and M (64·T1) end the last INVITE transactions.
    with contextlib.suppress(TimeoutError):
        await until(lambda: all(ua.resources() == baseline[name]
                                for name, ua in uas.items()), 15)
    left = {name: [(t.kind, t.state.name, t.request.method)
                   for t in ua.core.transactions.values()] for name, ua in uas.items()}
    assert {name: ua.resources() for name, ua in uas.items()} == baseline, left
    assert proxy.dropped + proxy.duplicated > 0, "the faults did happen"
