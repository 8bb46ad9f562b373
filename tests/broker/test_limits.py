"""Connection limits against a broker subprocess: each test configures one limit and pushes past it.

socket.request.max.bytes, max.connections (the acceptor waits), max.connections.per.ip and its
overrides (accept and close), connections.max.idle.ms, and queued.max.requests (per connection:
a pipelining client is answered in order, however small the bound).
"""
from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from kbroker.wire import frames
from kbroker.wire.messages import APIS
from kbroker.wire.messages.api_versions import ApiVersionsRequest
from kbroker.wire.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from tests.broker.test_bad_input import batch, fetch_all, produce
from tests.broker_metrics import METRICS_ON, open_connections
from tests.waiting import wait_until
from tests.wire_client import WireClient

API_VERSIONS, FETCH, CREATE_TOPICS = 18, 1, 19
HELLO = ApiVersionsRequest(client_software_name="limits", client_software_version="1")

pytestmark = pytest.mark.timeout(120)


def hello(client: WireClient) -> None:
    assert client.request(API_VERSIONS, 3, HELLO).error_code == 0


def answered_within(client: WireClient, seconds: float) -> bool:
    """Send ApiVersions; True if the answer comes within `seconds`."""
    sent = client.send(API_VERSIONS, 3, HELLO)
    client.sock.settimeout(seconds)
    try:
        correlation_id, response = client.receive(API_VERSIONS, 3)
    except TimeoutError:
        return False
    finally:
        client.sock.settimeout(10)
    assert correlation_id == sent and response.error_code == 0
    return True


def test_a_frame_of_exactly_socket_request_max_bytes_is_read_one_byte_more_closes(broker_factory):
    limit = 2000
    broker = broker_factory({"socket.request.max.bytes": str(limit)})
    request = frames.encode_request(APIS[API_VERSIONS], 0, 7, "t", ApiVersionsRequest())[4:]
    with WireClient(broker.bootstrap) as client:  # trailing bytes after a body are tolerated
        client.send_raw(struct.pack(">i", limit) + request + b"\x00" * (limit - len(request)))
        assert struct.unpack_from(">i", client.receive_frame())[0] == 7
    with WireClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", limit + 1))
        assert client.is_closed_by_peer()
    assert "larger than the limit of 2000 bytes" in broker.log()


def test_max_connections_per_ip_accepts_then_closes_the_extra_connection(broker_factory):
    broker = broker_factory({"max.connections.per.ip": "2", **METRICS_ON})
    first, second = WireClient(broker.bootstrap), WireClient(broker.bootstrap)
    hello(first)
    hello(second)
    with WireClient(broker.bootstrap) as third:
        assert third.is_closed_by_peer()
    first.close()
    wait_until(lambda: open_connections(broker) == 1, "the broker to see the first connection closed")
    with WireClient(broker.bootstrap) as again:  # the closed connection's slot is free again
        hello(again)
    second.close()
    assert ("Rejected connection from 127.0.0.1, address already has the configured maximum of 2 connections."
            in broker.log())


def test_per_ip_overrides_and_a_zero_default(broker_factory):
    broker = broker_factory({"max.connections.per.ip": "0", "max.connections.per.ip.overrides": "localhost:3"})
    clients = [WireClient(broker.bootstrap) for _ in range(3)]
    for client in clients:
        hello(client)
    with WireClient(broker.bootstrap) as extra:
        assert extra.is_closed_by_peer()
    for client in clients:
        client.close()


def test_max_connections_leaves_new_clients_waiting_until_a_slot_frees(broker_factory):
    broker = broker_factory({"max.connections": "2", **METRICS_ON})
    wait_until(lambda: open_connections(broker) == 0, "the start-up probe's connection to be gone")
    first, second = WireClient(broker.bootstrap), WireClient(broker.bootstrap)
    hello(first)
    hello(second)
    waiting = WireClient(broker.bootstrap)  # the kernel completes the handshake; the broker does not accept
    assert not answered_within(waiting, 1.0)
    first.close()
    _, response = waiting.receive(API_VERSIONS, 3)  # accepted as soon as a slot frees, then answered
    assert response.error_code == 0
    hello(second)
    waiting.close()
    second.close()


def test_idle_connections_are_closed_busy_ones_are_not(broker_factory):
    broker = broker_factory({"connections.max.idle.ms": "1000"})
    with WireClient(broker.bootstrap) as idle, WireClient(broker.bootstrap) as chatty, \
            WireClient(broker.bootstrap) as polling:
        hello(idle)
        hello(polling)
        created = polling.request(CREATE_TOPICS, 7, _create("idle-topic"))
        assert created.topics[0].error_code == 0
        started = time.monotonic()
        polling.send(FETCH, 12, FetchRequest(max_wait_ms=3000, min_bytes=1, topics=[FetchTopic(
            topic="idle-topic", partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1000)])]))
        while time.monotonic() - started < 2.5:
            hello(chatty)
            time.sleep(0.1)  # the scenario: this connection is in use every 0.1 s while `idle` is not
        assert idle.is_closed_by_peer(wait=0.1)
        _, response = polling.receive(FETCH, 12)  # held 3 s: longer than the idle limit, not closed
        assert response.responses[0].partitions[0].error_code == 0
        hello(polling)
        hello(chatty)
        assert polling.is_closed_by_peer(wait=4.0)
    assert "idle for more than connections.max.idle.ms=1000" in broker.log()


def _create(name: str, partitions: int = 1):
    from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest
    return CreateTopicsRequest(topics=[CreatableTopic(name=name, num_partitions=partitions, replication_factor=1)],
                               timeout_ms=5000)


@pytest.mark.parametrize("bound", ["1", "7"])
def test_pipelined_requests_beyond_queued_max_requests_are_answered_in_order(broker_factory, bound):
    broker = broker_factory({"queued.max.requests": bound})
    with WireClient(broker.bootstrap) as client:
        assert client.request(CREATE_TOPICS, 7, _create("pipelined")).topics[0].error_code == 0
        assert produce(client, "pipelined", 0, batch(b"x" * 5000)).error_code == 0
        burst = b"".join(
            frames.encode_request(APIS[API_VERSIONS], 3, 1000 + i, "t", HELLO) if i % 2 else
            frames.encode_request(APIS[FETCH], 12, 1000 + i, "t", FetchRequest(
                max_wait_ms=0, min_bytes=0, max_bytes=100_000, topics=[FetchTopic(topic="pipelined", partitions=[
                    FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=100_000)])]))
            for i in range(1000))
        client.send_raw(burst)  # one write: most of it arrives in a few large reads
        for i in range(1000):
            correlation_id, response = client.receive(API_VERSIONS if i % 2 else FETCH, 3 if i % 2 else 12)
            assert correlation_id == 1000 + i
            if not i % 2:
                assert len(response.responses[0].partitions[0].records) > 5000
        assert fetch_all(client, "pipelined", 0).error_code == 0


def test_limit_configs_are_validated(tmp_path):
    from kbroker.config import ConfigError, build_config
    with pytest.raises(ConfigError, match="can be set to zero only if"):
        build_config({"max.connections.per.ip": "0"})
    with pytest.raises(ConfigError, match="max.connections.per.ip.overrides"):
        build_config({"max.connections.per.ip.overrides": "hostonly"})
    with pytest.raises(ConfigError, match="queued.max.requests"):
        build_config({"queued.max.requests": "0"})
    config = build_config({"max.connections.per.ip.overrides": "a:1, [::1]:5,10.0.0.1:7"})
    assert config.max_connections_per_ip_overrides == (("a", 1), ("::1", 5), ("10.0.0.1", 7))
    defaults = build_config({})
    assert (defaults.max_connections, defaults.max_connections_per_ip, defaults.connections_max_idle_ms,
            defaults.queued_max_requests) == (2**31 - 1, 2**31 - 1, 600_000, 500)
    assert (defaults.socket_send_buffer_bytes, defaults.socket_receive_buffer_bytes) == (102_400, 102_400)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read socket buffer sizes")
def test_socket_buffer_sizes_are_set_on_client_connections(broker_factory):
    broker = broker_factory({"socket.send.buffer.bytes": "65536", "socket.receive.buffer.bytes": "32768"})
    with WireClient(broker.bootstrap) as client:
        hello(client)
        local_port = client.sock.getsockname()[1]
        shown = subprocess.run(["ss", "-tmnH", "src", f"127.0.0.1:{broker.port}", "dst", f"127.0.0.1:{local_port}"],
                               capture_output=True, text=True, check=True).stdout
    # The kernel doubles what SO_SNDBUF / SO_RCVBUF ask for (its bookkeeping overhead).
    assert re.search(r"rb65536\b", shown) and re.search(r"tb131072\b", shown), shown


def test_the_open_file_limit_is_raised_to_the_hard_limit(broker_factory):
    import resource
    broker = broker_factory()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = open(f"/proc/{broker.process.pid}/limits").read()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3] == str(hard) or hard == resource.RLIM_INFINITY
    assert f"open file limit {hard}" in broker.log() or hard == resource.RLIM_INFINITY
    del soft


def test_a_reset_peer_during_sendfile_leaves_the_broker_serving(broker_factory):
    broker = broker_factory()
    with WireClient(broker.bootstrap) as client:
        assert client.request(CREATE_TOPICS, 7, _create("reset")).topics[0].error_code == 0
        for _ in range(20):
            assert produce(client, "reset", 0, batch(b"y" * 500_000)).error_code == 0
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", broker.port))
        request = frames.encode_request(APIS[FETCH], 12, 1, "t", FetchRequest(
            max_wait_ms=0, min_bytes=0, max_bytes=50_000_000, topics=[FetchTopic(topic="reset", partitions=[
                FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=50_000_000)])]))
        sock.sendall(request)
        sock.recv(1000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST in the middle of a 10 MB sendfile
    with WireClient(broker.bootstrap) as client:
        assert fetch_all(client, "reset", 0).error_code == 0
    assert "Traceback" not in broker.log()


def test_one_request_cannot_create_more_than_10000_partitions(broker_factory):
    from kbroker.errors import ErrorCode
    from kbroker.wire.messages.create_partitions import CreatePartitionsRequest, CreatePartitionsTopic
    from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest
    broker = broker_factory()
    with WireClient(broker.bootstrap) as client:
        started = time.monotonic()
        response = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(topics=[
            CreatableTopic(name="huge", num_partitions=2**31 - 1, replication_factor=1),
            CreatableTopic(name="small", num_partitions=1, replication_factor=1)], timeout_ms=5000))
        assert [(t.error_code, t.error_message) for t in response.topics] == [
            (ErrorCode.POLICY_VIOLATION, "Excessively large number of partitions per request.")] * 2
        response = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(topics=[
            CreatableTopic(name="half", num_partitions=5000, replication_factor=1),
            CreatableTopic(name="other-half", num_partitions=5001, replication_factor=1)], timeout_ms=5000))
        assert {t.error_code for t in response.topics} == {ErrorCode.POLICY_VIOLATION}
        assert client.request(CREATE_TOPICS, 7, _create("grows")).topics[0].error_code == 0
        response = client.request(37, 3, CreatePartitionsRequest(topics=[
            CreatePartitionsTopic(name="grows", count=2**31 - 1, assignments=None)], timeout_ms=5000,
            validate_only=False))
        assert response.results[0].error_code == ErrorCode.POLICY_VIOLATION
        assert time.monotonic() - started < 10
        assert fetch_all(client, "grows", 0).error_code == 0
    assert not (broker.data_dir / "huge-0").exists() and not (broker.data_dir / "half-0").exists()
