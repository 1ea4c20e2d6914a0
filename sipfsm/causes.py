"""Why something ended: SIP.js 0.10's cause names (``SIP.C.causes``), as a ``StrEnum``.

``Cause.BYE`` is our addition (decision 9: a remote BYE ends a session with a defined cause;
SIP.js 0.10 gave ``null``).  :func:`cause_for_status` maps a failure status to its cause the way
SIP.js's ``Utils.sipErrorCause`` did.
"""

from __future__ import annotations

import enum

__all__ = ["Cause", "cause_for_status"]


class Cause(enum.StrEnum):
    """The reason attached to ``failed``, ``rejected``, ``terminated``, ``unregistered``…"""

    CONNECTION_ERROR = "Connection Error"
    REQUEST_TIMEOUT = "Request Timeout"
    SIP_FAILURE_CODE = "SIP Failure Code"
    INTERNAL_ERROR = "Internal Error"
    BUSY = "Busy"
    REJECTED = "Rejected"
    REDIRECTED = "Redirected"
    UNAVAILABLE = "Unavailable"
    NOT_FOUND = "Not Found"
    ADDRESS_INCOMPLETE = "Address Incomplete"
    INCOMPATIBLE_SDP = "Incompatible SDP"
    AUTHENTICATION_ERROR = "Authentication Error"
    DIALOG_ERROR = "Dialog Error"
    WEBRTC_NOT_SUPPORTED = "WebRTC Not Supported"
    WEBRTC_ERROR = "WebRTC Error"
    CANCELED = "Canceled"
    NO_ANSWER = "No Answer"
    EXPIRES = "Expires"
    NO_ACK = "No ACK"
    NO_PRACK = "No PRACK"
    USER_DENIED_MEDIA_ACCESS = "User Denied Media Access"
    BAD_MEDIA_DESCRIPTION = "Bad Media Description"
    RTP_TIMEOUT = "RTP Timeout"
    BYE = "Terminated"


_BY_STATUS: dict[int, Cause] = {
    **dict.fromkeys((300, 301, 302, 305, 380), Cause.REDIRECTED),
    **dict.fromkeys((486, 600), Cause.BUSY),
    **dict.fromkeys((403, 603), Cause.REJECTED),
    **dict.fromkeys((404, 604), Cause.NOT_FOUND),
    **dict.fromkeys((480, 410, 408, 430), Cause.UNAVAILABLE),
    **dict.fromkeys((484, 424), Cause.ADDRESS_INCOMPLETE),
    **dict.fromkeys((488, 606), Cause.INCOMPATIBLE_SDP),
    **dict.fromkeys((401, 407), Cause.AUTHENTICATION_ERROR),
}


def cause_for_status(status: int) -> Cause:
    """The cause of a final failure response with ``status`` (``SIP Failure Code`` if none)."""
    return _BY_STATUS.get(status, Cause.SIP_FAILURE_CODE)
