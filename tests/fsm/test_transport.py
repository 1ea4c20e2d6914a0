"""The transport machine, driven with a fake clock: every path of its table."""

# The tests assert a state, call an input, and assert the new state; mypy would keep the first
# narrowing across the call and call the second comparison impossible.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import random

import pytest
from harness import Driver

from sipfsm import InvalidStateError
from sipfsm.events import (
    FrameReceived,
    FrameSent,
    KeepAliveTimeout,
    TransportConnected,
    TransportConnecting,
    TransportDisconnected,
    TransportStopped,
)
from sipfsm.fsm.base import Close, Open
from sipfsm.fsm.transport import PING, PONG, Transport, TransportOptions, TransportState

S = TransportState
A, B, C = "ws://a.test", "ws://b.test", "ws://c.test"


def make(servers: list[tuple[str, int]] | None = None, seed: int = 1,
         **options: float) -> tuple[Transport, Driver]:
    transport = Transport(servers or [(A, 10), (B, 5)],
                          TransportOptions(**options),  # type: ignore[arg-type]
                          rng=random.Random(seed))
    return transport, Driver(transport, transport.timer_fired)


def last_open(driver: Driver) -> Open:
    return driver.opened[-1]


def fail(transport: Transport, driver: Driver, reason: str = "refused") -> None:
    socket = transport.socket
    driver.open_sockets.discard(socket)
    driver(transport.socket_failed, socket, reason)


def open_ok(transport: Transport, driver: Driver) -> None:
    driver(transport.socket_opened, transport.socket)


def drop(transport: Transport, driver: Driver, code: int = 1006, reason: str = "gone") -> None:
    socket = transport.socket
    driver.open_sockets.discard(socket)
    driver(transport.socket_closed, socket, code, reason)


def test_start_connects_to_the_heaviest_server() -> None:
    transport, driver = make()
    driver(transport.start)
    assert transport.state is S.CONNECTING
    assert last_open(driver) == Open(1, A)
    assert driver.of(TransportConnecting) == [TransportConnecting(server=A, attempt=1)]
    assert driver.timers == {"connect": 5.0}
    open_ok(transport, driver)
    assert transport.state is S.CONNECTED and transport.connected
    assert driver.of(TransportConnected) == [TransportConnected(server=A)]
    assert driver.timers == {}  # connect timer disarmed; keep-alive is off by default


def test_ties_are_broken_at_random() -> None:
    chosen = set()
    for seed in range(40):
        transport, driver = make([(A, 1), (B, 1), (C, 0)], seed=seed)
        driver(transport.start)
        chosen.add(last_open(driver).url)
    assert chosen == {A, B}


def test_first_connect_failure_moves_to_the_next_server_at_once() -> None:
    transport, driver = make([(A, 10), (B, 5), (C, 1)])
    driver(transport.start)
    fail(transport, driver, "connection refused")
    assert transport.state is S.CONNECTING
    assert last_open(driver) == Open(2, B)
    (gone,) = driver.of(TransportDisconnected)
    assert (gone.server, gone.given_up, gone.reason) == (A, True, "connection refused")
    fail(transport, driver)
    assert last_open(driver).url == C
    open_ok(transport, driver)
    assert transport.server == C


def test_every_server_failed_starts_recovery_then_a_new_round() -> None:
    transport, driver = make([(A, 10), (B, 5)], recovery_min=2, recovery_max=30)
    driver(transport.start)
    fail(transport, driver)
    fail(transport, driver)
    assert transport.state is S.RECOVERY_WAIT
    assert driver.timers["retry"] == pytest.approx(2.0)  # first recovery: k = 1
    driver.advance(2.0)
    assert transport.state is S.CONNECTING
    assert last_open(driver).url == A  # statuses were reset: the heaviest again
    open_ok(transport, driver)
    assert transport.state is S.CONNECTED


class Greedy(random.Random):
    """Always draws the largest k: the backoff's upper envelope."""

    def randint(self, a: int, b: int) -> int:
        return b


def recovery_delays(transport: Transport, driver: Driver, rounds: int) -> list[float]:
    delays = []
    for _ in range(rounds):
        fail(transport, driver)
        assert transport.state is S.RECOVERY_WAIT
        delays.append(driver.timers["retry"] - driver.now)
        driver.advance(delays[-1])
    return delays


def test_recovery_backoff_is_capped_not_wrapped() -> None:
    transport = Transport([(A, 1)], TransportOptions(recovery_min=2, recovery_max=30),
                          rng=Greedy())
    driver = Driver(transport, transport.timer_fired)
    driver(transport.start)
    # k = 2^n: 2, 4, 8, 16, then 32 > 30 is capped at 30 and stays there (SIP.js went back to 2).
    assert recovery_delays(transport, driver, 8) == [2, 4, 8, 16, 30, 30, 30, 30]


def test_recovery_backoff_is_random_within_bounds_and_resets_on_success() -> None:
    transport, driver = make([(A, 1)], recovery_min=2, recovery_max=30, seed=7)
    driver(transport.start)
    delays = recovery_delays(transport, driver, 12)
    assert delays[0] == 2  # the first recovery waits exactly the minimum (k in [1, 1])
    assert all(2 <= d <= 30 and d % 2 == 0 for d in delays)
    assert len(set(delays)) > 3
    open_ok(transport, driver)
    drop(transport, driver)
    for _ in range(3):
        fail(transport, driver)
        if transport.state is S.RECONNECT_WAIT:
            driver.advance(4)
    assert transport.state is S.RECOVERY_WAIT
    assert driver.timers["retry"] - driver.now == 2  # the success reset the count


def test_drop_reconnects_at_once_then_every_timeout_then_gives_up() -> None:
    transport, driver = make([(A, 10), (B, 5)], max_reconnection=3, reconnection_timeout=4)
    driver(transport.start)
    open_ok(transport, driver)
    drop(transport, driver, 1006, "abnormal closure")
    (lost,) = driver.of(TransportDisconnected)
    assert (lost.server, lost.code, lost.reason, lost.given_up) == (A, 1006, "abnormal closure",
                                                                  False)
    assert transport.state is S.CONNECTING and last_open(driver) == Open(2, A)
    assert driver.of(TransportConnecting)[-1].attempt == 1
    fail(transport, driver)
    assert transport.state is S.RECONNECT_WAIT and driver.timers["retry"] == 4
    driver.advance(4)
    assert last_open(driver) == Open(3, A) and driver.of(TransportConnecting)[-1].attempt == 2
    fail(transport, driver)
    driver.advance(4)
    assert driver.of(TransportConnecting)[-1].attempt == 3
    fail(transport, driver)
    assert transport.state is S.CONNECTING and last_open(driver).url == B
    assert driver.of(TransportDisconnected)[-1].given_up


def test_reconnection_succeeds() -> None:
    transport, driver = make()
    driver(transport.start)
    open_ok(transport, driver)
    drop(transport, driver)
    fail(transport, driver)
    driver.advance(4)
    open_ok(transport, driver)
    assert transport.state is S.CONNECTED and transport.server == A
    assert len(driver.of(TransportConnected)) == 2


def test_connect_timeout_abandons_the_socket() -> None:
    transport, driver = make([(A, 10), (B, 1)], connect_timeout=3)
    driver(transport.start)
    driver.advance(3)
    assert driver.closed == [Close(1, 1000, "connect timeout")]
    assert transport.state is S.CONNECTING and last_open(driver) == Open(2, B)
    driver(transport.socket_opened, 1)  # the old socket opens late: ignored
    assert transport.state is S.CONNECTING
    open_ok(transport, driver)
    assert transport.server == B


def test_keep_alive_ping_pong() -> None:
    transport, driver = make(keep_alive_interval=30, pong_timeout=10)
    driver(transport.start)
    open_ok(transport, driver)
    first = driver.timers["keep_alive"]
    assert 24 <= first <= 30
    driver.advance(first)
    assert driver.sent == [(1, PING)]
    assert driver.timers["pong"] == pytest.approx(first + 10)
    driver(transport.frame_received, 1, PONG)
    assert "pong" not in driver.timers
    assert transport.state is S.CONNECTED
    second = driver.timers["keep_alive"] - driver.now
    assert 24 <= second <= 30
    assert driver.of(FrameReceived) == []


def test_missing_pong_treats_the_flow_as_dead() -> None:
    transport, driver = make(keep_alive_interval=30, pong_timeout=10)
    driver(transport.start)
    open_ok(transport, driver)
    driver.advance(30)
    driver.advance(10)
    assert driver.of(KeepAliveTimeout) == [KeepAliveTimeout(server=A)]
    assert Close(1, 1000, "keep-alive timeout") in driver.closed
    assert driver.of(TransportDisconnected)[-1].reason == "keep-alive timeout"
    assert transport.state is S.CONNECTING and last_open(driver) == Open(2, A)
    assert set(driver.timers) == {"connect"}


def test_server_ping_is_answered_and_sip_frames_are_published() -> None:
    transport, driver = make()
    driver(transport.start)
    open_ok(transport, driver)
    driver(transport.frame_received, 1, PING)
    assert driver.sent == [(1, PONG)]
    driver(transport.frame_received, 1, "OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    driver(transport.frame_received, 1, "\r\n\r\n\r\n")  # only line ends: nothing
    driver(transport.frame_received, 99, "SIP/2.0 200 OK\r\n\r\n")  # another socket: ignored
    assert [e.data for e in driver.of(FrameReceived)] == ["OPTIONS sip:a@b SIP/2.0\r\n\r\n"]


def test_send() -> None:
    transport, driver = make()
    with pytest.raises(InvalidStateError):
        transport.send("x")
    driver(transport.start)
    with pytest.raises(InvalidStateError):
        transport.send("x")
    open_ok(transport, driver)
    transport.send("MESSAGE")
    driver.run()
    assert driver.sent == [(1, "MESSAGE")]
    assert driver.of(FrameSent) == [FrameSent(data="MESSAGE", server=A)]


@pytest.mark.parametrize("where", ["connecting", "connected", "reconnect_wait",
                                   "recovery_wait"])
def test_stop_from_every_state(where: str) -> None:
    transport, driver = make([(A, 1)], keep_alive_interval=20)
    driver(transport.start)
    if where != "connecting":
        open_ok(transport, driver)
    if where in ("reconnect_wait", "recovery_wait"):
        drop(transport, driver)
        fail(transport, driver)
        if where == "recovery_wait":
            driver.advance(4)
            fail(transport, driver)
            driver.advance(4)
            fail(transport, driver)
    assert transport.state.value == where
    before = len(driver.of(TransportDisconnected))
    driver(transport.stop)
    assert transport.state is S.STOPPED
    assert driver.timers == {} and driver.open_sockets == set()
    assert driver.of(TransportStopped) == [TransportStopped()]
    stopped = driver.of(TransportDisconnected)[before:]
    assert [e.reason for e in stopped] == (["stopped"] if where == "connected" else [])
    opened = len(driver.opened)
    driver(transport.socket_opened, transport.socket - 1)  # late news of the old socket
    driver.advance(1000)
    assert transport.state is S.STOPPED and len(driver.opened) == opened
    driver(transport.stop)  # stopping twice is harmless
    driver(transport.start)  # and it can start again
    assert transport.state is S.CONNECTING


def test_start_twice_is_misuse() -> None:
    transport, driver = make()
    driver(transport.start)
    with pytest.raises(InvalidStateError):
        transport.start(0.0)


def test_needs_a_server() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        Transport([])
