"""The transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
DescribeTransactions, ListTransactions (InitProducerId lives in `init_producer_id`).

The coordinator (`kbroker.coordinator.txn_coordinator`) answers with Kafka's current codes; the
versions from before KIP-588 get INVALID_PRODUCER_EPOCH where it says PRODUCER_FENCED, as
Kafka's KafkaApis does. Partitions of unknown topics fail alone (UNKNOWN_TOPIC_OR_PARTITION) and
the others of the request are not attempted (OPERATION_NOT_ATTEMPTED).
"""
from __future__ import annotations

from collections.abc import Sequence

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.coordinator.offsets import OffsetToCommit
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.coordinator.transactions import STATE_BY_NAME, TopicPartition
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation, ResourceType
from kbroker.wire.messages.add_offsets_to_txn import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse
from kbroker.wire.messages.add_partitions_to_txn import (
    AddPartitionsToTxnPartitionResult,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnResult,
    AddPartitionsToTxnTopicResult,
)
from kbroker.wire.messages.describe_transactions import (
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
    TopicData,
    TransactionState,
)
from kbroker.wire.messages.end_txn import EndTxnRequest, EndTxnResponse
from kbroker.wire.messages.list_transactions import (
    ListTransactionsRequest,
    ListTransactionsResponse,
)
from kbroker.wire.messages.list_transactions import TransactionState as ListedTransaction
from kbroker.wire.messages.txn_offset_commit import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
    TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
)


def fenced_for_version(error: ErrorCode, version: int, fenced_since: int) -> ErrorCode:
    """PRODUCER_FENCED exists from `fenced_since` of an API; older versions get INVALID_PRODUCER_EPOCH."""
    if error == ErrorCode.PRODUCER_FENCED and version < fenced_since:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return error


def _partition_errors(ctx: RequestContext, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
    """UNKNOWN_TOPIC_OR_PARTITION for partitions that do not exist; empty if all do."""
    unknown = {}
    for topic, partition in partitions:
        info = ctx.broker.logs.topic(topic)
        if info is None or not 0 <= partition < info.partition_count:
            unknown[(topic, partition)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if not unknown:
        return {}
    return {tp: unknown.get(tp, ErrorCode.OPERATION_NOT_ATTEMPTED) for tp in partitions}


def _topic_results(topics, results: dict[TopicPartition, ErrorCode]) -> list:
    return [AddPartitionsToTxnTopicResult(name=t.name, results_by_partition=[
        AddPartitionsToTxnPartitionResult(partition_index=p, partition_error_code=results[(t.name, p)])
        for p in t.partitions]) for t in topics]


def _may_write(ctx: RequestContext, transactional_id: str) -> bool:
    return authorization.allowed(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)


async def _add_partitions(ctx: RequestContext, transactional_id: str, producer_id: int, producer_epoch: int,
                          topics, verify_only: bool) -> dict[TopicPartition, ErrorCode]:
    partitions = [(t.name, p) for t in topics for p in t.partitions]
    if not _may_write(ctx, transactional_id):
        return dict.fromkeys(partitions, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    denied = {t.name for t in topics if not authorization.on_topic(ctx, Operation.WRITE, t.name)}
    if denied:  # as Kafka: the others are not attempted
        return {tp: ErrorCode.TOPIC_AUTHORIZATION_FAILED if tp[0] in denied else ErrorCode.OPERATION_NOT_ATTEMPTED
                for tp in partitions}
    errors = _partition_errors(ctx, partitions)
    if errors:
        return errors
    coordinator = ctx.broker.transactions
    if verify_only:
        return coordinator.verify_partitions(transactional_id, producer_id, producer_epoch, partitions)
    error = await coordinator.add_partitions(transactional_id, producer_id, producer_epoch, partitions)
    return {tp: fenced_for_version(error, ctx.version, 2) for tp in partitions}


async def handle_add_partitions_to_txn(ctx: RequestContext,
                                       request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse:
    if ctx.version < 4:
        results = await _add_partitions(ctx, request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
                                        request.v3_and_below_producer_epoch, request.v3_and_below_topics, False)
        return AddPartitionsToTxnResponse(results_by_topic_v3_and_below=_topic_results(
            request.v3_and_below_topics, results))
    answers = []
    for txn in request.transactions:
        results = await _add_partitions(ctx, txn.transactional_id, txn.producer_id, txn.producer_epoch, txn.topics,
                                        txn.verify_only)
        answers.append(AddPartitionsToTxnResult(transactional_id=txn.transactional_id,
                                                topic_results=_topic_results(txn.topics, results)))
    return AddPartitionsToTxnResponse(error_code=ErrorCode.NONE, results_by_transaction=answers)


async def handle_add_offsets_to_txn(ctx: RequestContext, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse:
    """The group's `__consumer_offsets` partition joins the transaction (as Kafka, nothing is
    created here: the group's TxnOffsetCommit comes next, through its coordinator)."""
    if not _may_write(ctx, request.transactional_id):
        return AddOffsetsToTxnResponse(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    if not authorization.on_group(ctx, Operation.READ, request.group_id):
        return AddOffsetsToTxnResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if not request.group_id:
        return AddOffsetsToTxnResponse(error_code=ErrorCode.INVALID_GROUP_ID)
    partition = (OFFSETS_TOPIC, ctx.broker.groups.partition_for(request.group_id))
    error = await ctx.broker.transactions.add_partitions(request.transactional_id, request.producer_id,
                                                         request.producer_epoch, [partition])
    return AddOffsetsToTxnResponse(error_code=fenced_for_version(error, ctx.version, 2))


async def handle_end_txn(ctx: RequestContext, request: EndTxnRequest) -> EndTxnResponse:
    if not _may_write(ctx, request.transactional_id):
        return EndTxnResponse(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    error = await ctx.broker.transactions.end_txn(request.transactional_id, request.producer_id,
                                                  request.producer_epoch, request.committed)
    return EndTxnResponse(error_code=fenced_for_version(error, ctx.version, 2))


async def handle_txn_offset_commit(ctx: RequestContext, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse:
    denied = (ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED if not _may_write(ctx, request.transactional_id)
              else ErrorCode.GROUP_AUTHORIZATION_FAILED if not authorization.on_group(ctx, Operation.READ,
                                                                                      request.group_id)
              else None)
    if denied is None and any(not authorization.on_topic(ctx, Operation.READ, t.name) for t in request.topics):
        denied = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    if denied is not None:
        return TxnOffsetCommitResponse(topics=[TxnOffsetCommitResponseTopic(name=t.name, partitions=[
            TxnOffsetCommitResponsePartition(partition_index=p.partition_index, error_code=denied)
            for p in t.partitions]) for t in request.topics])
    offsets = [OffsetToCommit(t.name, p.partition_index, p.committed_offset, p.committed_leader_epoch,
                              p.committed_metadata) for t in request.topics for p in t.partitions]
    outcome = await ctx.broker.groups.commit_txn_offsets(
        group_id=request.group_id, producer_id=request.producer_id, producer_epoch=request.producer_epoch,
        member_id=request.member_id, group_instance_id=request.group_instance_id,
        generation_id=request.generation_id, offsets=offsets)
    errors = iter(outcome if isinstance(outcome, list) else [outcome] * len(offsets))
    return TxnOffsetCommitResponse(topics=[
        TxnOffsetCommitResponseTopic(name=t.name, partitions=[
            TxnOffsetCommitResponsePartition(partition_index=p.partition_index,
                                             error_code=fenced_for_version(next(errors), ctx.version, 3))
            for p in t.partitions])
        for t in request.topics])


def handle_describe_transactions(ctx: RequestContext,
                                 request: DescribeTransactionsRequest) -> DescribeTransactionsResponse:
    states = []
    for transactional_id in request.transactional_ids:
        if authorization.allowed(ctx, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, transactional_id):
            error, txn = ctx.broker.transactions.describe(transactional_id)
        else:
            error, txn = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None
        if txn is None:
            states.append(TransactionState(error_code=error, transactional_id=transactional_id,
                                           transaction_state="", transaction_start_time_ms=-1, producer_id=-1,
                                           producer_epoch=-1))
            continue
        current = txn.current
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(current.partitions):
            by_topic.setdefault(topic, []).append(partition)
        states.append(TransactionState(
            error_code=ErrorCode.NONE, transactional_id=transactional_id,
            transaction_state=current.state.display_name, transaction_timeout_ms=current.timeout_ms,
            transaction_start_time_ms=current.start_ms, producer_id=current.producer_id,
            producer_epoch=current.producer_epoch,
            topics=[TopicData(topic=t, partitions=p) for t, p in by_topic.items()]))
    return DescribeTransactionsResponse(transaction_states=states)


def handle_list_transactions(ctx: RequestContext, request: ListTransactionsRequest) -> ListTransactionsResponse:
    coordinator = ctx.broker.transactions
    unknown = [s for s in request.state_filters if s not in STATE_BY_NAME]
    if coordinator.loading_any():
        return ListTransactionsResponse(error_code=ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                                        unknown_state_filters=unknown)
    found = [t for t in coordinator.list(request.state_filters, request.producer_id_filters, request.duration_filter)
             if authorization.allowed(ctx, Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, t.transactional_id)]
    return ListTransactionsResponse(error_code=ErrorCode.NONE, unknown_state_filters=unknown, transaction_states=[
        ListedTransaction(transactional_id=t.transactional_id, producer_id=t.current.producer_id,
                          transaction_state=t.current.state.display_name) for t in found])
