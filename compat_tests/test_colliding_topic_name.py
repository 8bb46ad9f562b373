"""A producer naming `a_b` while `a.b` exists: Kafka refuses to create a name that collides once
'.' and '_' are taken as equal, and says so in the metadata answer (INVALID_TOPIC_EXCEPTION). The
client gets that error for its records, and the broker keeps serving the existing topic.
"""
from __future__ import annotations

import pytest

from compat_tests.clients import BY_NAME, Record, create_topic

INVALID_TOPIC_EXCEPTION = 17


@pytest.mark.timeout(90)
def test_producing_to_a_colliding_name_is_refused_with_invalid_topic(broker, topic_name):
    client = BY_NAME["confluent-kafka"]
    dotted = topic_name.replace("-", ".")
    create_topic(client, broker.bootstrap, dotted, partitions=1)
    deliveries = client.produce(broker.bootstrap, dotted.replace(".", "_"), [Record(0, b"k", b"v")], timeout=30)
    assert [d.error_code for d in deliveries] == [INVALID_TOPIC_EXCEPTION]
    assert [d.error_code for d in client.produce(broker.bootstrap, dotted, [Record(0, b"k", b"v")])] == [None]
