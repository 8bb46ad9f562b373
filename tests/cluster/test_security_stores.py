"""ACLs, client quotas and SCRAM credentials of a cluster (kbroker/cluster/acls.py, client_quotas.py,
credentials.py, config_entities.py) over the in-memory twin of the store: Kafka's words and entity
paths, and one broker's change put in force on another."""
from __future__ import annotations

import pytest

from kbroker.cluster.acls import ClusterAclStore, binding_of, entry_of, resource_of
from kbroker.cluster.client_quotas import ClusterQuotaStore
from kbroker.cluster.config_entities import desanitize, quota_entity_of, quota_entity_path, sanitize
from kbroker.cluster.credentials import ClusterCredentialStore
from kbroker.cluster.metastore import AclEntry, AclResource
from kbroker.security.acls import AclBinding, Authorizer, Operation, PatternType, Permission, ResourceType
from kbroker.security.quotas import CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE, QuotaEntity
from kbroker.security.scram import make_credential
from tests.cluster.memory_store import MemoryMetaStore, MemoryZooKeeper


def binding(name: str, operation: Operation, permission: Permission = Permission.ALLOW, *,
            kind: ResourceType = ResourceType.TOPIC, pattern: PatternType = PatternType.LITERAL,
            principal: str = "User:alice") -> AclBinding:
    return AclBinding(kind, name, pattern, principal, "*", operation, permission)


@pytest.fixture
async def stores() -> tuple[MemoryMetaStore, MemoryMetaStore]:
    """Two brokers' sessions on one cluster's metadata."""
    zookeeper = MemoryZooKeeper()
    return MemoryMetaStore(zookeeper), MemoryMetaStore(zookeeper)


def test_bindings_are_stored_in_kafkas_words() -> None:
    stored = binding("tx-", Operation.IDEMPOTENT_WRITE, Permission.DENY, kind=ResourceType.TRANSACTIONAL_ID,
                     pattern=PatternType.PREFIXED)
    assert resource_of(stored) == AclResource("PREFIXED", "TransactionalId", "tx-")
    assert entry_of(stored) == AclEntry("User:alice", "Deny", "IdempotentWrite", "*")
    assert binding_of(resource_of(stored), entry_of(stored)) == stored
    assert binding_of(AclResource("LITERAL", "Cluster", "kafka-cluster"),
                      AclEntry("User:ops", "Allow", "DescribeConfigs", "*")).operation == Operation.DESCRIBE_CONFIGS


@pytest.mark.parametrize("resource, entry", [
    (AclResource("LITERAL", "Topic", "t"), AclEntry("User:a", "Allow", "Fly", "*")),
    (AclResource("LITERAL", "Planet", "t"), AclEntry("User:a", "Allow", "Read", "*")),
    (AclResource("LITERAL", "Topic", "t"), AclEntry("User:a", "Any", "Read", "*")),
    (AclResource("LITERAL", "Cluster", "not-the-cluster"), AclEntry("User:a", "Allow", "Alter", "*")),
])
def test_an_acl_kafka_would_not_have_written_is_ignored_and_logged(resource, entry, caplog) -> None:
    assert binding_of(resource, entry) is None
    assert "not valid" in caplog.text


@pytest.mark.parametrize("name", ["a/b", ".", "..", "nul\0"])
def test_a_name_that_cannot_be_a_znode_is_a_problem(name) -> None:
    assert "ZooKeeper" in ClusterAclStore.problem(binding(name, Operation.READ, kind=ResourceType.GROUP))
    assert ClusterAclStore.problem(binding("a.b", Operation.READ)) is None


async def test_bindings_changed_through_one_broker_decide_on_another(stores) -> None:
    first, second = ClusterAclStore(stores[0]), ClusterAclStore(stores[1])
    authorizer = Authorizer(second.load())
    read, deny = binding("orders", Operation.READ), binding("orders", Operation.READ, Permission.DENY,
                                                            principal="User:bob")
    assert await first.change({read, deny}, set()) == {read, deny}
    assert not authorizer.authorize("User:alice", "h", Operation.READ, ResourceType.TOPIC, "orders")
    second.refresh(authorizer)
    assert authorizer.authorize("User:alice", "h", Operation.READ, ResourceType.TOPIC, "orders")
    assert await first.change(set(), {read}) == {deny}
    second.refresh(authorizer)
    assert authorizer.bindings == {deny}


async def test_quotas_set_through_one_broker_hold_on_another_and_keep_the_users_credentials(stores) -> None:
    first, second = ClusterQuotaStore(stores[0]), ClusterQuotaStore(stores[1])
    credentials = ClusterCredentialStore(stores[0])
    credential = make_credential("SCRAM-SHA-256", "secret")
    await credentials.alter("alice", "SCRAM-SHA-256", credential)
    alice, everyone = QuotaEntity(True, "alice", False, None), QuotaEntity(True, None, True, None)
    await first.replace({alice: {PRODUCER_BYTE_RATE: 1024.0}, everyone: {REQUEST_PERCENTAGE: 12.5}})
    shared = second.settings  # the quota managers hold this dict: it changes in place
    second.refresh()
    assert shared == {alice: {PRODUCER_BYTE_RATE: 1024.0}, everyone: {REQUEST_PERCENTAGE: 12.5}}
    assert stores[1].entity_configs()["users/alice"] == {"SCRAM-SHA-256": stores[1].entity_configs()[
        "users/alice"]["SCRAM-SHA-256"], PRODUCER_BYTE_RATE: "1024"}
    assert stores[1].entity_configs()["users/<default>/clients/<default>"] == {REQUEST_PERCENTAGE: "12.5"}
    await second.replace({alice: {CONSUMER_BYTE_RATE: 2048.0}})  # and everyone's quota removed
    first.refresh()
    assert first.settings == {alice: {CONSUMER_BYTE_RATE: 2048.0}}
    assert ClusterCredentialStore(stores[1]).get("alice", "SCRAM-SHA-256") == credential
    assert await credentials.alter("alice", "SCRAM-SHA-256", None)
    assert not await credentials.alter("alice", "SCRAM-SHA-256", None)
    assert stores[0].entity_configs()["users/alice"] == {CONSUMER_BYTE_RATE: "2048"}


async def test_an_unreadable_quota_is_ignored_and_logged(stores, caplog) -> None:
    await stores[0].alter_entity_configs("clients/app", {PRODUCER_BYTE_RATE: "fast", CONSUMER_BYTE_RATE: "10"})
    assert ClusterQuotaStore(stores[0]).settings == {QuotaEntity(False, None, True, "app"): {CONSUMER_BYTE_RATE: 10.0}}
    assert "not a number" in caplog.text


@pytest.mark.parametrize("entity, path", [
    (QuotaEntity(True, "alice", False, None), "users/alice"),
    (QuotaEntity(True, None, False, None), "users/<default>"),
    (QuotaEntity(False, None, True, "app"), "clients/app"),
    (QuotaEntity(True, "CN=a b,O=x", True, None), "users/CN%3Da%20b%2CO%3Dx/clients/<default>"),
    (QuotaEntity(True, "<default>", True, "~*/"), "users/%3Cdefault%3E/clients/%7E%2A%2F"),
])
def test_entities_are_named_as_kafkas_sanitizer_names_them(entity, path) -> None:
    assert quota_entity_path(entity) == path
    assert quota_entity_of(path) == entity


def test_sanitized_names_round_trip() -> None:
    for name in ("alice", "User:alice", "a/b", "é ü", "a+b%20"):
        assert "/" not in sanitize(name) and desanitize(sanitize(name)) == name
