"""Fuzz the SIP parser and the request gate for a given time; print inputs/s and findings.

The invariant, for any input (bytes or text):

* :func:`sipfsm.sip.parse` gives a :class:`~sipfsm.sip.Request`, a :class:`~sipfsm.sip.Response`
  or raises :class:`~sipfsm.ParseError` — nothing else;
* on a message, reading any typed header (``parse_all``, the Request-URI, every property of every
  parsed value) gives a value or raises ``ParseError``;
* the gate never raises: :func:`~sipfsm.sip.check_request` gives a rejection or ``None``,
  :func:`~sipfsm.sip.check_response` a reason or ``None``;
* a parsed message serialises (``bytes``, ``str``, ``repr``), and the serialisation parses again
  to an equal message.

Anything else is a *finding*: the smallest input of each kind is saved to ``--findings`` (a new
temporary directory by default) with its traceback, and the exit status is 1.  Inputs slower than
``--slow`` seconds are listed (and saved) too, as possible denial of service.

Two engines.  ``atheris`` (``pip install sipfsm[fuzz]``): coverage-guided libFuzzer, with the
SIP-aware mutations below offered as a custom mutator next to libFuzzer's own.  ``custom``
(always available, and the default without atheris): a mutational fuzzer seeded from the shared
corpus and a few built-in messages — byte flips, insertions of SIP punctuation and odd Unicode,
deletions, splices of two messages, duplicated, dropped and swapped header lines (up to
thousands), huge and negative numbers, CRLF floods, folded lines, truncation — that keeps every
input with an outcome it had not seen yet as a new seed.

    python benchmarks/fuzz_parser.py [--seconds 60] [--seed N] [--findings DIR]
                                     [--engine auto|atheris|custom] [--corpus DIR] [--slow S]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sipfsm.errors import ParseError
from sipfsm.sip import Request, check_request, check_response, parse
from sipfsm.sip.headers import TYPED

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = Path(os.environ.get("SIPFSM_CORPUS", REPO.parent / "shared" / "corpus"))
SUPPORTED = ("path", "gruu", "outbound", "100rel", "replaces", "timer")
MAX_INPUT = 1 << 17  # mutants are cut to this, but one in a hundred is let through bigger,
HUGE_INPUT = 1 << 21  # up to this: past the parser's size limit (256 KiB)

# -- the invariant ---------------------------------------------------------------------------------


class Violation(Exception):
    """An input broke the invariant without raising anything itself (e.g. a round trip)."""


def _shape(text: str) -> str:
    """A reason with the input's own bits (quoted text, numbers) blanked, so that one kind of
    fault counts as one outcome."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", text)[:60]


_READABLE: dict[type, tuple[str, ...]] = {}


def _readable(kind: type) -> tuple[str, ...]:
    """The public properties and dataclass fields of ``kind`` (cached per type)."""
    names = _READABLE.get(kind)
    if names is None:
        fields = {f.name for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(
            kind) else set()
        names = _READABLE[kind] = tuple(
            name for name in dir(kind) if not name.startswith("_")
            and (name in fields or isinstance(getattr(kind, name, None), property)))
    return names


def _touch(value: object, depth: int = 0) -> None:
    """Read every property of a parsed header value (and of the URIs and values inside it), and
    serialise it.  ``ParseError`` may come out; anything else is a finding."""
    if depth > 3 or value is None or isinstance(value, str | int | float | bool | bytes | dict):
        return
    if isinstance(value, tuple | list):
        for item in value:
            _touch(item, depth + 1)
        return
    str(value)
    repr(value)
    for name in _readable(type(value)):
        with contextlib.suppress(ParseError):
            _touch(getattr(value, name), depth + 1)


def examine(data: bytes | str) -> str:
    """Run one input through the parser and the gate; return its outcome (a short label).

    Raises whatever the library raised that the invariant forbids, or :class:`Violation`."""
    try:
        message = parse(data)
    except ParseError as exc:
        return f"ParseError {exc.status} {_shape(exc.reason)}"
    lazy = ""
    for key in dict.fromkeys(message.headers.keys()):
        if key in TYPED:
            try:
                _touch(message.headers.typed(key))
            except ParseError:
                lazy = " (a header is malformed)"
    for name in ("contact", "contact_is_star", "top_via", "text"):
        try:
            _touch(getattr(message, name))
        except ParseError:
            lazy = " (a header is malformed)"
    if isinstance(message, Request):
        try:
            _touch(message.uri)
        except ParseError:
            lazy += " (bad Request-URI)"
        rejection = check_request(message, supported=SUPPORTED)
        outcome = (f"request {_method(message.method)}: "
                   + (f"{rejection.status} {_shape(rejection.reason)}" if rejection else "passes"))
    else:
        fault = check_response(message)
        outcome = (f"response {message.status_code // 100}xx: "
                   + (f"dropped {_shape(fault)}" if fault else "accepted"))
    wire = bytes(message)
    str(message)
    repr(message)
    try:
        again = parse(wire)
    except ParseError as exc:
        raise Violation(f"the serialisation does not parse again: {exc}") from None
    if again != message:
        raise Violation("the serialisation parses to a different message")
    return outcome + lazy


_KNOWN = frozenset({"ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS",
                    "PRACK", "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE"})


def _method(method: str) -> str:
    return method if method in _KNOWN else "(extension)"


# -- bookkeeping -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Finding:
    """One kind of invariant violation, and the smallest input seen to cause it."""

    signature: str
    data: bytes
    text: str
    count: int = 1
    path: Path | None = None


class Report:
    """Counts inputs and outcomes, keeps findings and slow inputs, writes them to ``folder``."""

    def __init__(self, folder: Path, slow: float) -> None:
        self.folder = folder
        self.slow = slow
        self.inputs = 0
        self.outcomes: Counter[str] = Counter()
        self.findings: dict[str, Finding] = {}
        self.slowest: list[tuple[float, str]] = []
        self.started = time.perf_counter()
        self._next_progress = self.started + 10.0

    def run(self, data: bytes | str) -> bool:
        """Examine one input; return whether its outcome is new."""
        self.inputs += 1
        began = time.perf_counter()
        try:
            outcome = examine(data)
        except (Exception, RecursionError) as exc:
            self._found(data, exc)
            outcome = f"FINDING {type(exc).__name__}"
        took = time.perf_counter() - began
        if took > self.slow:
            self._slow(data, took)
        new = outcome not in self.outcomes
        self.outcomes[outcome] += 1
        if began > self._next_progress:
            self._next_progress = began + 10.0
            self.progress()
        return new

    def _found(self, data: bytes | str, exc: BaseException) -> None:
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "sipfsm" in f.filename] or frames
        where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
        signature = f"{type(exc).__name__} at {where}"
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        known = self.findings.get(signature)
        if known is not None:
            known.count += 1
            if len(raw) >= len(known.data):
                return
        text = "".join(traceback.format_exception(exc))
        finding = Finding(signature, raw, text, known.count if known else 1)
        self.findings[signature] = finding
        self._save(finding, "finding")
        if known is not None and known.path is not None and known.path != finding.path:
            known.path.unlink(missing_ok=True)
            known.path.with_suffix(".txt").unlink(missing_ok=True)

    def _slow(self, data: bytes | str, took: float) -> None:
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        finding = Finding(f"slow {took:.2f}s", raw, f"{took:.3f} s for {len(raw)} octets\n")
        self._save(finding, "slow")
        self.slowest.append((took, str(finding.path)))

    def _save(self, finding: Finding, prefix: str) -> None:
        digest = hashlib.sha256(finding.data).hexdigest()[:12]
        finding.path = self.folder / f"{prefix}-{digest}.sip"
        finding.path.write_bytes(finding.data)
        finding.path.with_suffix(".txt").write_text(f"{finding.signature}\n\n{finding.text}")

    @property
    def rate(self) -> float:
        return self.inputs / max(time.perf_counter() - self.started, 1e-9)

    def progress(self) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"  {elapsed:6.0f} s  {self.inputs:>11,} inputs  {self.rate:>9,.0f}/s  "
              f"{len(self.outcomes):>5} outcomes  {len(self.findings)} findings", flush=True)

    def summary(self, engine: str, seed: int) -> str:
        elapsed = time.perf_counter() - self.started
        lines = [
            f"engine: {engine} (seed {seed})",
            f"time: {elapsed:.1f} s",
            f"inputs: {self.inputs:,}",
            f"inputs/s: {self.rate:,.0f}",
            f"distinct outcomes: {len(self.outcomes)}",
        ]
        parse_errors = sum(n for o, n in self.outcomes.items() if o.startswith("ParseError"))
        lines.append(f"  ParseError: {parse_errors:,} inputs, "
                     f"{sum(1 for o in self.outcomes if o.startswith('ParseError'))} reasons")
        statuses = Counter(o.split(" ")[1] for o in self.outcomes if o.startswith("ParseError"))
        lines.append("  ParseError statuses: " + ", ".join(
            f"{status} ({n} reasons)" for status, n in sorted(statuses.items())))
        for prefix in ("request", "response"):
            kinds = [(o, n) for o, n in self.outcomes.items() if o.startswith(prefix)]
            lines.append(f"  {prefix}s: {sum(n for _, n in kinds):,} inputs, "
                         f"{len(kinds)} outcomes")
        gate = Counter(o.split(": ", 1)[1].split(" ")[0] for o in self.outcomes
                       if o.startswith("request"))
        lines.append("  gate answers (distinct outcomes): " + ", ".join(
            f"{k} ×{n}" for k, n in sorted(gate.items())))
        common = self.outcomes.most_common(1)
        lines.append(f"  most frequent: {common[0][0] if common else '-'}")
        lines.append(f"findings: {len(self.findings)}")
        for finding in self.findings.values():
            lines.append(f"  {finding.signature}: {finding.count} inputs; smallest "
                         f"({len(finding.data)} octets) in {finding.path}")
        lines.append(f"slow inputs (> {self.slow} s): {len(self.slowest)}")
        for took, path in sorted(self.slowest, reverse=True)[:5]:
            lines.append(f"  {took:.2f} s: {path}")
        lines.append(f"findings directory: {self.folder}")
        return "\n".join(lines)


# -- seeds -----------------------------------------------------------------------------------------


def builtin_seeds() -> list[bytes]:
    """A few messages of our own, so that the fuzzer runs without the shared corpus."""
    via = "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks;rport\r\n"
    common = ("From: \"Alice\" <sip:alice@example.com>;tag=9fxced76sl\r\n"
              "To: <sip:bob@example.com>\r\n"
              "Call-ID: 3848276298220188511@example.com\r\n")
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 9 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
    messages = [
        ("REGISTER sip:example.com SIP/2.0\r\n" + via + "Max-Forwards: 70\r\n" + common
         + "CSeq: 1 REGISTER\r\nContact: <sip:x@df7jal23ls0d.invalid;transport=ws>;expires=600;"
         "reg-id=1;+sip.instance=\"<urn:uuid:4f5c2a38-1d3b-4c6e-9a7f-0b1c2d3e4f50>\"\r\n"
         "Expires: 600\r\nSupported: path, gruu, outbound\r\nContent-Length: 0\r\n\r\n"),
        ("INVITE sip:bob@example.com SIP/2.0\r\n" + via + "Max-Forwards: 70\r\n" + common
         + "CSeq: 2 INVITE\r\nContact: <sip:x@df7jal23ls0d.invalid;transport=ws;ob>\r\n"
         "Route: <sip:edge.example.com;transport=ws;lr>\r\nAllow: INVITE, ACK, BYE\r\n"
         "Content-Type: application/sdp\r\nContent-Length: " + str(len(sdp)) + "\r\n\r\n" + sdp),
        ("SIP/2.0 401 Unauthorized\r\n" + via + common.replace(">\r\nCall", ">;tag=x\r\nCall")
         + "CSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"example.com\", nonce=\"abc\", "
         "qop=\"auth\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n"),
        ("SIP/2.0 200 OK\r\n" + via + common + "CSeq: 2 INVITE\r\nRecord-Route: <sip:p;lr>\r\n"
         "RSeq: 1\r\nRAck: 1 2 INVITE\r\nEvent: refer;id=3\r\nSubscription-State: active;"
         "expires=60\r\nReason: SIP;cause=200;text=\"done\"\r\nReplaces: a@b;to-tag=1;"
         "from-tag=2\r\nRefer-To: <sip:c@d?Replaces=x%40y%3Bto-tag%3D1>\r\n"
         "Authorization: Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", "
         "response=\"0123456789abcdef0123456789abcdef\"\r\nl: 0\r\n\r\n"),
        ("INFO sip:bob@[2001:db8::1]:5060;transport=ws SIP/2.0\r\n" + via + "Max-Forwards: 70\r\n"
         + common + "CSeq: 3 INFO\r\nc: application/dtmf-relay\r\n"
         "l: 24\r\n\r\nSignal=1\r\nDuration=100\r\n"),
    ]
    return [m.encode() for m in messages]


def corpus_seeds(corpus: Path) -> list[bytes]:
    """Every ``.sip`` file of the shared corpus (RFC 4475, RFC 5118, WebSocket traffic)."""
    return [path.read_bytes() for path in sorted(corpus.glob("*/**/*.sip"))]


# -- mutations -------------------------------------------------------------------------------------

_TOKENS = [
    b"\r\n", b"\r", b"\n", b"\r\n\r\n", b"\r\n ", b"\t", b" ", b":", b";", b",", b"<", b">", b"\"",
    b"\\", b"%", b"%00", b"%zz", b"@", b"[", b"]", b"[::1]", b"=", b"?", b"&", b"/", b"*", b"\x00",
    b"\xff", b"\xc3\xa9", b"\xe2\x80\xa8", b"\xed\xa0\x80", b"\xf0\x9f\x93\x9e", b"\xef\xbb\xbf",
    "²".encode(), "١٢٣".encode(), b"sip:", b"sips:", b"tel:", b"SIP/2.0", b"SIP/2.0/WS ",
    b"z9hG4bK", b";tag=", b";branch=", b";expires=", b";rport", b";received=", b";maddr=",
    b";lr", b"Digest ", b"nonce=", b"qop=auth", b"INVITE", b"ACK", b"CANCEL", b"BYE", b"REGISTER",
    b"Content-Length: ", b"l: ", b"Via: ", b"v: ", b"CSeq: ", b"Contact: *", b"m: ",
]
_NUMBERS = [
    b"0", b"-1", b"00000000000000000000001", b"4294967295", b"4294967296", b"2147483648",
    b"65535", b"65536", b"18446744073709551616", b"9" * 40, b"1" * 5000, b"1e9", b"0x10", b"1.5",
    b"\xd9\xa1", "²".encode(), b"+1", b"999",
]
_HEADERS = [
    b"Via", b"v", b"From", b"f", b"To", b"t", b"Call-ID", b"i", b"CSeq", b"Contact", b"m",
    b"Content-Length", b"l", b"Content-Type", b"c", b"Max-Forwards", b"Expires", b"Require",
    b"Supported", b"Route", b"Record-Route", b"RSeq", b"RAck", b"Event", b"o", b"Reason",
    b"Replaces", b"Refer-To", b"r", b"Referred-By", b"Subscription-State", b"Allow",
    b"WWW-Authenticate", b"Proxy-Authenticate", b"Authorization", b"Proxy-Authorization",
    b"Min-Expires", b"Accept", b"X-Custom", b"Path", b"Service-Route", b"Allow-Events", b"u",
]
_DIGITS = re.compile(rb"\d+")


def _lines(data: bytes) -> tuple[list[bytes], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), (sep + body if sep else b"")


def _join(lines: list[bytes], rest: bytes) -> bytes:
    return b"\r\n".join(lines) + rest


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """One mutant of ``data``: one to four mutations stacked."""
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        data = rng.choice(_MUTATIONS)(rng, data, pool)[:HUGE_INPUT]
    return data[: MAX_INPUT if rng.random() < 0.99 else HUGE_INPUT]


def _flip(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    at = rng.randrange(len(data))
    value = data[at] ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256)
    return data[:at] + bytes([value]) + data[at + 1:]


def _insert(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    at = rng.randrange(len(data) + 1)
    if rng.random() < 0.7:
        piece = rng.choice(_TOKENS) * (1 if rng.random() < 0.8 else rng.randrange(2, 300))
    else:
        piece = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    return data[:at] + piece + data[at:]


def _delete(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    if len(data) < 2:
        return data
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randrange(1, min(64, len(data) - at) + 1):]


def _duplicate_range(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    piece = data[at: at + rng.randrange(1, 64)]
    return data[:at] + piece * rng.randrange(2, 50) + data[at:]


def _splice(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    other = rng.choice(pool)
    if rng.random() < 0.5:  # at line boundaries: a plausible message of two halves
        mine, rest = _lines(data)
        theirs, their_rest = _lines(other)
        cut, cut2 = rng.randrange(len(mine) + 1), rng.randrange(len(theirs) + 1)
        return _join(mine[:cut] + theirs[cut2:], rng.choice((rest, their_rest)))
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]


def _duplicate_header(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    lines, rest = _lines(data)
    if len(lines) < 2:
        return data
    at = rng.randrange(1, len(lines))
    times = min(rng.choice((1, 1, 2, 10, 100, 1000, 5000)), HUGE_INPUT // (len(lines[at]) + 2))
    return _join(lines[: at + 1] + [lines[at]] * times + lines[at + 1:], rest)


def _drop_or_swap_header(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    lines, rest = _lines(data)
    if len(lines) < 3:
        return data
    a, b = rng.randrange(1, len(lines)), rng.randrange(1, len(lines))
    if rng.random() < 0.5:
        del lines[a]
    else:
        lines[a], lines[b] = lines[b], lines[a]
    return _join(lines, rest)


def _rename_header(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    lines, rest = _lines(data)
    if len(lines) < 2:
        return data
    at = rng.randrange(1, len(lines))
    name, colon, value = lines[at].partition(b":")
    if rng.random() < 0.3:
        new = name.swapcase() + rng.choice((b"", b" ", b"\t")) + colon + value
    else:
        new = rng.choice(_HEADERS) + b":" + value
    lines[at] = new
    return _join(lines, rest)


def _new_header(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    lines, rest = _lines(data)
    donor, _ = _lines(rng.choice(pool))
    value = donor[rng.randrange(len(donor))].partition(b":")[2] if donor else b""
    lines.insert(rng.randrange(1, len(lines) + 1), rng.choice(_HEADERS) + b": " + value.strip())
    return _join(lines, rest)


def _number(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    found = list(_DIGITS.finditer(data))
    if not found:
        return data
    match = rng.choice(found)
    return data[: match.start()] + rng.choice(_NUMBERS) + data[match.end():]


def _content_length(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    lines, rest = _lines(data)
    lines = [line for line in lines if not line.lower().startswith((b"content-length", b"l:"))]
    if rng.random() < 0.8:
        value = rng.choice([*_NUMBERS, str(rng.randrange(-5, 5000)).encode()])
        lines.insert(rng.randrange(min(1, len(lines)), len(lines) + 1),
                     rng.choice((b"Content-Length", b"l"))
                     + b": " + value)
    return _join(lines, rest)


def _crlf_flood(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    flood = rng.choice((b"\r\n", b"\r\n\r\n", b"\n", b"\r")) * rng.choice((1, 2, 50, 5000))
    where = rng.random()
    if where < 0.4:
        return flood + data
    if where < 0.6:
        return data + flood
    if where < 0.8:
        return flood
    at = rng.randrange(len(data) + 1)
    return data[:at] + flood + data[at:]


def _fold(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    lines, rest = _lines(data)
    if len(lines) < 2:
        return data
    at = rng.randrange(1, len(lines))
    line = lines[at]
    cut = rng.randrange(len(line) + 1)
    lines[at] = line[:cut] + b"\r\n" + rng.choice((b" ", b"\t", b"  \t")) + line[cut:]
    return _join(lines, rest)


def _truncate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _long_line(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice(b"a;=,%<\"0 ").to_bytes(1, "big") * rng.choice(
        (100, 1000, 10000, 70000)) + data[at:]


_MUTATIONS: list[Callable[[random.Random, bytes, list[bytes]], bytes]] = [
    _flip, _flip, _insert, _insert, _insert, _delete, _duplicate_range, _splice, _splice,
    _duplicate_header, _drop_or_swap_header, _rename_header, _new_header, _new_header, _number,
    _number, _content_length, _crlf_flood, _fold, _truncate, _long_line,
]


def as_text_sometimes(rng: random.Random, data: bytes) -> bytes | str:
    """Most inputs go in as bytes; some as text (``parse`` takes both), a few with characters no
    UTF-8 encoder accepts (lone surrogates)."""
    roll = rng.random()
    if roll < 0.9:
        return data
    text = data.decode("utf-8", "surrogateescape" if roll < 0.97 else "replace")
    if roll > 0.985:
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(("\ud800", "\udcff", "\u2028", "\x85", "\ufeff")) + text[at:]
    return text


# -- engines ---------------------------------------------------------------------------------------


def fuzz_custom(seconds: float, seed: int, seeds: list[bytes], report: Report) -> None:
    """Mutate seeds until the time is up; inputs with new outcomes become seeds (bounded)."""
    rng = random.Random(seed)
    pool = list(seeds)
    for data in seeds:  # the seeds themselves first
        report.run(data)
    deadline = time.perf_counter() + seconds
    while True:
        for _ in range(64):
            mutant = mutate(rng, rng.choice(pool), pool)
            if report.run(as_text_sometimes(rng, mutant)) and len(mutant) < 1 << 13:
                if len(pool) < 20000:
                    pool.append(mutant)
                else:
                    pool[rng.randrange(len(seeds), len(pool))] = mutant
        if time.perf_counter() >= deadline:
            return


def fuzz_atheris(seconds: float, seed: int, seeds: list[bytes], report: Report,
                 finish: Callable[[], int]) -> None:
    """libFuzzer through atheris, coverage-guided over sipfsm's code.  Never returns: the
    report is printed and the process exits from inside the loop once the time is up."""
    atheris: Any = importlib.import_module("atheris")
    _instrumented_sipfsm(atheris)
    seed_dir = Path(tempfile.mkdtemp(prefix="sipfsm-fuzz-seeds-"))
    for index, data in enumerate(seeds):
        (seed_dir / f"seed-{index:04d}").write_bytes(data)
    deadline = time.perf_counter() + seconds
    pool = list(seeds)

    def one_input(data: bytes) -> None:
        report.run(data)
        if report.inputs % 256 == 0 and time.perf_counter() >= deadline:
            shutil.rmtree(seed_dir, ignore_errors=True)
            sys.stdout.flush()
            os._exit(finish())

    def mutator(data: bytes, max_size: int, mutator_seed: int) -> bytes:
        rng = random.Random(mutator_seed)
        if rng.random() < 0.5:
            mutant: bytes = atheris.Mutate(data, max_size)
            return mutant
        return mutate(rng, data or rng.choice(pool), pool)[:max_size]

    argv = [sys.argv[0], f"-seed={seed or 1}", f"-max_total_time={int(seconds) + 60}",
            f"-max_len={MAX_INPUT}", "-timeout=60", "-rss_limit_mb=4096",
            f"-artifact_prefix={report.folder}{os.sep}", "-print_final_stats=0", str(seed_dir)]
    atheris.Setup(argv, one_input, custom_mutator=mutator)
    atheris.Fuzz()


def _instrumented_sipfsm(atheris: Any) -> None:
    """Import sipfsm again, this time with atheris's coverage instrumentation, and point this
    module's names at the new objects.  (``atheris.instrument_all`` would spare the re-import,
    but breaks functions, and crashes, on Python 3.11.)"""
    for name in [n for n in sys.modules if n == "sipfsm" or n.startswith("sipfsm.")]:
        del sys.modules[name]
    with atheris.instrument_imports(include=["sipfsm"]):
        errors = importlib.import_module("sipfsm.errors")
        sip = importlib.import_module("sipfsm.sip")
        headers = importlib.import_module("sipfsm.sip.headers")
    globals().update(ParseError=errors.ParseError, Request=sip.Request,
                     check_request=sip.check_request, check_response=sip.check_response,
                     parse=sip.parse, TYPED=headers.TYPED)


def have_atheris() -> bool:
    try:
        importlib.import_module("atheris")
    except ImportError:
        return False
    return True


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (60)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--findings", type=Path, default=None,
                        help="where to save findings (default: a new temporary directory)")
    parser.add_argument("--engine", choices=("auto", "atheris", "custom"), default="auto",
                        help="atheris when installed, else custom (auto)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help="the shared SIP corpus (seeds); $SIPFSM_CORPUS by default")
    parser.add_argument("--slow", type=float, default=1.0,
                        help="report inputs that take longer than this many seconds (1.0)")
    args = parser.parse_args(None if argv is None else list(argv))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "custom"
    elif engine == "atheris" and not have_atheris():
        parser.error("atheris is not installed (pip install 'sipfsm[fuzz]'), use --engine custom")
    folder = args.findings or Path(tempfile.mkdtemp(prefix="sipfsm-fuzz-"))
    folder.mkdir(parents=True, exist_ok=True)
    seeds = corpus_seeds(args.corpus) + builtin_seeds()
    print(f"fuzzing parse + gate for {args.seconds:g} s with {engine} (seed {seed}); "
          f"{len(seeds)} seeds; findings go to {folder}", flush=True)
    report = Report(folder, args.slow)

    def finish() -> int:
        print(report.summary(engine, seed), flush=True)
        return 1 if report.findings else 0

    if engine == "atheris":
        fuzz_atheris(args.seconds, seed, seeds, report, finish)
    fuzz_custom(args.seconds, seed, seeds, report)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
