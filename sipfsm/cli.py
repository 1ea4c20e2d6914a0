"""The ``sipfsm`` command.

Only ``sipfsm demo`` exists so far.  Until the transport and call machines land it shows, in
memory and without a network, what the library can already do: build SIP messages, serialise
and re-parse them, challenge and answer with digest authentication, and run the request checks a
UAS applies.  It prints a ladder of the exchange and exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .sip import Request, Response, check_request, parse
from .sip.digest import (
    Credentials,
    DigestAuthenticator,
    choose_challenge,
    make_challenge,
    verify,
)

__all__ = ["main"]

_DOMAIN = "sipfsm.test"


def _register(cseq: int, call_id: str, tag: str, authorization: str | None) -> Request:
    request = Request("REGISTER", f"sip:{_DOMAIN}")
    headers = request.headers
    headers.add("Via", f"SIP/2.0/WSS {secrets.token_hex(6)}.invalid;branch=z9hG4bK"
                       f"{secrets.token_hex(8)}")
    headers.add("Max-Forwards", "70")
    headers.add("To", f'"Alice" <sip:alice@{_DOMAIN}>')
    headers.add("From", f'"Alice" <sip:alice@{_DOMAIN}>;tag={tag}')
    headers.add("Call-ID", call_id)
    headers.add("CSeq", f"{cseq} REGISTER")
    if authorization is not None:
        headers.add("Authorization", authorization)
    headers.add("Contact", f"<sip:{secrets.token_hex(4)}@{secrets.token_hex(6)}.invalid;"
                           "transport=ws>;expires=600")
    headers.add("Expires", "600")
    headers.add("User-Agent", f"sipfsm/{__version__}")
    request.set_body(b"")
    return request


def _response_to(request: Request, status: int, reason: str, *extra: tuple[str, str]) -> Response:
    response = Response(status, reason)
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.headers.get_all(name):
            response.headers.add(name, value)
    for name, value in extra:
        response.headers.add(name, value)
    response.set_body(b"")
    return response


def demo(out: Callable[[str], None] = print) -> int:
    """Run the in-memory demo; return the process exit status."""
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        out(f"  {'ok ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    def wire(arrow: str, message: Request | Response) -> Request | Response:
        data = bytes(message)
        again = parse(data)
        first = data.split(b"\r\n", 1)[0].decode()
        out(f"  alice {arrow} registrar   {first}")
        check(again == message and bytes(again) == data, "serialised and re-parsed identically")
        return again

    out(f"sipfsm {__version__} demo: the SIP grammar and digest authentication, in memory.")
    out("(The WebSocket transport, registration and call machines come with the next issues;")
    out(" this demo sends nothing over a network.)\n")
    password = secrets.token_urlsafe(12)
    call_id, tag = secrets.token_hex(10), secrets.token_hex(5)

    first = wire("->", _register(1, call_id, tag, None))
    assert isinstance(first, Request)
    check(check_request(first, allowed_methods=("REGISTER",)) is None,
          "REGISTER passes the UAS checks")
    challenge = make_challenge(_DOMAIN, algorithm="SHA-256", qop=("auth",))
    unauthorized = wire("<-", _response_to(first, 401, "Unauthorized",
                                           ("WWW-Authenticate", str(challenge))))
    chosen = choose_challenge(unauthorized.www_authenticate)
    check(chosen is not None and chosen.algorithm == "SHA-256", "401 challenge read (SHA-256)")
    assert chosen is not None
    credentials = DigestAuthenticator("alice", password).authorize(
        chosen, "REGISTER", f"sip:{_DOMAIN}")
    second = wire("->", _register(2, call_id, tag, str(credentials)))
    assert isinstance(second, Request)
    (received,) = second.authorization
    verified = isinstance(received, Credentials) and verify(received, "REGISTER", password=password)
    check(bool(verified), "registrar verified the digest response")
    check(password not in bytes(second).decode(), "the password never went on the wire")
    ok = wire("<-", _response_to(second, 200, "OK", ("Expires", "600")))
    check(ok.expires == 600 and ok.cseq is not None and ok.cseq.seq == 2, "200 OK read")
    out("")
    if failures:
        out(f"{len(failures)} check(s) failed.")
        return 1
    out("All checks passed.")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Run the devserver until interrupted (Ctrl-C stops it cleanly)."""
    import asyncio

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
