"""Start-up and shutdown of a real broker process: SIGTERM is clean, SIGKILL recovers."""
from __future__ import annotations

from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest
from tests.broker.test_bad_input import batch, fetch_all, produce, records_of
from tests.wire_client import WireClient

CREATE_TOPICS = 19


def fill(bootstrap: str, topic: str, values: list[bytes]) -> None:
    with WireClient(bootstrap) as client:
        created = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(
            topics=[CreatableTopic(name=topic, num_partitions=1, replication_factor=1)], timeout_ms=5000))
        assert created.topics[0].error_code == 0
        for value in values:
            assert produce(client, topic, 0, batch(value)).error_code == 0


def test_sigterm_is_a_clean_shutdown_and_restart_skips_recovery(broker_factory, tmp_path):
    data_dir = tmp_path / "data"
    broker = broker_factory(data_dir=data_dir)
    values = [b"v%d" % i for i in range(50)]
    fill(broker.bootstrap, "lifecycle", values)
    assert "(a new data dir)" in broker.log()
    assert broker.stop() == 0
    assert (data_dir / ".kafka_cleanshutdown").exists()
    assert "stopped cleanly" in broker.log()
    broker.start()
    assert "(clean shutdown)" in broker.log()
    assert not (data_dir / ".kafka_cleanshutdown").exists()  # a crash from now on must be noticed
    with WireClient(broker.bootstrap) as client:
        assert records_of(fetch_all(client, "lifecycle", 0)) == values
        assert produce(client, "lifecycle", 0, batch(b"after")).base_offset == 50


def test_sigkill_then_restart_recovers_everything_written(broker_factory, tmp_path):
    data_dir = tmp_path / "data"
    broker = broker_factory(data_dir=data_dir)
    values = [b"x" * 1000 + b"%d" % i for i in range(200)]
    fill(broker.bootstrap, "crash", values)
    broker.kill()
    broker.start()
    assert "(unclean shutdown)" in broker.log()
    with WireClient(broker.bootstrap) as client:
        assert records_of(fetch_all(client, "crash", 0)) == values
