"""wss:// against a real Kamailio serving TLS with a certificate from a CA the test makes: a UA
given an SSLContext that trusts that CA connects and registers; a UA with the default context
(certificate verification on, the system's CAs) refuses the server, never registers, and says
why in its ``disconnected`` event and its log."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kamailio import Kamailio, find_kamailio, find_kamailio_module

from sipfsm.events import TransportDisconnected
from sipfsm.ua import UA

pytestmark = pytest.mark.kamailio


def _require_tls_kamailio() -> None:
    """Skip when Kamailio or its TLS module is missing; under CI=true that is a failure."""
    if find_kamailio() is not None and find_kamailio_module("tls.so") is not None:
        return
    message = ("kamailio with tls.so is not installed (Debian: kamailio-tls-modules; run: bash "
               "scripts/install-system-deps.sh)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; a missing Kamailio under CI is a failure, not a skip")
    pytest.skip(message)


def make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate it signed for 127.0.0.1 (and localhost):
    ``(ca.pem, server.pem, server.key)``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sipfsm test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([
                  x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                  critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                  ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_kamailio(pki: tuple[Path, Path, Path]) -> Iterator[Kamailio]:
    """A Kamailio of this module's own, serving ws:// and wss:// on 127.0.0.1."""
    _require_tls_kamailio()
    _, certificate, key = pki
    server = Kamailio(tls_certificate=certificate, tls_private_key=key, tcp_max_connections=256,
                      shm_mb=128)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_ua(kamailio: Kamailio, logs: list[tuple[str, str]], **extra: object) -> UA:
    def connector(level: str, category: str, label: str | None, content: str) -> None:
        logs.append((level, content))

    params: dict[str, object] = {"ws_servers": kamailio.wss_url, **extra}
    return UA(uri=f"sip:alice@{kamailio.domain}", password=kamailio.users["alice"],
              connection_recovery_min_interval=60, connection_recovery_max_interval=60,
              ws_server_max_reconnection=1,
              log={"builtin_enabled": False, "level": "warn", "connector": connector},
              **params)  # type: ignore[arg-type]


async def test_a_ua_that_trusts_the_ca_registers_over_wss(
        tls_kamailio: Kamailio, pki: tuple[Path, Path, Path]) -> None:
    ca, _, _ = pki
    context = ssl.create_default_context(cafile=str(ca))  # verification and host name checks on
    logs: list[tuple[str, str]] = []
    ua = make_ua(tls_kamailio, logs, ssl=context)
    try:
        connected = await ua.wait_for("connected", timeout=15)
        assert connected.server == tls_kamailio.wss_url
        await ua.wait_for("registered", timeout=15)
        assert ua.is_registered()
        # The binding is the TLS connection's: Kamailio saw the REGISTER arrive over TLS.
        dump = await asyncio.to_thread(tls_kamailio.ul_dump)
        assert "alice" in dump and f"Socket: tls:127.0.0.1:{tls_kamailio.wss_port}" in dump
        assert ua.factory.secure  # a wss:// connection: SIPS-worthy Contact and WSS Via
    finally:
        await ua.stop()
    assert [content for level, content in logs if level == "error"] == []


async def test_a_ca_file_will_do(tls_kamailio: Kamailio, pki: tuple[Path, Path, Path]) -> None:
    ca, _, _ = pki
    logs: list[tuple[str, str]] = []
    ua = make_ua(tls_kamailio, logs, ssl=ca)  # a path: a context trusting only that file's CAs
    try:
        await ua.wait_for("registered", timeout=15)
    finally:
        await ua.stop()


async def test_without_the_ca_the_certificate_is_refused(tls_kamailio: Kamailio) -> None:
    logs: list[tuple[str, str]] = []
    ua = make_ua(tls_kamailio, logs)  # no ssl=: the default context, verifying against the system
    registered: list[object] = []
    ua.on("registered", registered.append)
    try:
        failed: TransportDisconnected = await ua.wait_for("disconnected", timeout=15)
        assert failed.code is None and failed.server == tls_kamailio.wss_url
        assert "certificate verify failed" in failed.reason
        assert not ua.is_connected() and not ua.is_registered() and registered == []
        warnings = [content for level, content in logs if level == "warn"]
        assert any("certificate verify failed" in line for line in warnings), warnings
    finally:
        await ua.stop()
    assert registered == []


async def test_the_plain_listener_still_works_with_tls_on(tls_kamailio: Kamailio) -> None:
    logs: list[tuple[str, str]] = []
    ua = make_ua(tls_kamailio, logs, ws_servers=tls_kamailio.ws_url)
    try:
        await ua.wait_for("registered", timeout=15)
        assert not ua.factory.secure
    finally:
        await ua.stop()
