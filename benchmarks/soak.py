"""Soak: many calls through the embedded devserver with the signalling-only media handler.

Two UAs register with digest; the caller places ``--calls`` calls (default 10,000) at
``--rate`` calls per second (default 100), at most ``--parallel`` at a time, each answered,
confirmed and hung up.  Resident memory (of the whole process: both UAs and the devserver) is
read every 1,000 calls.

A finished call is not forgotten at once: RFC 6026 keeps each INVITE transaction (the caller's,
the callee's, and the devserver's two) for 64·T1 = 32 s after its 2xx, to absorb
retransmissions.  So memory grows for the first 32 s of calls and is flat from then on, when as
many transactions end as begin; a leak is a slope after that.  The script prints RSS at the
start and the end, the least-squares slope per 1,000 calls over the checkpoints after the first
``--settle`` seconds (default 45), the throughput, and, after waiting for the last transactions
to end, what both UAs still hold (``UA.resources()``: nothing but the registration's timers).

    python benchmarks/soak.py [--calls 10000] [--rate 100] [--parallel 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

from usage import rss_kib

from sipfsm.devserver import DevServer
from sipfsm.events import InviteReceived
from sipfsm.media import signalling_only_factory
from sipfsm.session import Session
from sipfsm.ua import UA


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of (calls, KiB), in KiB per 1,000 calls."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den * 1000 if den else 0.0


async def run(calls: int, rate: float, parallel: int, settle: float) -> None:
    async with DevServer(min_expires=60) as server:
        def make(name: str) -> UA:
            return UA(uri=f"sip:{name}@{server.domain}", ws_servers=server.ws_url,
                      password=f"{name}-secret", log={"builtin_enabled": False},
                      session_description_handler_factory=signalling_only_factory)

        caller, callee = make("alice"), make("bob")
        await asyncio.gather(caller.wait_for("registered", timeout=10),
                             callee.wait_for("registered", timeout=10))

        def answer(event: InviteReceived) -> None:
            assert isinstance(event.session, Session)
            event.session.accept()

        callee.on("invite", answer)
        done = failed = 0
        checkpoints: list[tuple[int, int]] = []
        next_checkpoint = 0
        interval = 1 / rate
        started = time.perf_counter()
        settled_at: int | None = None
        slots = asyncio.Semaphore(parallel)

        async def one_call() -> None:
            nonlocal done, failed, next_checkpoint, settled_at
            async with slots:
                await place_call()
            if done >= next_checkpoint:
                gc.collect()
                checkpoints.append((done, rss_kib()))
                next_checkpoint += 1000
            if settled_at is None and time.perf_counter() - started >= settle:
                settled_at = done

        async def place_call() -> None:
            nonlocal done, failed
            session = caller.invite("bob")
            ended = asyncio.ensure_future(session.wait_for("terminated", timeout=30))
            try:
                await session.wait_for("confirmed", timeout=30)
                session.bye()
            except (TimeoutError, Exception):
                failed += 1
                session.terminate()
            await ended
            done += 1

        gc.collect()
        start_rss = rss_kib()
        checkpoints.append((0, start_rss))
        next_checkpoint = 1000
        started = time.perf_counter()
        running: set[asyncio.Task[None]] = set()
        for n in range(calls):
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(one_call())
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)
        elapsed = time.perf_counter() - started
        end_rss = rss_kib()
        steady = [(c, k) for c, k in checkpoints if settled_at is not None and c >= settled_at]
        print(f"{done:,} calls ({failed} failed) in {elapsed:.1f} s: "
              f"{done / elapsed:,.0f} calls/s (asked {rate:g}/s, at most {parallel} at once)")
        print(f"RSS: {start_rss:,} KiB at the start, {end_rss:,} KiB at the end; "
              f"after the first {settle:g} s ({settled_at or 0:,} calls), slope "
              f"{slope(steady):+,.1f} KiB per 1,000 calls over {len(steady)} checkpoints")
        print("checkpoints (calls: KiB): "
              + ", ".join(f"{c:,}: {k:,}" for c, k in checkpoints))
        await asyncio.sleep(64 * 0.5 + 2)  # Timers L and M: the last transactions end
        gc.collect()
        print(f"RSS {rss_kib():,} KiB once the last transactions ended; left — "
              f"caller: {caller.resources()}, callee: {callee.resources()}")
        await caller.stop()
        await callee.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--settle", type=float, default=45.0,
                        help="seconds before the slope counts (past 64·T1)")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.rate, args.parallel, args.settle))


if __name__ == "__main__":
    main()
