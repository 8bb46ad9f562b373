"""Test certificates made at test time (never committed keys): a CA, a server certificate for
127.0.0.1 / localhost (also a client certificate: brokers present it to each other) and client
certificates (one from an untrusted CA, one expired), as PEM files."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class Certificates:
    ca: Path  # the CA certificate (truststore)
    server: Path  # server key + certificate chain in one PEM (ssl.keystore.location)
    server_key: Path
    server_cert: Path
    client_key: Path
    client_cert: Path
    stranger_key: Path  # a client certificate from a CA the broker does not trust
    stranger_cert: Path
    expired_key: Path  # a client certificate of the trusted CA that expired yesterday
    expired_cert: Path
    client_subject: str  # the client certificate's subject, RFC 2253


def _name(common_name: str, unit: str = "kbroker-tests") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kbroker"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                 issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
                 hosts: tuple[str, ...] = (), usage: tuple[x509.ObjectIdentifier, ...] = (),
                 valid_days: int = 1) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=2))
               .not_valid_after(now + datetime.timedelta(days=valid_days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        names = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h) for h in hosts]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, other_ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name, other_ca_name = _name("kbroker test CA"), _name("untrusted CA")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(_name("localhost"), server_key, ca_name, ca_key, hosts=("127.0.0.1", "localhost"),
                          usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate(_name("alice-client"), client_key, ca_name, ca_key, usage=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate(_name("mallory"), stranger_key, other_ca_name, other_ca_key,
                            usage=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    expired_key = ec.generate_private_key(ec.SECP256R1())
    expired = _certificate(_name("alice-client"), expired_key, ca_name, ca_key,
                           usage=(ExtendedKeyUsageOID.CLIENT_AUTH,), valid_days=-1)
    files = {
        "ca.pem": ca.public_bytes(serialization.Encoding.PEM),
        "server.pem": _pem(server_key) + server.public_bytes(serialization.Encoding.PEM),
        "server.key": _pem(server_key), "server.crt": server.public_bytes(serialization.Encoding.PEM),
        "client.key": _pem(client_key), "client.crt": client.public_bytes(serialization.Encoding.PEM),
        "stranger.key": _pem(stranger_key), "stranger.crt": stranger.public_bytes(serialization.Encoding.PEM),
        "expired.key": _pem(expired_key), "expired.crt": expired.public_bytes(serialization.Encoding.PEM),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key",
                        directory / "server.crt", directory / "client.key", directory / "client.crt",
                        directory / "stranger.key", directory / "stranger.crt",
                        directory / "expired.key", directory / "expired.crt",
                        "CN=alice-client,OU=kbroker-tests,O=kbroker")
