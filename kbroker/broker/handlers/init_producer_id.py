"""InitProducerId: a fresh producer id (epoch 0) for each idempotent producer session, or the
producer id and bumped epoch of a transactional id (the transaction coordinator's).

Without a transactional id Kafka always hands out a new id; the id/epoch pair a v3+
client sends must be both set or both unset. In a cluster the ids come from blocks claimed in
ZooKeeper, unique across brokers.
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.handlers.transactions import fenced_for_version
from kbroker.cluster.metastore import MetaStoreError
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation, ResourceType
from kbroker.wire.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse


def handle_init_producer_id(ctx: RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse:
    if (request.producer_id == -1) != (request.producer_epoch == -1):
        return InitProducerIdResponse(error_code=ErrorCode.INVALID_REQUEST, producer_id=-1, producer_epoch=-1)
    if request.transactional_id is not None:
        if not authorization.allowed(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
            return InitProducerIdResponse(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                                          producer_id=-1, producer_epoch=-1)
        return _transactional(ctx, request)
    if not authorization.may_write_idempotently(ctx):
        return InitProducerIdResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, producer_id=-1,
                                      producer_epoch=-1)
    if ctx.broker.cluster is not None:
        return _from_cluster_block(ctx)
    return InitProducerIdResponse(error_code=0, producer_id=ctx.broker.producer_ids.allocate(), producer_epoch=0)


async def _transactional(ctx: RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse:
    expected = None if request.producer_id == -1 else (request.producer_id, request.producer_epoch)
    answer = await ctx.broker.transactions.init_producer_id(request.transactional_id,
                                                            request.transaction_timeout_ms, expected)
    return InitProducerIdResponse(error_code=fenced_for_version(answer.error, ctx.version, 4),
                                  producer_id=answer.producer_id, producer_epoch=answer.producer_epoch)


async def _from_cluster_block(ctx: RequestContext) -> InitProducerIdResponse:
    try:
        producer_id = await ctx.broker.cluster.producer_ids.allocate()
    except MetaStoreError:  # ZooKeeper unreachable: the client retries
        return InitProducerIdResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, producer_id=-1, producer_epoch=-1)
    return InitProducerIdResponse(error_code=0, producer_id=producer_id, producer_epoch=0)
