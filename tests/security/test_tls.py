"""Server TLS contexts from Kafka-named settings: PEM files or inline PEM, encrypted keys,
protocols, cipher suites; what cannot be loaded is an error naming the setting."""
from __future__ import annotations

import ssl

import pytest
from cryptography.hazmat.primitives import serialization

from kbroker.config import build_config
from kbroker.security.tls import server_context
from tests.certificates import Certificates, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def context(**settings: str) -> ssl.SSLContext:
    return server_context(build_config({"listeners": "SSL://127.0.0.1:0", **settings}).security["SSL"].tls)


def encrypted_key(certs: Certificates, password: bytes) -> str:
    key = serialization.load_pem_private_key(certs.server_key.read_bytes(), None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(password)).decode()


def test_a_pem_keystore_file(certs):
    made = context(**{"ssl.keystore.location": str(certs.server), "ssl.enabled.protocols": "TLSv1.3"})
    assert made.minimum_version == made.maximum_version == ssl.TLSVersion.TLSv1_3
    assert made.verify_mode == ssl.CERT_NONE


def test_inline_pem_with_an_encrypted_key(certs):
    made = context(**{"ssl.keystore.certificate.chain": certs.server_cert.read_text(),
                      "ssl.keystore.key": encrypted_key(certs, b"key-secret"), "ssl.key.password": "key-secret",
                      "ssl.truststore.certificates": certs.ca.read_text(), "ssl.client.auth": "required"})
    assert made.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("settings, message", [
    ({"ssl.keystore.certificate.chain": "x", "ssl.key.password": "wrong"}, "ssl.keystore.certificate.chain"),
    ({"ssl.keystore.location": "/nonexistent/server.pem"}, "ssl.keystore.location"),
    ({"ssl.client.auth": "required"}, "needs ssl.truststore"),
    ({"ssl.cipher.suites": "NO-SUCH-CIPHER"}, "ssl.cipher.suites"),
])
def test_what_cannot_be_loaded_names_the_setting(certs, tmp_path, settings, message):
    base = {"ssl.keystore.location": str(certs.server)}
    if "ssl.keystore.certificate.chain" in settings:
        base = {"ssl.keystore.certificate.chain": certs.server_cert.read_text(),
                "ssl.keystore.key": encrypted_key(certs, b"key-secret")}
        settings = {"ssl.key.password": settings["ssl.key.password"]}
    with pytest.raises(ValueError, match=message):
        context(**{**base, **settings})


def test_a_binary_keystore_is_refused_naming_pem(tmp_path):
    jks = tmp_path / "server.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02")  # a JKS magic number
    with pytest.raises(ValueError, match="PEM"):
        context(**{"ssl.keystore.location": str(jks)})
