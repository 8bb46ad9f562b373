"""SASL PLAIN (RFC 4616) and the JAAS option line that lists its users.

The client's one message is `[authzid] NUL authcid NUL password`, UTF-8. As Kafka's
PlainSaslServer, an authorization id other than the user's own is refused.
"""
from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from kbroker.security.mechanism import AuthenticationFailed

_OPTION = re.compile(r'\s*([A-Za-z0-9_.\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]+)')


def parse_jaas_users(text: str) -> dict[str, str]:
    """`org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="secret";` ->
    {"alice": "secret"} (the `username`/`password` options are the broker's own client login)."""
    return {key[len("user_"):]: value for key, value in parse_jaas_options(text).items() if key.startswith("user_")}


def parse_jaas_options(text: str) -> dict[str, str]:
    """The options of a one-module `sasl.jaas.config`: `<LoginModule> required key="value" ...;`."""
    match = re.match(r"\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\b(.*?);?\s*$", text, re.S)
    if not match:
        raise ValueError(f"sasl.jaas.config: expected '<LoginModule> required key=\"value\" ...;', got {text!r}")
    body = match.group(3).strip()
    options: dict[str, str] = {}
    position = 0
    while position < len(body):
        option = _OPTION.match(body, position)
        if option is None:
            raise ValueError(f"sasl.jaas.config: cannot parse the options at {body[position:]!r}")
        key, value = option.group(1), option.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        options[key] = value
        position = option.end()
        while position < len(body) and body[position].isspace():
            position += 1
    return options


def parse_plain_token(token: bytes) -> tuple[str, str, str]:
    """(authzid, username, password); ValueError for a malformed message."""
    parts = token.split(b"\0")
    if len(parts) != 3:
        raise ValueError("Invalid SASL/PLAIN response: expected 3 tokens")
    try:
        authzid, username, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError as exc:
        raise ValueError("Invalid SASL/PLAIN response: not UTF-8") from exc
    if not username:
        raise ValueError("Authentication failed: username not specified")
    if not password:
        raise ValueError("Authentication failed: password not specified")
    return authzid, username, password


class PlainServer:
    """One authentication exchange: a single client message, an empty answer."""
    mechanism = "PLAIN"

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self.username: str | None = None
        self.complete = False

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise AuthenticationFailed("SASL/PLAIN exchange already complete")
        try:
            authzid, username, password = parse_plain_token(token)
        except ValueError as exc:
            raise AuthenticationFailed(str(exc)) from exc
        if authzid and authzid != username:
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id that is "
                                       "different from username")
        expected = self._users.get(username)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        self.username = username
        self.complete = True
        return b""


class PlainClient:
    """The client side (a broker logging in to another): one message, `NUL username NUL password`."""
    mechanism = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self._token = b"\0" + username.encode("utf-8") + b"\0" + password.encode("utf-8")
        self.complete = False

    def start(self) -> bytes:
        return self._token

    def evaluate(self, challenge: bytes) -> bytes | None:
        self.complete = True  # the server's answer to PLAIN is empty: nothing more to send
        return None
