"""The per-connection SASL state machine: what each state lets through, failures, and KIP-368
re-authentication with the clock passed in."""
from __future__ import annotations

import logging

import pytest

from kbroker.broker.authentication import FailureLog, SaslSession
from kbroker.errors import ErrorCode
from kbroker.security.mechanism import AuthenticationFailed
from kbroker.security.settings import SaslSettings

HANDSHAKE, AUTHENTICATE, API_VERSIONS, METADATA = 17, 36, 18, 3
USERS = {"alice": "a-secret", "bob": "b-secret"}


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def session(reauth_ms: int = 0, clock: Clock | None = None) -> SaslSession:
    return SaslSession(SaslSettings(("PLAIN",), USERS), credentials=None, reauth_ms=reauth_ms,  # type: ignore[arg-type]
                       clock=clock or Clock())


def login(sasl: SaslSession, user: str = "alice", password: str = "a-secret") -> None:
    assert sasl.handshake("PLAIN", 1) == ErrorCode.NONE
    sasl.authenticate(f"\0{user}\0{password}".encode())


def test_states_let_through_only_the_exchange():
    sasl = session()
    assert sasl.permits(API_VERSIONS) and sasl.permits(HANDSHAKE)
    assert not sasl.permits(AUTHENTICATE) and not sasl.permits(METADATA)
    assert sasl.handshake("PLAIN", 1) == ErrorCode.NONE
    assert sasl.permits(AUTHENTICATE) and not sasl.permits(HANDSHAKE) and not sasl.permits(METADATA)
    sasl.authenticate(b"\0alice\0a-secret")
    assert sasl.complete and sasl.principal == "User:alice" and sasl.permits(METADATA)
    assert sasl.expires_at is None
    assert sasl.handshake("PLAIN", 1) == ErrorCode.ILLEGAL_SASL_STATE  # no re-authentication configured


def test_v0_handshake_expects_raw_tokens():
    sasl = session()
    assert sasl.handshake("PLAIN", 0) == ErrorCode.NONE
    assert sasl.state == "raw" and not sasl.permits(AUTHENTICATE)


def test_unknown_mechanism_and_wrong_password_fail():
    sasl = session()
    assert sasl.handshake("SCRAM-SHA-256", 1) == ErrorCode.UNSUPPORTED_SASL_MECHANISM and sasl.failure
    sasl = session()
    sasl.handshake("PLAIN", 1)
    with pytest.raises(AuthenticationFailed):
        sasl.authenticate(b"\0alice\0wrong")
    assert sasl.state == "failed" and "PLAIN" in sasl.failure and not sasl.permits(METADATA)


def test_a_session_expires_and_re_authenticates_as_the_same_user():
    clock = Clock()
    sasl = session(reauth_ms=1000, clock=clock)
    login(sasl)
    assert sasl.expires_at == clock.now + 1.0 and sasl.permits(METADATA)
    clock.now += 1.0
    assert sasl.expired() and not sasl.permits(METADATA) and sasl.permits(HANDSHAKE)
    login(sasl)
    assert sasl.complete and sasl.principal == "User:alice" and sasl.permits(METADATA)
    assert sasl.expires_at == clock.now + 1.0


def test_re_authentication_cannot_change_the_user_or_the_mechanism():
    sasl = session(reauth_ms=1000)
    login(sasl)
    with pytest.raises(AuthenticationFailed, match="change principals"):
        login(sasl, "bob", "b-secret")
    assert not sasl.complete
    sasl = session(reauth_ms=1000)
    login(sasl)
    assert sasl.handshake("SCRAM-SHA-256", 1) == ErrorCode.UNSUPPORTED_SASL_MECHANISM and sasl.failure


def test_failures_are_logged_at_most_a_burst_per_interval(caplog):
    clock = Clock()
    failures = FailureLog("SASL_SSL", burst=3, interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="kbroker.authentication"):
        for attempt in range(10):
            failures.failed(f"10.0.0.1:{attempt}", "Invalid username or password")
        assert len(caplog.records) == 3 and "10.0.0.1:0 on listener SASL_SSL" in caplog.records[0].getMessage()
        clock.now += 10.0
        failures.failed("10.0.0.2:1", "Invalid username or password")
    assert len(caplog.records) == 4
    assert caplog.records[-1].getMessage().endswith("; 7 more failures not logged")
