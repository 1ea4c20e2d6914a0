"""``sipfsm demo``: three parties, real audio, a transfer — and a ladder of what happened.

Starts the embedded devserver on 127.0.0.1 and three UAs (alice, bob, carol) registering with
digest; alice calls bob with real aiortc audio (each side measures the other's tone), DTMF goes
both ways (RFC 4733 and SIP INFO), bob holds alice, consults carol and transfers alice to her
with Replaces; carol hears alice; everyone hangs up.  It prints a ladder of the SIP flow, a
summary of what was verified, writes the diagrams of the machines as they ended, and returns
non-zero if any check failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .cli import _DTMF_VIA, DEFAULT_ICE_ADDRESS, Out, _peer, _status
from .errors import InvalidStateError, ParseError

if TYPE_CHECKING:
    from .devserver import DevServer
    from .events import InviteReceived, SessionReinvited
    from .fsm.base import Model
    from .session import Session
    from .ua import UA

__all__ = ["demo"]

_DEMO_TONES: Mapping[str, float] = {"alice": 440.0, "bob": 550.0, "carol": 660.0}
_LADDER_WIDTH = 23
_HELD = ("sendonly", "recvonly", "inactive")


def _ladder_label(data: str) -> str:
    """A short name for one SIP message: the method (with what matters in it) or the status."""
    from .refer import sipfrag_status
    from .sip import Response, parse

    try:
        message = parse(data)
    except ParseError:
        return data.split("\r\n", 1)[0][:16]
    if isinstance(message, Response):
        return _status(message)
    method = message.method
    to = message.to
    if method == "INVITE" and to is not None and to.tag:  # a re-INVITE
        body = message.text
        return "INVITE " + next((d for d in _HELD if f"a={d}" in body), "sendrecv")
    if method == "INVITE" and message.headers.get("Replaces"):
        return "INVITE+Replaces"
    if method == "REFER" and "Replaces" in (message.headers.get("Refer-To") or ""):
        return "REFER+Replaces"
    if method == "REGISTER" and message.headers.get("Expires") == "0":
        return "REGISTER exp=0"
    if method == "INFO":
        signal_line = next((line for line in message.text.splitlines()
                            if line.lower().startswith("signal=")), "")
        return f"INFO DTMF {signal_line.partition('=')[2].strip()}".rstrip()
    if method == "NOTIFY" and message.body:
        status = sipfrag_status(message.text)
        return f"NOTIFY ({status})" if status else "NOTIFY"
    return method


class _Ladder:
    """Prints one line per SIP message, sngrep style: the time, then an arrow between the
    lifelines of the UAs and the edge.  Media events (dotted) go straight from UA to UA."""

    def __init__(self, names: Sequence[str], out: Out, clock: Callable[[], float]) -> None:
        self.columns = {name: index for index, name in enumerate(names)}
        self.out = out
        self.clock = clock

    def header(self) -> None:
        line = "".join(name.ljust(_LADDER_WIDTH) for name in self.columns).rstrip()
        self.out(f"{'seconds':>8}  {line}")

    def attach(self, name: str, ua: UA) -> None:
        from .events import FrameReceived, FrameSent

        def sent(event: FrameSent) -> None:
            if event.data.strip():
                self.arrow(name, "edge", _ladder_label(event.data))

        def received(event: FrameReceived) -> None:
            if event.data.strip():
                self.arrow("edge", name, _ladder_label(event.data))

        ua.bus.subscribe(FrameSent, sent)
        ua.bus.subscribe(FrameReceived, received)

    def arrow(self, source: str, target: str, label: str, *, media: bool = False) -> None:
        width, count = _LADDER_WIDTH, len(self.columns)
        chars = [" "] * (width * (count - 1) + 1)
        for index in range(count):
            chars[index * width] = "|"
        a, b = self.columns[source] * width, self.columns[target] * width
        low, high = min(a, b), max(a, b)
        for x in range(low + 1, high):
            chars[x] = "." if media else "-"
        chars[high - 1 if b > a else low + 1] = ">" if b > a else "<"
        text = f" {label} "[: high - low - 5]
        start = low + 1 + (high - low - 1 - len(text)) // 2
        chars[start:start + len(text)] = text
        self.out(f"{self.clock():8.3f}  {''.join(chars).rstrip()}")


class _Person:
    """One of the demo's UAs: its own tone, what it hears, the DTMF it receives, its calls
    (every incoming one answered at once) and the REFERs it followed."""

    def __init__(self, name: str, server: DevServer) -> None:
        from .ua import UA

        self.name = name
        self.heard: list[Any] = []
        self.dtmf: list[tuple[str, str]] = []
        self.calls: list[Session] = []
        self.refers: list[Any] = []
        self.ua = UA(uri=f"sip:{name}@{server.domain}", ws_servers=server.ws_url,
                     password=f"{name}-secret", display_name=name.title(),
                     log={"builtin_enabled": False}, replaces="supported",
                     dtmf_type="rtp" if name == "alice" else "info",
                     session_description_handler_factory_options={
                         "ice_addresses": [DEFAULT_ICE_ADDRESS], "tone_hz": _DEMO_TONES[name],
                         "on_audio": self.heard.append})
        self.ua.on("invite", self._ring)

    def keep(self, session: Session) -> Session:
        self.calls.append(session)
        session.on("dtmf", lambda event: self.dtmf.append((event.tone, event.via)))
        return session

    def _ring(self, event: InviteReceived) -> None:
        from .session import Session

        assert isinstance(event.session, Session)
        self.keep(event.session).accept()

    def call(self, target: str) -> Session:
        return self.keep(self.ua.invite(target))

    def follow(self, refer: Any) -> None:
        """Accept a REFER and make the call it asks for."""
        self.refers.append(refer)
        new = refer.accept()
        if new is not None:
            self.keep(new)

    def dtmf_text(self) -> str:
        return " ".join(tone for tone, _ in self.dtmf)

    def dtmf_by(self) -> set[str]:
        return {via for _, via in self.dtmf}


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def _ended(*sessions: Session) -> bool:
    return all(session.state.name == "TERMINATED" for session in sessions)


class _Demo:
    """The demo's story, step by step, each check printed as it is made and summed up."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.checks: list[tuple[bool, str]] = []
        self.start = asyncio.get_running_loop().time()
        self.ladder = _Ladder(("alice", "edge", "bob", "carol"), out, self.elapsed)

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self.start

    def step(self, *lines: str) -> None:
        self.out("")
        for index, line in enumerate(lines):
            self.out(f"  {'' if index == 0 else '   '}{line}")

    def check(self, ok: bool, text: str) -> None:
        self.checks.append((ok, text))
        self.out(f"{'':10}{'✓' if ok else '✗'} {text}")

    async def hears(self, person: _Person, sender: str) -> None:
        """Check that ``person`` hears ``sender``'s tone in a fresh second of audio."""
        from .media.dtmf import tone_frequency

        person.heard.clear()
        await _until(lambda: len(person.heard) > 60)
        hz = tone_frequency(person.heard[-50:])
        expected = _DEMO_TONES[sender]
        self.ladder.arrow(sender, person.name, f"audio {hz:.0f} Hz", media=True)
        self.check(abs(hz - expected) < 5,
                   f"{person.name} hears {sender}'s tone: {hz:.1f} Hz ({expected:.0f} sent)")

    async def run(self, people: Mapping[str, _Person]) -> None:
        alice, bob, carol = people["alice"], people["bob"], people["carol"]
        self.step("1. alice, bob and carol register (digest: a 401 challenge, then 200)")
        granted = await asyncio.gather(*(p.ua.wait_for("registered", timeout=10)
                                         for p in people.values()))
        lifetimes = sorted({event.expires for event in granted})
        self.check(all(p.ua.is_registered() for p in people.values()),
                   f"alice, bob and carol registered (expires {', '.join(map(str, lifetimes))} "
                   "s)")

        self.step("2. alice sends bob a MESSAGE; bob asks what alice can do (OPTIONS)")
        arrived = asyncio.ensure_future(bob.ua.wait_for("message", timeout=10))
        reply = await alice.ua.message("bob", "Hello Bob, this is sipfsm.").result(10)
        text = (await arrived).request.text
        self.check(text == "Hello Bob, this is sipfsm." and reply.status_code == 200,
                   f"bob received {text!r} ({_status(reply)})")
        options = await bob.ua.request("OPTIONS", "alice").result(10)
        self.check(options.status_code == 200 and "INVITE" in options.allow,
                   f"alice answered OPTIONS ({_status(options)}): {len(options.allow)} "
                   "methods allowed, REFER among them")

        self.step("3. alice calls bob: real audio (aiortc, ICE on 127.0.0.1, DTLS-SRTP),",
                  "each measuring the other's tone (alice 440 Hz, bob 550, carol 660)")
        to_bob = alice.call("bob")
        await to_bob.wait_for("confirmed", timeout=15)
        await _until(lambda: bool(bob.calls) and bob.calls[0].state.name == "CONFIRMED")
        with_alice = bob.calls[0]
        self.check(True, "bob's phone rang (180), he answered (200), alice acknowledged (ACK)")
        await self.hears(bob, "alice")
        await self.hears(alice, "bob")

        self.step("4. DTMF both ways: alice sends 1 2 3 # in the media (RFC 4733),",
                  "bob sends * 9 in SIP INFO requests")
        with_alice.on("dtmf", lambda event: self.ladder.arrow(
            "alice", "bob", f"RTP DTMF {event.tone}", media=True) if event.via == "rtp" else None)
        await to_bob.sdh.wait_connected()  # type: ignore[attr-defined]
        to_bob.dtmf("123#", duration=100, inter_tone_gap=100)
        await _until(lambda: len(bob.dtmf) >= 4)
        with_alice.dtmf("*9", duration=100, inter_tone_gap=100)
        await _until(lambda: len(alice.dtmf) >= 2)
        self.check(bob.dtmf_text() == "1 2 3 #" and bob.dtmf_by() == {"rtp"},
                   f"bob received {bob.dtmf_text()} "
                   f"({', '.join(_DTMF_VIA[v] for v in sorted(bob.dtmf_by()))})")
        self.check(alice.dtmf_text() == "* 9" and alice.dtmf_by() == {"info"},
                   f"alice received {alice.dtmf_text()} "
                   f"({', '.join(_DTMF_VIA[v] for v in sorted(alice.dtmf_by()))})")

        self.step("5. bob puts alice on hold (a re-INVITE offering sendonly) and calls carol",
                  "to consult her")
        seen: list[SessionReinvited] = []
        to_bob.on("reinvite", seen.append)
        held = await with_alice.hold(timeout=10)
        await _until(lambda: bool(seen))
        self.check(held and with_alice.sdh.direction == "sendonly"
                   and to_bob.sdh.direction == "recvonly" and to_bob.remote_hold,
                   f"on hold: bob's media {with_alice.sdh.direction}, alice's "
                   f"{to_bob.sdh.direction}; alice sees remote_hold={to_bob.remote_hold}")
        to_carol = bob.call("carol")
        await to_carol.wait_for("confirmed", timeout=15)
        await _until(lambda: bool(carol.calls) and carol.calls[0].state.name == "CONFIRMED")
        consultation = carol.calls[0]
        await self.hears(carol, "bob")

        self.step("6. bob takes alice off hold and transfers her to carol: an attended",
                  "transfer (REFER with Replaces; alice's new call replaces bob's with carol)")
        resumed = await with_alice.unhold(timeout=10)
        await _until(lambda: len(seen) >= 2)
        self.check(resumed and with_alice.sdh.direction == "sendrecv"
                   and to_bob.sdh.direction == "sendrecv" and not to_bob.remote_hold,
                   f"off hold: bob's media {with_alice.sdh.direction}, alice's "
                   f"{to_bob.sdh.direction}")
        notified: list[str] = []
        with_alice.on("refer_requested", lambda event: notified.append(_status(event.response)))
        for name in ("refer_progress", "refer_accepted", "refer_rejected"):
            with_alice.on(name, lambda event: notified.append(f"NOTIFY {event.status}"))
        to_bob.on("refer", lambda event: alice.follow(event.refer))
        replaced: list[Any] = []
        consultation.on("replaced", replaced.append)
        with_alice.refer(to_carol)
        await _until(lambda: bool(replaced))
        new_call = replaced[0].replacement
        await _until(lambda: new_call.state.name == "CONFIRMED"
                     and _ended(to_bob, with_alice, to_carol, consultation))
        self.check(bool(notified) and notified[0].startswith("202")
                   and notified[-1] == "NOTIFY 200",
                   f"bob's REFER: {', '.join(notified)}; then bob hung up on alice")
        self.check(new_call in carol.calls,
                   f"alice's call replaced carol's with bob; bob's calls ended ({to_carol.cause})")
        await self.hears(carol, "alice")
        await self.hears(alice, "carol")

        self.step("7. carol hangs up; everyone unregisters")
        new_call.bye()
        after = alice.calls[-1]
        await _until(lambda: _ended(after))
        self.check(str(after.cause) == "Terminated",
                   f"alice's call with carol ended ({after.cause})")


def demo(out: Out = print, *, out_dir: str | None = None, format: str = "mermaid") -> int:
    """Run the demo; return the process exit status."""
    return asyncio.run(_demo(out, out_dir, format))


_DEMO_INTRO = f"""\
sipfsm {__version__} demo: an embedded SIP-over-WebSocket edge on 127.0.0.1 and three user
agents. alice, bob and carol register with digest; alice calls bob with real WebRTC
audio and each measures the other's tone; DTMF goes both ways; bob puts alice on
hold, consults carol and transfers alice to her (REFER with Replaces); everyone
hangs up.  Below, one line per SIP message between the UAs and the edge (dotted:
what the media carried, straight from UA to UA), and each check as it is made."""


async def _demo(out: Out, out_dir: str | None, format: str) -> int:
    from .devserver import DevServer

    story = _Demo(out)
    for line in _DEMO_INTRO.splitlines():
        out(line)
    people: dict[str, _Person] = {}
    async with DevServer() as server:
        out(f"\n  devserver listening on {server.ws_url}, domain {server.domain}\n")
        story.ladder.header()
        for name in _DEMO_TONES:
            people[name] = _Person(name, server)
            story.ladder.attach(name, people[name].ua)
        try:
            await story.run(people)
        except (TimeoutError, OSError, InvalidStateError) as exc:
            story.check(False, f"the story went on to the end (stopped by {type(exc).__name__}"
                               f"{': ' + str(exc) if str(exc) else ''})")
        finally:
            unregistered = await _demo_stop(people)
        story.check(all(unregistered.values()) and not any(p.ua.sessions()
                                                           for p in people.values()),
                    "every call over; "
                    + ", ".join(f"{name} {'unregistered' if ok else 'still registered'}"
                                for name, ok in unregistered.items()))
    where = _write_ended_diagrams(out_dir, format, people)
    failed = sum(1 for ok, _ in story.checks if not ok)
    out("\n  What was verified:")
    for ok, text in story.checks:
        out(f"    {'✓' if ok else '✗'} {text}")
    out(f"\n  The machines as they ended, highlighted ({format}): {where}")
    if failed:
        out(f"{failed} of {len(story.checks)} checks failed ({story.elapsed():.1f} s).")
        return 1
    out(f"All checks passed ({len(story.checks)}, in {story.elapsed():.1f} s).")
    return 0


async def _demo_stop(people: Mapping[str, _Person]) -> dict[str, bool]:
    """Hang up what is left and stop every UA; whether each saw its ``unregistered``."""
    gone: dict[str, bool] = {}

    async def stop(person: _Person) -> None:
        waiting = asyncio.ensure_future(person.ua.wait_for("unregistered", timeout=5))
        for session in person.ua.sessions():
            with contextlib.suppress(InvalidStateError):
                session.terminate()
        with contextlib.suppress(TimeoutError):
            await _until(lambda: not person.ua.sessions(), 5)
        await person.ua.stop()
        try:
            await waiting
            gone[person.name] = True
        except TimeoutError:
            gone[person.name] = False
        for session in person.calls:
            with contextlib.suppress(Exception):
                await session.sdh.close()

    await asyncio.gather(*(stop(person) for person in people.values()))
    return {name: gone.get(name, False) for name in people}


def _write_ended_diagrams(out_dir: str | None, format: str,
                          people: Mapping[str, _Person]) -> str:
    """Every machine with the states the demo's instances ended in highlighted, each labelled
    with whose it is (like :func:`sipfsm.diagrams.write_live`, but for three UAs and their
    ended calls too); returns where they are."""
    from .diagrams import FORMATS, DiagramError, live_models, render_view, views

    where = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="sipfsm-demo-"))
    found: dict[str, dict[str, list[str]]] = {}

    def add(model: Model, label: str) -> None:
        found.setdefault(model.SPEC.name, {}).setdefault(model.state.name, []).append(label)

    for name, person in people.items():
        for model in live_models(person.ua):
            add(model, name)
        for session in person.calls:
            peer = _peer(session).rpartition("sip:")[2].partition("@")[0]
            add(session.machine, f"{name}-{peer}")
            if session.dialog is not None:
                add(session.dialog, f"{name}-{peer}")
        for refer in person.refers:
            add(refer.machine, name)
    # One note per state: the owners, counted ("alice x2"), all of them named.
    current = {machine: {state: [", ".join(
        f"{label} x{labels.count(label)}" if labels.count(label) > 1 else label
        for label in dict.fromkeys(labels))] for state, labels in states.items()}
        for machine, states in found.items()}
    try:
        files = {view.name + FORMATS[format]: render_view(view, format, current.get(view.machine))
                 for view in views() if view.name == view.machine}
    except DiagramError as exc:
        return f"not written ({exc})"
    where.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (where / name).write_text(text, encoding="utf-8")
    return f"{where} ({len(files)} files)"
