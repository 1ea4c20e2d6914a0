"""What a UAS checks before it acts on a request, and a UAC before it accepts a response.

:func:`check_request` runs the stateless checks of RFC 3261 §8.2 (method, headers, Require,
content) on a parsed request and returns the :class:`Rejection` to answer with, or ``None``.
Checks that need the UA's state (loop and merged-request detection §8.2.2.2, "is this Request-URI
ours") belong to the UA and are not here.  :func:`check_response` applies §8.1.3.3.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ..errors import ParseError
from .message import Request, Response

__all__ = [
    "DEFAULT_ACCEPTED_CONTENT",
    "DEFAULT_METHODS",
    "KNOWN_METHODS",
    "Rejection",
    "check_request",
    "check_response",
]

KNOWN_METHODS = frozenset({
    "ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK", "PUBLISH",
    "REFER", "REGISTER", "SUBSCRIBE", "UPDATE",
})
"""Every method registered with IANA: anything else is unknown, and answered 501."""

DEFAULT_METHODS = ("ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS",
                   "PRACK", "REFER", "SUBSCRIBE", "UPDATE")
"""The methods a sipfsm UA accepts, in the order written in ``Allow``."""

DEFAULT_ACCEPTED_CONTENT: Mapping[str, Collection[str]] = {
    "INVITE": ("application/sdp",),
    "ACK": ("application/sdp",),
    "PRACK": ("application/sdp",),
    "UPDATE": ("application/sdp",),
}
"""Methods whose body a UA must understand, and the types it understands (else 415)."""

# Headers that RFC 3261 §7.3.1 allows only once, because they are not comma lists.
_SINGLETONS = ("call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type")
_MANDATORY = (("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"),
              ("cseq", "CSeq"))
_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 406: "Not Acceptable",
            415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
            501: "Not Implemented", 505: "Version Not Supported"}


@dataclass(frozen=True, slots=True)
class Rejection:
    """The final response a UAS should send: status, reason phrase and extra header lines."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def of(cls, status: int, detail: str = "", *headers: tuple[str, str]) -> Rejection:
        """A rejection with the standard reason phrase, plus ``detail`` when given."""
        phrase = _REASONS.get(status, "Bad Request")
        return cls(status, f"{phrase} ({detail})" if detail else phrase, tuple(headers))


def check_request(
    request: Request,
    *,
    allowed_methods: Collection[str] = DEFAULT_METHODS,
    supported: Collection[str] = (),
    uri_schemes: Collection[str] = ("sip", "sips"),
    accepted_content: Mapping[str, Collection[str]] = DEFAULT_ACCEPTED_CONTENT,
) -> Rejection | None:
    """The response a UAS should reject ``request`` with, or ``None`` if it may proceed.

    ``supported`` lists the option tags the UA implements (for Require, §8.2.2.3);
    ``uri_schemes`` the Request-URI schemes it serves (§8.2.2.1).
    """
    method = request.method
    # §8.2.1: the method first.  501 for a method nobody registered, 405 for one we do not do.
    if method not in allowed_methods:
        if method not in KNOWN_METHODS:
            return Rejection.of(501)
        return Rejection.of(405, "", ("Allow", ", ".join(allowed_methods)))
    fault = _header_fault(request)
    if fault is not None:
        return Rejection.of(400, fault)
    if request.uri.scheme not in uri_schemes:
        return Rejection.of(416)
    if method == "REGISTER":
        to = request.to
        if to is None or not to.uri.is_sip:  # §10.3 step 5: an AoR is a SIP or SIPS URI
            return Rejection.of(400, "To is not a SIP URI")
    if method not in ("ACK", "CANCEL"):
        unknown = [tag for tag in request.require if tag not in supported]
        if unknown:
            return Rejection.of(420, "", ("Unsupported", ", ".join(unknown)))
    return _content_fault(request, accepted_content)


def _header_fault(request: Request) -> str | None:
    headers = request.headers
    keys = headers.keys()
    for key, name in _MANDATORY:
        if key not in keys:
            return f"missing {name} header"
    for key in _SINGLETONS:
        if keys.count(key) > 1:
            return f"more than one {key} header"
    try:
        request.parse_all()
        request.uri  # noqa: B018 - parsing the Request-URI is the check
    except ParseError as exc:
        return str(exc)
    top = request.top_via
    if top is not None and top.branch is not None and top.branch == "z9hG4bK":
        return "the Via branch is only the magic cookie"
    return None


def _content_fault(
    request: Request, accepted_content: Mapping[str, Collection[str]]
) -> Rejection | None:
    accepted = accepted_content.get(request.method)
    if accepted is None:
        return None
    content_type = request.content_type
    if request.body and content_type is not None and content_type.mime not in accepted:
        return Rejection.of(415, "", ("Accept", ", ".join(accepted)))
    if request.method == "INVITE":
        # §8.2.3 / §21.4.7: the answer we would send must be of a type the caller accepts.
        acceptable = request.headers.get_all("accept")
        if acceptable:
            offered = {item.split(";")[0].strip().lower() for v in acceptable for item in
                       v.split(",")}
            wanted = set(accepted) | {"*/*", "application/*"}
            if offered and not offered & wanted and offered != {""}:
                return Rejection.of(406, "", ("Accept", ", ".join(accepted)))
    return None


def check_response(response: Response) -> str | None:
    """Why a UAC must discard ``response`` (RFC 3261 §8.1.3.3), or ``None`` if it may use it."""
    try:
        response.parse_all()
    except ParseError as exc:
        return str(exc)
    for key, name in _MANDATORY:
        if key not in response.headers:
            return f"missing {name} header"
    if len(response.via) != 1:
        return "a response reaching its UAC must have exactly one Via"
    return None
