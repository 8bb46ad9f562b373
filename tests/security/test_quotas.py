"""Client quotas: which entity's quota applies, who shares a rate, and the throttle time."""
from __future__ import annotations

import pytest

from kbroker.security.quotas import DEFAULT, PRODUCER_BYTE_RATE, QuotaEntity, QuotaManager, user_of

WINDOW_MS, SAMPLES = 1000, 11


def entity(user=..., client_id=...) -> QuotaEntity:
    return QuotaEntity(user is not ..., None if user is ... else user, client_id is not ...,
                       None if client_id is ... else client_id)


def manager(settings: dict[QuotaEntity, float]) -> QuotaManager:
    return QuotaManager(PRODUCER_BYTE_RATE, {e: {PRODUCER_BYTE_RATE: v} for e, v in settings.items()},
                        window_ms=WINDOW_MS, samples=SAMPLES)


def test_nothing_is_measured_without_quotas():
    quotas = manager({})
    assert not quotas.enforced and quotas.record("alice", "app", 10**9, 0) == 0


@pytest.mark.parametrize("settings, applies", [
    ({entity("alice", "app"): 1, entity("alice", DEFAULT): 2, entity("alice"): 3}, 1),
    ({entity("alice", DEFAULT): 2, entity("alice"): 3, entity(DEFAULT, "app"): 4}, 2),
    ({entity("alice"): 3, entity(DEFAULT, "app"): 4}, 3),
    ({entity(DEFAULT, "app"): 4, entity(DEFAULT, DEFAULT): 5, entity(client_id="app"): 7}, 4),
    ({entity(DEFAULT): 6, entity(client_id="app"): 7}, 6),
    ({entity(client_id="app"): 7, entity(client_id=DEFAULT): 8}, 7),
    ({entity(client_id=DEFAULT): 8, entity("bob"): 1}, 8),
])
def test_the_most_specific_entity_decides(settings, applies):
    # 10 windows' worth of `applies` bytes/s is within the quota; one byte more is over it.
    quotas = manager(settings)
    assert quotas.record("alice", "app", applies * 10, 0) == 0
    assert quotas.record("alice", "app", 1, 0) > 0


def test_a_users_quota_is_shared_by_its_clients_but_a_default_applies_to_each_user_alone():
    shared = manager({entity("alice"): 100})
    assert shared.record("alice", "one", 1000, 0) == 0
    assert shared.record("alice", "two", 1, 0) > 0  # the same rate
    per_user = manager({entity(DEFAULT): 100})
    assert per_user.record("alice", "one", 1000, 0) == 0
    assert per_user.record("bob", "one", 1000, 0) == 0  # a rate of its own


def test_the_throttle_time_brings_the_rate_back_to_the_quota():
    quotas = manager({entity(client_id="app"): 1000})
    throttle = quotas.record("u", "app", 20_000, 0)  # 2,000 B/s over a 10 s span: 10 s more to reach 1,000 B/s
    assert throttle == 10_000
    assert quotas.record("u", "app", 0, 20_000) == 0  # once the rate is back down


def test_a_refund_takes_the_bytes_back():
    quotas = manager({entity(client_id="app"): 1000})
    assert quotas.record("u", "app", 20_000, 0) > 0
    quotas.unrecord("u", "app", 20_000, 0)
    assert quotas.record("u", "app", 0, 0) == 0


@pytest.mark.parametrize("components, why", [
    ([("group", "g")], "unknown quota entity type"),
    ([("user", "a"), ("user", "b")], "given twice"),
    ([("user", "")], "empty"),
    ([], "needs a user"),
])
def test_invalid_entities(components, why):
    with pytest.raises(ValueError, match=why):
        QuotaEntity.of(components)


def test_users_are_named_without_the_principal_type():
    assert user_of("User:alice") == "alice" and user_of("User:ANONYMOUS") == "ANONYMOUS"
