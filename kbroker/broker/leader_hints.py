"""KIP-951: answers of NOT_LEADER_OR_FOLLOWER name the partition's current leader.

Produce (v10+) and Fetch (v12+) carry the leader's id and epoch per partition, and the leader's
endpoint on the client's listener (Produce v10+, Fetch v16+), so a client that knows them
(librdkafka >= 2.4) moves its requests to the new leader at once instead of refreshing its
metadata and backing off between retries — what makes a leader change (a controlled shutdown,
an election) cost clients milliseconds rather than a second. Only in a cluster: alone, a broker
leads everything it has.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from kbroker.cluster.image import NO_LEADER
from kbroker.errors import ErrorCode
from kbroker.wire.messages import fetch, produce

if TYPE_CHECKING:
    from kbroker.broker.dispatch import RequestContext

PRODUCE_HINTS_VERSION = 10
FETCH_HINTS_VERSION = 12
FETCH_ENDPOINTS_VERSION = 16


def _leader(ctx: RequestContext, topic: str, partition: int) -> tuple[int, int] | None:
    """(leader id, leader epoch) of a partition with a live leader other than this broker."""
    image = ctx.broker.cluster.image
    leader = image.leader_of(topic, partition)
    if leader in (NO_LEADER, ctx.broker.node_id):
        return None
    return leader, image.states[(topic, partition)].leader_epoch


def _endpoints(ctx: RequestContext, leaders: set[int], endpoint_type: type) -> list:
    brokers = ctx.broker.cluster.image.brokers
    listener = ctx.connection.listener_name
    found = []
    for node_id in sorted(leaders):
        registration = brokers.get(node_id)
        endpoint = registration.endpoint(listener) if registration is not None else None
        if endpoint is not None:
            found.append(endpoint_type(node_id=node_id, host=endpoint[0], port=endpoint[1], rack=registration.rack))
    return found


def hint_produce(ctx: RequestContext, response: produce.ProduceResponse) -> produce.ProduceResponse:
    if ctx.version < PRODUCE_HINTS_VERSION or ctx.broker.cluster is None:
        return response
    leaders: set[int] = set()
    for topic in response.responses:
        answers = topic.partition_responses
        for i, answer in enumerate(answers):
            if answer.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER and (
                    found := _leader(ctx, topic.name, answer.index)) is not None:
                answers[i] = dataclasses.replace(answer, current_leader=produce.LeaderIdAndEpoch(*found))
                leaders.add(found[0])
    if not leaders:
        return response
    return dataclasses.replace(response, node_endpoints=_endpoints(ctx, leaders, produce.NodeEndpoint))


def fetch_leader(ctx: RequestContext, topic: str, partition: int) -> fetch.LeaderIdAndEpoch | None:
    """The current_leader of a Fetch partition answered NOT_LEADER_OR_FOLLOWER (None: leave it unset)."""
    if ctx.version < FETCH_HINTS_VERSION or ctx.broker.cluster is None:
        return None
    found = _leader(ctx, topic, partition)
    return fetch.LeaderIdAndEpoch(*found) if found is not None else None


def hint_fetch_endpoints(ctx: RequestContext, response: fetch.FetchResponse) -> fetch.FetchResponse:
    """Fetch v16+: the endpoints of the leaders named in the partitions' current_leader."""
    if ctx.version < FETCH_ENDPOINTS_VERSION or ctx.broker.cluster is None:
        return response
    leaders = {answer.current_leader.leader_id for topic in response.responses for answer in topic.partitions
               if answer.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER and answer.current_leader.leader_id >= 0}
    if not leaders:
        return response
    return dataclasses.replace(response, node_endpoints=_endpoints(ctx, leaders, fetch.NodeEndpoint))
