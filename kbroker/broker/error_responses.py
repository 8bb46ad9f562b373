"""The answer to a request whose handler failed: the error on everything the request named.

Kafka builds it with each request's `getErrorResponse`: a response with a top-level error code
carries the error there; the others carry it on every topic, partition, group or resource the
request named, so that a client sees the failure where it looks for it (librdkafka reads the
per-partition code of a Produce answer, never a top-level one). `error_response` is the table
of those, one entry per API we serve; None means the request gets no answer (Produce with
acks=0), and then, as in Kafka, its connection is closed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbroker.errors import ErrorCode
from kbroker.wire.messages import alter_client_quotas as acq
from kbroker.wire.messages import add_partitions_to_txn as apt
from kbroker.wire.messages import alter_configs as ac
from kbroker.wire.messages import alter_user_scram_credentials as ausc
from kbroker.wire.messages import consumer_group_describe as cgd
from kbroker.wire.messages import create_acls as ca
from kbroker.wire.messages import create_partitions as cp
from kbroker.wire.messages import create_topics as ct
from kbroker.wire.messages import delete_acls as da
from kbroker.wire.messages import delete_groups as dg
from kbroker.wire.messages import delete_records as dr
from kbroker.wire.messages import delete_topics as dt
from kbroker.wire.messages import describe_configs as dc
from kbroker.wire.messages import describe_groups as dgr
from kbroker.wire.messages import describe_producers as dp
from kbroker.wire.messages import describe_transactions as dtx
from kbroker.wire.messages import elect_leaders as el
from kbroker.wire.messages import fetch as fe
from kbroker.wire.messages import find_coordinator as fc
from kbroker.wire.messages import incremental_alter_configs as iac
from kbroker.wire.messages import list_offsets as lo
from kbroker.wire.messages import metadata as md
from kbroker.wire.messages import offset_commit as oc
from kbroker.wire.messages import offset_fetch as of
from kbroker.wire.messages import offset_for_leader_epoch as ofle
from kbroker.wire.messages import produce as pr
from kbroker.wire.messages import txn_offset_commit as toc
from kbroker.wire.messages import write_txn_markers as wtm
from kbroker.wire.schema import Api

ErrorResponse = Callable[[Any, int, ErrorCode], Any]

FIRST_FETCH_WITH_TOP_LEVEL_ERROR = 7
FIRST_GROUPED_OFFSET_FETCH = 8
FIRST_OFFSET_FETCH_WITH_TOP_LEVEL_ERROR = 2
FIRST_BATCHED_FIND_COORDINATOR = 4
FIRST_DELETE_TOPICS_BY_ID = 6
FIRST_ELECT_LEADERS_WITH_TOP_LEVEL_ERROR = 1
FIRST_BATCHED_ADD_PARTITIONS_TO_TXN = 4


def error_response(api: Api, request: Any, version: int, code: ErrorCode) -> Any:
    """The response of `api` that answers `request` with `code` everywhere (None: no answer)."""
    per_item = _PER_ITEM.get(api.key)
    if per_item is not None:
        return per_item(request, version, code)
    return api.response(error_code=code)  # the APIs whose response has one top-level error code


def _produce(request: pr.ProduceRequest, version: int, code: ErrorCode) -> pr.ProduceResponse | None:
    if request.acks == 0:
        return None
    return pr.ProduceResponse(responses=[pr.TopicProduceResponse(name=t.name, partition_responses=[
        pr.PartitionProduceResponse(index=p.index, error_code=code, base_offset=-1) for p in t.partition_data])
        for t in request.topic_data])


def _fetch(request: fe.FetchRequest, version: int, code: ErrorCode) -> fe.FetchResponse:
    if version >= FIRST_FETCH_WITH_TOP_LEVEL_ERROR:
        return fe.FetchResponse(error_code=code)
    return fe.FetchResponse(responses=[fe.FetchableTopicResponse(topic=t.topic, partitions=[
        fe.PartitionData(partition_index=p.partition, error_code=code, high_watermark=-1, records=b"")
        for p in t.partitions]) for t in request.topics])


def _list_offsets(request: lo.ListOffsetsRequest, version: int, code: ErrorCode) -> lo.ListOffsetsResponse:
    return lo.ListOffsetsResponse(topics=[lo.ListOffsetsTopicResponse(name=t.name, partitions=[
        lo.ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=code)
        for p in t.partitions]) for t in request.topics])


def _metadata(request: md.MetadataRequest, version: int, code: ErrorCode) -> md.MetadataResponse:
    return md.MetadataResponse(topics=[md.MetadataResponseTopic(error_code=code, name=t.name, topic_id=t.topic_id)
                                       for t in request.topics or ()])


def _offset_commit(request: oc.OffsetCommitRequest, version: int, code: ErrorCode) -> oc.OffsetCommitResponse:
    return oc.OffsetCommitResponse(topics=[oc.OffsetCommitResponseTopic(name=t.name, partitions=[
        oc.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
        for p in t.partitions]) for t in request.topics])


def _offset_fetch(request: of.OffsetFetchRequest, version: int, code: ErrorCode) -> of.OffsetFetchResponse:
    if version >= FIRST_GROUPED_OFFSET_FETCH:
        return of.OffsetFetchResponse(groups=[of.OffsetFetchResponseGroup(group_id=g.group_id, error_code=code)
                                              for g in request.groups])
    if version >= FIRST_OFFSET_FETCH_WITH_TOP_LEVEL_ERROR:
        return of.OffsetFetchResponse(error_code=code)
    return of.OffsetFetchResponse(topics=[of.OffsetFetchResponseTopic(name=t.name, partitions=[
        of.OffsetFetchResponsePartition(partition_index=p, committed_offset=-1, error_code=code)
        for p in t.partition_indexes]) for t in request.topics or ()])


def _find_coordinator(request: fc.FindCoordinatorRequest, version: int,
                      code: ErrorCode) -> fc.FindCoordinatorResponse:
    if version >= FIRST_BATCHED_FIND_COORDINATOR:
        return fc.FindCoordinatorResponse(coordinators=[
            fc.Coordinator(key=key, node_id=-1, host="", port=-1, error_code=code) for key in request.coordinator_keys])
    return fc.FindCoordinatorResponse(error_code=code, node_id=-1, port=-1)


def _describe_groups(request: dgr.DescribeGroupsRequest, version: int,
                     code: ErrorCode) -> dgr.DescribeGroupsResponse:
    return dgr.DescribeGroupsResponse(groups=[dgr.DescribedGroup(error_code=code, group_id=g) for g in request.groups])


def _create_topics(request: ct.CreateTopicsRequest, version: int, code: ErrorCode) -> ct.CreateTopicsResponse:
    return ct.CreateTopicsResponse(topics=[ct.CreatableTopicResult(name=t.name, error_code=code, error_message=None)
                                           for t in request.topics])


def _delete_topics(request: dt.DeleteTopicsRequest, version: int, code: ErrorCode) -> dt.DeleteTopicsResponse:
    if version >= FIRST_DELETE_TOPICS_BY_ID:
        return dt.DeleteTopicsResponse(responses=[
            dt.DeletableTopicResult(name=t.name, topic_id=t.topic_id, error_code=code) for t in request.topics])
    return dt.DeleteTopicsResponse(responses=[dt.DeletableTopicResult(name=name, error_code=code)
                                              for name in request.topic_names])


def _delete_records(request: dr.DeleteRecordsRequest, version: int, code: ErrorCode) -> dr.DeleteRecordsResponse:
    return dr.DeleteRecordsResponse(topics=[dr.DeleteRecordsTopicResult(name=t.name, partitions=[
        dr.DeleteRecordsPartitionResult(partition_index=p.partition_index, low_watermark=-1, error_code=code)
        for p in t.partitions]) for t in request.topics])


def _offset_for_leader_epoch(request: ofle.OffsetForLeaderEpochRequest, version: int,
                             code: ErrorCode) -> ofle.OffsetForLeaderEpochResponse:
    return ofle.OffsetForLeaderEpochResponse(topics=[ofle.OffsetForLeaderTopicResult(topic=t.topic, partitions=[
        ofle.EpochEndOffset(error_code=code, partition=p.partition, leader_epoch=-1, end_offset=-1)
        for p in t.partitions]) for t in request.topics])


def _describe_configs(request: dc.DescribeConfigsRequest, version: int,
                      code: ErrorCode) -> dc.DescribeConfigsResponse:
    return dc.DescribeConfigsResponse(results=[dc.DescribeConfigsResult(
        error_code=code, error_message=None, resource_type=r.resource_type, resource_name=r.resource_name)
        for r in request.resources])


def _alter_configs(request: ac.AlterConfigsRequest, version: int, code: ErrorCode) -> ac.AlterConfigsResponse:
    return ac.AlterConfigsResponse(responses=[ac.AlterConfigsResourceResponse(
        error_code=code, error_message=None, resource_type=r.resource_type, resource_name=r.resource_name)
        for r in request.resources])


def _incremental_alter_configs(request: iac.IncrementalAlterConfigsRequest, version: int,
                               code: ErrorCode) -> iac.IncrementalAlterConfigsResponse:
    return iac.IncrementalAlterConfigsResponse(responses=[iac.AlterConfigsResourceResponse(
        error_code=code, error_message=None, resource_type=r.resource_type, resource_name=r.resource_name)
        for r in request.resources])


def _create_partitions(request: cp.CreatePartitionsRequest, version: int,
                       code: ErrorCode) -> cp.CreatePartitionsResponse:
    return cp.CreatePartitionsResponse(results=[cp.CreatePartitionsTopicResult(name=t.name, error_code=code)
                                                for t in request.topics])


def _delete_groups(request: dg.DeleteGroupsRequest, version: int, code: ErrorCode) -> dg.DeleteGroupsResponse:
    return dg.DeleteGroupsResponse(results=[dg.DeletableGroupResult(group_id=g, error_code=code)
                                            for g in request.groups_names])


def _consumer_group_describe(request: cgd.ConsumerGroupDescribeRequest, version: int,
                             code: ErrorCode) -> cgd.ConsumerGroupDescribeResponse:
    return cgd.ConsumerGroupDescribeResponse(groups=[cgd.DescribedGroup(error_code=code, group_id=g)
                                                     for g in request.group_ids])


def _elect_leaders(request: el.ElectLeadersRequest, version: int, code: ErrorCode) -> el.ElectLeadersResponse:
    if version >= FIRST_ELECT_LEADERS_WITH_TOP_LEVEL_ERROR:
        return el.ElectLeadersResponse(error_code=code)
    return el.ElectLeadersResponse(replica_election_results=[el.ReplicaElectionResult(topic=t.topic, partition_result=[
        el.PartitionResult(partition_id=p, error_code=code) for p in t.partitions])
        for t in request.topic_partitions or ()])


def _alter_user_scram_credentials(request: ausc.AlterUserScramCredentialsRequest, version: int,
                                  code: ErrorCode) -> ausc.AlterUserScramCredentialsResponse:
    users = dict.fromkeys(item.name for item in (*request.deletions, *request.upsertions))
    return ausc.AlterUserScramCredentialsResponse(results=[
        ausc.AlterUserScramCredentialsResult(user=name, error_code=code) for name in users])
def _write_txn_markers(request: wtm.WriteTxnMarkersRequest, version: int,
                       code: ErrorCode) -> wtm.WriteTxnMarkersResponse:
    return wtm.WriteTxnMarkersResponse(markers=[wtm.WritableTxnMarkerResult(producer_id=m.producer_id, topics=[
        wtm.WritableTxnMarkerTopicResult(name=t.name, partitions=[
            wtm.WritableTxnMarkerPartitionResult(partition_index=p, error_code=code) for p in t.partition_indexes])
        for t in m.topics]) for m in request.markers])


def _describe_producers(request: dp.DescribeProducersRequest, version: int,
                        code: ErrorCode) -> dp.DescribeProducersResponse:
    return dp.DescribeProducersResponse(topics=[dp.TopicResponse(name=t.name, partitions=[
        dp.PartitionResponse(partition_index=p, error_code=code) for p in t.partition_indexes])
        for t in request.topics])


def _add_partitions_to_txn(request: apt.AddPartitionsToTxnRequest, version: int,
                           code: ErrorCode) -> apt.AddPartitionsToTxnResponse:
    if version >= FIRST_BATCHED_ADD_PARTITIONS_TO_TXN:
        return apt.AddPartitionsToTxnResponse(error_code=code)
    return apt.AddPartitionsToTxnResponse(results_by_topic_v3_and_below=[apt.AddPartitionsToTxnTopicResult(
        name=t.name, results_by_partition=[apt.AddPartitionsToTxnPartitionResult(
            partition_index=p, partition_error_code=code) for p in t.partitions])
        for t in request.v3_and_below_topics])


def _txn_offset_commit(request: toc.TxnOffsetCommitRequest, version: int,
                       code: ErrorCode) -> toc.TxnOffsetCommitResponse:
    return toc.TxnOffsetCommitResponse(topics=[toc.TxnOffsetCommitResponseTopic(name=t.name, partitions=[
        toc.TxnOffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
        for p in t.partitions]) for t in request.topics])


def _describe_transactions(request: dtx.DescribeTransactionsRequest, version: int,
                           code: ErrorCode) -> dtx.DescribeTransactionsResponse:
    return dtx.DescribeTransactionsResponse(transaction_states=[dtx.TransactionState(
        error_code=code, transactional_id=t, transaction_start_time_ms=-1, producer_id=-1, producer_epoch=-1)
        for t in request.transactional_ids])


def _create_acls(request: ca.CreateAclsRequest, version: int, code: ErrorCode) -> ca.CreateAclsResponse:
    return ca.CreateAclsResponse(results=[ca.AclCreationResult(error_code=code) for _ in request.creations])


def _delete_acls(request: da.DeleteAclsRequest, version: int, code: ErrorCode) -> da.DeleteAclsResponse:
    return da.DeleteAclsResponse(filter_results=[da.DeleteAclsFilterResult(error_code=code) for _ in request.filters])


def _alter_client_quotas(request: acq.AlterClientQuotasRequest, version: int,
                         code: ErrorCode) -> acq.AlterClientQuotasResponse:
    return acq.AlterClientQuotasResponse(entries=[acq.EntryResult(error_code=code, entity=[
        acq.EntityData(entity_type=e.entity_type, entity_name=e.entity_name) for e in entry.entity])
        for entry in request.entries])


_PER_ITEM: dict[int, ErrorResponse] = {
    pr.PRODUCE.key: _produce,
    fe.FETCH.key: _fetch,
    apt.ADD_PARTITIONS_TO_TXN.key: _add_partitions_to_txn,
    toc.TXN_OFFSET_COMMIT.key: _txn_offset_commit,
    dtx.DESCRIBE_TRANSACTIONS.key: _describe_transactions,
    lo.LIST_OFFSETS.key: _list_offsets,
    md.METADATA.key: _metadata,
    oc.OFFSET_COMMIT.key: _offset_commit,
    of.OFFSET_FETCH.key: _offset_fetch,
    fc.FIND_COORDINATOR.key: _find_coordinator,
    dgr.DESCRIBE_GROUPS.key: _describe_groups,
    ct.CREATE_TOPICS.key: _create_topics,
    dt.DELETE_TOPICS.key: _delete_topics,
    dr.DELETE_RECORDS.key: _delete_records,
    ofle.OFFSET_FOR_LEADER_EPOCH.key: _offset_for_leader_epoch,
    dc.DESCRIBE_CONFIGS.key: _describe_configs,
    ac.ALTER_CONFIGS.key: _alter_configs,
    iac.INCREMENTAL_ALTER_CONFIGS.key: _incremental_alter_configs,
    cp.CREATE_PARTITIONS.key: _create_partitions,
    dg.DELETE_GROUPS.key: _delete_groups,
    cgd.CONSUMER_GROUP_DESCRIBE.key: _consumer_group_describe,
    el.ELECT_LEADERS.key: _elect_leaders,
    ausc.ALTER_USER_SCRAM_CREDENTIALS.key: _alter_user_scram_credentials,
    ca.CREATE_ACLS.key: _create_acls,
    da.DELETE_ACLS.key: _delete_acls,
    acq.ALTER_CLIENT_QUOTAS.key: _alter_client_quotas,
    wtm.WRITE_TXN_MARKERS.key: _write_txn_markers,
    dp.DESCRIBE_PRODUCERS.key: _describe_producers,
}
