"""Run sipp (Debian's ``sip-tester``) on 127.0.0.1 for the interop tests and the call benchmark.

A :class:`Sipp` is one sipp process over UDP with one of the scenarios in ``tests/sipp/``:
it binds 127.0.0.1 only (``-i``, ``-mi``, ``-ci`` and ``-bind_local``; SIP on ``port``), stops
after ``calls`` calls (``-m``), writes its unexpected messages (``-trace_err``) and its
statistics (``-trace_stat``) to a temporary directory, and quits on a global timeout.
:meth:`Sipp.run` blocks; :meth:`Sipp.start` / :meth:`Sipp.wait` run it beside an asyncio event
loop (a sipfsm UA in the same process). Either way the outcome is a :class:`SippResult`: the
exit code (0: every call succeeded; 1: at least one failed; 99: no call was processed...), the
final statistics row and the error log.

    result = Sipp("uac_call", remote=f"127.0.0.1:{kamailio.udp_port}", service="bob").run()
    assert result.ok, result.report()
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = [
    "LOOPBACK",
    "SCENARIOS",
    "Sipp",
    "SippError",
    "SippResult",
    "SippStats",
    "find_sipp",
    "free_udp_port",
    "require_sipp",
    "scenario_path",
]

LOOPBACK = "127.0.0.1"

#: The sipp XML scenarios of the tests (``<name>.xml``).
SCENARIOS = Path(__file__).with_name("sipp")

_BIN_DIRS = ("/usr/bin", "/usr/local/bin", "/usr/sbin", "/usr/local/sbin")

# "… while expecting '180' (index 2), received 'SIP/2.0 200 OK…" in sipp's error log.
_UNEXPECTED = re.compile(
    r"while expecting '([^']+)' \(index \d+\), received '(SIP/2\.0 \d+|[A-Z]+)")

#: How long after the global ``-timeout`` the process is killed if it has not quit by itself.
_KILL_GRACE = 10.0


class SippError(RuntimeError):
    """sipp could not be found or started."""


def find_sipp() -> str | None:
    """Path of the ``sipp`` binary ($SIPP_BIN, $PATH, then the usual bin dirs), or None."""
    override = os.environ.get("SIPP_BIN")
    if override:
        return override if os.access(override, os.X_OK) else None
    found = shutil.which("sipp")
    if found:
        return found
    for directory in _BIN_DIRS:
        candidate = os.path.join(directory, "sipp")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_sipp() -> str:
    """The sipp binary; skip the test when it is missing, fail it instead under CI=true."""
    import pytest

    binary = find_sipp()
    if binary is not None:
        return binary
    message = "sipp is not installed (run: bash scripts/install-system-deps.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; a missing sipp under CI is a failure, not a skip")
    pytest.skip(message)


def free_udp_port() -> int:
    """A UDP port the kernel considers free on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def scenario_path(name: str | Path) -> Path:
    """``tests/sipp/<name>.xml`` for a bare name; a path is taken as it is."""
    path = Path(name)
    if path.suffix == ".xml" or path.is_absolute():
        return path
    return SCENARIOS / f"{name}.xml"


def _udp_bound(port: int) -> bool:
    """Whether some socket is bound to 127.0.0.1:``port`` (UDP), read from /proc/net/udp.

    Reading beats probing with bind(): a probe that wins the race would make sipp's own bind
    fail.
    """
    wanted = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/udp") as table:
            next(table, None)
            return any(line.split()[1] == wanted for line in table if len(line.split()) > 1)
    except OSError:
        return False


def _int(row: Mapping[str, str], name: str) -> int:
    value = row.get(name, "").strip()
    try:
        return int(float(value)) if value else 0
    except ValueError:
        return 0


def _read_counts(workdir: Path) -> dict[str, int]:
    """The last row of the ``*_counts.csv`` file that ``-trace_counts`` wrote, as integers."""
    for path in workdir.glob("*_counts.csv"):
        stats = SippStats.from_csv(path)
        if stats is not None:
            return {key: _int(stats.row, key) for key in stats.row
                    if key and key[0].isdigit()}
    return {}


@dataclass(frozen=True)
class SippStats:
    """sipp's cumulative counters: the last row of the ``-trace_stat`` CSV file."""

    row: Mapping[str, str]

    @property
    def attempted(self) -> int:
        """Calls created (outgoing for a UAC, incoming for a UAS)."""
        return _int(self.row, "TotalCallCreated")

    @property
    def successful(self) -> int:
        return _int(self.row, "SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return _int(self.row, "FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        """Messages sipp sent again because no answer came in time (T1 doubling)."""
        return _int(self.row, "Retransmissions(C)")

    @property
    def dead_call_messages(self) -> int:
        """Messages that arrived for calls sipp had already finished."""
        return _int(self.row, "DeadCallMsgs(C)")

    @property
    def unexpected_messages(self) -> int:
        return _int(self.row, "FailedUnexpectedMessage(C)")

    @property
    def timeouts(self) -> int:
        return _int(self.row, "FailedMaxUDPRetrans(C)") + _int(self.row, "FailedCallTimeout(C)")

    def failures(self) -> dict[str, int]:
        """Every non-zero ``Failed…(C)`` counter, by name."""
        return {name.removesuffix("(C)"): _int(self.row, name) for name in self.row
                if name.startswith("Failed") and name.endswith("(C)") and _int(self.row, name)}

    @classmethod
    def from_csv(cls, path: Path) -> SippStats | None:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return None
        rows = list(csv.DictReader(text.splitlines(), delimiter=";"))
        if not rows:
            return None
        return cls({(key or "").strip(): (value or "").strip() for key, value in rows[-1].items()
                    if isinstance(value, str)})


@dataclass(frozen=True)
class SippResult:
    """How one sipp run ended."""

    command: list[str]
    returncode: int | None  #: None when it had to be killed
    timed_out: bool  #: killed after the global timeout plus a grace period
    stats: SippStats | None
    errors: str  #: the -trace_err log (unexpected messages), possibly empty
    output: str  #: sipp's standard output and error (its last screen), at most 8 KiB
    #: per scenario message, the last -trace_counts row: ``"<index>_<message>_<counter>"`` →
    #: value, e.g. ``"7_BYE_Retrans"`` or ``"2_180_Unexp"``
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def per_message(self, counter: str) -> dict[str, int]:
        """The non-zero ``counter`` ("Retrans", "Timeout", "Unexp"…) of each scenario message,
        keyed ``"<index> <message>"`` (e.g. ``{"7 BYE": 12}``)."""
        found: dict[str, int] = {}
        for key, value in self.counts.items():
            index, _, rest = key.partition("_")
            message, _, name = rest.rpartition("_")
            if name == counter and value:
                found[f"{index} {message}"] = value
        return found

    def unexpected(self) -> dict[str, int]:
        """What the unexpected messages were, from the error log: ``"wanted 180, got 200"`` →
        how many times."""
        found: dict[str, int] = {}
        for wanted, got in _UNEXPECTED.findall(self.errors):
            label = f"wanted {wanted}, got {got.split()[-1] if got.startswith('SIP/') else got}"
            found[label] = found.get(label, 0) + 1
        return found

    def report(self) -> str:
        """Everything worth reading when a test fails."""
        lines = [f"sipp exited with {self.returncode}"
                 + (" (killed after its timeout)" if self.timed_out else ""),
                 f"command: {' '.join(self.command)}"]
        if self.stats is not None:
            s = self.stats
            lines.append(f"calls: {s.attempted} created, {s.successful} successful, "
                         f"{s.failed} failed {s.failures() or ''}, "
                         f"{s.retransmissions} retransmissions")
        for counter in ("Retrans", "Timeout", "Unexp"):
            if self.per_message(counter):
                lines.append(f"{counter} by message: {self.per_message(counter)}")
        if self.errors.strip():
            lines += ["--- sipp errors ---", self.errors.strip()[-6000:]]
        if self.output.strip():
            lines += ["--- sipp output ---", self.output.strip()[-4000:]]
        return "\n".join(lines)


@dataclass
class Sipp:
    """One sipp run over UDP on 127.0.0.1 (see the module docstring).

    ``remote`` ("host:port") makes it a UAC sending there; without it, the scenario is a UAS
    waiting on ``port``.  ``rate``: calls per second (``-r``); ``pause_ms``: the length of the
    scenario's ``<pause/>`` (``-d``); ``limit``: concurrent calls (``-l``); ``service``: the
    ``[service]`` keyword (``-s``); ``buff_size``: socket buffers in bytes (``-buff_size``;
    sipp's default of 64 KiB overflows under a burst of about a hundred messages).  ``timeout``
    seconds bound the whole run (``-timeout`` with ``-timeout_error``; the process is killed a
    little later if it does not quit).
    """

    scenario: str | Path
    remote: str | None = None
    port: int = field(default_factory=free_udp_port)
    calls: int = 1
    rate: float | None = None
    pause_ms: int = 0
    limit: int | None = None
    service: str | None = None
    buff_size: int | None = None
    timeout: float = 30.0
    extra_args: Sequence[str] = ()
    binary: str | None = None
    keep_dir: bool = False

    _workdir: Path | None = field(default=None, init=False, repr=False)
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)
    _command: list[str] = field(default_factory=list, init=False, repr=False)

    # ------------------------------------------------------------------ command line

    def command(self, workdir: Path) -> list[str]:
        binary = self.binary or find_sipp()
        if binary is None:
            raise SippError("sipp not found (run: bash scripts/install-system-deps.sh)")
        path = scenario_path(self.scenario)
        if not path.is_file():
            raise SippError(f"no sipp scenario {path}")
        command = [
            binary,
            "-sf", str(path),
            "-t", "u1",
            "-i", LOOPBACK,
            "-mi", LOOPBACK,
            "-bind_local",
            "-ci", LOOPBACK,  # the control socket too (it binds every address otherwise)
            "-p", str(self.port),
            "-m", str(self.calls),
            "-d", str(self.pause_ms),
            "-nostdin",
            "-timeout", f"{max(1, round(self.timeout))}s",
            "-timeout_error",
            "-trace_err", "-error_file", str(workdir / "errors.log"),
            "-trace_stat", "-stf", str(workdir / "stats.csv"), "-fd", "1",
            "-trace_counts",  # <scenario>_<pid>_counts.csv in the working directory
        ]  # fmt: skip
        if self.rate is not None:
            command += ["-r", f"{self.rate:g}"]
        if self.limit is not None:
            command += ["-l", str(self.limit)]
        if self.service is not None:
            command += ["-s", self.service]
        if self.buff_size is not None:
            command += ["-buff_size", str(self.buff_size)]
        command += list(self.extra_args)
        if self.remote is not None:
            command.append(self.remote)
        return command

    def _prepare(self) -> list[str]:
        self._workdir = Path(tempfile.mkdtemp(prefix="sipfsm-sipp-"))
        self._command = self.command(self._workdir)
        return self._command

    def _result(self, returncode: int | None, timed_out: bool) -> SippResult:
        workdir = self._workdir
        assert workdir is not None
        try:
            errors = (workdir / "errors.log").read_text(errors="replace")
        except OSError:
            errors = ""
        try:
            with (workdir / "output.log").open("rb") as out:
                out.seek(max(0, out.seek(0, os.SEEK_END) - 8192))
                output = out.read().decode(errors="replace")
        except OSError:
            output = ""
        result = SippResult(command=self._command, returncode=returncode, timed_out=timed_out,
                            stats=SippStats.from_csv(workdir / "stats.csv"), errors=errors,
                            output=output, counts=_read_counts(workdir))
        if not self.keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
            self._workdir = None
        return result

    # ------------------------------------------------------------------ blocking

    def run(self) -> SippResult:
        """Run sipp to the end (blocking) and return its result."""
        command = self._prepare()
        assert self._workdir is not None
        with (self._workdir / "output.log").open("wb") as output:
            proc = subprocess.Popen(command, cwd=self._workdir, stdin=subprocess.DEVNULL,
                                    stdout=output, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                return self._result(proc.wait(timeout=self.timeout + _KILL_GRACE), False)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return self._result(None, True)

    # ------------------------------------------------------------------ asyncio

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self, ready_timeout: float = 10.0) -> None:
        """Spawn sipp and return once its UDP socket is bound (a UAS can take calls then)."""
        if self._proc is not None:
            raise SippError("this sipp is already running")
        command = self._prepare()
        assert self._workdir is not None
        with (self._workdir / "output.log").open("wb") as output:
            self._proc = await asyncio.create_subprocess_exec(
                *command, cwd=self._workdir, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while not _udp_bound(self.port):
            if self._proc.returncode is not None or time.monotonic() > deadline:
                result = await self.wait()
                raise SippError(f"sipp did not bind 127.0.0.1:{self.port}\n{result.report()}")
            await asyncio.sleep(0.02)

    async def wait(self) -> SippResult:
        """Wait for sipp to quit (killing it after the timeout) and return its result."""
        proc = self._proc
        if proc is None:
            raise SippError("sipp was not started")
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), self.timeout + _KILL_GRACE)
        except TimeoutError:
            timed_out = True
            self.kill()
            await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled: do not leave it behind
                self.kill()
                await asyncio.shield(proc.wait())
        self._proc = None
        return self._result(proc.returncode if not timed_out else None, timed_out)

    async def run_async(self) -> SippResult:
        """start() then wait()."""
        await self.start()
        return await self.wait()

    def kill(self) -> None:
        """SIGKILL sipp (its own process group)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    async def __aenter__(self) -> Sipp:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self.kill()
            await self.wait()
