"""The ``sipfsm`` command as a user runs it: subprocesses."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

from sipfsm.ua import UA


def test_demo_runs_and_passes() -> None:
    result = subprocess.run([sys.executable, "-m", "sipfsm", "demo"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed." in result.stdout
    assert "FAIL" not in result.stdout


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
