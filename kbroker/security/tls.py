"""A listener's `ssl.SSLContext`s from its Kafka-named settings (PEM only): the server side, and the
client side this broker connects to the other brokers' inter-broker listener with."""
from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

from kbroker.security.settings import TlsSettings

_VERIFY = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
# TLS 1.3 suites are always on in OpenSSL and cannot be chosen through set_ciphers.
_TLS13_SUITES = ("TLS_AES_", "TLS_CHACHA20_")


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """Raises ValueError naming the setting at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_protocols(context, settings)
    _load_keystore(context, settings)
    if not _load_truststore(context, settings) and settings.client_auth != "none":
        raise ValueError(f"ssl.client.auth={settings.client_auth} needs ssl.truststore.location or "
                         "ssl.truststore.certificates (PEM) to check client certificates against")
    context.verify_mode = _VERIFY[settings.client_auth]
    _set_ciphers(context, settings)
    return context


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """The broker as a TLS client of another broker: the server's certificate is checked against the
    truststore (the system's CAs without one, as Java's default truststore) and, with
    ssl.endpoint.identification.algorithm=https, its name; the keystore is this broker's client
    certificate, for a listener with ssl.client.auth. Raises ValueError naming the setting at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _set_protocols(context, settings)
    _load_keystore(context, settings)
    if not _load_truststore(context, settings):
        context.load_default_certs()
    context.check_hostname = settings.check_hostname
    _set_ciphers(context, settings)
    return context


def _load_truststore(context: ssl.SSLContext, settings: TlsSettings) -> bool:
    """False when none is configured."""
    if settings.truststore_location is None and settings.truststore_certificates is None:
        return False
    try:
        context.load_verify_locations(cafile=settings.truststore_location, cadata=settings.truststore_certificates)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ssl.truststore: cannot load the CA certificates (PEM): {exc}") from exc
    return True


def _set_protocols(context: ssl.SSLContext, settings: TlsSettings) -> None:
    versions = [_VERSIONS[name] for name in settings.enabled_protocols]
    context.minimum_version, context.maximum_version = min(versions), max(versions)


def _set_ciphers(context: ssl.SSLContext, settings: TlsSettings) -> None:
    suites = [name for name in settings.cipher_suites if not name.startswith(_TLS13_SUITES)]
    if suites:
        try:
            context.set_ciphers(":".join(suites))
        except ssl.SSLError as exc:
            raise ValueError(f"ssl.cipher.suites: none of {', '.join(suites)} is known to OpenSSL") from exc


def _load_keystore(context: ssl.SSLContext, settings: TlsSettings) -> None:
    if settings.keystore_location is not None:
        path = Path(settings.keystore_location)
        try:
            if b"-----BEGIN" not in path.read_bytes():
                raise ValueError(f"ssl.keystore.location={path} is not a PEM file: kbroker reads PEM keystores only "
                                 "(ssl.keystore.type=PEM: the private key and its certificate chain)")
            context.load_cert_chain(path, password=settings.key_password)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"ssl.keystore.location={path}: cannot load the key and certificate chain: {exc}") from exc
        return
    # Inline PEM: `ssl` loads keys from files only, so through a private temporary file.
    with tempfile.TemporaryDirectory(prefix="kbroker-tls-") as directory:
        path = Path(directory) / "keystore.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(f"{settings.key}\n{settings.certificate_chain}\n")
        try:
            context.load_cert_chain(path, password=settings.key_password)
        except ssl.SSLError as exc:
            raise ValueError("ssl.keystore.certificate.chain / ssl.keystore.key: cannot load the key and "
                             f"certificate chain: {exc}") from exc
