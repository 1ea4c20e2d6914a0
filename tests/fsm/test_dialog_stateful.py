"""Hypothesis drives a dialog (caller or callee side) with random local requests, incoming
requests with any CSeq (retransmitted, older, newer, with a new Contact), confirmation and
termination; after every step: our CSeq went up by exactly one per new request (ACK and CANCEL
reuse the INVITE's), the remote CSeq never goes down, a request older than the last is answered
500, only an accepted re-INVITE, UPDATE or NOTIFY changes the remote target, a terminated dialog
answers 481 to everything and never comes back."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_dialog import INVITE_REQUEST, response

from sipfsm.fsm.dialog import Dialog, DialogState
from sipfsm.sip import Request, parse

VIA = "SIP/2.0/WS a.invalid;branch=z9hG4bKs"


def incoming(method: str, cseq: int, contact: str | None) -> Request:
    text = (f"{method} sip:al@a.invalid SIP/2.0\r\nVia: SIP/2.0/WS p.test;branch=z9hG4bKi\r\n"
            "From: <sip:bob@x.test>;tag=b1\r\nTo: <sip:alice@x.test>;tag=a1\r\nCall-ID: c1\r\n"
            f"CSeq: {cseq} {method}\r\n"
            + (f"Contact: <{contact}>\r\n" if contact else "") + "\r\n")
    message = parse(text)
    assert isinstance(message, Request)
    return message


class DialogMachine(RuleBasedStateMachine):
    dialog: Dialog

    @initialize(caller=st.booleans(), early=st.booleans())
    def setup(self, caller: bool, early: bool) -> None:
        if caller:
            self.dialog = Dialog.as_uac(INVITE_REQUEST, response(180 if early else 200))
        else:
            self.dialog = Dialog.as_uas(INVITE_REQUEST, "b1", confirmed=not early)
        self.local = self.dialog.local_cseq
        self.remote = self.dialog.remote_cseq
        self.ended = False
        self.answers_after_end: list[int | None] = []

    @rule(method=st.sampled_from(["BYE", "INFO", "INVITE", "REFER", "NOTIFY", "ACK",
                                  "CANCEL"]))
    def send(self, method: str) -> None:
        fixed = method in ("ACK", "CANCEL")
        request = self.dialog.request(method, via=VIA, cseq=self.local if fixed else None)
        cseq = request.cseq
        assert cseq is not None
        if fixed:
            assert cseq.seq == self.local
        else:
            assert cseq.seq == self.local + 1, "our CSeq goes up by exactly one"
            self.local = cseq.seq
        assert request.headers.get("Call-ID") == "c1"

    @rule(method=st.sampled_from(["BYE", "INFO", "INVITE", "UPDATE", "NOTIFY", "ACK"]),
          step=st.integers(min_value=-3, max_value=3),
          contact=st.sampled_from([None, "sip:new@b.invalid", "sip:other@b.invalid"]),
          accepted=st.booleans())
    def receive(self, method: str, step: int, contact: str | None, accepted: bool) -> None:
        base = self.remote if self.remote is not None else 100
        cseq = max(1, base + step)
        before = self.dialog.remote_target
        request = incoming(method, cseq, contact)
        answer = self.dialog.received(request)
        if self.ended:
            self.answers_after_end.append(answer)
            return
        if method == "ACK":
            assert answer is None
            return
        if self.remote is not None and cseq < self.remote:
            assert answer == 500, "an older request is refused"
            assert self.dialog.remote_target == before
            return
        assert answer is None
        self.remote = cseq
        assert self.dialog.remote_target == before, "no refresh before the request's 2xx"
        if accepted:  # the UA answered it 2xx (RFC 6141 §3.3)
            self.dialog.refresh_target(request)
            if contact and method in ("INVITE", "UPDATE", "NOTIFY"):
                assert str(self.dialog.remote_target) == contact, "a target refresh"
            else:
                assert self.dialog.remote_target == before

    @rule()
    def confirm(self) -> None:
        self.dialog.confirm()

    @rule()
    def terminate(self) -> None:
        self.dialog.terminate()
        self.ended = True

    @invariant()
    def consistent(self) -> None:
        if not hasattr(self, "dialog"):
            return
        if self.ended:
            assert self.dialog.state is DialogState.TERMINATED, "a terminated dialog stays so"
        assert all(answer == 481 for answer in self.answers_after_end), \
            "a terminated dialog answers 481 to everything"
        if self.remote is not None and self.dialog.remote_cseq is not None:
            assert self.dialog.remote_cseq >= self.remote or self.ended
        assert self.dialog.local_cseq == self.local


DialogMachine.TestCase.settings = settings(stateful_step_count=40, deadline=None)
test_dialog_machine = DialogMachine.TestCase
