"""SASL SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka speaks it: the server side,
and the client side a broker logs in to another broker with.

The exchange (no channel binding: the GS2 header is `n,,` or `n,a=<authzid>,`):
    client-first  n,,n=<user>,r=<client nonce>
    server-first  r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>
    client-final  c=<base64 GS2 header>,r=<nonce>,p=<base64 ClientProof>
    server-final  v=<base64 ServerSignature>
The broker keeps per user and mechanism only the salt, the iteration count, StoredKey =
H(HMAC(SaltedPassword, "Client Key")) and ServerKey = HMAC(SaltedPassword, "Server Key"), where
SaltedPassword = PBKDF2-HMAC(password, salt, iterations): the proof is checked by recovering
ClientKey = proof XOR HMAC(StoredKey, AuthMessage) and hashing it. The password never lands.
The client derives the same keys from the password, salt and iterations the server sends, proves
itself with ClientKey XOR HMAC(StoredKey, AuthMessage) and checks the server's signature, so a
server that does not hold the credential cannot pass for one that does.
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
    return ScramCredential(salt, iterations, hashlib.new(name, _client_key(salted, name)).digest(),
                           hmac.digest(salted, b"Server Key", name))


def _client_key(salted: bytes, hash_name: str) -> bytes:
    return hmac.digest(salted, b"Client Key", hash_name)


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


def _escape(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


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


class ScramClient:
    """The client side of one exchange: `start()` is client-first; `evaluate` takes server-first
    (answers client-final) and then server-final (checks the server's signature, answers None)."""

    def __init__(self, mechanism: str, username: str, password: str,
                 nonce: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> None:
        self.mechanism = mechanism
        self._hash = HASHES[mechanism]
        self._password = password
        self._first_bare = f"n={_escape(username)},r={nonce()}"
        self._server_signature: bytes | None = None  # known once client-final is sent
        self.complete = False

    def start(self) -> bytes:
        return f"n,,{self._first_bare}".encode()

    def evaluate(self, challenge: bytes) -> bytes | None:
        if self.complete:
            raise AuthenticationFailed("SCRAM exchange already complete")
        try:
            message = challenge.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Invalid SCRAM server message: not UTF-8") from exc
        attributes = _attributes(message)
        if "e" in attributes:
            raise AuthenticationFailed(f"SCRAM server error: {attributes['e']}")
        return self._server_first(message, attributes) if self._server_signature is None else \
            self._server_final(attributes)

    def _server_first(self, message: str, attributes: dict[str, str]) -> bytes:
        client_nonce = _attributes(self._first_bare)["r"]
        nonce = attributes.get("r", "")
        if not nonce.startswith(client_nonce) or len(nonce) == len(client_nonce):
            raise AuthenticationFailed("Invalid SCRAM server first message: nonce mismatch")
        try:
            salt = base64.b64decode(attributes["s"], validate=True)
            iterations = int(attributes["i"])
        except (KeyError, ValueError) as exc:
            raise AuthenticationFailed("Invalid SCRAM server first message: salt or iterations") from exc
        if iterations < MIN_ITERATIONS:  # as Kafka's ScramSaslClient: a weak server is refused
            raise AuthenticationFailed(f"SCRAM iterations {iterations} is less than the minimum {MIN_ITERATIONS}")
        salted = salted_password(self.mechanism, self._password, salt, iterations)
        credential = credential_from_salted(self.mechanism, salted, salt, iterations)
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
        auth_message = f"{self._first_bare},{message},{without_proof}".encode()
        signature = hmac.digest(credential.stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(_client_key(salted, self._hash), signature))
        self._server_signature = hmac.digest(credential.server_key, auth_message, self._hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def _server_final(self, attributes: dict[str, str]) -> None:
        try:
            signature = base64.b64decode(attributes.get("v", ""), validate=True)
        except ValueError as exc:
            raise AuthenticationFailed("Invalid SCRAM server final message: bad base64") from exc
        if not hmac.compare_digest(signature, self._server_signature or b""):
            raise AuthenticationFailed("SCRAM server signature does not match: the server does not hold "
                                       "this user's credential")
        self.complete = True
