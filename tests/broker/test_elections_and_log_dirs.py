"""ElectLeaders and DescribeLogDirs on a single node, every version, over a socket.

One node leads every partition it has: an election is never needed (and, for a partition it does
not have, UNKNOWN_TOPIC_OR_PARTITION). Its one log dir is the data dir, each partition's size the
bytes of its segments, the lag 0; v4 adds the volume's sizes.
"""
from __future__ import annotations

import shutil

import pytest

from kbroker.errors import ErrorCode
from kbroker.wire.messages.describe_log_dirs import DescribableLogDirTopic, DescribeLogDirsRequest
from kbroker.wire.messages.elect_leaders import ElectLeadersRequest, TopicPartitions
from tests.broker.test_internal_topics import create_topic
from tests.scale_harness import _produce as produce_request
from tests.wire_client import WireClient

PRODUCE, ELECT_LEADERS, DESCRIBE_LOG_DIRS = 0, 43, 35


@pytest.mark.parametrize("version", [0, 1, 2])
def test_no_election_is_needed_on_a_single_node(broker, topic_name, version):
    with WireClient(broker.bootstrap) as client:
        create_topic(client, topic_name)
        response = client.request(ELECT_LEADERS, version, ElectLeadersRequest(
            election_type=0, topic_partitions=[TopicPartitions(topic=topic_name, partitions=[0, 1]),
                                               TopicPartitions(topic="no-such-topic", partitions=[0])],
            timeout_ms=1000))
        assert response.error_code == 0
        outcomes = {(r.topic, p.partition_id): p.error_code
                    for r in response.replica_election_results for p in r.partition_result}
        assert outcomes == {(topic_name, 0): ErrorCode.ELECTION_NOT_NEEDED,
                            (topic_name, 1): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                            ("no-such-topic", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        every = client.request(ELECT_LEADERS, version, ElectLeadersRequest(election_type=0, topic_partitions=None))
        assert (topic_name, 0) in {(r.topic, p.partition_id) for r in every.replica_election_results
                                   for p in r.partition_result}
        if version >= 1:
            bad = client.request(ELECT_LEADERS, version, ElectLeadersRequest(election_type=7, topic_partitions=None))
            assert bad.error_code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_describe_log_dirs_reports_the_data_dir_and_each_partition(broker, topic_name, version):
    with WireClient(broker.bootstrap) as client:
        create_topic(client, topic_name)
        produced = client.request(PRODUCE, 9, produce_request(topic_name, 0, b"x" * 1000))
        assert produced.responses[0].partition_responses[0].error_code == 0
        answer = client.request(DESCRIBE_LOG_DIRS, version, DescribeLogDirsRequest(
            topics=[DescribableLogDirTopic(topic=topic_name, partitions=[0, 5]),
                    DescribableLogDirTopic(topic="no-such-topic", partitions=[0])]))
        every = client.request(DESCRIBE_LOG_DIRS, version, DescribeLogDirsRequest(topics=None))
    (result,) = answer.results
    assert result.error_code == 0 and result.log_dir == str(broker.data_dir.resolve())
    (topic,) = result.topics  # only what is held here
    (partition,) = topic.partitions
    size = sum(f.stat().st_size for f in (broker.data_dir / f"{topic_name}-0").glob("*.log"))
    assert (topic.name, partition.partition_index, partition.partition_size) == (topic_name, 0, size)
    assert size > 1000 and partition.offset_lag == 0 and not partition.is_future_key
    if version >= 4:
        total = shutil.disk_usage(broker.data_dir).total
        assert result.total_bytes == total and 0 < result.usable_bytes <= total
    else:
        assert result.total_bytes == result.usable_bytes == -1
    assert topic_name in {t.name for t in every.results[0].topics}
