"""The ``sipfsm`` command as a user runs it: subprocesses (``python -m sipfsm …``) against the
devserver, started in the test's own event loop, and against the real Kamailio.

Everything stays on 127.0.0.1: the edges listen there, and the CLI pins ICE to it by default.
Timeouts only keep a broken run from hanging; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path

import av
import pytest
from kamailio import Kamailio

from sipfsm.cli import PASSWORD_ENV, _ua_options
from sipfsm.config import UAConfig
from sipfsm.devserver import DevServer
from sipfsm.events import InviteReceived
from sipfsm.media import signalling_only_factory
from sipfsm.media.dtmf import tone_frequency
from sipfsm.session import Session
from sipfsm.ua import UA

WRONG_PASSWORD = "Wr0ng-but-Secret-7731"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI process: ours, without a password of the caller's."""
    env = {key: value for key, value in os.environ.items() if key != PASSWORD_ENV}
    env.update(extra)
    return env


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Running:
    """A ``python -m sipfsm`` process whose standard output is read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None,
                    stdin: bytes | None = None) -> Running:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sipfsm", *args, env=env or cli_env(),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            await process.stdin.drain()
            process.stdin.close()
        return cls(process)

    async def expect(self, text: str, timeout: float = 60.0) -> None:
        """Read standard output until a line contains ``text``."""
        assert self.process.stdout is not None
        while not any(text in line for line in self.lines):
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not line:
                finished = await self.finish()
                raise AssertionError(f"{text!r} never printed:\n{finished.output}")
            self.lines.append(line.decode())

    async def finish(self, timeout: float = 60.0) -> Finished:
        stdout, stderr = await asyncio.wait_for(self.process.communicate(), timeout)
        self.lines.append(stdout.decode())
        assert self.process.returncode is not None
        return Finished(self.process.returncode, "".join(self.lines), stderr.decode())

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def run_cli(*args: str, env: dict[str, str] | None = None,
                  stdin: bytes | None = None) -> Finished:
    running = await Running.start(*args, env=env, stdin=stdin)
    try:
        return await running.finish()
    finally:
        await running.kill()


@pytest.fixture
async def processes() -> AsyncIterator[list[Running]]:
    """Long-running CLI processes of a test, killed at the end if still there."""
    started: list[Running] = []
    yield started
    for running in started:
        await running.kill()


@pytest.fixture
async def server() -> AsyncIterator[DevServer]:
    async with DevServer() as devserver:
        yield devserver


def account(edge: DevServer | Kamailio, user: str, password: str | None = None) -> list[str]:
    return ["--ws-server", edge.ws_url, "--uri", f"{user}@{edge.domain}",
            "--password", password if password is not None else f"{user}-secret"]


@pytest.fixture
async def bob(server: DevServer) -> AsyncIterator[UA]:
    """bob, registered in the test's process (signalling only), answering nothing himself."""
    ua = UA(uri=f"sip:bob@{server.domain}", ws_servers=server.ws_url, password="bob-secret",
            log={"builtin_enabled": False},
            session_description_handler_factory=signalling_only_factory)
    try:
        await ua.wait_for("registered", timeout=10)
        yield ua
    finally:
        await ua.stop()


# -- demo and serve --------------------------------------------------------------------------------


def test_demo_runs_and_passes(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sipfsm", "demo", "--out", str(tmp_path)],
                            capture_output=True, text=True, encoding="utf-8", timeout=120,
                            check=False, env=cli_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed" in result.stdout
    assert "✗" not in result.stdout
    for verified in ("bob hears alice's tone: 44", "carol hears alice's tone: 44",
                     "bob received 1 2 3 # (RFC 4733)", "alice received * 9 (SIP INFO)",
                     "on hold: bob's media sendonly, alice's recvonly",
                     "bob's REFER: 202 Accepted",
                     "every call over; alice unregistered, bob unregistered"):
        assert f"✓ {verified}" in result.stdout, verified
    # the ladder has the three parties and the edge, and the transfer's messages
    assert "REFER+Replaces" in result.stdout and "INVITE+Replaces" in result.stdout
    invite = (tmp_path / "invite.mmd").read_text(encoding="utf-8")
    assert "class TERMINATED current" in invite and "alice-carol" in invite
    assert "class UNREGISTERED current" in (tmp_path / "registration.mmd").read_text()


async def test_serve_registers_a_ua_and_stops_on_ctrl_c() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipfsm", "serve", "--port", "0", "--user", "dora:dora-pw",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        url = line.split()[2]
        assert url.startswith("ws://127.0.0.1:")
        ua = UA(uri="sip:dora@sipfsm.test", ws_servers=url, password="dora-pw",
                log={"builtin_enabled": False})
        try:
            registered = await ua.wait_for("registered", timeout=10)
            assert registered.expires > 0
        finally:
            await ua.stop()
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_serve_refuses_a_bad_user_argument() -> None:
    result = subprocess.run([sys.executable, "-m", "sipfsm", "serve", "--user", "nopassword"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "NAME:PASSWORD" in result.stderr


# -- options ---------------------------------------------------------------------------------------


def test_every_ua_parameter_is_an_option_or_named_as_impossible() -> None:
    options, skipped = _ua_options()
    covered = {option.path[0] for option in options} | {name.split(".")[0] for name in skipped}
    assert covered == {item.name for item in fields(UAConfig)}
    assert set(skipped) == {"authentication_factory", "session_description_handler_factory",
                            "log.connector"}
    result = subprocess.run([sys.executable, "-m", "sipfsm", "call", "--help"],
                            capture_output=True, text=True, timeout=30, check=False,
                            env=cli_env(**{PASSWORD_ENV: WRONG_PASSWORD}))
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for option in options:
        assert option.flag in help_text, option.flag
    for name in skipped:
        assert name in help_text
    for flag in ("--ws-server", "--password", "--trace-sip", "--log-level", "--ice-address",
                 "--config", "--play", "--record", "--dtmf", "--duration"):
        assert flag in help_text
    assert WRONG_PASSWORD not in result.stdout + result.stderr


async def test_configuration_errors_exit_2(tmp_path: Path) -> None:
    missing = await run_cli("register", "--uri", "alice@sipfsm.test")
    assert missing.returncode == 2 and "--ws-server" in missing.stderr
    config = tmp_path / "ua.json"
    config.write_text(json.dumps({"uri": "alice@sipfsm.test", "wsServer": "ws://127.0.0.1:9",
                                  "password": WRONG_PASSWORD}))
    unknown = await run_cli("register", "--config", str(config))
    assert unknown.returncode == 2 and "did you mean 'wsServers'?" in unknown.stderr
    assert WRONG_PASSWORD not in unknown.output
    bad = await run_cli("call", "bob", "--ws-server", "ws://127.0.0.1:9", "--dtmf", "12x")
    assert bad.returncode == 2 and "invalid DTMF tones" in bad.stderr
    media = await run_cli("answer", "--ws-server", "ws://127.0.0.1:9", "--ice-address", "10.0.0")
    assert media.returncode == 2 and "not an IP address" in media.stderr


# -- register --------------------------------------------------------------------------------------


async def test_register_succeeds_then_unregisters(server: DevServer) -> None:
    result = await run_cli("register", *account(server, "alice"))
    assert result.returncode == 0, result.output
    assert f"registered as sip:alice@{server.domain} (expires 600 s)" in result.stdout
    assert result.stdout.rstrip().endswith("unregistered")
    assert not server.bindings().get("alice")


async def test_a_wrong_password_fails_and_is_never_printed(server: DevServer) -> None:
    result = await run_cli("register", *account(server, "alice", WRONG_PASSWORD),
                           "--trace-sip", "--log-level", "debug")
    assert result.returncode == 1, result.output
    assert "sipfsm register: registration failed: 401 Unauthorized (Authentication Error)" \
        in result.stderr.splitlines()
    assert "REGISTER sip:" in result.stderr  # the trace was on
    assert WRONG_PASSWORD not in result.output


async def test_the_password_from_the_environment_or_standard_input(server: DevServer) -> None:
    uri = ["--ws-server", server.ws_url, "--uri", f"bob@{server.domain}"]
    from_env = await run_cli("register", *uri, env=cli_env(**{PASSWORD_ENV: "bob-secret"}))
    assert from_env.returncode == 0, from_env.output
    from_stdin = await run_cli("register", *uri, "--password", "-", stdin=b"bob-secret\n")
    assert from_stdin.returncode == 0, from_stdin.output
    assert "bob-secret" not in from_env.output + from_stdin.output


@pytest.mark.parametrize("kind", ["json", "toml"])
async def test_a_sipjs_configuration_file_with_options_over_it(server: DevServer, tmp_path: Path,
                                                                kind: str) -> None:
    values = {"uri": f"carol@{server.domain}", "wsServers": [server.ws_url],
              "password": WRONG_PASSWORD, "displayName": "Carol", "registerExpires": 120,
              "traceSip": False, "log": {"builtinEnabled": False}}
    config = tmp_path / f"carol.{kind}"
    if kind == "json":
        config.write_text(json.dumps(values))
    else:
        config.write_text(
            f'uri = "carol@{server.domain}"\nwsServers = ["{server.ws_url}"]\n'
            f'password = "{WRONG_PASSWORD}"\ndisplayName = "Carol"\nregisterExpires = 120\n'
            "traceSip = false\n[log]\nbuiltinEnabled = false\n")
    refused = await run_cli("register", "--config", str(config))
    assert refused.returncode == 1 and "401" in refused.stderr, refused.output
    accepted = await run_cli("register", "--config", str(config), "--password", "carol-secret")
    assert accepted.returncode == 0, accepted.output
    assert "(expires 120 s)" in accepted.stdout
    longer = await run_cli("register", "--config", str(config), "--register-expires", "300",
                           env=cli_env(**{PASSWORD_ENV: "carol-secret"}))
    assert longer.returncode == 0 and "(expires 300 s)" in longer.stdout, longer.output
    assert WRONG_PASSWORD not in refused.output + accepted.output + longer.output


# -- message ---------------------------------------------------------------------------------------


async def test_a_message_is_delivered(server: DevServer, bob: UA) -> None:
    arrived = asyncio.ensure_future(bob.wait_for("message", timeout=60))
    result = await run_cli("message", "bob", "Hello from the command line",
                           *account(server, "alice"))
    assert result.returncode == 0, result.output
    assert "delivered (200 OK)" in result.stdout
    message = await arrived
    assert message.request.text == "Hello from the command line"
    assert message.request.from_ is not None and message.request.from_.uri.user == "alice"


async def test_a_message_nobody_can_take_fails(server: DevServer) -> None:
    result = await run_cli("message", "nobody", "hello?", *account(server, "alice"),
                           "--no-register")
    assert result.returncode == 1
    assert "sipfsm message: message not delivered: 404 Not Found" in result.stderr


# -- call and answer -------------------------------------------------------------------------------


async def answering(processes: list[Running], edge: DevServer | Kamailio, *args: str
                    ) -> Running:
    """bob's ``sipfsm answer`` for one call, once it waits for calls."""
    answer = await Running.start("answer", *account(edge, "bob"), "--count", "1", *args)
    processes.append(answer)
    await answer.expect("waiting for calls")
    return answer


def recorded_tone(path: Path) -> float:
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    seconds = sum(frame.samples / frame.sample_rate for frame in frames)
    assert seconds > 0.5, f"only {seconds:.2f} s recorded"
    return tone_frequency(frames)  # its last half second: the call after the DTMF


async def test_call_and_answer_with_dtmf_and_a_recording(server: DevServer, tmp_path: Path,
                                                          processes: list[Running]) -> None:
    recording = tmp_path / "alice.wav"
    answer = await answering(processes, server, "--record", str(recording), "--tone", "550")
    call = await run_cli("call", "bob", *account(server, "alice"), "--dtmf", "12#",
                         "--dtmf-type", "rtp", "--tone", "440", "--duration", "1")
    assert call.returncode == 0, call.output
    answered = await answer.finish()
    assert answered.returncode == 0, answered.output
    for line in ("ringing (180 Ringing)", "answered (200 OK)", "call established with",
                 "DTMF 1 sent", "DTMF # sent", "hanging up", "call ended: Terminated",
                 "unregistered"):
        assert line in call.stdout, line
    for tone in "12#":
        assert f"DTMF {tone} received (RFC 4733" in answered.stdout, answered.output
    assert "peer hung up" in answered.stdout
    assert f"recorded to {recording}" in answered.stdout
    assert abs(recorded_tone(recording) - 440) < 5


async def test_ctrl_c_hangs_up_the_call(server: DevServer, processes: list[Running]) -> None:
    answer = await answering(processes, server)
    call = await Running.start("call", "bob", *account(server, "alice"))
    processes.append(call)
    await call.expect("call established")
    call.process.send_signal(signal.SIGINT)
    hung_up = await call.finish()
    assert hung_up.returncode == 130, hung_up.output
    assert "interrupted: hanging up" in hung_up.stdout
    assert hung_up.stdout.index("call ended: Terminated") < hung_up.stdout.index("unregistered")
    answered = await answer.finish()
    assert answered.returncode == 0, answered.output
    assert "peer hung up" in answered.stdout and "call ended: Terminated" in answered.stdout


async def test_a_rejected_call_exits_1_with_the_status(server: DevServer,
                                                       processes: list[Running]) -> None:
    answer = await answering(processes, server, "--reject", "486")
    call = await run_cli("call", "bob", *account(server, "alice"))
    assert call.returncode == 1
    assert "sipfsm call: call failed: 486 Busy Here (Busy)" in call.stderr.splitlines()
    answered = await answer.finish()
    assert answered.returncode == 0 and "rejecting it (486)" in answered.stdout


async def test_no_answer_cancels_the_call(server: DevServer, bob: UA) -> None:
    ringing: list[Session] = []

    def ring(event: InviteReceived) -> None:
        assert isinstance(event.session, Session)
        ringing.append(event.session)

    bob.on("invite", ring)
    call = await run_cli("call", "bob", *account(server, "alice"), "--timeout", "1")
    assert call.returncode == 1
    assert "sipfsm call: no answer within 1 s" in call.stderr
    assert "call ended: Canceled" in call.stdout
    assert len(ringing) == 1
    assert str(ringing[0].cause) == "Canceled"


async def test_a_call_follows_a_transfer(server: DevServer, processes: list[Running]) -> None:
    """bob (in this process) answers alice's CLI call and transfers her to carol (a CLI
    ``answer``): alice's call goes on with carol, who hangs up after a second."""
    carol = await Running.start("answer", *account(server, "carol"), "--count", "1",
                                "--duration", "1")
    processes.append(carol)
    await carol.expect("waiting for calls")
    bob = UA(uri=f"sip:bob@{server.domain}", ws_servers=server.ws_url, password="bob-secret",
             log={"builtin_enabled": False},
             session_description_handler_factory_options={"ice_addresses": ["127.0.0.1"]})
    answered: list[Session] = []

    def transfer_once_up(event: InviteReceived) -> None:
        session = event.session
        assert isinstance(session, Session)
        answered.append(session)
        session.on("confirmed", lambda _: session.refer("carol"))
        session.accept()

    bob.on("invite", transfer_once_up)
    try:
        await bob.wait_for("registered", timeout=10)
        call = await run_cli("call", "bob", *account(server, "alice"))
    finally:
        await bob.stop()
    assert call.returncode == 0, call.output
    assert f"asks for a transfer to sip:carol@{server.domain}" in call.stdout
    assert f"now talking to sip:carol@{server.domain}" in call.stdout
    assert call.stdout.count("call ended: Terminated") == 2  # bob's call, then carol's
    transferred = await carol.finish()
    assert transferred.returncode == 0, transferred.output
    assert "incoming call from" in transferred.stdout and "alice@" in transferred.stdout
    assert len(answered) == 1 and str(answered[0].cause) == "Terminated"


# -- against Kamailio ------------------------------------------------------------------------------


@pytest.mark.kamailio
async def test_register_against_kamailio(kamailio: Kamailio) -> None:
    accepted = await run_cli("register", *account(kamailio, "carol"))
    assert accepted.returncode == 0, accepted.output
    assert f"registered as sip:carol@{kamailio.domain}" in accepted.stdout
    refused = await run_cli("register", *account(kamailio, "carol", WRONG_PASSWORD))
    assert refused.returncode == 1
    assert "sipfsm register: registration failed: 401" in refused.stderr
    assert WRONG_PASSWORD not in refused.output


@pytest.mark.kamailio
async def test_call_and_answer_through_kamailio(kamailio: Kamailio,
                                                processes: list[Running]) -> None:
    answer = await answering(processes, kamailio)
    call = await run_cli("call", "bob", *account(kamailio, "alice"), "--dtmf", "7*",
                         "--duration", "1")
    assert call.returncode == 0, call.output
    answered = await answer.finish()
    assert answered.returncode == 0, answered.output
    assert "DTMF 7 received (SIP INFO" in answered.stdout
    assert "DTMF * received (SIP INFO" in answered.stdout
    assert "audio connected (127.0.0.1:" in answered.stdout
