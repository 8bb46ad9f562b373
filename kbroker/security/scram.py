"""SASL SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side, as Kafka speaks it.

The exchange (no channel binding: the GS2 header is `n,,` or `n,a=<authzid>,`):
    client-first  n,,n=<user>,r=<client nonce>
    server-first  r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
    client-final  c=<base64 GS2 header>,r=<nonce>,p=<base64 ClientProof>
    server-final  v=<base64 ServerSignature>
The broker keeps per user and mechanism only the salt, the iteration count, StoredKey =
H(HMAC(SaltedPassword, "Client Key")) and ServerKey = HMAC(SaltedPassword, "Server Key"), where
SaltedPassword = PBKDF2-HMAC(password, salt, iterations): the proof is checked by recovering
ClientKey = proof XOR HMAC(StoredKey, AuthMessage) and hashing it. The password never lands.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from kbroker.security.mechanism import AuthenticationFailed

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MIN_ITERATIONS = 4096  # Kafka's ScramMechanism minimum
MAX_ITERATIONS = 16384  # Kafka refuses more in AlterUserScramCredentials


@dataclass(frozen=True, slots=True)
class ScramCredential:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(HASHES[mechanism], password.encode("utf-8"), salt, iterations)


def credential_from_salted(mechanism: str, salted: bytes, salt: bytes, iterations: int) -> ScramCredential:
    """What AlterUserScramCredentials sends (the client salts): derive the keys to keep."""
    name = HASHES[mechanism]
    client_key = hmac.digest(salted, b"Client Key", name)
    return ScramCredential(salt, iterations, hashlib.new(name, client_key).digest(),
                           hmac.digest(salted, b"Server Key", name))


def make_credential(mechanism: str, password: str, iterations: int = MIN_ITERATIONS,
                    salt: bytes | None = None) -> ScramCredential:
    salt = salt if salt is not None else os.urandom(32)
    return credential_from_salted(mechanism, salted_password(mechanism, password, salt, iterations), salt, iterations)


def _attributes(message: str) -> dict[str, str]:
    attributes = {}
    for item in message.split(","):
        key, sep, value = item.partition("=")
        if not sep or len(key) != 1:
            raise AuthenticationFailed(f"Invalid SCRAM message: {item!r}")
        attributes.setdefault(key, value)
    return attributes


def _username(text: str) -> str:
    if "=" in text.replace("=2C", "").replace("=3D", ""):
        raise AuthenticationFailed("Invalid SCRAM username encoding")
    return text.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """One exchange: `evaluate` the client-first message, then the client-final one."""

    def __init__(self, mechanism: str, lookup: Callable[[str, str], ScramCredential | None],
                 nonce: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> None:
        self.mechanism = mechanism
        self._hash = HASHES[mechanism]
        self._lookup = lookup
        self._nonce = nonce
        self.username: str | None = None
        self.complete = False
        self._state: tuple[ScramCredential, str, str, str] | None = None  # credential, gs2, first bare, server first

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise AuthenticationFailed("SCRAM exchange already complete")
        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Invalid SCRAM message: not UTF-8") from exc
        return self._client_first(message) if self._state is None else self._client_final(message)

    def _client_first(self, message: str) -> bytes:
        flag, _, rest = message.partition(",")
        authzid, sep, bare = rest.partition(",")
        if flag not in ("n", "y") or not sep or (authzid and not authzid.startswith("a=")):
            raise AuthenticationFailed("Invalid SCRAM client first message (channel binding is not supported)")
        attributes = _attributes(bare)
        if "n" not in attributes or "r" not in attributes or "m" in attributes:
            raise AuthenticationFailed("Invalid SCRAM client first message")
        username = _username(attributes["n"])
        if authzid and _username(authzid[2:]) != username:
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id that is "
                                       "different from username")
        credential = self._lookup(username, self.mechanism)
        if credential is None:
            raise AuthenticationFailed("Authentication failed: Invalid user credentials")
        server_first = (f"r={attributes['r']}{self._nonce()},s={base64.b64encode(credential.salt).decode()},"
                        f"i={credential.iterations}")
        self.username = username
        self._state = (credential, f"{flag},{authzid},", bare, server_first)
        return server_first.encode()

    def _client_final(self, message: str) -> bytes:
        credential, gs2, first_bare, server_first = self._state  # type: ignore[misc]
        without_proof, sep, proof_text = message.rpartition(",p=")
        attributes = _attributes(without_proof) if sep else {}
        nonce = _attributes(server_first)["r"]
        # Kafka's ScramSaslServer checks only that the nonce ends with the server's: librdkafka
        # (2.0 at least) sends its client nonce followed by the whole combined nonce.
        if not sep or not attributes.get("r", "").endswith(nonce):
            raise AuthenticationFailed("Invalid SCRAM client final message: nonce mismatch")
        try:
            binding = base64.b64decode(attributes.get("c", ""), validate=True)
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError as exc:
            raise AuthenticationFailed("Invalid SCRAM client final message: bad base64") from exc
        if binding != gs2.encode():
            raise AuthenticationFailed("Invalid SCRAM client final message: channel binding mismatch")
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(credential.stored_key, auth_message, self._hash)
        if len(proof) != len(signature):
            raise AuthenticationFailed("Authentication failed: Invalid client final message")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.new(self._hash, client_key).digest(), credential.stored_key):
            raise AuthenticationFailed("Authentication failed: Invalid user credentials")
        self.complete = True
        server_signature = hmac.digest(credential.server_key, auth_message, self._hash)
        return f"v={base64.b64encode(server_signature).decode()}".encode()
