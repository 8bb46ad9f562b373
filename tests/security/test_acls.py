"""The authorizer's decisions and the ACL filters, as Kafka's AclAuthorizer makes them."""
from __future__ import annotations

import pytest

from kbroker.config import build_config
from kbroker.security.acl_store import FileAclStore
from kbroker.security.acls import (
    AclBinding,
    AclFilter,
    Authorizer,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)

TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY


def acl(name: str, principal: str, operation: Operation, permission: Permission = ALLOW, *,
        kind: ResourceType = TOPIC, pattern: PatternType = LITERAL, host: str = "*") -> AclBinding:
    return AclBinding(kind, name, pattern, principal, host, operation, permission)


def test_an_allow_binding_grants_its_operation_and_the_describe_it_implies():
    authorizer = Authorizer([acl("orders", "User:alice", Operation.WRITE)])
    assert authorizer.authorize("User:alice", "10.0.0.1", Operation.WRITE, TOPIC, "orders")
    assert authorizer.authorize("User:alice", "10.0.0.1", Operation.DESCRIBE, TOPIC, "orders")
    assert not authorizer.authorize("User:alice", "10.0.0.1", Operation.READ, TOPIC, "orders")
    assert not authorizer.authorize("User:bob", "10.0.0.1", Operation.WRITE, TOPIC, "orders")
    assert not authorizer.authorize("User:alice", "10.0.0.1", Operation.WRITE, TOPIC, "payments")


def test_deny_wins_but_a_denied_read_still_leaves_describe_to_an_allow():
    authorizer = Authorizer([acl("orders", "User:*", Operation.ALL),
                             acl("orders", "User:alice", Operation.READ, DENY)])
    assert not authorizer.authorize("User:alice", "h", Operation.READ, TOPIC, "orders")
    assert authorizer.authorize("User:alice", "h", Operation.DESCRIBE, TOPIC, "orders")
    assert authorizer.authorize("User:bob", "h", Operation.READ, TOPIC, "orders")


def test_wildcard_and_prefixed_patterns_and_hosts():
    authorizer = Authorizer([acl("*", "User:ops", Operation.DESCRIBE),
                             acl("billing-", "User:alice", Operation.READ, kind=GROUP, pattern=PREFIXED),
                             acl("logs", "User:shipper", Operation.WRITE, host="10.0.0.7")])
    assert authorizer.authorize("User:ops", "h", Operation.DESCRIBE, TOPIC, "anything")
    assert authorizer.authorize("User:alice", "h", Operation.READ, GROUP, "billing-eu")
    assert not authorizer.authorize("User:alice", "h", Operation.READ, GROUP, "billing")
    assert authorizer.authorize("User:shipper", "10.0.0.7", Operation.WRITE, TOPIC, "logs")
    assert not authorizer.authorize("User:shipper", "10.0.0.8", Operation.WRITE, TOPIC, "logs")


def test_super_users_and_resources_without_any_binding():
    strict = Authorizer([acl("orders", "User:alice", Operation.READ)], super_users=["User:admin"])
    assert strict.authorize("User:admin", "h", Operation.ALTER, CLUSTER, "kafka-cluster")
    assert not strict.authorize("User:alice", "h", Operation.WRITE, TOPIC, "no-acls-here")
    lenient = Authorizer([acl("orders", "User:alice", Operation.READ)], allow_if_no_acl=True)
    assert lenient.authorize("User:bob", "h", Operation.WRITE, TOPIC, "no-acls-here")
    assert not lenient.authorize("User:bob", "h", Operation.READ, TOPIC, "orders")  # named: the ACLs decide


def test_replacing_the_bindings_drops_cached_decisions():
    authorizer = Authorizer([acl("orders", "User:alice", Operation.READ)])
    assert authorizer.authorize("User:alice", "h", Operation.READ, TOPIC, "orders")
    authorizer.replace([])
    assert not authorizer.authorize("User:alice", "h", Operation.READ, TOPIC, "orders")


def test_write_on_any_topic_is_enough_for_an_idempotent_producer():
    authorizer = Authorizer([acl("logs-", "User:shipper", Operation.WRITE, pattern=PREFIXED)])
    assert authorizer.allows_on_any("User:shipper", "h", Operation.WRITE, TOPIC)
    assert not authorizer.allows_on_any("User:other", "h", Operation.WRITE, TOPIC)


def test_filters_match_as_kafka_describes_and_deletes():
    prefixed = acl("billing-", "User:alice", Operation.READ, kind=GROUP, pattern=PREFIXED)
    literal = acl("billing-eu", "User:bob", Operation.READ, kind=GROUP)
    assert AclFilter().matches(prefixed) and AclFilter().matches(literal)
    match = AclFilter(GROUP, "billing-eu", PatternType.MATCH)
    assert match.matches(prefixed) and match.matches(literal)  # every pattern that applies to the name
    exact = AclFilter(GROUP, "billing-eu", PatternType.ANY)
    assert not exact.matches(prefixed) and exact.matches(literal)
    assert not AclFilter(principal="User:carol").matches(literal)


@pytest.mark.parametrize("bad, why", [
    (acl("orders", "User:a", Operation.ANY), "only for filters"),
    (acl("orders", "User:a", Operation.READ, Permission.ANY), "only for filters"),
    (AclBinding(TOPIC, "orders", PatternType.MATCH, "User:a", "*", Operation.READ, ALLOW), "only for filters"),
    (acl("*", "User:a", Operation.READ, pattern=PREFIXED), "not valid"),
    (acl("my-cluster", "User:a", Operation.ALTER, kind=CLUSTER), "kafka-cluster"),
    (acl("orders", "alice", Operation.READ), "TYPE:NAME"),
])
def test_bindings_kafka_would_refuse(bad, why):
    assert why in bad.problem()


def test_the_store_keeps_bindings_across_restarts(tmp_path):
    bindings = {acl("orders", "User:alice", Operation.READ), acl("billing-", "User:bob", Operation.ALL, DENY,
                                                                 kind=GROUP, pattern=PREFIXED)}
    FileAclStore(tmp_path).save(bindings)
    assert FileAclStore(tmp_path).load() == bindings
    assert FileAclStore(tmp_path / "empty").load() == set()


def test_a_cluster_can_have_an_authorizer():  # its ACLs live in ZooKeeper (kbroker/cluster/acls.py)
    config = build_config({"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                           "zookeeper.connect": "127.0.0.1:2181"})
    assert config.authorizer_class_name and config.zookeeper_connect
