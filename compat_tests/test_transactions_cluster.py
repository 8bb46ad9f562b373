"""Transactions in a cluster of three kbroker processes on a real ZooKeeper, with confluent-kafka.

A transactional id is coordinated by the leader of its `__transaction_state` partition (created
by the controller on the first lookup, replicated to all three brokers); markers for partitions
led elsewhere go to their leaders with WriteTxnMarkers, and those leaders verify a transaction's
first batch with the coordinator (AddPartitionsToTxn verify_only). When the coordinator's broker is
SIGKILLed, the new leader of its partition loads the transactional ids, and the same
transactional id carries on there: the old transaction stays committed, a new one commits.
Consume-transform-produce works across the brokers as on a single node.
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from compat_tests.clients import ConfluentKafka
from compat_tests.test_transactions import (
    RECORDS,
    TIMEOUT,
    committed_offsets,
    ctp_confluent,
    produce_plain,
    read_committed,
    transform,
)
from kbroker.coordinator.records import partition_for
from kbroker.coordinator.txn_records import TRANSACTION_STATE_TOPIC
from kbroker.errors import ErrorCode
from kbroker.wire.messages.describe_transactions import DescribeTransactionsRequest
from kbroker.wire.messages.find_coordinator import FindCoordinatorRequest
from tests.broker.test_bad_input import produce
from tests.broker.test_txn_markers import txn_batch
from tests.cluster_process import SESSION_TIMEOUT_MS
from tests.wire_client import WireClient

pytestmark = pytest.mark.timeout(240)

PARTITIONS = 6
STATE_PARTITIONS = 5
SETTINGS = {"group.initial.rebalance.delay.ms": "300",
            "transaction.state.log.num.partitions": str(STATE_PARTITIONS)}


def _coordinator(bootstrap: str, tid: str) -> int:
    with WireClient(bootstrap) as client:
        answer = client.request(10, 4, FindCoordinatorRequest(key_type=1, coordinator_keys=[tid]))
    coordinator = answer.coordinators[0]
    assert coordinator.error_code == 0, coordinator
    return coordinator.node_id


def _completed(bootstrap: str, tid: str):
    """DescribeTransactions from `bootstrap` once it shows the transaction CompleteCommit (the
    markers are written after EndTxn is answered; a new coordinator loads first)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        with WireClient(bootstrap) as client:
            [state] = client.request(65, 0, DescribeTransactionsRequest(transactional_ids=[tid])).transaction_states
        if state.error_code == 0 and state.transaction_state == "CompleteCommit":
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


def _commit(bootstrap: str, tid: str, topic: str, tag: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    producer.init_transactions(TIMEOUT * 2)
    producer.begin_transaction()
    for p in range(PARTITIONS):
        producer.produce(topic, value=f"{tag}-{p}".encode(), partition=p)
    producer.commit_transaction(TIMEOUT)


def test_a_transaction_commits_across_brokers_and_survives_its_coordinators_death(cluster_factory, topic_name):
    cluster = cluster_factory(overrides=SETTINGS)
    with ConfluentKafka().admin(cluster.bootstrap(1)) as admin:
        admin.create_topic(topic_name, PARTITIONS, 3)
    cluster.wait_in_sync(topic_name, PARTITIONS)
    tid = f"{topic_name}-tx"

    _commit(cluster.bootstrap_all, tid, topic_name, "first")  # markers to leaders on every broker
    coordinator = _coordinator(cluster.bootstrap(1), tid)
    before = _completed(cluster.bootstrap(coordinator), tid)
    view = cluster.metadata(1, [topic_name])
    assert len(set(view.leaders(topic_name).values())) > 1  # some markers went to other brokers
    # A leader other than the coordinator asks it (AddPartitionsToTxn verify_only, KIP-890) before
    # a transaction's first batch: one sent outside the transaction is refused.
    elsewhere = next(p for p, leader in view.leaders(topic_name).items() if leader != coordinator)
    with WireClient(cluster.bootstrap(view.leaders(topic_name)[elsewhere])) as client:
        stray = txn_batch(1, b"stray", producer_id=before.producer_id, epoch=before.producer_epoch)
        assert produce(client, topic_name, elsewhere, stray, transactional_id=tid).error_code == \
            ErrorCode.INVALID_TXN_STATE
    assert sorted(read_committed(cluster.bootstrap(1), topic_name, PARTITIONS)) == \
        sorted(f"first-{p}".encode() for p in range(PARTITIONS))

    cluster.brokers[coordinator].kill()
    survivor = next(n for n in cluster.alive() if n != coordinator)
    state_partition = partition_for(tid, STATE_PARTITIONS)
    cluster.wait_until(lambda v: v.leaders(TRANSACTION_STATE_TOPIC).get(state_partition) not in (coordinator, -1),
                       via=survivor, topics=[TRANSACTION_STATE_TOPIC], timeout=SESSION_TIMEOUT_MS / 1000 + 20)
    successor = _coordinator(cluster.bootstrap(survivor), tid)
    assert successor != coordinator
    # The successor replayed the partition: the same producer id and epoch, the transaction committed.
    after = _completed(cluster.bootstrap(successor), tid)
    assert (after.producer_id, after.producer_epoch) == (before.producer_id, before.producer_epoch)

    survivors = ",".join(cluster.bootstrap(n) for n in cluster.alive() if n != coordinator)
    cluster.wait_until(lambda v: v.fully_led(topic_name, PARTITIONS), via=survivor, topics=[topic_name])
    _commit(survivors, tid, topic_name, "second")
    assert sorted(read_committed(cluster.bootstrap(survivor), topic_name, PARTITIONS)) == \
        sorted(f"{tag}-{p}".encode() for tag in ("first", "second") for p in range(PARTITIONS))


def test_consume_transform_produce_in_a_cluster(cluster_factory, topic_name):
    """The group's offsets go to its coordinator's broker (TxnOffsetCommit), their marker to that
    broker's `__consumer_offsets` partition through WriteTxnMarkers."""
    cluster = cluster_factory(overrides=SETTINGS)
    src, dst = f"{topic_name}-in", f"{topic_name}-out"
    with ConfluentKafka().admin(cluster.bootstrap(1)) as admin:
        for name in (src, dst):
            admin.create_topic(name, 2, 1)
    for name in (src, dst):
        cluster.wait_until(lambda v: v.fully_led(name, 2), via=1, topics=[name])
    produce_plain(cluster.bootstrap_all, src, RECORDS, 2)

    assert ctp_confluent(cluster.bootstrap_all, src, dst, f"{topic_name}-g", f"{topic_name}-tx") > 0

    assert sorted(read_committed(cluster.bootstrap(1), dst, 2)) == sorted(transform(b"%d" % i) for i in range(RECORDS))
    assert committed_offsets(cluster.bootstrap_all, f"{topic_name}-g", src, 2) == [RECORDS // 2, RECORDS // 2]
