"""The registration machine with a fake clock: every path of its table."""

# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import random

import pytest
from harness import Driver

from sipfsm.causes import Cause
from sipfsm.events import Registered, RegistrationFailed, Unregistered
from sipfsm.fsm.base import Command
from sipfsm.fsm.registration import Registration, RegistrationState, granted_expires
from sipfsm.sip import Response, parse, parse_uri

S = RegistrationState
CONTACT = parse_uri("sip:k3j2@abc.invalid;transport=ws")
INSTANCE = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"


def reply(status: int, *headers: str) -> Response:
    text = f"SIP/2.0 {status} X\r\nCSeq: 1 REGISTER\r\n" + "".join(h + "\r\n" for h in headers)
    message = parse(text + "\r\n")
    assert isinstance(message, Response)
    return message


def ok(expires: int | None = 600, *, other: bool = False, header: int | None = None,
       gruu: bool = False) -> Response:
    binding = f"<{CONTACT}>;reg-id=1;+sip.instance=\"<urn:uuid:{INSTANCE}>\""
    if expires is not None:
        binding += f";expires={expires}"
    if gruu:
        binding += (';pub-gruu="sip:alice@example.test;gr=urn:uuid:1";'
                    'temp-gruu="sip:t1@example.test;gr"')
    headers = ["Contact: <sip:other@x.invalid>;expires=99"] if other else []
    headers.append(f"Contact: {binding}")
    if header is not None:
        headers.append(f"Expires: {header}")
    return reply(200, *headers)


def make(expires: int = 600) -> tuple[Registration, Driver]:
    registration = Registration(expires=expires, contact=CONTACT, instance=INSTANCE,
                                refresh_delay=lambda e, u: e / 2, rng=random.Random(3))
    return registration, Driver(registration, registration.timer_fired)


def sends(driver: Driver) -> list[dict[str, object]]:
    return [dict(e.args) for e in driver.log if isinstance(e, Command)
            and e.name == "send_register"]


def test_register_refresh_expire() -> None:
    reg, driver = make()
    driver(reg.register)
    assert reg.state is S.REGISTERING and sends(driver) == [{"expires": 600, "star": False}]
    driver(reg.register)  # one REGISTER in flight: a no-op
    assert len(sends(driver)) == 1
    driver(reg.response, ok(600))
    assert reg.state is S.REGISTERED and reg.registered
    (event,) = driver.of(Registered)
    assert (event.expires, event.refresh) == (600, False)
    assert driver.timers == {"refresh": 300, "expire": 600}
    driver.advance(300)
    assert reg.state is S.REFRESHING and len(sends(driver)) == 2 and reg.registered
    driver(reg.response, ok(600))
    assert driver.of(Registered)[-1].refresh is True
    assert driver.timers == {"refresh": 600, "expire": 900}


def test_expiry_without_refresh() -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.response, ok(100))
    driver.timers.pop("refresh")  # pretend the refresh never fires
    driver.advance(100)
    assert reg.state is S.UNREGISTERED and not reg.registered
    assert driver.of(Unregistered) == [Unregistered(response=None, cause=Cause.EXPIRES)]


def test_expiry_while_refreshing_is_not_registered() -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.response, ok(100))
    driver.advance(50)
    assert reg.state is S.REFRESHING
    driver.advance(50)
    assert reg.state is S.REGISTERING and not reg.registered
    driver(reg.response, ok(100))
    assert reg.state is S.REGISTERED and driver.of(Registered)[-1].refresh is False


def test_granted_lifetime_sources() -> None:
    assert granted_expires(ok(120, other=True), CONTACT, INSTANCE, 1, 600) == 120
    assert granted_expires(ok(None, header=90), CONTACT, INSTANCE, 1, 600) == 90
    assert granted_expires(reply(200), CONTACT, INSTANCE, 1, 600) == 600
    assert granted_expires(reply(200, "Contact: <sip:x@y.invalid>;expires=5"), CONTACT,
                           INSTANCE, 1, 600) == 0
    by_uri = reply(200, f"Contact: <{CONTACT}>;expires=77")
    assert granted_expires(by_uri, CONTACT, INSTANCE, 1, 600) == 77


def test_a_2xx_without_our_binding_fails() -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.response, reply(200, "Contact: <sip:x@y.invalid>;expires=5"))
    assert reg.state is S.UNREGISTERED
    assert driver.of(RegistrationFailed)[0].cause is Cause.SIP_FAILURE_CODE


def test_423_adopts_min_expires_and_retries_at_once() -> None:
    reg, driver = make(expires=30)
    driver(reg.register)
    driver(reg.response, reply(423, "Min-Expires: 3600"))
    assert reg.state is S.REGISTERING
    assert sends(driver)[-1] == {"expires": 3600, "star": False}
    driver(reg.response, reply(423))  # no usable Min-Expires: a failure
    assert reg.state is S.UNREGISTERED
    assert driver.of(RegistrationFailed)[-1].cause is Cause.SIP_FAILURE_CODE


@pytest.mark.parametrize(("status", "cause"), [(401, Cause.AUTHENTICATION_ERROR),
                                               (403, Cause.REJECTED), (503,
                                                                       Cause.SIP_FAILURE_CODE)])
def test_failures(status: int, cause: Cause) -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.response, reply(status))
    assert reg.state is S.UNREGISTERED and driver.timers == {}
    (failed,) = driver.of(RegistrationFailed)
    assert failed.cause is cause and failed.response is not None


def test_timeout_and_failed_refresh_keeps_counting_until_expiry() -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.failed, Cause.REQUEST_TIMEOUT)
    assert reg.state is S.UNREGISTERED
    assert driver.of(RegistrationFailed)[-1] == RegistrationFailed(
        response=None, cause=Cause.REQUEST_TIMEOUT)
    driver(reg.register)
    driver(reg.response, ok(100))
    driver.advance(50)
    driver(reg.response, reply(500))  # the refresh fails
    assert reg.state is S.REGISTERED and reg.registered
    assert driver.timers["refresh"] == pytest.approx(75) and driver.timers["expire"] == 100
    driver.advance(25)
    driver(reg.response, reply(500))  # fails again: retry halfway to the expiry (87.5)
    driver.advance(12.5)
    assert reg.state is S.REFRESHING
    driver.advance(12.5)  # expiry with the retry still in flight
    assert reg.state is S.REGISTERING and not reg.registered
    assert driver.of(Unregistered)[-1].cause is Cause.EXPIRES
    driver(reg.response, reply(500))
    assert reg.state is S.UNREGISTERED
    driver(reg.response, ok(100))  # stale news: nothing in flight
    assert reg.state is S.UNREGISTERED


def test_unregister_and_unregister_all() -> None:
    reg, driver = make()
    driver(reg.unregister)  # nothing to remove
    assert reg.state is S.UNREGISTERED and sends(driver) == []
    driver(reg.register)
    driver(reg.response, ok())
    driver(reg.unregister)
    assert reg.state is S.UNREGISTERING and sends(driver)[-1] == {"expires": 0, "star": False}
    assert driver.timers == {}
    driver(reg.response, reply(200))
    assert reg.state is S.UNREGISTERED
    assert driver.of(Unregistered)[-1].cause is None
    driver(lambda now: reg.unregister(now, all=True))
    assert sends(driver)[-1] == {"expires": 0, "star": True}
    driver(reg.response, reply(500))
    assert reg.state is S.UNREGISTERED and driver.of(Unregistered)[-1].response is not None


def test_requests_while_one_is_in_flight_are_sent_after_it() -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.unregister)
    assert len(sends(driver)) == 1
    driver(reg.response, ok())
    assert Command("follow_up", {"input": "unregister"}) in driver.log
    driver(reg.unregister)
    driver(reg.register)  # while unregistering
    driver(reg.response, reply(200))
    assert driver.log[-1] == Command("follow_up", {"input": "register"})


def test_transport_lost() -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.transport_lost)
    assert driver.of(RegistrationFailed)[-1].cause is Cause.CONNECTION_ERROR
    driver(reg.register)
    driver(reg.response, ok())
    driver(reg.transport_lost)
    assert reg.state is S.UNREGISTERED and driver.timers == {}
    assert driver.of(Unregistered)[-1] == Unregistered(response=None,
                                                       cause=Cause.CONNECTION_ERROR)
    driver(reg.failed, Cause.CONNECTION_ERROR)  # the transaction's own failure comes later
    assert reg.state is S.UNREGISTERED
    driver(reg.register)
    driver(reg.unregister)
    driver(reg.response, ok())
    driver(reg.unregister)
    driver(reg.transport_lost)
    assert driver.of(Unregistered)[-1].cause is Cause.CONNECTION_ERROR


def test_gruus_are_reported() -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.response, ok(gruu=True))
    (event,) = driver.of(Registered)
    assert str(event.pub_gruu) == "sip:alice@example.test;gr=urn:uuid:1"
    assert event.temp_gruu is not None and event.temp_gruu.user == "t1"


def test_an_unregister_answered_423_still_ends_the_binding() -> None:
    reg, driver = make()
    driver(reg.register)
    driver(reg.response, ok())
    driver(reg.unregister)
    driver(reg.response, reply(423, "Min-Expires: 7200"))
    assert reg.state is S.UNREGISTERED and driver.of(Unregistered)[-1].response is not None


def test_423_on_a_refresh_retries_with_min_expires() -> None:
    reg, driver = make(expires=100)
    driver(reg.register)
    driver(reg.response, ok(100))
    driver.advance(50)
    assert reg.state is S.REFRESHING
    driver(reg.response, reply(423, "Min-Expires: 300"))
    assert reg.state is S.REFRESHING and reg.registered
    assert sends(driver)[-1] == {"expires": 300, "star": False}
    driver(reg.response, ok(300))
    assert reg.state is S.REGISTERED and driver.of(Registered)[-1].expires == 300


def test_transport_lost_during_a_refresh() -> None:
    reg, driver = make(expires=100)
    driver(reg.register)
    driver(reg.response, ok(100))
    driver.advance(50)
    assert reg.state is S.REFRESHING
    driver(reg.transport_lost)
    assert reg.state is S.UNREGISTERED and driver.timers == {}
    assert driver.of(Unregistered)[-1].cause is Cause.CONNECTION_ERROR


def test_register_while_registered_refreshes_now_and_unregister_waits_for_it() -> None:
    reg, driver = make(expires=600)
    driver(reg.register)
    driver(reg.response, ok(600))
    driver(reg.register)  # an explicit register() while registered: refresh at once
    assert reg.state is S.REFRESHING and len(sends(driver)) == 2
    driver(reg.unregister)  # one REGISTER in flight: the un-REGISTER waits for it
    assert reg.state is S.REFRESHING and len(sends(driver)) == 2
    driver(reg.response, ok(600))
    assert driver.log[-1] == Command("follow_up", {"input": "unregister"})
