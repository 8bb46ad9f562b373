"""A listener's server-side `ssl.SSLContext` from its Kafka-named settings (PEM only)."""
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
    versions = [_VERSIONS[name] for name in settings.enabled_protocols]
    context.minimum_version, context.maximum_version = min(versions), max(versions)
    _load_keystore(context, settings)
    if settings.truststore_location is not None or settings.truststore_certificates is not None:
        try:
            context.load_verify_locations(cafile=settings.truststore_location,
                                          cadata=settings.truststore_certificates)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"ssl.truststore: cannot load the CA certificates (PEM): {exc}") from exc
    elif settings.client_auth != "none":
        raise ValueError(f"ssl.client.auth={settings.client_auth} needs ssl.truststore.location or "
                         "ssl.truststore.certificates (PEM) to check client certificates against")
    context.verify_mode = _VERIFY[settings.client_auth]
    suites = [name for name in settings.cipher_suites if not name.startswith(_TLS13_SUITES)]
    if suites:
        try:
            context.set_ciphers(":".join(suites))
        except ssl.SSLError as exc:
            raise ValueError(f"ssl.cipher.suites: none of {', '.join(suites)} is known to OpenSSL") from exc
    return context


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
