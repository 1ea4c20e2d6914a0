"""The dialog machine: the peer-to-peer relationship an INVITE creates (RFC 3261 §12).

Theory of operation
-------------------
A dialog is identified by the Call-ID and the two tags, and holds what every request inside it
needs: the route set (from Record-Route, reversed on the UAC side, §12.1.2), the remote target
(the peer's Contact, refreshed by target-refresh requests, §12.2), and the two CSeq counters.
It starts *early* (a provisional response with a To tag) or *confirmed* (a 2xx), becomes
confirmed on the 2xx, and ends terminated.

:meth:`Dialog.request` writes an in-dialog request (§12.2.1.1); :meth:`Dialog.received` checks an
incoming one: a CSeq lower than the last one is answered 500 (§12.2.2), a terminated dialog
answers 481; :meth:`Dialog.refresh_target` takes the Contact of an accepted re-INVITE, UPDATE or
NOTIFY as the new remote target.
Replaces (:mod:`sipfsm.ua`), REFER (:mod:`sipfsm.refer`) and subscriptions build on it.
"""

from __future__ import annotations

import enum
from typing import Any

from ..sip.headers import NameAddr
from ..sip.message import Request, Response
from ..sip.uri import URI
from .base import Model, TransitionLog, define

__all__ = ["Dialog", "DialogState"]


class DialogState(enum.Enum):
    """Where the dialog is."""

    EARLY = "early"
    """Created by a provisional response with a To tag."""
    CONFIRMED = "confirmed"
    """Created or confirmed by a 2xx."""
    TERMINATED = "terminated"
    """Ended: requests for it are answered 481."""


D = DialogState

TABLE: list[dict[str, Any]] = [
    {"trigger": "confirm", "source": D.EARLY, "dest": D.CONFIRMED},
    {"trigger": "terminate", "source": [D.EARLY, D.CONFIRMED], "dest": D.TERMINATED},
]
"""The dialog machine."""


class Dialog(Model):
    """One dialog's state (sans-I/O)."""

    __slots__ = ("call_id", "local_cseq", "local_tag", "local_uri", "remote_cseq", "remote_tag",
                 "remote_target", "remote_uri", "route_set")

    state: DialogState

    def __init__(self, *, call_id: str, local_tag: str, remote_tag: str, local_uri: str,
                 remote_uri: str, remote_target: URI, route_set: list[str], local_cseq: int,
                 remote_cseq: int | None, confirmed: bool, log: TransitionLog | None = None
                 ) -> None:
        super().__init__(f"{call_id};{local_tag};{remote_tag}", log)
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        if confirmed:
            self.state = D.CONFIRMED

    @property
    def key(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag): how incoming requests find the dialog."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uac(cls, invite: Request, response: Response, *,
               log: TransitionLog | None = None) -> Dialog:
        """The dialog a response with a To tag creates for the caller (§12.1.2)."""
        to, from_, cseq = response.to, invite.from_, invite.cseq
        assert to is not None and to.tag and from_ is not None and from_.tag and cseq
        contacts = response.contact
        target = contacts[0].uri if contacts else invite.uri
        return cls(call_id=invite.call_id or "", local_tag=from_.tag, remote_tag=to.tag,
                   local_uri=_bare(invite.headers.get("From") or ""),
                   remote_uri=_bare(response.headers.get("To") or ""),
                   remote_target=target,
                   route_set=[str(r) for r in reversed(response.record_route)],
                   local_cseq=cseq.seq, remote_cseq=None,
                   confirmed=200 <= response.status_code < 300, log=log)

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, *, confirmed: bool = False,
               log: TransitionLog | None = None) -> Dialog:
        """The dialog the callee creates when it answers with a To tag (§12.1.1)."""
        from_, cseq = invite.from_, invite.cseq
        assert from_ is not None and from_.tag is not None and cseq is not None
        contacts = invite.contact
        target = contacts[0].uri if contacts else invite.uri
        return cls(call_id=invite.call_id or "", local_tag=local_tag, remote_tag=from_.tag,
                   local_uri=_bare(invite.headers.get("To") or ""),
                   remote_uri=_bare(invite.headers.get("From") or ""),
                   remote_target=target, route_set=[str(r) for r in invite.record_route],
                   local_cseq=0, remote_cseq=cseq.seq, confirmed=confirmed, log=log)

    # -- inputs ------------------------------------------------------------------------------------

    def confirm(self) -> None:
        """A 2xx (or its ACK) confirms an early dialog."""
        self._fire("confirm")

    def terminate(self) -> None:
        """The dialog ends (BYE, a failure, a CANCEL)."""
        self._fire("terminate")

    def received(self, request: Request) -> int | None:
        """Check an in-dialog request: the status to answer it with, or ``None`` (§12.2.2)."""
        if self.state is D.TERMINATED:
            return 481
        cseq = request.cseq
        assert cseq is not None
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_cseq is not None and cseq.seq < self.remote_cseq:
                return 500
            self.remote_cseq = cseq.seq
        return None

    def refresh_target(self, request: Request) -> None:
        """A target-refresh request (re-INVITE, UPDATE, NOTIFY) was accepted with a 2xx: its
        Contact is the peer's target from now on (RFC 3261 §12.2.2 as RFC 6141 §3.3 amends
        it — a refused request changes nothing)."""
        contacts = request.contact
        if contacts and request.method in ("INVITE", "UPDATE", "NOTIFY"):
            self.remote_target = contacts[0].uri

    def request(self, method: str, *, via: str, cseq: int | None = None,
                extra_headers: list[tuple[str, str]] | None = None,
                body: bytes | str = b"", content_type: str | None = None) -> Request:
        """An in-dialog request (§12.2.1.1).  ``cseq`` is given for ACK (the INVITE's number)
        and CANCEL; anything else takes the next local CSeq."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        request = Request(method, self.remote_target)
        headers = request.headers
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("Via", via)
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{self.local_uri};tag={self.local_tag}")
        headers.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        for name, value in extra_headers or ():
            headers.add(name, value)
        request.set_body(body, content_type if body else None)
        return request


def _bare(value: str) -> str:
    """A From/To value without its tag parameter (the dialog writes the tags itself)."""
    from ..sip.headers import parse_name_addr

    addr, _ = parse_name_addr(value, 0, "From/To")
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return str(NameAddr(addr.uri, addr.display_name, params))


Dialog.SPEC = define("dialog", DialogState, TABLE, D.EARLY)
