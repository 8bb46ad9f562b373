"""Prometheus metrics, /healthz and /readyz on `metrics.listener`, read while real clients work.

A broker subprocess serves metrics on an OS-chosen port (read back from its log); confluent-kafka
produces and a consumer group reads part of it; the scrape must then agree exactly with what the
clients did: bytes and records in, bytes out, the group's committed offset and lag, request
counts and error codes. On a cluster, killing a follower must show up on the leader as an
under-replicated partition and an ISR shrink, and exactly one broker reports the controller.
"""
from __future__ import annotations

import signal
import socket
import struct
import time
import urllib.request

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.wire.messages.api_versions import ApiVersionsRequest
from tests.broker_metrics import METRICS_ON, get, metrics_url, scrape, value
from tests.broker_process import BrokerProcess, free_port
from tests.waiting import wait_until
from tests.wire_client import WireClient

def test_metrics_agree_with_what_the_clients_did(broker_factory, topic_name):
    broker = broker_factory({**METRICS_ON, "log.flush.interval.messages": "1"})  # every produce fsyncs
    values = [b"v%05d" % i * 10 for i in range(2000)]
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for v in values:
        producer.produce(topic_name, value=v)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{topic_name}-g",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic_name])
    read = []
    deadline = time.monotonic() + 30
    while len(read) < 1500 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            read.append(message)
    assert len(read) >= 1500
    consumer.commit(offsets=None, message=read[1499], asynchronous=False)  # committed offset 1500
    consumer.close()

    samples = scrape(broker)
    log_size = value(samples, "kafka_log_log_size", topic=topic_name, partition="0")
    assert value(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic_name) == 2000
    assert value(samples, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic_name) == log_size > 0
    assert value(samples, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic_name) >= log_size * 0.75
    assert value(samples, "kafka_log_log_logendoffset", topic=topic_name, partition="0") == 2000
    assert value(samples, "kafka_log_log_highwatermark", topic=topic_name, partition="0") == 2000
    assert value(samples, "kafka_log_log_numlogsegments", topic=topic_name, partition="0") == 1
    group = {"consumergroup": f"{topic_name}-g", "topic": topic_name, "partition": "0"}
    assert value(samples, "kafka_consumergroup_current_offset", **group) == 1500
    assert value(samples, "kafka_consumergroup_lag", **group) == 500
    produces = sum(v for (name, labels), v in samples.items()
                   if name == "kafka_network_requestmetrics_requests_total" and ("request", "Produce") in labels)
    assert produces >= 1
    assert value(samples, "kafka_network_requestmetrics_totaltimems_count", request="Produce") == produces
    # librdkafka's first JoinGroup is answered MEMBER_ID_REQUIRED (KIP-394): an error code in an answer.
    assert value(samples, "kafka_network_requestmetrics_errors_total", request="JoinGroup",
                 error="MEMBER_ID_REQUIRED") >= 1
    assert value(samples, "kafka_log_logflushstats_logflushrateandtimems_count") >= produces


def test_connections_are_counted_by_listener(tmp_path):
    ports = {"PLAINTEXT": free_port(), "REPLICATION": free_port()}
    broker = BrokerProcess(tmp_path / "listeners", {
        **METRICS_ON, "listeners": ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items()),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT"}, port=ports["PLAINTEXT"])
    broker.start()
    try:
        with WireClient(f"127.0.0.1:{ports['REPLICATION']}") as first, \
                WireClient(f"127.0.0.1:{ports['REPLICATION']}") as second:
            for client in (first, second):  # answered: the broker has taken each connection
                client.request(18, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"))
            samples = scrape(broker)
        assert value(samples, "kafka_server_socketservermetrics_connection_count", listener="REPLICATION") == 2
        assert value(samples, "kafka_server_socketservermetrics_connection_count", listener="PLAINTEXT") == 0
    finally:
        broker.stop()


def test_health_readiness_and_bad_requests(broker_factory):
    broker = broker_factory(METRICS_ON)
    assert get(metrics_url(broker, "/healthz")) == (200, "ok\n")
    assert get(metrics_url(broker, "/readyz")) == (200, "ready\n")
    assert get(metrics_url(broker, "/nothing"))[0] == 404
    request = urllib.request.Request(metrics_url(broker), method="POST", data=b"x")
    assert get(request)[0] == 405
    assert scrape(broker)  # still serving
    assert broker.process.poll() is None


def test_connections_the_broker_closes_are_counted_by_reason(broker_factory):
    broker = broker_factory(METRICS_ON)
    unknown_api = struct.pack(">ihhih", 10, 9999, 0, 1, -1)  # size, api key, version, correlation id, no client id
    for frame in (unknown_api, struct.pack(">i", -5), unknown_api):
        with socket.create_connection(("127.0.0.1", broker.port)) as sock:
            sock.sendall(frame)
            assert sock.recv(1) == b""  # closed without an answer

    def closed() -> dict[str, float | None]:
        samples = scrape(broker)
        return {reason: value(samples, "kbroker_connections_closed_total", reason=reason)
                for reason in ("unknown_api", "frame_size")}
    wait_until(lambda: closed() == {"unknown_api": 2.0, "frame_size": 1.0}, lambda: f"the close counts, now {closed()}")


def test_metrics_are_off_by_default(broker_factory):
    broker = broker_factory()
    assert "metrics on" not in broker.log()


def test_a_taken_metrics_port_is_a_clear_start_up_error(broker_factory, tmp_path):
    first = broker_factory(METRICS_ON)
    port = metrics_url(first).split(":")[2].split("/")[0]
    second = BrokerProcess(tmp_path / "second", {"metrics.listener": f"http://127.0.0.1:{port}"})
    assert second.launch().process.wait(15) != 0
    assert f"cannot listen on metrics.listener 127.0.0.1:{port}" in second.log()


def test_a_dead_follower_shows_as_under_replicated_on_the_leader(cluster_factory, topic_name):
    cluster = cluster_factory(3, {**METRICS_ON, "replica.lag.time.max.ms": "2000"})
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_all})
    admin.create_topics([NewTopic(topic_name, 1, 3)])[topic_name].result(30)
    cluster.wait_in_sync(topic_name, 1)
    leader = cluster.metadata(via=1, topics=[topic_name]).leaders(topic_name)[0]
    follower = next(node for node in cluster.brokers if node != leader)
    controllers = [value(scrape(b), "kafka_controller_kafkacontroller_activecontrollercount")
                   for b in cluster.brokers.values()]
    assert sorted(controllers) == [0, 0, 1]
    cluster.signal(follower, signal.SIGKILL)
    deadline = time.monotonic() + 30
    samples = scrape(cluster.brokers[leader])
    while value(samples, "kafka_server_replicamanager_underreplicatedpartitions") != 1:
        assert time.monotonic() < deadline, samples
        time.sleep(0.2)  # polling the leader's gauge until its ISR shrink is written
        samples = scrape(cluster.brokers[leader])
    assert value(samples, "kafka_server_replicamanager_isrshrinks_total") >= 1
    assert value(samples, "kafka_server_replicamanager_leadercount") >= 1
