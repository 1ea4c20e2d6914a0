"""The default session description handler: WebRTC audio through aiortc.

Theory of operation
-------------------
One :class:`aiortc.RTCPeerConnection` per session, created on first use, with one audio
transceiver that exists before any SDP is seen.  ``max-bundle`` makes every later m-line share
that transceiver's transport, so there is exactly one ICE connection (and one DTLS-SRTP session,
rtcp-mux) per call, which is what lets us pin, splice and inspect it.

SIP carries complete descriptions, so the exchange is non-trickle: ``get_description`` returns
only once aiortc has gathered every candidate (aiortc's ``setLocalDescription`` waits for that),
and every remote description is marked ``a=end-of-candidates`` before aiortc sees it, so ICE
fails promptly instead of waiting for candidates that will never come.

Producing a description: aiortc writes it, we add telephone-event (aiortc has no DTMF and leaves
it out), the caller's modifiers run, the transceiver's direction is set from the result (so a
hold modifier's ``sendonly`` is what aiortc negotiates), aiortc commits it and gathers, and the
final text, candidates included, is returned.  Taking one: modifiers run, the body is checked
(an audio stream with ICE, DTLS and a codec in common, else :class:`IncompatibleSDP`),
candidates outside ``ice_addresses`` are removed when pinned, and aiortc applies it.

Directions follow RFC 3264 §6.1: after each complete exchange the negotiated local direction is
``ours ∧ reverse(theirs)``; aiortc's transceiver is brought in line with it when the peer's
answer says less than aiortc assumed, and ``on_direction(local, remote)`` reports changes
(``recvonly`` locally means the peer holds us).

Loopback pinning (``ice_addresses``) is described in :mod:`sipfsm.media.ice`, RFC 4733
sending and receiving in :mod:`sipfsm.media.dtmf`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import av
from aioice import Connection
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer, MediaRecorder
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError

from ..errors import ConfigurationError
from ..errors import InvalidStateError as SipfsmInvalidStateError
from .base import (
    SDP_CONTENT_TYPE,
    Direction,
    IncompatibleSDP,
    MediaError,
    Modifier,
    and_direction,
    apply_modifiers,
    check_options,
    hold_modifier,
    is_sdp_content_type,
    reverse_direction,
)
from .dtmf import DtmfReceiver, DtmfSender, RtpSplice, normalise_tones
from .ice import PinnedConnection, Refusals, pin_connection
from .sdp import TELEPHONE_EVENT, Codec, MediaSection, SessionDescription, normalise_address
from .tracks import ToneTrack, consume

__all__ = ["AiortcSDH", "aiortc_factory"]

# What aiortc can encode and decode, by lower-case name: (SDP name, clock rate, channels).
_AUDIO_CODECS: Final[dict[str, tuple[str, int, int]]] = {
    "opus": ("opus", 48000, 2),
    "pcmu": ("PCMU", 8000, 1),
    "pcma": ("PCMA", 8000, 1),
    "g722": ("G722", 8000, 1),
}
_DEFAULT_CODECS: Final = ("opus", "PCMU", "PCMA")
_TE_PREFERRED_PT: Final[dict[int, int]] = {48000: 110, 8000: 126}  # Chrome's choices


class _Log(Protocol):
    def debug(self, event: str, /, **fields: Any) -> None: ...
    def warn(self, event: str, /, **fields: Any) -> None: ...


class _NoLog:
    def debug(self, event: str, /, **fields: Any) -> None:
        pass

    def warn(self, event: str, /, **fields: Any) -> None:
        pass


class AiortcSDH:
    """WebRTC audio (ICE, DTLS-SRTP, Opus/PCMU/PCMA, rtcp-mux, BUNDLE) for one session.

    Options (all optional; an unknown name raises :class:`~sipfsm.ConfigurationError`):

    ``ice_servers``
        STUN/TURN servers: URLs (``"stun:host:3478"``) or mappings with ``urls``, ``username``,
        ``credential``.  Default: none (host candidates only; nothing is sent to a third party).
    ``ice_addresses``
        Pin ICE to these local IP addresses (e.g. ``("127.0.0.1",)``): host candidates on them
        only, and remote candidates, checks and datagrams from other addresses ignored.
        Default ``None``: aioice's own choice (every interface but loopback).
    ``audio_source``
        ``"tone"`` (default), ``"silence"``, a file path or URL (played by aiortc's
        ``MediaPlayer``), or an audio :class:`aiortc.MediaStreamTrack`.
    ``tone_hz``
        The tone's frequency (default 440).
    ``on_audio``
        ``callback(frame)`` for every received :class:`av.AudioFrame`.
    ``record_to``
        A file to record received audio to (``MediaRecorder``; the extension picks the format).
        Without ``on_audio`` or ``record_to`` received audio is read and discarded.
    ``on_dtmf``
        ``callback(tone, duration_ms)`` for every RFC 4733 event received.
    ``on_direction``
        ``callback(local_direction, remote_direction)`` when a negotiation changes either.
        Exceptions raised by this and the other callbacks are logged, never passed on.
    ``codecs``
        Audio codecs in order of preference, from opus, PCMU, PCMA, G722 (default opus, PCMU,
        PCMA).
    ``telephone_event``
        Offer and accept RFC 4733 telephone-event (default ``True``).
    ``logger``
        An object with ``debug(event, **fields)`` and ``warn(event, **fields)``, e.g. a
        :class:`sipfsm.logging.Logger`.
    """

    OPTIONS: Final = frozenset({
        "ice_servers", "ice_addresses", "audio_source", "tone_hz", "on_audio", "record_to",
        "on_dtmf", "on_direction", "codecs", "telephone_event", "logger",
    })

    hold_modifier = staticmethod(hold_modifier)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        opts = check_options(options, self.OPTIONS, "aiortc SDH")
        self._ice_servers = _ice_servers(opts.get("ice_servers", ()))
        addresses = opts.get("ice_addresses")
        self._ice_addresses: tuple[str, ...] | None = (
            None if addresses is None else _ip_addresses(addresses))
        self._source_option: Any = opts.get("audio_source", "tone")
        if not (isinstance(self._source_option, (str, MediaStreamTrack))
                and (not isinstance(self._source_option, MediaStreamTrack)
                     or self._source_option.kind == "audio")):
            raise ConfigurationError("audio_source", self._source_option,
                                     '"tone", "silence", a file path or an audio track')
        tone = opts.get("tone_hz", 440.0)
        if isinstance(tone, bool) or not isinstance(tone, (int, float)) or not 0 < tone < 20000:
            raise ConfigurationError("tone_hz", tone, "a frequency in (0, 20000) Hz")
        self._tone_hz = float(tone)
        self._on_audio: Callable[[av.AudioFrame], object] | None = _callable(opts, "on_audio")
        self._record_to: str | None = opts.get("record_to")
        if self._record_to is not None and not isinstance(self._record_to, str):
            raise ConfigurationError("record_to", self._record_to, "a file path")
        if self._record_to is not None and self._on_audio is not None:
            raise ConfigurationError("record_to", self._record_to,
                                     "give on_audio or record_to, not both")
        self._on_direction: Callable[[Direction, Direction], object] | None = _callable(
            opts, "on_direction")
        names = opts.get("codecs", _DEFAULT_CODECS)
        if isinstance(names, str) or not names or any(
                not isinstance(n, str) or n.lower() not in _AUDIO_CODECS for n in names):
            raise ConfigurationError("codecs", names, "a non-empty list from opus, PCMU, PCMA, "
                                                      "G722")
        self._codecs = [_AUDIO_CODECS[n] for n in dict.fromkeys(n.lower() for n in names)]
        self._telephone_event = bool(opts.get("telephone_event", True))
        self._log: _Log = opts.get("logger") or _NoLog()

        self._dtmf_receiver = DtmfReceiver(_callable(opts, "on_dtmf"), self._log)
        self._pc: RTCPeerConnection | None = None
        self._transceiver: RTCRtpTransceiver | None = None
        self._source: MediaStreamTrack | None = None
        self._player: MediaPlayer | None = None
        self._recorder: MediaRecorder | None = None
        self._splice: RtpSplice | None = None
        self._dtmf_sender: DtmfSender | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._local: SessionDescription | None = None
        self._remote: SessionDescription | None = None
        self._direction: Direction | None = None
        self._remote_direction: Direction | None = None
        self._dtmf_ready = False
        self._closed = False

    # -- the SessionDescriptionHandler interface ---------------------------------------------

    @property
    def direction(self) -> Direction | None:
        """The negotiated local direction (``None`` before the first complete exchange)."""
        return self._direction

    @property
    def remote_direction(self) -> Direction | None:
        """The direction the peer wrote for the audio stream in its last description."""
        return self._remote_direction

    @property
    def local_description(self) -> str | None:
        """The last SDP we produced (as returned by :meth:`get_description`)."""
        return None if self._local is None else str(self._local)

    @property
    def remote_description(self) -> str | None:
        """The last SDP we took, as given to aiortc (modified, filtered, completed)."""
        return None if self._remote is None else str(self._remote)

    async def get_description(
        self, options: Mapping[str, Any] | None = None, modifiers: Sequence[Modifier] = ()
    ) -> tuple[str, str]:
        """Our answer if an offer is pending, else a new offer; waits for ICE gathering.

        ``options`` is accepted for SIP.js compatibility and not used.
        """
        async with self._lock:
            pc, transceiver = await self._ensure()
            answering = pc.signalingState == "have-remote-offer"
            kind = "answer" if answering else "offer"
            transceiver.direction = "sendrecv"  # modifiers (hold) decide from here
            try:
                created = await (pc.createAnswer() if answering else pc.createOffer())
                description = SessionDescription.parse(created.sdp)
                if self._telephone_event:
                    self._add_telephone_events(description, answering)
                text = apply_modifiers(str(description), modifiers)
                description = SessionDescription.parse(text)
                audio = _audio_of(description)
                if audio is None:
                    raise MediaError(f"the {kind} has no audio stream left after the modifiers")
                transceiver.direction = description.direction_of(audio)
                await pc.setLocalDescription(RTCSessionDescription(sdp=text, type=kind))
            except (InternalError, InvalidAccessError, InvalidStateError, OperationError,
                    ValueError) as exc:
                raise MediaError(f"aiortc could not make the {kind}: {exc}") from exc
            local = SessionDescription.parse(pc.localDescription.sdp)
            self._local = local
            if answering and self._remote is not None:
                remote_audio = _audio_of(self._remote)
                local_audio = _audio_of(local)
                if remote_audio is not None and local_audio is not None:
                    self._negotiated(local.direction_of(local_audio),
                                     self._remote.direction_of(remote_audio))
            self._log.debug("local_description", kind=kind, direction=transceiver.direction)
            return str(local), SDP_CONTENT_TYPE

    async def set_description(
        self,
        body: str,
        options: Mapping[str, Any] | None = None,
        modifiers: Sequence[Modifier] = (),
    ) -> None:
        """The peer's answer if our offer is out, else the peer's offer.

        ``options`` is accepted for SIP.js compatibility and not used.
        """
        async with self._lock:
            pc, transceiver = await self._ensure()
            description = SessionDescription.parse(apply_modifiers(body, modifiers))
            answer = pc.signalingState == "have-local-offer"
            kind = "answer" if answer else "offer"
            audio = self._check_remote(description)
            if self._ice_addresses is not None:
                dropped = description.filter_candidates(self._allowed_addresses())
                if dropped:
                    self._log.debug("remote_candidates_filtered", count=len(dropped))
            description.share_candidates()
            description.mark_candidates_complete()
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=str(description),
                                                                    type=kind))
            except (ValueError, OperationError) as exc:
                raise IncompatibleSDP(f"unusable {kind}: {exc}") from exc
            except (InternalError, InvalidAccessError, InvalidStateError) as exc:
                raise MediaError(f"aiortc could not take the {kind}: {exc}") from exc
            self._remote = description
            for other in pc.getTransceivers():
                if other is not transceiver:  # video and the like: never used, never sent
                    other.direction = "inactive"
            if answer and self._local is not None:
                local_audio = _audio_of(self._local)
                offered = (self._local.direction_of(local_audio) if local_audio is not None
                           else "sendrecv")
                theirs = description.direction_of(audio)
                local = and_direction(offered, reverse_direction(theirs))
                if transceiver.currentDirection != local:
                    # aiortc trusts the answer alone; RFC 3264 limits it by what we offered.
                    transceiver._setCurrentDirection(local)
                self._negotiated(local, theirs)

    def has_description(self, content_type: str) -> bool:
        """``application/sdp`` only."""
        return is_sdp_content_type(content_type)

    def send_dtmf(self, tones: str, *, duration: int = 100, inter_tone_gap: int = 70) -> bool:
        """Queue RFC 4733 events; ``False`` if telephone-event cannot be sent right now.

        That is: not negotiated (at the clock rate of the audio codec we send), not sending
        (held with ``recvonly``/``inactive``), or closed.  Invalid tones raise ``ValueError``.
        """
        normalise_tones(tones)
        if (self._closed or self._dtmf_sender is None or not self._dtmf_ready
                or self._direction not in ("sendrecv", "sendonly")):
            return False
        return self._dtmf_sender.insert(tones, duration, inter_tone_gap)

    async def close(self) -> None:
        """Stop media and release sockets, tasks, the player and the recorder.  Idempotent: a
        second call returns once the first has finished (a recording is then complete)."""
        if self._closed:
            async with self._lock:  # a close() under way holds it until it is done
                return
        self._closed = True
        async with self._lock:
            if self._dtmf_sender is not None:
                await self._dtmf_sender.close()
            if self._splice is not None:
                self._splice.uninstall()
            if self._pc is not None:
                await self._pc.close()
            if self._recorder is not None:
                await self._recorder.stop()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._source is not None:
                self._source.stop()

    # -- introspection (diagnostics and tests) ------------------------------------------------

    @property
    def connection_state(self) -> str:
        """aiortc's connection state: new, connecting, connected, failed or closed."""
        return "new" if self._pc is None else self._pc.connectionState

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until ICE and DTLS are up; :class:`MediaError` if they fail or time out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connection_state != "connected":
            if self.connection_state in ("failed", "closed"):
                raise MediaError(f"media connection {self.connection_state}")
            if loop.time() >= deadline:
                raise MediaError(f"media not connected after {timeout} s")
            await asyncio.sleep(0.02)

    @property
    def ice_connection(self) -> Connection | None:
        """The aioice connection under the audio transport (pinned or not)."""
        if self._transceiver is None:
            return None
        connection: Connection = self._transceiver.receiver.transport.transport._connection
        return connection

    @property
    def ice_refusals(self) -> Refusals | None:
        """What pinning refused (``None`` when not pinned)."""
        connection = self.ice_connection
        return connection.refusals if isinstance(connection, PinnedConnection) else None

    def ice_pairs(self) -> list[tuple[tuple[str, int], tuple[str, int], str]]:
        """Every ICE candidate pair tried: (local address, remote address, state name)."""
        connection = self.ice_connection
        if connection is None:
            return []
        return [(pair.local_addr, pair.remote_addr, pair.state.name)
                for pair in connection._check_list]

    def selected_pair(self) -> tuple[tuple[str, int], tuple[str, int]] | None:
        """The nominated pair's (local, remote) addresses, once ICE has completed."""
        connection = self.ice_connection
        pair = None if connection is None else connection._nominated.get(1)
        return None if pair is None else (pair.local_addr, pair.remote_addr)

    @property
    def dtmf_received(self) -> list[tuple[str, int]]:
        """Every RFC 4733 event received so far: (tone, duration in ms)."""
        return list(self._dtmf_receiver.received)

    @property
    def dtmf_sending(self) -> bool:
        """Whether tones are queued or playing."""
        return self._dtmf_sender is not None and self._dtmf_sender.busy

    @property
    def rtp_splice(self) -> RtpSplice | None:
        """The RTP splice on the audio transport (see :mod:`sipfsm.media.dtmf`)."""
        return self._splice

    # -- internals ----------------------------------------------------------------------------

    async def _ensure(self) -> tuple[RTCPeerConnection, RTCRtpTransceiver]:
        if self._closed:
            raise SipfsmInvalidStateError("the session description handler is closed")
        if self._pc is not None and self._transceiver is not None:
            return self._pc, self._transceiver
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers,
                                                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        try:
            source = self._make_source()
        except Exception as exc:
            await pc.close()
            raise MediaError(f"cannot open the audio source: {exc}") from exc
        self._source = source
        transceiver = pc.addTransceiver(source, direction="sendrecv")
        capabilities = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences([
            capability for name, rate, channels in self._codecs for capability in capabilities
            if capability.name.lower() == name.lower() and capability.clockRate == rate])
        if self._ice_addresses is not None:
            # Before anything gathers: the transport was created by addTransceiver, and with
            # max-bundle no other ICE connection will ever exist on this peer connection.
            pin_connection(transceiver.receiver.transport.transport._connection,
                           self._ice_addresses)
        splice = RtpSplice(transceiver.sender.transport, transceiver.sender._ssrc)
        splice.install()
        self._splice = splice
        self._dtmf_sender = DtmfSender(splice, self._log)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange",
              lambda: self._log.debug("connection_state", state=pc.connectionState))
        self._pc, self._transceiver = pc, transceiver
        return pc, transceiver

    def _make_source(self) -> MediaStreamTrack:
        option = self._source_option
        if isinstance(option, MediaStreamTrack):
            return option
        if option == "tone":
            return ToneTrack(self._tone_hz)
        if option == "silence":
            return ToneTrack(None)
        player = MediaPlayer(option)
        if player.audio is None:
            raise MediaError(f"{option!r} has no audio stream")
        self._player = player
        return player.audio

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._record_to is not None and self._recorder is None:
            recorder = MediaRecorder(self._record_to)
            recorder.addTrack(track)
            self._recorder = recorder
            self._spawn(recorder.start())
            return
        on_frame = self._on_audio if track.kind == "audio" else None
        self._spawn(consume(track, on_frame,
                            lambda exc: self._log.warn("on_audio_failed", error=repr(exc))))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _allowed_addresses(self) -> tuple[str, ...]:
        return self._ice_addresses or ()

    def _check_remote(self, description: SessionDescription) -> MediaSection:
        """The audio stream to use, or :class:`IncompatibleSDP` saying what is missing."""
        audio = _audio_of(description)
        if audio is None:
            raise IncompatibleSDP("no audio stream")
        if "TLS" not in audio.proto.upper():
            raise IncompatibleSDP(f"profile {audio.proto} is not WebRTC's (UDP/TLS/RTP/SAVPF): "
                                  "DTLS-SRTP is required")
        sessions = description.session_lines

        def has(name: str) -> bool:
            return audio.has_attribute(name) or any(line.startswith(f"a={name}:")
                                                    for line in sessions)

        for needed in ("ice-ufrag", "ice-pwd", "fingerprint"):
            if not has(needed):
                raise IncompatibleSDP(f"the audio stream has no a={needed}")
        ours = [Codec(0, name, rate, channels) for name, rate, channels in self._codecs]
        if not any(c.is_media and any(c.same_format(o) for o in ours) for c in audio.codecs()):
            raise IncompatibleSDP("no audio codec in common with "
                                  + ", ".join(name for name, _, _ in self._codecs))
        return audio

    def _add_telephone_events(self, description: SessionDescription, answering: bool) -> None:
        audio = _audio_of(description)
        if audio is None:
            return
        rates = {c.rate for c in audio.codecs() if c.is_media}
        if answering:
            offer_audio = None if self._remote is None else _audio_of(self._remote)
            if offer_audio is None:
                return
            events = [c for c in offer_audio.codecs()
                      if c.is_telephone_event and c.rate in rates]
            audio.add_codecs(Codec(c.pt, TELEPHONE_EVENT, c.rate, 1, c.fmtp or "0-16")
                             for c in events)
            return
        used = {int(f) for f in audio.fmts if f.isdigit()}
        events = []
        for rate in sorted(rates, reverse=True):
            pt = _TE_PREFERRED_PT.get(rate)
            if pt is None or pt in used:
                pt = next(p for p in range(96, 128) if p not in used)
            used.add(pt)
            events.append(Codec(pt, TELEPHONE_EVENT, rate, 1, "0-16"))
        audio.add_codecs(events)

    def _negotiated(self, local: Direction, remote: Direction) -> None:
        changed = (local, remote) != (self._direction, self._remote_direction)
        self._direction, self._remote_direction = local, remote
        self._configure_dtmf()
        if changed:
            self._log.debug("direction", local=local, remote=remote)
            if self._on_direction is not None:
                try:
                    self._on_direction(local, remote)
                except Exception as exc:
                    self._log.warn("on_direction_failed", error=repr(exc))

    def _configure_dtmf(self) -> None:
        """Wire telephone-event: what we receive (our PTs and theirs) and what we send."""
        assert self._splice is not None and self._dtmf_sender is not None
        local = None if self._local is None else _audio_of(self._local)
        remote = None if self._remote is None else _audio_of(self._remote)
        self._splice.event_pts.clear()
        self._dtmf_ready = False
        if local is None or remote is None or not self._telephone_event:
            self._dtmf_sender.configure(None)
            return
        for codec in local.codecs() + remote.codecs():
            if codec.is_telephone_event:
                self._splice.event_pts[codec.pt] = self._dtmf_receiver.handler(codec.rate)
        remote_codecs = remote.codecs()
        send_events = {c.rate: c.pt for c in remote_codecs if c.is_telephone_event}
        rate_of_pt = {c.pt: c.rate for c in remote_codecs if c.is_media}

        def choose(audio_pt: int) -> tuple[int, int] | None:
            rate = rate_of_pt.get(audio_pt)
            pt = None if rate is None else send_events.get(rate)
            return None if pt is None or rate is None else (pt, rate)

        self._dtmf_sender.configure(choose)
        self._splice.mid = None if self._transceiver is None else self._transceiver.mid
        # aiortc sends the first of our preferred codecs that the peer listed.
        ours = [Codec(0, name, rate, channels) for name, rate, channels in self._codecs]
        sending = next((c for o in ours for c in remote_codecs
                        if c.is_media and c.same_format(o)), None)
        self._dtmf_ready = sending is not None and sending.rate in send_events


def _audio_of(description: SessionDescription) -> MediaSection | None:
    return description.first_audio()


def _callable(opts: Mapping[str, Any], name: str) -> Any:
    value = opts.get(name)
    if value is not None and not callable(value):
        raise ConfigurationError(name, value, "a callable")
    return value


def _ip_addresses(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not value:
        raise ConfigurationError("ice_addresses", value, "a non-empty list of IP addresses")
    addresses = []
    for item in value:
        try:
            addresses.append(str(ipaddress.ip_address(item)))
        except (TypeError, ValueError):
            raise ConfigurationError("ice_addresses", value,
                                     f"{item!r} is not an IP address") from None
    return tuple(dict.fromkeys(normalise_address(a) for a in addresses))


def _ice_servers(value: Any) -> list[RTCIceServer]:
    if isinstance(value, (str, Mapping)):
        value = [value]
    servers = []
    for item in value:
        if isinstance(item, str):
            server = RTCIceServer(urls=item)
        elif isinstance(item, Mapping) and "urls" in item and set(item) <= {
                "urls", "username", "credential"}:
            server = RTCIceServer(urls=item["urls"], username=item.get("username"),
                                  credential=item.get("credential"))
        else:
            raise ConfigurationError("ice_servers", None,
                                     message="invalid value for parameter 'ice_servers': each "
                                             "server is a URL or a mapping with urls, username, "
                                             "credential")
        urls = [server.urls] if isinstance(server.urls, str) else list(server.urls)
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("stun:", "stuns:", "turn:",
                                                               "turns:")):
                raise ConfigurationError("ice_servers", url, "a stun:, stuns:, turn: or turns: "
                                                             "URL")
        servers.append(server)
    return servers


def aiortc_factory(session: object, options: Mapping[str, Any] | None = None) -> AiortcSDH:
    """The default :data:`~sipfsm.media.SessionDescriptionHandlerFactory`."""
    return AiortcSDH(options)
