"""Hypothesis drives all four transaction machines at once with random inputs in any order
(responses 100-699 and their retransmissions, the TU's responses, ACKs, timers on time and
late, transport errors, abandoning) and checks their invariants after every step:

* a client transaction delivers at most one outcome to the TU (one non-2xx final, or one
  failure with its synthesized response; an ICT may pass up several 2xx, never mixed with a
  non-2xx), and at least one once it has ended;
* a terminated transaction emits nothing and ignores everything, and has no timer armed;
* ``TransactionTerminated`` is published exactly once, as the last effect, and only on
  termination;
* the armed timers are exactly the ones the state calls for, and the state is a member of its
  machine's Enum.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness import Driver
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sipfsm import InvalidStateError
from sipfsm.events import (
    AckReceived,
    RequestReceived,
    TransactionFailed,
    TransactionResponse,
    TransactionTerminated,
)
from sipfsm.fsm.base import Effect, Emit, Transmit
from sipfsm.fsm.transaction import (
    ClientTransaction,
    InviteClientState,
    InviteClientTransaction,
    InviteServerState,
    InviteServerTransaction,
    NonInviteClientState,
    NonInviteClientTransaction,
    NonInviteServerState,
    NonInviteServerTransaction,
    ServerTransaction,
    Transaction,
    build_ack,
    new_branch,
)
from sipfsm.sip import Request, Response, parse

IC, NC = InviteClientState, NonInviteClientState
IS, NS = InviteServerState, NonInviteServerState
KINDS = ("ict", "nict", "ist", "nist")
CLIENTS = ("ict", "nict")
SERVERS = ("ist", "nist")
TIMER_NAMES = ("B", "F", "H", "L", "M")
STATES: dict[str, type[enum.Enum]] = {"ict": IC, "nict": NC, "ist": IS, "nist": NS}
# The timers each state must have armed, and no others.
TIMERS_BY_STATE: dict[enum.Enum, set[str]] = {
    IC.CREATED: set(), IC.CALLING: {"B"}, IC.PROCEEDING: set(), IC.ACCEPTED: {"M"},
    IC.TERMINATED: set(),
    NC.CREATED: set(), NC.TRYING: {"F"}, NC.PROCEEDING: {"F"}, NC.TERMINATED: set(),
    IS.PROCEEDING: set(), IS.COMPLETED: {"H"}, IS.ACCEPTED: {"L"}, IS.TERMINATED: set(),
    NS.TRYING: set(), NS.PROCEEDING: set(), NS.TERMINATED: set(),
}
# Every class equally likely (1xx to 6xx), any code within it.
statuses = st.builds(lambda kind, code: 100 * kind + code, st.integers(1, 6), st.integers(0, 99))


def request(method: str, *, incoming: bool) -> Request:
    via = ("SIP/2.0/WSS edge.example.com:443" if incoming else "SIP/2.0/WSS h7x.invalid")
    text = (f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: {via};branch={new_branch()};rport\r\n"
            "Route: <sip:edge.example.com;lr>\r\n"
            "Max-Forwards: 70\r\n"
            "To: <sip:bob@example.com>\r\n"
            "From: <sip:alice@example.com>;tag=a1\r\n"
            f"Call-ID: {new_branch()}\r\n"
            f"CSeq: 7 {method}\r\n"
            "Content-Length: 0\r\n\r\n")
    message = parse(text)
    assert isinstance(message, Request)
    return message


def response_to(req: Request, status: int, tag: str) -> Response:
    to = req.headers.get("To") or ""
    if status > 100:
        to += f";tag={tag}"
    text = (f"SIP/2.0 {status} Something\r\n"
            f"Via: {req.headers.get('Via')}\r\n"
            f"From: {req.headers.get('From')}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {req.headers.get('Call-ID')}\r\n"
            f"CSeq: {req.headers.get('CSeq')}\r\n"
            "Content-Length: 0\r\n\r\n")
    message = parse(text)
    assert isinstance(message, Response)
    return message


@dataclass
class Slot:
    """One transaction under test, its driver, and what the test itself sent it."""

    kind: str
    transaction: Transaction
    driver: Driver
    received: list[Response] = field(default_factory=list)  # responses fed to a client


def outcome_ok(slot: Slot) -> None:
    """A client transaction's TU sees one outcome (several 2xx only from an ICT)."""
    finals = [e.response for e in slot.driver.of(TransactionResponse)
              if e.response.status_code >= 200]
    failures = slot.driver.of(TransactionFailed)
    successes = [r for r in finals if r.is_success]
    others = [r for r in finals if not r.is_success]
    assert len(failures) <= 1, failures
    if failures:
        # the failure comes with its synthesized response, and nothing else final
        assert [r.status_code for r in finals] == [failures[0].status]
        assert failures[0].status in (408, 503)
        assert finals[0] not in slot.received
    else:
        assert len(others) <= 1, others
        assert not (others and successes), finals
    if slot.kind == "nict":
        assert len(finals) <= 1, finals
    if slot.transaction.terminated:
        assert finals, "a client transaction ended without telling its TU"


class TransactionMachines(RuleBasedStateMachine):
    slots: dict[str, Slot]
    now: float

    @initialize()
    def setup(self) -> None:
        self.now = 0.0
        self.slots = {}
        for kind in KINDS:
            self.renew(kind, 0.5, True)

    def _make(self, kind: str, t1: float, trying: bool) -> Transaction:
        if kind == "ict":
            return InviteClientTransaction(request("INVITE", incoming=False), t1=t1)
        if kind == "nict":
            return NonInviteClientTransaction(request("OPTIONS", incoming=False), t1=t1)
        if kind == "ist":
            return InviteServerTransaction(request("INVITE", incoming=True), t1=t1,
                                           trying=trying)
        return NonInviteServerTransaction(request("MESSAGE", incoming=True), t1=t1)

    @rule(kind=st.sampled_from(KINDS), t1=st.sampled_from([0.25, 0.5, 2.0]),
          eager=st.booleans())
    def renew(self, kind: str, t1: float, eager: bool) -> None:
        """Put a fresh transaction of this kind in place of the old one (which the test drops,
        as a UA drops a terminated one).  ``eager``: a client is started at once, an IST sends
        100 Trying."""
        transaction = self._make(kind, t1, eager)
        driver = Driver(transaction, transaction.timer_fired)
        driver.now = self.now
        slot = self.slots[kind] = Slot(kind, transaction, driver)
        effects = driver.run()
        if isinstance(transaction, ServerTransaction):
            assert driver.of(RequestReceived) == [
                RequestReceived(transaction=transaction.id, request=transaction.request)]
        assert not any(isinstance(e, Emit) and isinstance(e.event, TransactionTerminated)
                       for e in effects)
        if eager and isinstance(transaction, ClientTransaction):
            self.step(slot, transaction.start)

    # -- applying inputs ------------------------------------------------------------------------

    def step(self, slot: Slot, call: object, *args: object) -> list[Effect]:
        was_terminated = slot.transaction.terminated
        effects = slot.driver(call, *args)  # type: ignore[arg-type]
        self.check(slot, was_terminated, effects)
        if was_terminated:
            # It ignored this input (checked); a fresh one keeps the run interesting.
            self.renew(slot.kind, slot.transaction.t1, True)
        return effects

    def check(self, slot: Slot, was_terminated: bool, effects: Sequence[Effect]) -> None:
        transaction = slot.transaction
        ended = [e for e in effects if isinstance(e, Emit)
                 and isinstance(e.event, TransactionTerminated)]
        if was_terminated:
            assert list(effects) == [], "a terminated transaction acted"
            assert transaction.terminated
        elif transaction.terminated:
            assert ended == [Emit(TransactionTerminated(transaction=transaction.id,
                                                        kind=slot.kind))]
            assert effects[-1] is ended[0], "TransactionTerminated must come last"
        else:
            assert ended == []

    # -- client inputs ------------------------------------------------------------------------

    @rule(kind=st.sampled_from(CLIENTS))
    def start(self, kind: str) -> None:
        slot = self.slots[kind]
        transaction = slot.transaction
        assert isinstance(transaction, ClientTransaction)
        created = transaction.state in (IC.CREATED, NC.CREATED)
        try:
            self.step(slot, transaction.start)
        except InvalidStateError:
            assert not created and not transaction.terminated
        else:
            assert created or transaction.terminated

    @rule(kind=st.sampled_from(CLIENTS), status=statuses, tag=st.sampled_from(["t1", "t2"]),
          again=st.booleans())
    def response(self, kind: str, status: int, tag: str, again: bool) -> None:
        slot = self.slots[kind]
        transaction = slot.transaction
        assert isinstance(transaction, ClientTransaction)
        if again and slot.received:
            response = slot.received[-1]  # a retransmission
        else:
            response = response_to(transaction.request, status, tag)
        slot.received.append(response)
        self.step(slot, transaction.response_received, response)

    @rule()
    def abandon(self) -> None:
        slot = self.slots["ict"]
        assert isinstance(slot.transaction, InviteClientTransaction)
        self.step(slot, slot.transaction.abandon)

    # -- server inputs --------------------------------------------------------------------------

    @rule(kind=st.sampled_from(SERVERS), status=statuses, tag=st.sampled_from(["s1", "s2"]))
    def respond(self, kind: str, status: int, tag: str) -> None:
        slot = self.slots[kind]
        transaction = slot.transaction
        assert isinstance(transaction, ServerTransaction)
        state = transaction.state
        allowed = not (state is IS.COMPLETED or (state is IS.ACCEPTED and not 200 <= status < 300))
        response = response_to(transaction.request, status, tag)
        try:
            effects = self.step(slot, transaction.respond, response)
        except InvalidStateError:
            assert not allowed
            assert transaction.state is state and transaction.take_effects() == []
        else:
            assert allowed
            if state.name != "TERMINATED":
                assert [e for e in effects if isinstance(e, Transmit)] == [Transmit(response)]

    @rule(kind=st.sampled_from(SERVERS))
    def retransmitted_request(self, kind: str) -> None:
        slot = self.slots[kind]
        transaction = slot.transaction
        assert isinstance(transaction, ServerTransaction)
        state, last = transaction.state, transaction.last_response
        effects = self.step(slot, transaction.request_received, transaction.request)
        if state in (IS.PROCEEDING, IS.COMPLETED, NS.PROCEEDING) and last is not None:
            assert effects == [Transmit(last)]  # the last response again
        else:
            assert effects == []  # absorbed
        assert len(slot.driver.of(RequestReceived)) == 1

    @rule()
    def ack(self) -> None:
        slot = self.slots["ist"]
        transaction = slot.transaction
        assert isinstance(transaction, InviteServerTransaction)
        state = transaction.state
        last = transaction.last_response or response_to(transaction.request, 486, "x")
        was_terminated = transaction.terminated
        absorbed = transaction.ack_received(build_ack(transaction.request, last), self.now)
        self.check(slot, was_terminated, slot.driver.run())
        assert absorbed == (state is IS.COMPLETED)
        if absorbed:
            assert transaction.terminated and len(slot.driver.of(AckReceived)) == 1

    # -- either side ---------------------------------------------------------------------------

    @rule(kind=st.sampled_from(KINDS))
    def transport_error(self, kind: str) -> None:
        slot = self.slots[kind]
        self.step(slot, slot.transaction.transport_error)

    @rule(kind=st.sampled_from(KINDS), name=st.sampled_from(TIMER_NAMES))
    def late_timer(self, kind: str, name: str) -> None:
        """A timer that is not armed (cancelled, but the adapter fired it anyway)."""
        slot = self.slots[kind]
        if name in slot.driver.timers:
            return
        assert self.step(slot, slot.transaction.timer_fired, name) == []

    @rule(seconds=st.sampled_from([0.5, 1, 8, 16, 31.9, 32, 64, 200]))
    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [(at, kind, name) for kind, slot in self.slots.items()
                   for name, at in slot.driver.timers.items() if at <= end]
            if not due:
                break
            at, kind, name = min(due)
            slot = self.slots[kind]
            del slot.driver.timers[name]
            self.now = at
            for other in self.slots.values():
                other.driver.now = at
            self.step(slot, slot.transaction.timer_fired, name)
        self.now = end
        for slot in self.slots.values():
            slot.driver.now = end

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def states_are_members(self) -> None:
        for kind, slot in getattr(self, "slots", {}).items():
            assert isinstance(slot.transaction.state, STATES[kind])
            assert slot.transaction.state in list(STATES[kind])

    @invariant()
    def timers_fit_the_state(self) -> None:
        for slot in getattr(self, "slots", {}).values():
            transaction = slot.transaction
            assert set(slot.driver.timers) == set(transaction.armed)
            assert set(transaction.armed) == TIMERS_BY_STATE[transaction.state]
            if transaction.terminated:
                assert slot.driver.timers == {}

    @invariant()
    def terminated_once_and_only_then(self) -> None:
        for slot in getattr(self, "slots", {}).values():
            ended = slot.driver.of(TransactionTerminated)
            assert len(ended) == (1 if slot.transaction.terminated else 0)

    @invariant()
    def one_outcome_per_client(self) -> None:
        for kind in CLIENTS:
            slot = getattr(self, "slots", {}).get(kind)
            if slot is not None:
                outcome_ok(slot)

    @invariant()
    def servers_fail_at_most_once(self) -> None:
        for kind in SERVERS:
            slot = getattr(self, "slots", {}).get(kind)
            if slot is not None:
                assert len(slot.driver.of(TransactionFailed)) <= 1
                assert len(slot.driver.of(AckReceived)) <= 1


TransactionMachines.TestCase.settings = settings(stateful_step_count=60, deadline=None)
test_transaction_machines = TransactionMachines.TestCase
