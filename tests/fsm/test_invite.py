"""The INVITE session machine with a fake clock: every row of its table."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import pytest
from harness import Driver

from sipfsm.causes import Cause
from sipfsm.events import (
    SessionAccepted,
    SessionBye,
    SessionCanceled,
    SessionConfirmed,
    SessionFailed,
    SessionProgress,
    SessionRejected,
    SessionTerminated,
)
from sipfsm.fsm.base import Command
from sipfsm.fsm.invite import T2, InviteSession, InviteState
from sipfsm.sip import Request, Response, parse

S = InviteState


def reply(status: int, tag: str | None = "t1") -> Response:
    to = "<sip:bob@x.test>" + (f";tag={tag}" if tag else "")
    message = parse(f"SIP/2.0 {status} X\r\nTo: {to}\r\nCSeq: 1 INVITE\r\n\r\n")
    assert isinstance(message, Response)
    return message


BYE = parse("BYE sip:a@x.test SIP/2.0\r\nCSeq: 2 BYE\r\n\r\n")
assert isinstance(BYE, Request)


def caller() -> tuple[InviteSession, Driver]:
    session = InviteSession(caller=True, id="c", t1=0.5)
    return session, Driver(session, session.timer_fired)


def callee(no_answer: float = 60, expires: float | None = None) -> tuple[InviteSession, Driver]:
    session = InviteSession(caller=False, id="e", t1=0.5)
    driver = Driver(session, session.timer_fired)
    driver(lambda now: session.start(now, no_answer=no_answer, expires=expires))
    return session, driver


def commands(driver: Driver) -> list[str]:
    return [e.name for e in driver.log if isinstance(e, Command)]


def kinds(driver: Driver) -> list[str]:
    return [type(e).__name__ for e in driver.events]


def last_terminated(driver: Driver) -> SessionTerminated:
    events = driver.of(SessionTerminated)
    assert events, "no terminated event"
    return events[-1]  # type: ignore[no-any-return]


# -- caller -------------------------------------------------------------------------------------


def test_caller_answered_then_hangs_up() -> None:
    s, d = caller()
    d(s.start)
    assert s.state is S.CALLING and commands(d) == ["send_invite"]
    d(s.response, reply(100))  # 100 is not progress
    assert s.state is S.CALLING
    d(s.response, reply(180))
    d(s.response, reply(183))
    assert s.state is S.PROCEEDING and len(d.of(SessionProgress)) == 2
    d(s.response, reply(200))
    assert s.state is S.CONFIRMED
    assert commands(d)[-2:] == ["send_ack", "apply_answer"]
    assert kinds(d)[-2:] == ["SessionAccepted", "SessionConfirmed"]
    d(s.response, reply(200))  # a retransmission of our 2xx: ACKed again
    assert commands(d)[-1] == "send_ack"
    d(s.response, reply(200, tag="other"))  # another fork: ACK and BYE it
    assert commands(d)[-1] == "ack_and_bye" and s.state is S.CONFIRMED
    d(lambda now: s.input("bye", now))
    assert s.state is S.TERMINATING and commands(d)[-1] == "send_bye"
    d(s.response, reply(200))  # still ours while hanging up
    assert commands(d)[-1] == "send_ack"
    d(lambda now: s.input("bye_done", now))
    assert s.state is S.TERMINATED and last_terminated(d).cause is Cause.BYE
    d(s.response, reply(200, tag="late"))  # after the end: ACK and BYE, nothing else
    assert commands(d)[-1] == "ack_and_bye" and s.state is S.TERMINATED


def test_caller_answered_directly_and_the_peer_hangs_up() -> None:
    s, d = caller()
    d(s.start)
    d(s.response, reply(200))
    assert s.state is S.CONFIRMED
    d(lambda now: s.input("remote_bye", now, request=BYE))
    assert s.state is S.TERMINATED
    assert d.of(SessionBye)[0].request is BYE and last_terminated(d).cause is Cause.BYE


@pytest.mark.parametrize(("status", "cause"), [(486, Cause.BUSY), (404, Cause.NOT_FOUND),
                                               (603, Cause.REJECTED), (500,
                                                                       Cause.SIP_FAILURE_CODE)])
def test_caller_rejected(status: int, cause: Cause) -> None:
    s, d = caller()
    d(s.start)
    d(s.response, reply(180))
    d(s.response, reply(status))
    assert s.state is S.TERMINATED
    assert kinds(d)[-3:] == ["SessionRejected", "SessionFailed", "SessionTerminated"]
    assert d.of(SessionRejected)[0].cause is cause and d.timers == {}


def test_caller_timeout_and_lost_connection() -> None:
    s, d = caller()
    d(s.start)
    d(s.failed, Cause.REQUEST_TIMEOUT)
    assert s.state is S.TERMINATED and d.of(SessionFailed)[0].cause is Cause.REQUEST_TIMEOUT
    assert d.of(SessionRejected) == []
    for before in ("calling", "proceeding", "cancelling"):
        lost_caller(before)


def lost_caller(before: str) -> None:
    s, d = caller()
    d(s.start)
    if before != "calling":
        d(s.response, reply(180))
    if before == "cancelling":
        d(lambda now: s.input("cancel", now))
    d(lambda now: s.input("lost", now))
    assert s.state is S.TERMINATED
    assert last_terminated(d).cause is Cause.CONNECTION_ERROR


def test_cancel_after_a_provisional() -> None:
    s, d = caller()
    d(s.start)
    d(s.response, reply(180))
    d(lambda now: s.input("cancel", now))
    assert s.state is S.CANCELLING and commands(d)[-1] == "send_cancel"
    assert len(d.of(SessionCanceled)) == 1
    d(s.response, reply(180))  # no second CANCEL
    assert commands(d).count("send_cancel") == 1
    d(s.response, reply(487))
    assert s.state is S.TERMINATED and d.of(SessionFailed)[0].cause is Cause.CANCELED


def test_a_deferred_cancel_goes_out_on_the_first_provisional() -> None:
    s, d = caller()
    d(s.start)
    d(lambda now: s.input("cancel", now))
    assert s.state is S.CANCELLING and "send_cancel" not in commands(d)
    d(s.response, reply(180))
    assert commands(d)[-1] == "send_cancel"
    d(s.response, reply(487))
    assert last_terminated(d).cause is Cause.CANCELED


def test_a_2xx_racing_the_cancel_is_acked_and_hung_up() -> None:
    s, d = caller()
    d(s.start)
    d(s.response, reply(180))
    d(lambda now: s.input("cancel", now))
    d(s.response, reply(200))
    assert s.state is S.TERMINATED and commands(d)[-2] == "ack_and_bye"
    assert last_terminated(d).cause is Cause.CANCELED


# -- callee --------------------------------------------------------------------------------------


def test_callee_accepts_the_2xx_is_retransmitted_until_the_ack() -> None:
    s, d = callee()
    assert s.state is S.RINGING and set(d.timers) == {"no_answer"}
    d(lambda now: s.input("accept", now))
    assert s.state is S.ANSWERING and commands(d) == ["make_answer"] and d.timers == {}
    d(lambda now: s.input("answer_ready", now, body=("v=0", "application/sdp")))
    assert s.state is S.ACCEPTED and commands(d)[-1] == "respond"
    assert d.of(SessionAccepted)[0].response is None
    assert d.timers == {"retransmit": 0.5, "ack": 32.0}
    d.advance(0.5 + 1 + 2 + 4 + 4)  # T1, then doubling, capped at T2
    assert commands(d).count("resend_2xx") == 5
    assert d.timers["retransmit"] == pytest.approx(11.5 + T2)
    d(lambda now: s.input("ack", now))
    assert s.state is S.CONFIRMED and d.timers == {}
    assert len(d.of(SessionConfirmed)) == 1


def test_no_ack_ends_the_call_with_bye() -> None:
    s, d = callee()
    d(lambda now: s.input("accept", now))
    d(lambda now: s.input("answer_ready", now, body=("v=0", "application/sdp")))
    d.advance(32)
    assert s.state is S.TERMINATING and commands(d)[-1] == "send_bye"
    d(lambda now: s.input("bye_done", now))
    assert last_terminated(d).cause is Cause.NO_ACK


def test_hanging_up_before_the_ack_waits_for_it() -> None:
    s, d = callee()
    d(lambda now: s.input("accept", now))
    d(lambda now: s.input("answer_ready", now, body=("v=0", "application/sdp")))
    d(lambda now: s.input("bye", now))
    assert s.state is S.TERMINATING and "send_bye" not in commands(d)
    d(lambda now: s.input("ack", now))
    assert commands(d)[-1] == "send_bye" and d.timers == {}
    d(lambda now: s.input("remote_bye", now, request=BYE))  # the peer's BYE crossed ours
    assert s.state is S.TERMINATED


def test_the_peer_hangs_up_before_its_ack_arrives() -> None:
    s, d = callee()
    d(lambda now: s.input("accept", now))
    d(lambda now: s.input("answer_ready", now, body=("v=0", "application/sdp")))
    d(lambda now: s.input("remote_bye", now, request=BYE))
    assert s.state is S.TERMINATED and d.timers == {}


def test_callee_rejects_or_the_media_refuses() -> None:
    s, d = callee()
    d(lambda now: s.input("reject", now, status=486))
    assert s.state is S.TERMINATED and d.of(SessionRejected)[0].cause is Cause.BUSY
    assert d.log[-4] == Command("respond", {"status": 486}) or Command(
        "respond", {"status": 486}) in d.log
    s, d = callee()
    d(lambda now: s.input("accept", now))
    d(lambda now: s.input("answer_failed", now, status=488))
    assert Command("respond", {"status": 488}) in d.log
    assert last_terminated(d).cause is Cause.INCOMPATIBLE_SDP


def test_no_answer_expires_and_cancel() -> None:
    s, d = callee(no_answer=5, expires=10)
    d.advance(5)
    assert s.state is S.TERMINATED and last_terminated(d).cause is Cause.NO_ANSWER
    assert Command("respond", {"status": 408}) in d.log and d.timers == {}
    s, d = callee(no_answer=60, expires=3)
    d.advance(3)
    assert last_terminated(d).cause is Cause.EXPIRES
    assert Command("respond", {"status": 487}) in d.log
    s, d = callee()
    d(lambda now: s.input("remote_cancel", now))
    assert last_terminated(d).cause is Cause.CANCELED and len(d.of(SessionCanceled)) == 1
    s, d = callee()
    d(lambda now: s.input("lost", now))
    assert last_terminated(d).cause is Cause.CONNECTION_ERROR


def test_misuse_is_refused_by_the_table() -> None:
    s, d = caller()
    assert not s.input("accept", 0.0) and not s.input("bye", 0.0)
    s, d = callee()
    assert not s.input("cancel", 0.0) and not s.input("bye", 0.0)
    d(lambda now: s.input("reject", now, status=480))
    assert not s.input("reject", 0.0, status=480)  # ended: everything is refused


@pytest.mark.parametrize("trigger", ["reject", "remote_cancel", "lost"])
def test_while_the_answer_is_being_made(trigger: str) -> None:
    s, d = callee()
    d(lambda now: s.input("accept", now))
    assert s.state is S.ANSWERING
    d(lambda now: s.input(trigger, now, status=603))
    assert s.state is S.TERMINATED and d.timers == {}
    expected = {"reject": Cause.REJECTED, "remote_cancel": Cause.CANCELED,
                "lost": Cause.CONNECTION_ERROR}[trigger]
    assert last_terminated(d).cause is expected


# -- re-INVITE ------------------------------------------------------------------------------------


class Fixed:
    """A random source that always says the middle."""

    def random(self) -> float:
        return 0.5


def confirmed_caller() -> tuple[InviteSession, Driver]:
    s = InviteSession(caller=True, id="c", t1=0.5, rng=Fixed())  # type: ignore[arg-type]
    d = Driver(s, s.timer_fired)
    d(s.start)
    d(s.response, reply(200))
    return s, d


def test_hold_accepted_then_refused_unhold_rolls_back() -> None:
    from sipfsm.events import SessionReinvited

    s, d = confirmed_caller()
    d(lambda now: s.input("reinvite", now, hold=True))
    assert s.state is S.REINVITING and d.log[-1] == Command("send_reinvite", {"hold": True})
    d(lambda now: s.input("reinvite_ok", now, response=reply(200)))
    assert s.state is S.CONFIRMED and s.held
    assert Command("send_ack", {"response": d.log[-3].args["response"], "reinvite": True}) \
        in d.log
    d(lambda now: s.input("reinvite", now, hold=False))
    d(lambda now: s.input("reinvite_failed", now, response=reply(500)))
    assert s.state is S.CONFIRMED and s.held  # decision 8: rolled back
    events = d.of(SessionReinvited)
    assert [(e.accepted, e.held) for e in events] == [(True, True), (False, True)]
    assert "glare" not in d.timers


def test_glare_retries_after_the_rfc_delay() -> None:
    s, d = confirmed_caller()
    d(lambda now: s.input("reinvite", now, hold=True))
    d(lambda now: s.input("remote_reinvite", now))  # the peer's crosses ours: 491 to it
    assert d.log[-1] == Command("respond_reinvite", {"status": 491})
    d(lambda now: s.input("reinvite_failed", now, response=reply(491)))
    assert s.state is S.CONFIRMED and d.timers["glare"] == pytest.approx(2.1 + 1.9 * 0.5)
    d.advance(3.05)
    assert s.state is S.REINVITING and d.log[-1] == Command("send_reinvite", {"hold": True})
    d(lambda now: s.input("reinvite_ok", now, response=reply(200)))
    assert s.held


def test_the_peers_reinvite_is_answered_and_acked() -> None:
    from sipfsm.events import SessionReinvited

    s, d = confirmed_caller()
    d(lambda now: s.input("remote_reinvite", now))
    assert s.state is S.REINVITED and d.log[-1] == Command("answer_reinvite")
    d(lambda now: s.input("remote_reinvite", now))  # another one meanwhile: 491
    assert d.log[-1] == Command("respond_reinvite", {"status": 491})
    d(lambda now: s.input("reinvite_answer_ready", now, body=("v=0", "application/sdp")))
    assert d.log[-1] == Command("respond_reinvite", {"status": 200,
                                                     "answer": ("v=0", "application/sdp")})
    d(lambda now: s.input("ack", now))
    assert s.state is S.CONFIRMED and d.of(SessionReinvited)[-1].local is False
    d(lambda now: s.input("remote_reinvite", now))
    d(lambda now: s.input("reinvite_answer_failed", now))
    assert s.state is S.CONFIRMED and d.log[-1] == Command("respond_reinvite", {"status": 488})


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize("during", ["reinviting", "reinvited"])
def test_hang_ups_during_a_reinvite(during: str, local: bool) -> None:
    s, d = confirmed_caller()
    d(lambda now: s.input("reinvite" if during == "reinviting" else "remote_reinvite", now,
                          hold=True))
    d(lambda now: s.input("bye" if local else "remote_bye", now, request=BYE))
    assert s.state is (S.TERMINATING if local else S.TERMINATED)
    d(s.response, reply(200))  # a late 2xx of the call's INVITE: ACKed again
    assert commands(d)[-1] in ("send_ack", "ack_and_bye")


def test_a_reliable_provisional_is_pracked() -> None:
    def reliable(rseq: int) -> Response:
        message = parse(f"SIP/2.0 183 X\r\nTo: <sip:bob@x.test>;tag=t1\r\nCSeq: 1 INVITE\r\n"
                        f"Require: 100rel\r\nRSeq: {rseq}\r\n\r\n")
        assert isinstance(message, Response)
        return message

    s, d = caller()
    d(s.start)
    d(s.response, reliable(7))
    prack = d.log[-2]
    assert isinstance(prack, Command) and prack.name == "send_prack"
    assert prack.args["response"].rseq == 7
    d(s.response, reply(180))  # an unreliable one: no PRACK
    assert commands(d).count("send_prack") == 1
    d(lambda now: s.input("cancel", now))
    d(s.response, reliable(8))  # while cancelling, reliable 1xx are still PRACKed
    assert commands(d).count("send_prack") == 2


@pytest.mark.parametrize("trigger", ["reinvite", "remote_reinvite"])
def test_a_retransmitted_2xx_during_a_reinvite_is_acked_again(trigger: str) -> None:
    s, d = confirmed_caller()
    d(lambda now: s.input(trigger, now, hold=True))
    assert s.state in (S.REINVITING, S.REINVITED)
    d(s.response, reply(200))  # the call's INVITE 2xx, again
    assert commands(d)[-1] == "send_ack" and s.state in (S.REINVITING, S.REINVITED)


def test_a_100_trying_lets_a_cancel_go_at_once() -> None:
    session, d = caller()
    d(lambda now: session.start(now))
    d(lambda now: session.response(reply(100, None), now))
    assert session.state is S.CALLING  # 100 is no progress to report
    assert "send_cancel" not in commands(d)
    d(lambda now: session.input("cancel", now))
    assert session.state is S.CANCELLING
    assert commands(d).count("send_cancel") == 1
    assert "cancel" in d.timers


def test_a_deferred_cancel_goes_on_the_100_trying() -> None:
    session, d = caller()
    d(lambda now: session.start(now))
    d(lambda now: session.input("cancel", now))
    assert "send_cancel" not in commands(d)
    d(lambda now: session.response(reply(100, None), now))
    assert commands(d).count("send_cancel") == 1
    d(lambda now: session.response(reply(180), now))
    assert commands(d).count("send_cancel") == 1, "one CANCEL only"


def test_no_final_response_after_the_cancel_gives_the_invite_up() -> None:
    session, d = caller()
    d(lambda now: session.start(now))
    d(lambda now: session.response(reply(180), now))
    d(lambda now: session.input("cancel", now))
    d.advance(64 * 0.5 - 0.1)
    assert "abandon_invite" not in commands(d)
    d.advance(0.2)
    assert commands(d).count("abandon_invite") == 1
    assert session.state is S.CANCELLING  # until the transaction reports its timeout
    d(lambda now: session.failed(Cause.REQUEST_TIMEOUT, now))
    assert session.state is S.TERMINATED and session.cause is Cause.CANCELED
    assert d.timers == {}
