"""N user agents, each with its own WebSocket, register with digest to a local Kamailio.

Starts the test Kamailio (tests/kamailio) on 127.0.0.1 with the users ua00000 … uaNNNNN, then,
in this one process, creates N UAs sharing one aiohttp session and starts them all; prints the
seconds until every UA is registered, registrations per second, CPU milliseconds per
registration, and resident memory per UA: the average (RSS growth / N) and the marginal slope
(the growth between the half-way and the full population, per extra UA).

    python benchmarks/registrations.py [-n 1000] [-n 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kamailio import Kamailio
from usage import cpu_seconds, rss_kib

from sipfsm.ua import UA


async def run(n: int, server: Kamailio) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    uas: list[UA] = []
    registered = 0
    goal = asyncio.get_running_loop().create_future()

    def on_registered(event: object) -> None:
        nonlocal registered
        registered += 1
        if registered >= target and not goal.done():
            goal.set_result(None)

    async def grow(upto: int) -> None:
        for i in range(len(uas), upto):
            user = f"ua{i:05d}"
            ua = UA(uri=f"sip:{user}@{server.domain}", ws_servers=server.ws_url,
                    password=f"{user}-pw", session=session, log={"builtin_enabled": False},
                    register_expires=3600)
            ua.on("registered", on_registered)
            uas.append(ua)
            if i % 200 == 199:
                await asyncio.sleep(0)  # let connections progress while creating more
        await asyncio.wait_for(goal, timeout=max(60, upto / 50))

    gc.collect()
    base_rss = rss_kib()
    # Phase 1: the first half, timed; phase 2: the second half.  RSS is read when each phase
    # has settled, so the slope between them is the cost of one more registered UA.
    target = n // 2
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    await grow(n // 2)
    gc.collect()
    half_rss = rss_kib()
    target = n
    goal = asyncio.get_running_loop().create_future()
    await grow(n)
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    gc.collect()
    full_rss = rss_kib()
    print(f"N = {n}: all registered in {elapsed:.2f} s "
          f"({n / elapsed:,.0f} registrations/s), CPU {cpu / n * 1000:.2f} ms per registration")
    print(f"  RSS per UA: {(full_rss - base_rss) / n:.1f} KiB on average, "
          f"{(full_rss - half_rss) / (n - n // 2):.1f} KiB marginal "
          f"(growth {half_rss - base_rss} KiB at N/2, {full_rss - base_rss} KiB at N)")
    await asyncio.gather(*(ua.stop() for ua in uas))
    await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, action="append", help="population (repeatable)")
    args = parser.parse_args()
    sizes = args.n or [1000]
    biggest = max(sizes)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    users = {f"ua{i:05d}": f"ua{i:05d}-pw" for i in range(biggest)}
    server = Kamailio(users=users, tcp_max_connections=biggest * 2 + 1024,
                      shm_mb=max(256, biggest // 8), tcp_children=2)
    server.start()
    try:
        for n in sizes:
            asyncio.run(run(n, server))
            server.restart()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
