"""Who the UA is on the wire, and the requests it writes (RFC 3261 §8.1.1, RFC 7118 §5).

:class:`Identity` holds the UA's addresses: its address-of-record, the random Contact user and
the Via/Contact host (a random ``.invalid`` name, or the ``hack_ip_in_contact`` address), and any
GRUUs the registrar gave it.  :class:`RequestFactory` writes out-of-dialog requests from the
configuration: header order as SIP.js wrote them (§1.3 of the reference), the display name
escaped as a quoted-string (decision 11), ``;transport=ws`` (or ``wss`` with
``hack_wss_in_transport``) in the Contact, ``SIP/2.0/WS(S)`` (or ``TCP`` with ``hack_via_tcp``)
in the Via, and the preloaded Route with ``use_preloaded_route``.
"""

from __future__ import annotations

import random
import secrets
import string
from collections.abc import Iterable

from .config import Supported, UAConfig
from .errors import ParseError
from .sip.check import DEFAULT_METHODS
from .sip.grammar import escape_quoted
from .sip.message import Request
from .sip.uri import URI, parse_uri

__all__ = ["Identity", "RequestFactory", "new_tag", "normalize_target"]

_ALPHABET = string.ascii_lowercase + string.digits


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_tag() -> str:
    """A From/To tag: 10 random characters (≥ 32 random bits, RFC 3261 §19.3)."""
    return _random(10)


def new_call_id() -> str:
    """A Call-ID: 22 random characters (RFC 3261 §8.1.1.4)."""
    return _random(22)


class Identity:
    """The UA's own addresses, fixed for its lifetime (GRUUs aside)."""

    __slots__ = ("aor", "contact_user", "pub_gruu", "temp_gruu", "via_host")

    def __init__(self, config: UAConfig, rng: random.Random | None = None) -> None:
        self.aor: URI = config.uri
        self.contact_user = _random(8)
        hack = config.hack_ip_in_contact
        if hack is True:
            self.via_host = f"192.0.2.{(rng or random.SystemRandom()).randint(1, 254)}"
        elif isinstance(hack, str):
            self.via_host = hack
        else:
            self.via_host = f"{_random(12)}.invalid"
        self.pub_gruu: URI | None = None
        self.temp_gruu: URI | None = None

    def is_ours(self, uri: URI) -> bool:
        """Whether a Request-URI addresses this UA: its AoR user, its Contact user, or the user
        of one of its GRUUs (SIP.js compared users only; a GRUU is compared whole)."""
        if uri.user is not None and uri.user in (self.aor.user, self.contact_user):
            return True
        return any(gruu is not None and uri.replace(params={k: v for k, v in uri.params.items()
                                                            if k == "gr"}) == gruu
                   for gruu in (self.pub_gruu, self.temp_gruu))


def normalize_target(target: str | URI, home: URI) -> URI:
    """The URI a call or message to ``target`` goes to (SIP.js's ``normalizeTarget``).

    A bare user gets the host and port of ``home`` (the UA's own URI); ``tel:`` numbers and
    telephone-like users lose their visual separators; ``sip:`` and ``sips:`` URIs are taken as
    they are.  Raises :class:`~sipfsm.ParseError` for anything that does not become a SIP URI.
    """
    if isinstance(target, URI):
        return target
    text = target.strip()
    if text.lower().startswith(("sip:", "sips:")):
        return parse_uri(text)
    if text.lower().startswith("tel:"):
        text = text[4:]
    user, at, host = text.rpartition("@") if "@" in text else (text, "", "")
    if not user:
        raise ParseError(f"no user in target {target!r}")
    if _looks_like_a_number(user):
        user = "".join(ch for ch in user if ch not in "-.() ")
    if at:
        return parse_uri(str(URI("sip", user, "x.invalid")).replace("x.invalid", host, 1))
    return parse_uri(str(URI("sip", user, home.host, home.port)))


def _looks_like_a_number(user: str) -> bool:
    digits = user.lstrip("+")
    return bool(digits) and all(ch.isdigit() or ch in "-.() " for ch in digits)


class RequestFactory:
    """Writes the UA's out-of-dialog requests."""

    __slots__ = ("config", "identity", "secure")

    def __init__(self, config: UAConfig, identity: Identity) -> None:
        self.config = config
        self.identity = identity
        self.secure = False  # True while the current server is wss://

    @property
    def via_transport(self) -> str:
        """The Via transport token: WS or WSS, or TCP with ``hack_via_tcp``."""
        if self.config.hack_via_tcp:
            return "TCP"
        return "WSS" if self.secure else "WS"

    def via(self, branch: str) -> str:
        """A Via header value for a request we send."""
        return f"SIP/2.0/{self.via_transport} {self.identity.via_host};branch={branch}"

    @property
    def device_uri(self) -> URI:
        """This device's own address (``sip:RANDOM@HOST;transport=ws``): the Contact of
        REGISTER, which binds it to the AoR (RFC 5627 §4.1: never the GRUU there)."""
        transport = "wss" if self.config.hack_wss_in_transport else "ws"
        return URI("sip", self.identity.contact_user, self.identity.via_host,
                   params={"transport": transport})

    @property
    def contact_uri(self) -> URI:
        """The Contact of other requests: the pub-GRUU once the registrar has given one
        (RFC 5627 §4.2), else :attr:`device_uri`."""
        if self.identity.pub_gruu is not None:
            return self.identity.pub_gruu
        return self.device_uri

    def name_addr(self, uri: URI, *, tag: str | None = None) -> str:
        """``"Display" <uri>;tag=…`` with our display name, escaped."""
        display = self.config.display_name
        text = f"{escape_quoted(display)} <{uri}>" if display else f"<{uri}>"
        return f"{text};tag={tag}" if tag else text

    def supported(self, method: str) -> list[str]:
        """The option tags we list in ``Supported`` for ``method``."""
        tags = []
        if method == "REGISTER":
            tags += ["path", "gruu"]
        if self.config.rel100 is Supported.SUPPORTED:
            tags.append("100rel")
        if self.config.replaces is Supported.SUPPORTED:  # required: in Require instead
            tags.append("replaces")
        tags.append("outbound")
        return tags

    def request(
        self,
        method: str,
        target: URI,
        *,
        branch: str,
        call_id: str | None = None,
        cseq: int | None = None,
        from_tag: str | None = None,
        to: str | None = None,
        route: URI | None = None,
        contact: bool = True,
        body: bytes | str = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str] | str] = (),
        from_: str | None = None,
        contact_uri: URI | None = None,
    ) -> Request:
        """An out-of-dialog request to ``target``.  ``route`` is the current server's preloaded
        Route, used when ``use_preloaded_route`` is set; ``from_`` replaces our From (with its
        tag), ``contact_uri`` our Contact."""
        config = self.config
        request = Request(method, target)
        headers = request.headers
        if route is not None and config.use_preloaded_route:
            headers.add("Route", f"<{route}>")
        headers.add("Via", self.via(branch))
        headers.add("Max-Forwards", "70")
        headers.add("To", to if to is not None else f"<{target}>")
        headers.add("From", from_ if from_ is not None
                    else self.name_addr(config.uri, tag=from_tag or new_tag()))
        headers.add("Call-ID", call_id or new_call_id())
        headers.add("CSeq", f"{cseq if cseq is not None else secrets.randbelow(9999) + 1} "
                            f"{method}")
        if contact and method not in ("ACK", "CANCEL", "BYE", "MESSAGE"):
            headers.add("Contact", f"<{contact_uri or self.contact_uri}>")
        if method not in ("ACK", "CANCEL"):
            headers.add("Allow", ",".join(DEFAULT_METHODS))
        for extra in extra_headers:
            name, value = extra if isinstance(extra, tuple) else extra.split(":", 1)
            headers.add(name.strip(), value.strip())
        if method not in ("ACK", "CANCEL"):
            headers.add("Supported", ", ".join(self.supported(method)))
        headers.add("User-Agent", config.user_agent_string)
        request.set_body(body, content_type if body else None)
        return request
