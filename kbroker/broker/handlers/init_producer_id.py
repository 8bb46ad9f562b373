"""InitProducerId: a fresh producer id (epoch 0) for each idempotent producer session.

Without a transactional id Kafka always hands out a new id; the id/epoch pair a v3+
client sends must be both set or both unset. In a cluster the ids come from blocks claimed in
ZooKeeper, unique across brokers.
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.cluster.metastore import MetaStoreError
from kbroker.errors import ErrorCode
from kbroker.wire.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse


def handle_init_producer_id(ctx: RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse:
    if request.transactional_id is not None:
        return InitProducerIdResponse(error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                                      producer_id=-1, producer_epoch=-1)
    if not authorization.may_write_idempotently(ctx):
        return InitProducerIdResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, producer_id=-1,
                                      producer_epoch=-1)
    if (request.producer_id == -1) != (request.producer_epoch == -1):
        return InitProducerIdResponse(error_code=ErrorCode.INVALID_REQUEST, producer_id=-1, producer_epoch=-1)
    if ctx.broker.cluster is not None:
        return _from_cluster_block(ctx)
    return InitProducerIdResponse(error_code=0, producer_id=ctx.broker.producer_ids.allocate(), producer_epoch=0)


async def _from_cluster_block(ctx: RequestContext) -> InitProducerIdResponse:
    try:
        producer_id = await ctx.broker.cluster.producer_ids.allocate()
    except MetaStoreError:  # ZooKeeper unreachable: the client retries
        return InitProducerIdResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE, producer_id=-1, producer_epoch=-1)
    return InitProducerIdResponse(error_code=0, producer_id=producer_id, producer_epoch=0)
