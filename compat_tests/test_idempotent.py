"""The idempotent producer: records arrive exactly once and in order, also across a retry.

kafka-python 3 is idempotent by default; confluent-kafka, aiokafka and kcat are told to be
(`enable.idempotence=true` / `enable_idempotence=True`), everything else stays default.
The second test loses one Produce response on the way back (the broker applied the request,
the client never heard), so the client retries the same batch with the same producer id,
epoch and sequence numbers: the broker must answer it as the duplicate it is.
"""
from __future__ import annotations

import pytest

from compat_tests.clients import ALL_CLIENTS, Kcat, create_topic
from compat_tests.faultproxy import LoseOneProduceResponse
from compat_tests.logfiles import batch_headers
from compat_tests.records import assert_delivered, assert_same_records, ranges_for, simple_records


def _assert_idempotent_batches(data_dir, topic):
    """Every stored batch carries a producer id and epoch: the client really took the idempotent path."""
    plain = [b for b in batch_headers(data_dir, topic) if b.producer_id < 0 or b.producer_epoch < 0]
    assert not plain, f"{len(plain)} batches without a producer id, first {plain[0]}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_idempotent_producer_delivers_exactly_once_in_order(broker, topic_name, client):
    create_topic(client, broker.bootstrap, topic_name, partitions=3)
    records = simple_records(client, 3000, partitions=3, prefix="idem")

    deliveries = client.produce(broker.bootstrap, topic_name, records, flush_every=500,
                                idempotent=None if client.idempotent_by_default else True)
    assert_delivered(deliveries, offsets=client.reports_offsets)
    _assert_idempotent_batches(broker.data_dir, topic_name)

    ranges = ranges_for(records)
    received = client.consume(broker.bootstrap, topic_name, ranges)
    assert_same_records(records, received, deliveries=deliveries)
    assert client.latest(broker.bootstrap, topic_name, ranges) == {p: stop for p, (_, stop) in ranges.items()}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_retry_after_a_lost_produce_response_is_not_appended_twice(broker_factory, topic_name, client):
    # Lose the answer to the second Produce request: the first one has succeeded, so the broker
    # already knows the producer's id and sequence when the duplicate arrives. kcat sends each
    # run from a new producer, so it gets one run and loses the answer to its first request.
    if isinstance(client, Kcat):
        client = Kcat(exit_on_error=False)  # -E: the cut connection would otherwise end kcat before it retries
    proxy = LoseOneProduceResponse(cut_produce_number=1 if not client.reports_offsets else 2)
    broker = broker_factory({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})
    proxy.start(broker.port)
    bootstrap = f"127.0.0.1:{proxy.port}"
    try:
        create_topic(client, bootstrap, topic_name, partitions=1)
        records = simple_records(client, 900, partitions=1, prefix="retry")
        deliveries = client.produce(bootstrap, topic_name, records,
                                    idempotent=None if client.idempotent_by_default else True,
                                    flush_every=None if not client.reports_offsets else 300)
        assert proxy.responses_dropped == 1, (
            f"the proxy saw {proxy.produce_requests} Produce requests and dropped "
            f"{proxy.responses_dropped} answers: the retry under test did not happen")
        assert_delivered(deliveries, offsets=client.reports_offsets)

        received = client.consume(bootstrap, topic_name, ranges_for(records))
        assert_same_records(records, received, deliveries=deliveries)
        assert client.latest(bootstrap, topic_name, [0]) == {0: len(records)}, "a retried batch was appended twice"
        _assert_idempotent_batches(broker.data_dir, topic_name)
    finally:
        proxy.stop()
