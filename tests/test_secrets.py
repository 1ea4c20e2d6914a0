"""Passwords and digest secrets never show: not in any log line (every level, SIP traces on),
not in reprs, not in exception messages — over a full digest registration and a MESSAGE."""

from __future__ import annotations

import hashlib
import io

import pytest
from edges import Edge

from sipfsm import ConfigurationError, UAConfig
from sipfsm.ua import UA


async def test_nothing_secret_is_ever_written(edge: Edge) -> None:
    password = edge.users["alice"]
    ha1 = hashlib.md5(f"alice:{edge.domain}:{password}".encode(),
                      usedforsecurity=False).hexdigest()
    lines: list[str] = []
    stream = io.StringIO()
    ua = UA(uri=f"sip:alice@{edge.domain}", ws_servers=edge.ws_url, password=password,
            trace_sip=True, log_stream=stream,
            log={"level": "debug", "connector": lambda *args: lines.append(repr(args))})
    try:
        await ua.wait_for("registered", timeout=10)
        await ua.message("bob", f"my password is not {password[::-1]}").result(10)
        ua.unregister()
        await ua.wait_for("unregistered", timeout=10)
    finally:
        await ua.stop()
    written = stream.getvalue() + "\n".join(lines)
    assert "REGISTER" in written and "Authorization" in written  # traces were on
    assert "transition" in written  # and debug lines
    texts = [written, repr(ua), repr(ua.config), str(ua.config), ua.config.describe()]
    for text in texts:
        assert password not in text
        assert ha1 not in text


def test_configuration_errors_never_show_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        UAConfig(uri="sip:alice@x.test", ws_servers="ws://x.test", password=12345)  # type: ignore[arg-type]
    assert "12345" not in str(info.value) and "12345" not in repr(info.value)
