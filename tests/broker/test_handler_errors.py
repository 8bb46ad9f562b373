"""Errors are answered, not thrown: every handler whose collaborators fail answers its request
with the error on everything the request named, and the connection stays open.

Each API is driven through the real dispatcher in-process, with a real client's request
(tests/wire/golden, and a hand-made one for the APIs no client sent there), while the log
manager, the group coordinator and the other collaborators raise: a RuntimeError (a bug: the
answer is UNKNOWN_SERVER_ERROR, logged once with the request) or a KafkaError (a disk error:
its code). The broker-level cases that used to raise out of a handler are in
test_internal_topics.py (Metadata auto-creating a colliding name).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kbroker.broker.broker import Broker
from kbroker.broker.dispatch import Dispatcher
from kbroker.broker.producer_ids import ProducerIdAllocator
from kbroker.broker.routes import ROUTES
from kbroker.coordinator.group_coordinator import GroupCoordinator
from kbroker.coordinator.txn_coordinator import TransactionCoordinator
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.log_manager import LogManager
from kbroker.security.credentials import FileCredentialStore
from kbroker.security.quota_store import FileQuotaStore
from kbroker.wire import frames
from kbroker.wire.messages import APIS
from kbroker.wire.messages import add_offsets_to_txn as aot
from kbroker.wire.messages import alter_configs as ac
from kbroker.wire.messages import alter_partition_reassignments as apr
from kbroker.wire.messages import alter_client_quotas as acq
from kbroker.wire.messages import alter_user_scram_credentials as ausc
from kbroker.wire.messages import consumer_group_heartbeat as cgh
from kbroker.wire.messages import describe_client_quotas as dcq
from kbroker.wire.messages import create_acls as ca
from kbroker.wire.messages import delete_acls as da
from kbroker.wire.messages import describe_acls as dacl
from kbroker.wire.messages import create_partitions as cp
from kbroker.wire.messages import delete_groups as dg
from kbroker.wire.messages import delete_records as dr
from kbroker.wire.messages import describe_log_dirs as dld
from kbroker.wire.messages import describe_producers as dp
from kbroker.wire.messages import describe_transactions as dtx
from kbroker.wire.messages import describe_user_scram_credentials as dusc
from kbroker.wire.messages import elect_leaders as el
from kbroker.wire.messages import incremental_alter_configs as iac
from kbroker.wire.messages import list_partition_reassignments as lpr
from kbroker.wire.messages import list_transactions as ltx
from kbroker.wire.messages import offset_delete as od
from kbroker.wire.messages import offset_for_leader_epoch as ofle
from kbroker.wire.messages import sasl_authenticate as sa
from kbroker.wire.messages import sasl_handshake as sh
from kbroker.wire.messages import txn_offset_commit as toc
from kbroker.wire.messages import write_txn_markers as wtm
from kbroker.wire.schema import Array, fields_of
from tests.broker.test_dispatch_fuzz import GOLDEN, FakeConnection, fuzz_broker  # noqa: F401 (a fixture)

TOPIC = "orders"
# The APIs no client sent in the golden captures: one request each, naming one item.
HAND_MADE = {
    dr.DELETE_RECORDS.key: dr.DeleteRecordsRequest(topics=[dr.DeleteRecordsTopic(
        name=TOPIC, partitions=[dr.DeleteRecordsPartition(partition_index=0, offset=-1)])]),
    ofle.OFFSET_FOR_LEADER_EPOCH.key: ofle.OffsetForLeaderEpochRequest(topics=[ofle.OffsetForLeaderTopic(
        topic=TOPIC, partitions=[ofle.OffsetForLeaderPartition(partition=0, leader_epoch=0)])]),
    ac.ALTER_CONFIGS.key: ac.AlterConfigsRequest(resources=[ac.AlterConfigsResource(
        resource_type=2, resource_name=TOPIC, configs=[ac.AlterableConfig(name="retention.ms", value="1000")])]),
    cp.CREATE_PARTITIONS.key: cp.CreatePartitionsRequest(topics=[cp.CreatePartitionsTopic(name=TOPIC, count=5)]),
    dg.DELETE_GROUPS.key: dg.DeleteGroupsRequest(groups_names=["g"]),
    iac.INCREMENTAL_ALTER_CONFIGS.key: iac.IncrementalAlterConfigsRequest(resources=[iac.AlterConfigsResource(
        resource_type=2, resource_name=TOPIC, configs=[iac.AlterableConfig(name="retention.ms", value="1000")])]),
    od.OFFSET_DELETE.key: od.OffsetDeleteRequest(group_id="g", topics=[od.OffsetDeleteRequestTopic(
        name=TOPIC, partitions=[od.OffsetDeleteRequestPartition(partition_index=0)])]),
    cgh.CONSUMER_GROUP_HEARTBEAT.key: cgh.ConsumerGroupHeartbeatRequest(
        group_id="g", member_epoch=0, rebalance_timeout_ms=1000, subscribed_topic_names=[TOPIC]),
    el.ELECT_LEADERS.key: el.ElectLeadersRequest(election_type=0, topic_partitions=[el.TopicPartitions(
        topic=TOPIC, partitions=[0])], timeout_ms=1000),
    dld.DESCRIBE_LOG_DIRS.key: dld.DescribeLogDirsRequest(topics=[dld.DescribableLogDirTopic(
        topic=TOPIC, partitions=[0])]),
    apr.ALTER_PARTITION_REASSIGNMENTS.key: apr.AlterPartitionReassignmentsRequest(topics=[apr.ReassignableTopic(
        name=TOPIC, partitions=[apr.ReassignablePartition(partition_index=0, replicas=[1])])]),
    lpr.LIST_PARTITION_REASSIGNMENTS.key: lpr.ListPartitionReassignmentsRequest(topics=[
        lpr.ListPartitionReassignmentsTopics(name=TOPIC, partition_indexes=[0])]),
    sh.SASL_HANDSHAKE.key: sh.SaslHandshakeRequest(mechanism="PLAIN"),
    sa.SASL_AUTHENTICATE.key: sa.SaslAuthenticateRequest(auth_bytes=b"\0alice\0secret"),
    dusc.DESCRIBE_USER_SCRAM_CREDENTIALS.key: dusc.DescribeUserScramCredentialsRequest(users=None),
    ausc.ALTER_USER_SCRAM_CREDENTIALS.key: ausc.AlterUserScramCredentialsRequest(upsertions=[
        ausc.ScramCredentialUpsertion(name="alice", mechanism=1, iterations=4096, salt=b"s", salted_password=b"p")]),
    dacl.DESCRIBE_ACLS.key: dacl.DescribeAclsRequest(resource_type_filter=1, resource_name_filter=None,
                                                      pattern_type_filter=1, principal_filter=None, host_filter=None,
                                                      operation=1, permission_type=1),
    ca.CREATE_ACLS.key: ca.CreateAclsRequest(creations=[ca.AclCreation(
        resource_type=2, resource_name=TOPIC, principal="User:alice", host="*", operation=3, permission_type=3)]),
    da.DELETE_ACLS.key: da.DeleteAclsRequest(filters=[da.DeleteAclsFilter(
        resource_type_filter=2, resource_name_filter=TOPIC, principal_filter=None, host_filter=None, operation=1,
        permission_type=1)]),
    dcq.DESCRIBE_CLIENT_QUOTAS.key: dcq.DescribeClientQuotasRequest(components=[], strict=False),
    acq.ALTER_CLIENT_QUOTAS.key: acq.AlterClientQuotasRequest(entries=[acq.EntryData(
        entity=[acq.EntityData(entity_type="user", entity_name="alice")],
        ops=[acq.OpData(key="producer_byte_rate", value=1024.0, remove=False)])], validate_only=False),
    wtm.WRITE_TXN_MARKERS.key: wtm.WriteTxnMarkersRequest(markers=[wtm.WritableTxnMarker(
        producer_id=1, producer_epoch=0, transaction_result=True, coordinator_epoch=0,
        topics=[wtm.WritableTxnMarkerTopic(name=TOPIC, partition_indexes=[0])])]),
    dp.DESCRIBE_PRODUCERS.key: dp.DescribeProducersRequest(topics=[dp.TopicRequest(name=TOPIC, partition_indexes=[0])]),
    aot.ADD_OFFSETS_TO_TXN.key: aot.AddOffsetsToTxnRequest(transactional_id="t", producer_id=1, group_id="g"),
    toc.TXN_OFFSET_COMMIT.key: toc.TxnOffsetCommitRequest(transactional_id="t", group_id="g", producer_id=1, topics=[
        toc.TxnOffsetCommitRequestTopic(name=TOPIC, partitions=[toc.TxnOffsetCommitRequestPartition(
            partition_index=0, committed_offset=1)])]),
    dtx.DESCRIBE_TRANSACTIONS.key: dtx.DescribeTransactionsRequest(transactional_ids=["t"]),
    ltx.LIST_TRANSACTIONS.key: ltx.ListTransactionsRequest(),
}
# Asked of a broker without authorizer.class.name, no collaborator is called: SECURITY_DISABLED.
ACL_APIS = {dacl.DESCRIBE_ACLS.key, ca.CREATE_ACLS.key, da.DELETE_ACLS.key}
# Asked on a connection without SASL (a PLAINTEXT listener), no collaborator is called: ILLEGAL_SASL_STATE.
SASL_EXCHANGE = {sh.SASL_HANDSHAKE.key, sa.SASL_AUTHENTICATE.key}
MAX_VERSION = {route.api.key: route.max_version for route in ROUTES}


def requests() -> list[tuple[int, int, bytes]]:
    """(api key, version, request frame): every golden request of a served API, then the hand-made ones."""
    out = [(e["api_key"], e["api_version"], e["frame"]) for e in GOLDEN if e["api_key"] in MAX_VERSION]
    for key, body in HAND_MADE.items():
        version = MAX_VERSION[key]
        out.append((key, version, bytes(frames.encode_request(APIS[key], version, 7, "tests", body)[4:])))
    return out


REQUESTS = requests()


def test_every_served_api_is_exercised() -> None:
    assert {key for key, _, _ in REQUESTS} == set(MAX_VERSION)


def failing_collaborators(monkeypatch: pytest.MonkeyPatch, error: Callable[[], Exception]) -> None:
    """Every method of the log manager, the coordinators and the producer id allocator a handler can
    call raises a new `error()`, as do the broker's own helpers."""
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error()

    for cls in (LogManager, GroupCoordinator, TransactionCoordinator, ProducerIdAllocator, FileCredentialStore,
                FileQuotaStore):
        for name, member in vars(cls).items():
            if callable(member) and not name.startswith("_"):
                monkeypatch.setattr(cls, name, fail)
    monkeypatch.setattr(Broker, "auto_create_topic", fail)
    monkeypatch.setattr(Broker, "cluster_id", property(fail))
    monkeypatch.setattr(Dispatcher, "advertised", fail)


def error_codes(value: Any, version: int) -> Iterator[int]:
    """Every error_code field of a decoded response, at any depth."""
    if dataclasses.is_dataclass(value):
        for field in fields_of(type(value)):
            if not (field.present_in(version) or field.tagged_in(version)):
                continue
            child = getattr(value, field.name)
            if field.name in ("error_code", "partition_error_code"):  # the latter: AddPartitionsToTxn
                yield child
            elif isinstance(field.type, Array) or dataclasses.is_dataclass(child):
                yield from error_codes(child, version)
    elif isinstance(value, list):
        for item in value:
            yield from error_codes(item, version)


async def answer(broker: Broker, frame: bytes) -> tuple[Any, FakeConnection]:
    connection = FakeConnection()
    outcome = broker.dispatcher.handle(bytearray(frame), connection)  # type: ignore[arg-type]
    if outcome is not None and not isinstance(outcome, list):
        outcome = await asyncio.wait_for(outcome, 10)
    return outcome, connection


def decoded(api_key: int, version: int, parts: list[Any]) -> Any:
    frame = b"".join(bytes(part) for part in parts)[4:]
    return frames.decode_response(memoryview(frame), APIS[api_key], version)[1]


@pytest.mark.parametrize("api_key, version, frame", REQUESTS,
                         ids=[f"{APIS[k].name}-v{v}-{i}" for i, (k, v, _) in enumerate(REQUESTS)])
@pytest.mark.parametrize("error, expected", [
    (lambda: RuntimeError("injected bug"), ErrorCode.UNKNOWN_SERVER_ERROR),
    (lambda: KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, "injected disk error"), ErrorCode.KAFKA_STORAGE_ERROR),
], ids=["bug", "kafka-error"])
def test_a_failing_collaborator_is_answered_with_the_error(fuzz_broker, monkeypatch, caplog, api_key, version,
                                                           frame, error, expected) -> None:
    loop, broker = fuzz_broker
    failing_collaborators(monkeypatch, error)
    with caplog.at_level(logging.ERROR):
        outcome, connection = loop.run_until_complete(answer(broker, frame))
    request = frames.decode_request(memoryview(frame), APIS[api_key], version)[1]
    if outcome is None:  # Produce with acks=0 has no answer to carry the error: the connection closes
        assert api_key == 0 and request.acks == 0 and connection.closed
        return
    assert connection.closed is None
    codes = list(error_codes(decoded(api_key, version, outcome), version))
    if api_key == lpr.LIST_PARTITION_REASSIGNMENTS.key:  # a single node asks no collaborator: nothing is ever moving
        assert codes == [ErrorCode.NONE]
        return
    if api_key == dcq.DESCRIBE_CLIENT_QUOTAS.key:  # quotas in force are in memory: no collaborator is asked
        assert codes == [ErrorCode.NONE]
        return
    if api_key in SASL_EXCHANGE:
        assert codes == [ErrorCode.ILLEGAL_SASL_STATE]
        return
    if api_key in ACL_APIS:
        assert codes == [ErrorCode.SECURITY_DISABLED]
        return
    assert ErrorCode.NONE not in codes, codes
    if not codes:  # a Metadata answer has no error field but its topics', and this request named none
        assert api_key == 3 and not request.topics
        return
    failures = [r for r in caplog.records if r.name == "kbroker.dispatch"]
    if expected in codes and failures:  # the handler let it out: logged once, with the request
        assert len(failures) == 1 and APIS[api_key].name in failures[0].getMessage()
        assert failures[0].exc_info is not None
    if expected == ErrorCode.UNKNOWN_SERVER_ERROR:  # a bug reaches the answer, unless none was called
        assert expected in codes or set(codes) == {ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}, codes
