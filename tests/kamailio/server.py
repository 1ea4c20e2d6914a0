"""Run a real Kamailio on 127.0.0.1 for the integration tests.

A :class:`Kamailio` owns one Kamailio process (plus the worker processes it
forks) and one temporary directory that holds everything the process writes:
the configuration copy, the db_text tables, the pid file, the ctl socket, the
runtime directory and the log (Kamailio's stderr).

The configuration is ``kamailio.cfg`` next to this file; the per-run values
(ports, paths, limits) are handed to it as ``-A NAME=VALUE`` defines.

Given a certificate and its key (``tls_certificate``, ``tls_private_key``), Kamailio
also serves ``wss://`` on a TLS port of its own (``wss_url``): the ``WITH_TLS`` define,
which needs ``tls.so`` (Debian's ``kamailio-tls-modules``; see :func:`find_kamailio_module`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

__all__ = [
    "DEFAULT_USERS",
    "DOMAIN",
    "Kamailio",
    "KamailioError",
    "find_kamailio",
    "find_kamailio_module",
    "find_kamcmd",
]

CONFIG_TEMPLATE = Path(__file__).with_name("kamailio.cfg")

#: SIP domain served by the test Kamailio (an ``alias`` in the config; also the digest realm).
DOMAIN = "sipfsm.test"

#: Subscribers written to the db_text ``subscriber`` table (user -> plain-text password).
DEFAULT_USERS: Mapping[str, str] = {
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
}

LOOPBACK = "127.0.0.1"

# Directories searched after $PATH: Debian puts kamailio and kamcmd in /usr/sbin,
# which is not on the PATH of every user.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

# Where Debian, Fedora and source builds put Kamailio's modules.
_MODULE_DIRS = (
    "/usr/lib/*/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/local/lib/*/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
)

# The ctl unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux).
_MAX_UNIX_PATH = 100


class KamailioError(RuntimeError):
    """Kamailio could not be started, stopped or queried."""


def _find_program(name: str, env_var: str) -> str | None:
    override = os.environ.get(env_var)
    if override:
        return override if os.access(override, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_kamailio() -> str | None:
    """Path of the ``kamailio`` binary ($KAMAILIO_BIN, $PATH, then the sbin dirs), or None."""
    return _find_program("kamailio", "KAMAILIO_BIN")


def find_kamailio_module(name: str) -> Path | None:
    """Path of Kamailio module ``name`` (e.g. ``"tls.so"``) in the usual module dirs, or None."""
    for pattern in _MODULE_DIRS:
        for directory in sorted(Path("/").glob(pattern.lstrip("/"))):
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None


def find_kamcmd() -> str | None:
    """Path of ``kamcmd`` ($KAMCMD_BIN, $PATH, then the sbin dirs), or None."""
    return _find_program("kamcmd", "KAMCMD_BIN")


def _free_port(kind: socket.SocketKind) -> int:
    """A port the kernel considers free on 127.0.0.1 for the given socket type."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _capped_nofile(wanted: int) -> int:
    """``wanted`` capped at the hard RLIMIT_NOFILE that Kamailio inherits.

    Kamailio raises its soft and hard limit to ``open_files_limit`` and refuses
    to start when it may not (no CAP_SYS_RESOURCE, e.g. in containers).
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return wanted
    return min(wanted, hard)


def _dbtext_escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(":", "\\:")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def _md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _group_alive(pgid: int) -> bool:
    """True while a non-zombie process of process group ``pgid`` exists (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


_LIVE: weakref.WeakSet[Kamailio] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """Do not leave Kamailio running when the test process exits without teardown."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


class Kamailio:
    """One Kamailio instance listening on 127.0.0.1 only.

    ``start()`` picks free ports (kept across ``restart()``), creates the temporary
    directory and spawns ``kamailio -DD -E`` (no daemonising; its own process
    group, so that ``kill()`` also takes the forked workers). It returns once the
    WebSocket port accepts TCP connections, the ctl socket exists and an OPTIONS
    over UDP is answered; otherwise it raises :class:`KamailioError` with the log.

    The defaults are sized for ~10,000 concurrent WebSocket clients
    (``-m 1024``, ``tcp_max_connections=20000``); shared memory is mapped lazily,
    so an idle instance stays small.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        kamcmd: str | None = None,
        users: Mapping[str, str] | None = None,
        shm_mb: int = 1024,
        pkg_mb: int = 32,
        tcp_max_connections: int = 20000,
        open_files_limit: int | None = None,
        sip_children: int = 2,
        tcp_children: int = 4,
        proxy_auth: bool = False,
        debug_level: int = 1,
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        keep_tmpdir: bool = False,
        config: Path | str = CONFIG_TEMPLATE,
        tls_certificate: Path | str | None = None,
        tls_private_key: Path | str | None = None,
    ) -> None:
        self._binary = binary
        self._kamcmd = kamcmd
        self._users: dict[str, str] = dict(DEFAULT_USERS if users is None else users)
        self._shm_mb = shm_mb
        self._pkg_mb = pkg_mb
        self._tcp_max_connections = tcp_max_connections
        self._open_files_limit = (
            open_files_limit
            if open_files_limit is not None
            else _capped_nofile(tcp_max_connections + 1024)
        )
        self._sip_children = sip_children
        self._tcp_children = tcp_children
        self._proxy_auth = proxy_auth
        self._debug_level = debug_level
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._keep_tmpdir = keep_tmpdir
        self._config = Path(config)
        if (tls_certificate is None) != (tls_private_key is None):
            raise ValueError("give both tls_certificate and tls_private_key, or neither")
        self._tls: tuple[Path, Path] | None = (
            (Path(tls_certificate), Path(tls_private_key))
            if tls_certificate is not None and tls_private_key is not None else None
        )

        self._ws_port: int | None = None
        self._wss_port: int | None = None
        self._udp_port: int | None = None
        self._tmpdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.last_start_seconds: float | None = None

    # ------------------------------------------------------------------ info

    @property
    def domain(self) -> str:
        return DOMAIN

    @property
    def users(self) -> dict[str, str]:
        """Subscribers (user -> password); a copy."""
        return dict(self._users)

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def ws_port(self) -> int:
        if self._ws_port is None:
            raise KamailioError("Kamailio was never started: no WebSocket port yet")
        return self._ws_port

    @property
    def wss_port(self) -> int:
        """The TLS port of the ``wss://`` listener (only with a TLS certificate)."""
        if self._tls is None:
            raise KamailioError("this Kamailio has no TLS listener (no tls_certificate given)")
        if self._wss_port is None:
            raise KamailioError("Kamailio was never started: no wss port yet")
        return self._wss_port

    @property
    def wss_url(self) -> str:
        return f"wss://{LOOPBACK}:{self.wss_port}"

    @property
    def udp_port(self) -> int:
        if self._udp_port is None:
            raise KamailioError("Kamailio was never started: no UDP port yet")
        return self._udp_port

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.ws_port}"

    @property
    def pid(self) -> int | None:
        """Pid of the main Kamailio process while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def tmpdir(self) -> Path:
        if self._tmpdir is None:
            raise KamailioError("Kamailio has no temporary directory (not started)")
        return self._tmpdir

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "kamailio.log"

    @property
    def ctl_socket(self) -> Path:
        return self.tmpdir / "kamailio_ctl"

    def log_text(self) -> str:
        """Everything Kamailio wrote to stderr (all runs of this instance)."""
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, KamailioError):
            return ""

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self.running:
            raise KamailioError(f"Kamailio already running (pid {self.pid})")
        binary = self._binary or find_kamailio()
        if binary is None:
            raise KamailioError("kamailio binary not found (run scripts/install-system-deps.sh)")
        self._binary = binary
        if self._ws_port is None or self._udp_port is None:
            self._ws_port = _free_port(socket.SOCK_STREAM)
            self._udp_port = _free_port(socket.SOCK_DGRAM)
            if self._tls is not None:
                self._wss_port = _free_port(socket.SOCK_STREAM)
        self._prepare_tmpdir()
        try:
            self._spawn()
        except BaseException:
            # the error carries the log; do not leak the directory
            self.stop()
            raise

    def restart(self) -> None:
        """Stop (if running) and start again on the same ports and directory."""
        if self._ws_port is None:
            raise KamailioError("restart() before start()")
        self._terminate()
        self._spawn()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; remove the temporary directory."""
        self._terminate()
        if self._tmpdir is not None and not self._keep_tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def kill(self) -> None:
        """SIGKILL the main process and its workers at once (the directory is kept)."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._reap(proc, self._stop_timeout)

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- kamcmd

    def kamcmd(self, *args: str, timeout: float = 10.0) -> str:
        """Run ``kamcmd -s <ctl socket> ARGS...`` and return its stdout."""
        if not self.running:
            raise KamailioError("Kamailio is not running")
        kamcmd = self._kamcmd or find_kamcmd()
        if kamcmd is None:
            raise KamailioError("kamcmd not found (it ships with the kamailio package)")
        result = subprocess.run(
            [kamcmd, "-s", f"unix:{self.ctl_socket}", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise KamailioError(
                f"kamcmd {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()}"
                f"{result.stdout.decode(errors='replace').strip()}"
            )
        return result.stdout.decode(errors="replace")

    def ul_dump(self) -> str:
        """``kamcmd ul.dump``: the in-memory location table as text."""
        return self.kamcmd("ul.dump")

    # -------------------------------------------------------------- internals

    def _prepare_tmpdir(self) -> None:
        if self._tmpdir is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="sipfsm-kamailio-"))
        tmp = self._tmpdir
        if len(str(self.ctl_socket)) > _MAX_UNIX_PATH:
            raise KamailioError(f"temporary directory path too long for a unix socket: {tmp}")
        (tmp / "run").mkdir(exist_ok=True)
        db = tmp / "db"
        db.mkdir(exist_ok=True)
        (db / "version").write_text("table_name(str) table_version(int)\nsubscriber:7\n")
        rows = ["id(int,auto) username(str) domain(str) password(str) ha1(str) ha1b(str)"]
        for index, (user, password) in enumerate(sorted(self._users.items()), start=1):
            ha1 = _md5_hex(f"{user}:{DOMAIN}:{password}")
            ha1b = _md5_hex(f"{user}@{DOMAIN}:{DOMAIN}:{password}")
            fields = [str(index), user, DOMAIN, password, ha1, ha1b]
            rows.append(":".join(_dbtext_escape(field) for field in fields))
        (db / "subscriber").write_text("\n".join(rows) + "\n")
        shutil.copyfile(self._config, tmp / "kamailio.cfg")

    def _command(self) -> list[str]:
        assert self._binary is not None
        tmp = self.tmpdir
        defines = {
            "WS_PORT": str(self.ws_port),
            "UDP_PORT": str(self.udp_port),
            "DB_URL": f'"text://{tmp / "db"}"',
            "CTL_SOCKET": f'"unix:{self.ctl_socket}"',
            "TCP_MAX_CONNECTIONS": str(self._tcp_max_connections),
            "OPEN_FILES_LIMIT": str(self._open_files_limit),
            "SIP_CHILDREN": str(self._sip_children),
            "TCP_CHILDREN": str(self._tcp_children),
            "DEBUG_LEVEL": str(self._debug_level),
        }
        command = [
            self._binary,
            "-f", str(tmp / "kamailio.cfg"),
            "-DD",  # fork workers, but the main process stays our child
            "-E",  # log to stderr (-> kamailio.log)
            "-m", str(self._shm_mb),
            "-M", str(self._pkg_mb),
            "-P", str(tmp / "kamailio.pid"),
            "-Y", str(tmp / "run"),
            "-w", str(tmp),
            "-a", "no",
        ]  # fmt: skip
        for name, value in defines.items():
            command += ["-A", f"{name}={value}"]
        if self._proxy_auth:
            command += ["-A", "WITH_PROXY_AUTH"]
        if self._tls is not None:
            certificate, key = self._tls
            command += ["-A", "WITH_TLS", "-A", f"WSS_PORT={self.wss_port}",
                        "-A", f'TLS_CERT="{certificate.resolve()}"',
                        "-A", f'TLS_KEY="{key.resolve()}"']
        return command

    def _spawn(self) -> None:
        tmp = self.tmpdir
        for stale in (self.ctl_socket, tmp / "kamailio.pid"):
            stale.unlink(missing_ok=True)
        command = self._command()
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"==== sipfsm: starting {' '.join(command)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                command,
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # own process group: killpg(pid) reaches the workers
            )
        _LIVE.add(self)
        try:
            self._wait_ready(started + self._start_timeout)
        except BaseException:
            self.kill()
            raise
        self.last_start_seconds = time.monotonic() - started

    def _new_log(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _fail(self, reason: str) -> KamailioError:
        log = self._new_log().strip() or "(no output)"
        return KamailioError(f"Kamailio {reason}.\n--- kamailio stderr ---\n{log}")

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        tcp_ok = False
        while True:
            code = proc.poll()
            if code is not None:
                raise self._fail(f"exited with status {code} during start-up")
            if not tcp_ok:
                tcp_ok = self._tcp_accepts(self.ws_port) and (
                    self._tls is None or self._tcp_accepts(self.wss_port))
            if tcp_ok and self.ctl_socket.exists() and self._udp_options_ok():
                return
            if time.monotonic() > deadline:
                raise self._fail(f"not ready after {self._start_timeout:.0f}s")
            time.sleep(0.05)

    def _tcp_accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _udp_options_ok(self) -> bool:
        """Send OPTIONS sip:127.0.0.1 over UDP; True on a 200 (workers are up)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((LOOPBACK, 0))
            sock.settimeout(0.3)
            local_port = sock.getsockname()[1]
            branch = "z9hG4bK" + secrets.token_hex(8)
            call_id = secrets.token_hex(8)
            request = (
                f"OPTIONS sip:{LOOPBACK}:{self.udp_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"To: <sip:{LOOPBACK}:{self.udp_port}>\r\n"
                f"From: <sip:probe@{LOOPBACK}:{local_port}>;tag={secrets.token_hex(4)}\r\n"
                f"Call-ID: {call_id}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            try:
                sock.sendto(request.encode(), (LOOPBACK, self.udp_port))
                while True:
                    data = sock.recv(65535)
                    if call_id.encode() in data:
                        return data.startswith(b"SIP/2.0 200")
            except OSError:
                return False

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self._stop_timeout)
        # SIGKILL whatever is left: the main process if it ignored SIGTERM and
        # any worker that outlived it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._reap(proc, self._stop_timeout)

    def _reap(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _group_alive(proc.pid) or proc.poll() is None:
            raise KamailioError(f"Kamailio process group {proc.pid} did not exit")
        self._proc = None
        _LIVE.discard(self)
