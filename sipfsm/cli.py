"""The ``sipfsm`` command.

``sipfsm demo`` runs the library's story on one machine with no setup: the embedded devserver,
two UAs registering with digest, a MESSAGE and an OPTIONS between them, and a call with real
aiortc audio in which each side measures the other's tone.  It prints a ladder of
the SIP flow and what was verified, and exits non-zero if any check fails.  ``sipfsm serve``
runs the devserver on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__

__all__ = ["main"]

def demo(out: Callable[[str], None] = print) -> int:
    """Run the demo; return the process exit status."""
    return asyncio.run(_demo(out))


async def _demo(out: Callable[[str], None]) -> int:
    from .devserver import DevServer
    from .events import FrameReceived, FrameSent
    from .ua import UA

    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        out(f"  {'ok ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    def ladder(name: str, ua: UA) -> None:
        def line(arrow: str, data: str) -> None:
            first = data.split("\r\n", 1)[0]
            if first:
                out(f"    {name:5} {arrow} edge   {first}")

        ua.bus.subscribe(FrameSent, lambda event: line("->", event.data))
        ua.bus.subscribe(FrameReceived, lambda event: line("<-", event.data))

    out(f"sipfsm {__version__} demo: an embedded SIP-over-WebSocket edge on 127.0.0.1, two user")
    out("agents registering with digest, a MESSAGE, an OPTIONS, and a call with real WebRTC")
    out("audio (aiortc: ICE on 127.0.0.1, DTLS-SRTP) in which each side measures the other's")
    out("tone.  (DTMF, hold and transfer join this demo as those layers land.)\n")
    async with DevServer() as server:
        out(f"  devserver listening on {server.ws_url}, domain {server.domain}\n")
        heard: dict[str, list[Any]] = {"alice": [], "bob": []}

        def media(name: str, hz: float) -> dict[str, Any]:
            return {"ice_addresses": ["127.0.0.1"], "tone_hz": hz,
                    "on_audio": heard[name].append}

        alice = UA(uri=f"sip:alice@{server.domain}", ws_servers=server.ws_url,
                   password="alice-secret", display_name="Alice", log={"builtin_enabled": False},
                   session_description_handler_factory_options=media("alice", 440.0))
        bob = UA(uri=f"sip:bob@{server.domain}", ws_servers=server.ws_url,
                 password="bob-secret", display_name="Bob", log={"builtin_enabled": False},
                 session_description_handler_factory_options=media("bob", 660.0))
        ladder("alice", alice)
        ladder("bob", bob)
        try:
            results = await asyncio.gather(alice.wait_for("registered", timeout=10),
                                           bob.wait_for("registered", timeout=10),
                                           return_exceptions=True)
            check(not any(isinstance(r, BaseException) for r in results),
                  "alice and bob registered (digest: 401, then 200)")
            arrived = asyncio.ensure_future(bob.wait_for("message", timeout=10))
            handle = alice.message("bob", "Hello Bob, this is sipfsm.")
            message = await arrived
            check(message.request.text == "Hello Bob, this is sipfsm.",
                  "bob received alice's MESSAGE")
            final = await handle.result(10)
            check(final.status_code == 200, "alice's MESSAGE was accepted (200)")
            options = await bob.request("OPTIONS", "alice").result(10)
            check(options.status_code == 200 and "INVITE" in options.allow,
                  "alice answered bob's OPTIONS with 200 and her Allow list")
            await _demo_call(alice, bob, heard, check)
            alice.unregister()
            gone = await alice.wait_for("unregistered", timeout=10)
            check(gone.cause is None and not alice.is_registered(), "alice unregistered")
        except (TimeoutError, OSError) as exc:
            check(False, f"the exchange completed ({type(exc).__name__})")
        finally:
            await alice.stop()
            await bob.stop()
    out("")
    if failures:
        out(f"{len(failures)} check(s) failed.")
        return 1
    out("All checks passed.")
    return 0


async def _demo_call(alice: Any, bob: Any, heard: dict[str, list[Any]],
                     check: Callable[[bool, str], None]) -> None:
    """Alice calls Bob; both send a tone (440 / 660 Hz) and measure what they receive."""
    from .media.dtmf import tone_frequency

    ringing = asyncio.ensure_future(bob.wait_for("invite", timeout=10))
    call = alice.invite("bob")
    answered = (await ringing).session
    check(True, "bob's phone rings (180)")
    answered.accept()
    await call.wait_for("confirmed", timeout=15)
    check(True, "bob answered; alice's call is confirmed (200, ACK)")
    for _ in range(100):  # ICE + DTLS, then a second or so of audio each way
        if len(heard["alice"]) > 60 and len(heard["bob"]) > 60:
            break
        await asyncio.sleep(0.05)
    bob_hears = tone_frequency(heard["bob"]) if heard["bob"] else 0.0
    alice_hears = tone_frequency(heard["alice"]) if heard["alice"] else 0.0
    check(abs(bob_hears - 440.0) < 5, f"bob hears alice's tone: {bob_hears:.1f} Hz (440 sent)")
    check(abs(alice_hears - 660.0) < 5,
          f"alice hears bob's tone: {alice_hears:.1f} Hz (660 sent)")
    ended = asyncio.ensure_future(answered.wait_for("terminated", timeout=10))
    call.bye()
    cause = (await ended).cause
    check(str(cause) == "Terminated", f"alice hung up; bob's call ended ({cause})")


def _serve(args: argparse.Namespace) -> int:
    """Run the devserver until interrupted (Ctrl-C stops it cleanly)."""
    from .devserver import DevServer

    users = None
    if args.user:
        users = {}
        for item in args.user:
            name, colon, password = item.partition(":")
            if not colon or not name:
                print(f"sipfsm serve: --user takes NAME:PASSWORD, not {item!r}", file=sys.stderr)
                return 2
            users[name] = password

    async def run() -> None:
        server = DevServer(host=args.host, port=args.port, domain=args.domain, users=users,
                           require_auth=not args.no_auth,
                           log=None if args.quiet else lambda line: print(line, flush=True))
        async with server:
            print(f"sipfsm devserver: {server.ws_url} (domain {args.domain}); Ctrl-C stops it",
                  flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
        asyncio.run(run())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sipfsm`` command."""
    parser = argparse.ArgumentParser(prog="sipfsm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sipfsm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="show what sipfsm does, with no setup")
    serve = commands.add_parser("serve", help="run the embedded SIP-over-WebSocket devserver")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=5066, help="port (0: any free one)")
    serve.add_argument("--domain", default="sipfsm.test", help="the SIP domain served")
    serve.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                       help="a user (repeatable; default alice, bob, carol with NAME-secret)")
    serve.add_argument("--no-auth", action="store_true", help="accept REGISTER without digest")
    serve.add_argument("--quiet", action="store_true", help="do not print each request")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo()
    if args.command == "serve":
        return _serve(args)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
