"""A topic deleted and created again under its name starts uncommitted for every group (Kafka
drops a deleted topic's committed offsets): a confluent-kafka consumer of a group that had
committed offset 10 on the old topic reads the new one from its first record, not from 10.
"""
from __future__ import annotations

import time

import pytest

from compat_tests.clients import BY_NAME, Record
from compat_tests.test_groups import FAST_GROUPS

OFFSET_INVALID = -1001  # librdkafka: no committed offset


def produce(bootstrap: str, topic: str, count: int) -> None:
    BY_NAME["confluent-kafka"].produce(bootstrap, topic, [Record(0, b"k%d" % i, b"v%d" % i) for i in range(count)])


@pytest.mark.timeout(90)
def test_a_recreated_topic_is_consumed_from_its_start_not_the_old_committed_offset(broker_factory, topic_name):
    from confluent_kafka import Consumer, TopicPartition

    broker = broker_factory(FAST_GROUPS)
    group = f"{topic_name}-group"
    settings = {"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest"}
    admin = BY_NAME["confluent-kafka"].admin(broker.bootstrap)
    admin.create_topic(topic_name)
    produce(broker.bootstrap, topic_name, 10)
    consumer = Consumer(settings)
    consumer.commit(offsets=[TopicPartition(topic_name, 0, 10)], asynchronous=False)
    consumer.close()

    admin.delete_topic(topic_name)
    admin.create_topic(topic_name)
    admin.close()
    produce(broker.bootstrap, topic_name, 15)

    consumer = Consumer(settings)
    try:
        (before,) = consumer.committed([TopicPartition(topic_name, 0)], timeout=30)
        assert before.offset == OFFSET_INVALID
        consumer.subscribe([topic_name])
        offsets: list[int] = []
        deadline = time.monotonic() + 60
        while len(offsets) < 15 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                offsets.append(message.offset())
    finally:
        consumer.close()
    assert offsets == list(range(15))
