"""Internal topics through real clients: a producer's metadata request that names
`__consumer_offsets` gets the group coordinator's topic (50 compacted partitions), not one made
with the broker defaults, and admin clients cannot delete its records (Kafka answers
INVALID_TOPIC_EXCEPTION).
"""
from __future__ import annotations

import pytest

from compat_tests.clients import ADMIN_CLIENTS, BY_NAME, KafkaError

OFFSETS_TOPIC = "__consumer_offsets"
INVALID_TOPIC_EXCEPTION = 17


@pytest.fixture(scope="module")
def offsets_topic(broker) -> str:
    """Named first by a producer's metadata request, which allows auto-creation (librdkafka)."""
    from confluent_kafka import Producer

    Producer({"bootstrap.servers": broker.bootstrap}).list_topics(OFFSETS_TOPIC, timeout=30)
    return OFFSETS_TOPIC


@pytest.mark.timeout(60)
def test_a_producer_naming_the_offsets_topic_gets_the_coordinators_topic(broker, offsets_topic):
    with BY_NAME["confluent-kafka"].admin(broker.bootstrap) as admin:
        assert admin.topics()[offsets_topic] == 50
        assert admin.topic_configs(offsets_topic)["cleanup.policy"].value == "compact"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("client", ADMIN_CLIENTS, ids=str)
def test_deleting_records_of_the_offsets_topic_is_refused(broker, offsets_topic, client):
    with client.admin(broker.bootstrap) as admin, pytest.raises(KafkaError) as refused:
        admin.delete_records(offsets_topic, {0: -1})
    assert refused.value.code == INVALID_TOPIC_EXCEPTION
