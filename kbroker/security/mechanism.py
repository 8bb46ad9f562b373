"""What every SASL mechanism has in common, on the server side and on the client side."""
from __future__ import annotations

from typing import Protocol


class AuthenticationFailed(Exception):
    """The client's credentials or messages were refused; the message goes to the client."""


class MechanismServer(Protocol):
    """One authentication exchange: feed each client token to `evaluate`, send back what it returns;
    done when `complete`, and then `username` is the authenticated user."""
    mechanism: str
    username: str | None
    complete: bool

    def evaluate(self, token: bytes) -> bytes: ...


class MechanismClient(Protocol):
    """The client side of one exchange: send `start()`, then feed each server answer to `evaluate`
    and send what it returns, until it returns None; then `complete` (the server was verified
    where the mechanism can: SCRAM's server signature). AuthenticationFailed for a bad answer."""
    mechanism: str
    complete: bool

    def start(self) -> bytes: ...

    def evaluate(self, challenge: bytes) -> bytes | None: ...
