"""The callee's provisional responses in the INVITE machine, with a fake clock: reliable ones
(RFC 3262 §3, decision 7) — RSeq, retransmission, PRACK matching, one at a time, 504 after
64·T1, and a 2xx that waits for the PRACK of a 1xx carrying our answer."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import Driver
from test_invite import callee

from sipfsm.causes import Cause
from sipfsm.events import SessionFailed, SessionTerminated
from sipfsm.fsm.base import Command
from sipfsm.fsm.invite import InviteSession, InviteState

S = InviteState
SDP = ("v=0\r\n", "application/sdp")
CSEQ = 7


def ringing() -> tuple[InviteSession, Driver]:
    session = InviteSession(caller=False, id="e", t1=0.5)
    driver = Driver(session, session.timer_fired)
    driver(lambda now: session.start(now, no_answer=600, invite_cseq=CSEQ))
    return session, driver


def sent(driver: Driver, name: str) -> list[Mapping[str, Any]]:
    return [e.args for e in driver.log if isinstance(e, Command) and e.name == name]


def progress(session: InviteSession, driver: Driver, status: int = 183, *,
             reliable: bool = True, body: tuple[str, str] | None = None) -> bool:
    done: list[bool] = []
    driver(lambda now: done.append(session.progress(now, status, reliable=reliable, body=body,
                                                    headers=(("X-Test", "1"),))))
    return done[0]


def prack(session: InviteSession, driver: Driver, rseq: int | None = None,
          cseq: int = CSEQ, method: str = "INVITE") -> bool:
    done: list[bool] = []
    number = session.unacknowledged if rseq is None else rseq
    assert number is not None
    driver(lambda now: done.append(session.prack(now, number, cseq, method)))
    return done[0]


def test_an_unreliable_provisional_has_no_rseq_and_no_timers() -> None:
    session, driver = ringing()
    assert progress(session, driver, 180, reliable=False)
    assert sent(driver, "send_provisional") == [
        {"status": 180, "rseq": None, "body": None, "headers": (("X-Test", "1"),)}]
    assert "rel1xx" not in driver.timers and "prack" not in driver.timers
    assert session.unacknowledged is None


def test_a_reliable_provisional_is_retransmitted_from_t1_doubling_until_its_prack() -> None:
    session, driver = ringing()
    progress(session, driver, body=SDP)
    first = sent(driver, "send_provisional")[0]
    assert first["rseq"] == session.unacknowledged and 1 <= first["rseq"] < 2**31
    times = []
    for _ in range(5):
        at = driver.timers["rel1xx"]
        driver.advance(at - driver.now)
        times.append(driver.now)
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5]  # T1, then 2, 4, 8, 16 ·T1 apart (no T2 cap)
    assert len(sent(driver, "resend_provisional")) == 5
    assert prack(session, driver)
    assert sent(driver, "answer_prack") == [{"status": 200}]
    assert "rel1xx" not in driver.timers and "prack" not in driver.timers
    driver.advance(60)
    assert len(sent(driver, "resend_provisional")) == 5
    assert session.state is S.RINGING


def test_rseq_increases_by_one_per_reliable_provisional() -> None:
    session, driver = ringing()
    progress(session, driver, 180)
    first = session.unacknowledged
    assert first is not None
    prack(session, driver)
    progress(session, driver, 183)
    assert session.unacknowledged == first + 1


def test_a_prack_that_names_another_response_acknowledges_nothing() -> None:
    session, driver = ringing()
    progress(session, driver)
    rseq = session.unacknowledged
    assert rseq is not None
    assert not prack(session, driver, rseq + 1)
    assert not prack(session, driver, rseq, cseq=CSEQ + 1)
    assert not prack(session, driver, rseq, method="UPDATE")
    assert sent(driver, "answer_prack") == []
    assert session.unacknowledged == rseq
    assert prack(session, driver, rseq)
    assert not prack(session, driver, rseq)  # already acknowledged


def test_one_reliable_provisional_at_a_time_the_next_waits_for_the_prack() -> None:
    session, driver = ringing()
    progress(session, driver, 180)
    progress(session, driver, 183, body=SDP)  # queued
    progress(session, driver, 181, reliable=False)  # unreliable ones need not wait
    statuses = [(a["status"], a["rseq"] is not None) for a in sent(driver, "send_provisional")]
    assert statuses == [(180, True), (181, False)]
    prack(session, driver)
    statuses = [(a["status"], a["rseq"] is not None) for a in sent(driver, "send_provisional")]
    assert statuses == [(180, True), (181, False), (183, True)]
    assert sent(driver, "send_provisional")[-1]["body"] == SDP


def test_no_prack_within_64_t1_answers_504_no_prack() -> None:
    session, driver = ringing()
    progress(session, driver)
    driver.advance(31.9)
    assert session.state is S.RINGING
    driver.advance(0.2)
    assert session.state is S.TERMINATED
    assert session.cause is Cause.NO_PRACK
    assert {"status": 504} in sent(driver, "respond")
    assert driver.of(SessionFailed)[0].cause is Cause.NO_PRACK
    assert driver.of(SessionTerminated)[0].cause is Cause.NO_PRACK
    assert driver.timers == {}


def test_no_prack_while_answering_also_ends_the_call() -> None:
    session, driver = ringing()
    progress(session, driver, body=SDP)
    driver(lambda now: session.input("accept", now))
    driver(lambda now: session.input("answer_ready", now, body=SDP))
    assert session.state is S.ANSWERING  # the 2xx waits for the PRACK
    driver.advance(33)
    assert session.state is S.TERMINATED and session.cause is Cause.NO_PRACK
    assert [a["status"] for a in sent(driver, "respond")] == [504]


def test_a_2xx_waits_for_the_prack_of_a_1xx_that_carries_our_answer() -> None:
    session, driver = ringing()
    progress(session, driver, body=SDP)
    driver(lambda now: session.input("accept", now))
    driver(lambda now: session.input("answer_ready", now, body=SDP))
    assert sent(driver, "respond") == []
    driver.advance(0.5)  # still retransmitted while answering
    assert len(sent(driver, "resend_provisional")) == 1
    assert prack(session, driver)
    assert session.state is S.ACCEPTED
    assert sent(driver, "answer_prack") == [{"status": 200}]
    assert sent(driver, "respond") == [{"status": 200, "answer": SDP}]
    assert "rel1xx" not in driver.timers and "prack" not in driver.timers
    assert "retransmit" in driver.timers


def test_a_2xx_does_not_wait_for_a_1xx_without_a_body_and_ends_its_retransmission() -> None:
    session, driver = ringing()
    progress(session, driver, 180)
    progress(session, driver, 183, body=SDP)  # queued behind the 180: dropped by the 2xx
    driver(lambda now: session.input("accept", now))
    driver(lambda now: session.input("answer_ready", now, body=SDP))
    assert session.state is S.ACCEPTED
    assert "rel1xx" not in driver.timers and "prack" not in driver.timers
    assert session.unacknowledged is None
    driver.advance(1)
    assert sent(driver, "resend_provisional") == []
    assert [a["status"] for a in sent(driver, "send_provisional")] == [180]


def test_a_prack_while_answering_before_the_answer_is_ready() -> None:
    session, driver = ringing()
    progress(session, driver, 180)
    driver(lambda now: session.input("accept", now))
    driver.advance(0.5)
    assert len(sent(driver, "resend_provisional")) == 1
    assert prack(session, driver)
    assert session.state is S.ANSWERING
    assert progress(session, driver, 183, reliable=True)  # progress while answering
    assert session.unacknowledged is not None
    progress(session, driver, 183, reliable=True)  # and a queued one while answering
    assert len(sent(driver, "send_provisional")) == 2


def test_progress_after_the_answer_is_refused() -> None:
    session, driver = ringing()
    driver(lambda now: session.input("accept", now))
    driver(lambda now: session.input("answer_ready", now, body=SDP))
    assert not progress(session, driver)
    caller_side, caller_driver = callee()
    caller_driver(lambda now: caller_side.input("reject", now, status=486))
    assert not progress(caller_side, caller_driver)


def test_cancel_or_reject_stop_the_reliable_provisional() -> None:
    for trigger in ("remote_cancel", "reject", "lost"):
        session, driver = ringing()
        progress(session, driver)
        ended = session
        driver(lambda now, t=trigger, s=ended: s.input(t, now, status=486))
        assert session.state is S.TERMINATED
        assert driver.timers == {}
        assert session.unacknowledged is None
