"""Parser throughput over the shared SIP-over-WebSocket corpus.

Prints messages per second for: sipfsm's lazy ``parse``; parse and then read every header the
library types; serialisation (``bytes(msg)``); and a floor measured in the same run (split the
header block on CRLF into a dict of decoded strings, the least any SIP parser must do).  The last
line is the ratio lazy/floor.  Each figure is the best of several interleaved rounds, so a
background hiccup hits one round, not one contender.

    python benchmarks/parse.py [--corpus DIR] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from pathlib import Path

from sipfsm.sip import Message, parse

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "websocket"


def floor(data: bytes) -> dict[str, str]:
    """Split the header block on CRLF into a dict of decoded strings."""
    head, _, _ = data.partition(b"\r\n\r\n")
    fields: dict[str, str] = {}
    for line in head.decode("utf-8").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def parse_and_touch(data: bytes) -> Message:
    """Parse, then read every header sipfsm has a type for."""
    message = parse(data)
    message.parse_all()
    return message


def rate(func: Callable[[bytes], object], messages: list[bytes], seconds: float) -> float:
    """Messages per second of ``func`` over ``messages``, run for about ``seconds``."""
    done = 0
    gc.disable()
    try:
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for data in messages:
                func(data)
            done += len(messages)
            now = time.perf_counter()
            if now >= deadline:
                return done / (now - start)
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.6)
    args = parser.parse_args()
    messages = [p.read_bytes() for p in sorted(args.corpus.glob("*.sip"))]
    if not messages:
        raise SystemExit(f"no .sip files in {args.corpus}")
    parsed = [parse(m) for m in messages]
    for message in parsed:
        message.parse_all()
    contenders: dict[str, Callable[[bytes], object]] = {
        "floor (split into dict)": floor,
        "sipfsm parse (lazy)": parse,
        "sipfsm parse + every header": parse_and_touch,
    }
    best: dict[str, float] = dict.fromkeys([*contenders, "sipfsm serialise"], 0.0)
    serialised = parsed
    for _ in range(args.rounds):
        for name, func in contenders.items():
            best[name] = max(best[name], rate(func, messages, args.seconds))
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < args.seconds:
            for message in serialised:
                bytes(message)
            count += len(serialised)
        best["sipfsm serialise"] = max(best["sipfsm serialise"],
                                       count / (time.perf_counter() - start))
    print(f"corpus: {len(messages)} messages from {args.corpus.name}/, "
          f"best of {args.rounds} rounds x {args.seconds:.1f} s")
    for name, value in best.items():
        print(f"{name:32} {value:12,.0f} msgs/s")
    ratio = best["sipfsm parse (lazy)"] / best["floor (split into dict)"]
    print(f"lazy parse / floor ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
