"""kcat's metadata listing (`kcat -L`, text and `-J` JSON): brokers, topics, partitions.

kcat (librdkafka 2.0.2) is the client Debian users reach for first, and the one that breaks
on top-level tagged fields in an ApiVersions answer (librdkafka 1.4 to 2.1). Its listing must show the one broker at
the address it was reached on, as controller, and each topic with every partition led by
that broker (replicas and ISR = that broker).
"""
from __future__ import annotations

import json
import re

import pytest

from compat_tests.clients import BY_NAME, create_topic

kcat = BY_NAME["kcat"]


@pytest.mark.timeout(60)
def test_kcat_lists_brokers_topics_and_partitions(broker, topic_name):
    create_topic(kcat, broker.bootstrap, topic_name, partitions=3)
    create_topic(kcat, broker.bootstrap, f"{topic_name}-one", partitions=1)

    listing = json.loads(kcat.metadata(broker.bootstrap, as_json=True))
    (broker_entry,) = listing["brokers"]
    node_id = broker_entry["id"]
    assert broker_entry["name"] == broker.bootstrap
    assert listing["controllerid"] == node_id
    topics = {t["topic"]: t for t in listing["topics"]}
    for name, count in ((topic_name, 3), (f"{topic_name}-one", 1)):
        assert "error" not in topics[name], topics[name]
        assert topics[name]["partitions"] == [
            {"partition": p, "leader": node_id, "replicas": [{"id": node_id}], "isrs": [{"id": node_id}]}
            for p in range(count)]

    text = kcat.metadata(broker.bootstrap, topic=topic_name)
    assert re.search(rf"^ 1 brokers:\n  broker {node_id} at {re.escape(broker.bootstrap)} \(controller\)$", text, re.M), text
    assert f' topic "{topic_name}" with 3 partitions:' in text
    partitions = re.findall(r"^    partition (\d+), leader (\d+), replicas: (\d+), isrs: (\d+)$", text, re.M)
    assert partitions == [(str(p), str(node_id), str(node_id), str(node_id)) for p in range(3)], text
    assert f'"{topic_name}-one"' not in text, "-t asks for one topic only"
