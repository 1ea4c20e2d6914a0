"""The UA facade: configuration, life cycle, events, and that stop() leaves nothing behind."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import asyncio
import io

import pytest

from sipfsm import ConfigurationError, UAConfig
from sipfsm.ua import UA


async def test_autostart_and_stop_leave_nothing_running(unused_tcp_port: int) -> None:
    before = set(asyncio.all_tasks())
    ua = UA(uri="alice@example.test", ws_servers=f"ws://127.0.0.1:{unused_tcp_port}",
            connection_recovery_min_interval=60, connection_recovery_max_interval=60,
            log={"builtin_enabled": False})
    assert ua.transport.state.value == "connecting"  # autostart inside a running loop
    await ua.wait_for("disconnected", timeout=5)  # nothing listens there
    assert ua.transport.state.value == "recovery_wait"
    await ua.stop()
    assert ua.transport.state.value == "stopped"
    await asyncio.sleep(0)
    assert set(asyncio.all_tasks()) - before == set()
    await ua.stop()  # twice is harmless


def test_without_a_loop_it_waits_for_start() -> None:
    ua = UA(uri="alice@example.test", ws_servers="ws://127.0.0.1:9")
    assert ua.transport.state.value == "stopped" and not ua.is_connected()


def test_configuration_errors_start_nothing() -> None:
    with pytest.raises(ConfigurationError, match="ws_servers"):
        UA(uri="alice@example.test")
    with pytest.raises(TypeError):
        UA(UAConfig(uri="a@b.test", ws_servers="ws://x.test"), uri="b@c.test")


def test_from_sipjs_and_repr_hide_the_password() -> None:
    stream = io.StringIO()
    ua = UA.from_sipjs({"uri": "sip:alice@example.test", "wsServers": "ws://127.0.0.1:9",
                        "password": "hunter2-secret", "autostart": False}, log_stream=stream)
    assert ua.config.password == "hunter2-secret"
    assert "hunter2-secret" not in repr(ua) and "hunter2-secret" not in repr(ua.config)
    ua.log.log("configured", password=ua.config.password, note="hunter2-secret inside")
    assert "hunter2-secret" not in stream.getvalue() and "configured" in stream.getvalue()


async def test_every_transition_is_one_structured_log_line(unused_tcp_port: int) -> None:
    lines: list[tuple[str, str, str | None, str]] = []
    ua = UA(uri="alice@example.test", ws_servers=f"ws://127.0.0.1:{unused_tcp_port}",
            connection_recovery_min_interval=60, connection_recovery_max_interval=60,
            log={"builtin_enabled": False, "level": "debug",
                 "connector": lambda *args: lines.append(args)})
    await ua.wait_for("disconnected", timeout=5)
    await ua.stop()
    transitions = [content for level, category, label, content in lines
                   if content.startswith("transition")]
    assert all(level == "debug" for level, _, _, c in lines if c.startswith("transition"))
    assert [t.split(" source=", 1)[1] for t in transitions] == [
        "STOPPED trigger=start dest=CONNECTING",
        "CONNECTING trigger=connect_failed dest=RECOVERY_WAIT",
        "RECOVERY_WAIT trigger=stop dest=STOPPED",
    ]
    assert all(f"machine=transport id={ua.id}.transport" in t for t in transitions)
