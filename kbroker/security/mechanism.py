"""What every SASL mechanism server has in common."""
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
