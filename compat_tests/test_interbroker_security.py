"""Brokers talking to each other over TLS and SASL, with confluent-kafka, on a real ZooKeeper.

Each broker serves a PLAINTEXT listener (the clients and the test's own Metadata polls) and an
INTERNAL one named by inter.broker.listener.name: SASL_SSL with SCRAM-SHA-512 (the brokers' user
added through a running broker, into ZooKeeper), or SSL with ssl.client.auth=required (the brokers
present their certificates to each other). Replica fetchers and WriteTxnMarkers go over INTERNAL:
an RF=3 topic with min.insync.replicas=2 keeps all three replicas in the ISR under acks=all, every
replica's log is byte-identical to its leader's, and a transaction spanning partitions led by
different brokers commits. A broker whose inter-broker password is wrong never replicates and says
why; the other two keep serving.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from compat_tests.test_transactions import TIMEOUT, read_committed
from compat_tests.test_transactions_cluster import PARTITIONS, SETTINGS, _commit
from tests.certificates import make_certificates
from tests.cluster_process import ClusterProcesses

pytestmark = pytest.mark.timeout(180)

RECORDS = 300
BROKER_USER, BROKER_PASSWORD = "broker", "broker-secret"


@pytest.fixture
def start_cluster(zookeeper, tmp_path: Path) -> Iterator[Callable[..., ClusterProcesses]]:
    """Start three brokers, each with PLAINTEXT (its `port`) and INTERNAL, the inter-broker
    listener; every cluster started is stopped at the end, also after a failed start."""
    started: list[ClusterProcesses] = []

    def start(settings: dict[str, str], per_broker: dict[int, dict[str, str]] | None = None) -> ClusterProcesses:
        cluster = ClusterProcesses(zookeeper, tmp_path / f"cluster{len(started)}", 3, {
            **SETTINGS, "inter.broker.listener.name": "INTERNAL", **settings}).add_listener("INTERNAL")
        for node, broker in cluster.brokers.items():
            broker.overrides.update((per_broker or {}).get(node, {}))
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.stop()


def tls_settings(base: Path) -> dict[str, str]:
    certs = make_certificates(base / "certs")
    return {"ssl.keystore.location": str(certs.server), "ssl.truststore.location": str(certs.ca)}


def replica_log(cluster: ClusterProcesses, node: int, topic: str, partition: int) -> bytes:
    path = cluster.brokers[node].data_dir / f"{topic}-{partition}" / f"{0:020d}.log"
    return path.read_bytes() if path.exists() else b""


def wait_replicated(cluster: ClusterProcesses, topic: str, partitions: int, nodes: tuple[int, ...]) -> None:
    """Until every partition's log is byte-identical on `nodes` (the followers append exactly what
    the leader stores)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        logs = {p: {replica_log(cluster, node, topic, p) for node in nodes} for p in range(partitions)}
        if all(len(copies) == 1 and b"" not in copies for copies in logs.values()):
            return
        assert time.monotonic() < deadline, {p: [len(c) for c in copies] for p, copies in logs.items()}
        time.sleep(0.1)


def wait_logged(cluster: ClusterProcesses, node: int, pattern: str) -> str:
    """Until broker `node` has logged a line matching `pattern`; its whole log."""
    deadline = time.monotonic() + TIMEOUT
    while not re.search(pattern, text := cluster.brokers[node].log_path.read_text()):
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.05)
    return text


def produce_acks_all(bootstrap: str, topic: str, partitions: int) -> None:
    errors: list = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(topic, b"%d" % i, partition=i % partitions,
                         on_delivery=lambda err, _: errors.append(err) if err else None)
    assert producer.flush(TIMEOUT) == 0
    assert errors == []


SECURED = {
    "SASL_SSL-SCRAM-SHA-512": {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL",
        "listener.name.internal.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.internal.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{BROKER_USER}" password="{BROKER_PASSWORD}";'},
    "SSL-client-auth-required": {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SSL",
        "listener.name.internal.ssl.client.auth": "required"},
}


@pytest.mark.parametrize("security", list(SECURED))
def test_replication_and_markers_over_a_secured_inter_broker_listener(start_cluster, tmp_path, topic_name, security):
    cluster = start_cluster({**SECURED[security], **tls_settings(tmp_path)})
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(1)})
    if "SCRAM" in security:  # the brokers' own user, in ZooKeeper for all three
        for future in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
                BROKER_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                BROKER_PASSWORD.encode())]).values():
            future.result(timeout=TIMEOUT)
    admin.create_topics([NewTopic(topic_name, PARTITIONS, 3, config={"min.insync.replicas": "2"})])[
        topic_name].result(timeout=TIMEOUT)
    cluster.wait_in_sync(topic_name, PARTITIONS)

    produce_acks_all(cluster.bootstrap_all, topic_name, PARTITIONS)
    wait_replicated(cluster, topic_name, PARTITIONS, (1, 2, 3))
    view = cluster.metadata(1, [topic_name])
    assert all(sorted(p.isr) == [1, 2, 3] for p in view.topics[topic_name].values()), view
    assert len(set(view.leaders(topic_name).values())) > 1  # the markers below go to other brokers too

    _commit(cluster.bootstrap_all, f"{topic_name}-tx", topic_name, "tx")
    committed = read_committed(cluster.bootstrap(1), topic_name, PARTITIONS)
    assert sorted(v for v in committed if v.startswith(b"tx-")) == sorted(b"tx-%d" % p for p in range(PARTITIONS))
    for node, broker in cluster.brokers.items():
        assert "cannot replicate" not in broker.log(), node


def test_a_broker_with_a_wrong_inter_broker_password_never_joins_the_isr(start_cluster, topic_name):
    def jaas(password: str) -> dict[str, str]:
        return {"listener.name.internal.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{BROKER_USER}" password="{password}" user_{BROKER_USER}="{BROKER_PASSWORD}";'}

    cluster = start_cluster({
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT",
        "listener.name.internal.sasl.enabled.mechanisms": "PLAIN", "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "replica.lag.time.max.ms": "1500", **jaas(BROKER_PASSWORD)}, per_broker={3: jaas("wrong")})
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KafkaPythonTopic  # confluent-kafka 2.x refuses replica assignments
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap(1))
    admin.create_topics([KafkaPythonTopic(topic_name, -1, -1, replica_assignments={0: [1, 2, 3]},
                                          topic_configs={"min.insync.replicas": "2"})])
    admin.close()
    cluster.wait_until(lambda v: v.fully_led(topic_name, 1) and sorted(v.topics[topic_name][0].isr) == [1, 2],
                       via=1, topics=[topic_name], timeout=TIMEOUT)

    produce_acks_all(cluster.bootstrap(1), topic_name, 1)  # the leader and broker 2: min.insync.replicas
    wait_replicated(cluster, topic_name, 1, (1, 2))
    assert replica_log(cluster, 3, topic_name, 0) == b""
    assert sorted(cluster.metadata(1, [topic_name]).topics[topic_name][0].isr) == [1, 2]
    refused = wait_logged(cluster, 3, "ERROR kbroker.replica_fetcher: cannot replicate from broker 1: broker 1 at "
                          "INTERNAL://127.0.0.1:[0-9]+: PLAIN login refused: SASL_AUTHENTICATION_FAILED: .*Invalid "
                          "username or password")
    assert refused.count("cannot replicate from broker 1") == 1  # said once, not at every retry
    wait_logged(cluster, 1, "Failed authentication with 127.0.0.1:[0-9]+ on listener INTERNAL")
