"""A group coordinator in a cluster acknowledges an offset commit only once the ISR has it.

Three brokers; the `__consumer_offsets` partition of the group has all three in its ISR. Both
followers are paused (SIGSTOP) and a consumer commits: the commit must not be answered while
they sleep (a leader that answered at once could die with the only copy). Once they wake, it is
answered; then the leader is killed, and the coordinator elected next must hand the committed
offset to a new consumer.
"""
from __future__ import annotations

import signal
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.coordinator.records import OFFSETS_TOPIC, partition_for

PAUSE_S = 2.0  # well under replica.lag.time.max.ms: the followers stay in the ISR


def test_an_offset_commit_waits_for_the_followers_and_survives_the_leader(cluster_factory, topic_name):
    cluster = cluster_factory(3, {"replica.lag.time.max.ms": "20000", "group.initial.rebalance.delay.ms": "0"})
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_all})
    admin.create_topics([NewTopic(topic_name, 1, 3)])[topic_name].result(30)
    producer = Producer({"bootstrap.servers": cluster.bootstrap_all})
    for i in range(10):
        producer.produce(topic_name, value=b"%d" % i)
    assert producer.flush(30) == 0
    group = f"{topic_name}-group"
    config = {"bootstrap.servers": cluster.bootstrap_all, "group.id": group, "enable.auto.commit": False,
              "auto.offset.reset": "earliest"}
    consumer = Consumer(config)
    consumer.assign([TopicPartition(topic_name, 0, 0)])
    consumer.commit(offsets=[TopicPartition(topic_name, 0, 3)], asynchronous=False)  # the coordinator is up

    partition = partition_for(group, 50)
    view = cluster.wait_in_sync(OFFSETS_TOPIC, 50)
    state = cluster.metadata(via=cluster.alive()[0], topics=[OFFSETS_TOPIC]).topics[OFFSETS_TOPIC][partition]
    followers = [node for node in state.isr if node != state.leader]
    assert len(followers) == 2, (view, state)

    answered = threading.Event()
    outcome: list = []

    def commit() -> None:
        outcome.append(consumer.commit(offsets=[TopicPartition(topic_name, 0, 7)], asynchronous=False))
        answered.set()

    for node in followers:
        cluster.signal(node, signal.SIGSTOP)
    try:
        committing = threading.Thread(target=commit)
        committing.start()
        assert not answered.wait(PAUSE_S), "the commit was answered while no follower had it"
    finally:
        for node in followers:
            cluster.signal(node, signal.SIGCONT)
    assert answered.wait(30) and outcome and outcome[0][0].error is None
    committing.join()
    consumer.close()

    cluster.signal(state.leader, signal.SIGKILL)
    deadline = time.monotonic() + 60
    fresh = Consumer(config)
    try:
        while True:  # until a new coordinator answers (the group's partition needs a new leader first)
            committed = fresh.committed([TopicPartition(topic_name, 0)], timeout=10)
            if committed[0].error is None and committed[0].offset >= 0:
                break
            assert time.monotonic() < deadline, committed
        assert committed[0].offset == 7
    finally:
        fresh.close()
