"""DescribeLogDirs: this broker's log directory (kbroker has one, the data dir) and the partitions
it holds there, each with its size on disk and its offset lag: how far its log end offset is
behind the high watermark it knows (0 on a leader, whose high watermark never passes its log
end; on a follower, the leader's high watermark as its last Fetch answer gave it). v4 adds the volume's total and usable bytes. A null topic list asks for every partition;
partitions not held here are left out, as Kafka does.
"""
from __future__ import annotations

import shutil

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.wire.messages.describe_log_dirs import (
    DescribeLogDirsPartition,
    DescribeLogDirsRequest,
    DescribeLogDirsResponse,
    DescribeLogDirsResult,
    DescribeLogDirsTopic,
)


def handle_describe_log_dirs(ctx: RequestContext, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse:
    logs = ctx.broker.logs
    if not authorization.on_cluster(ctx, Operation.DESCRIBE):
        return DescribeLogDirsResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results=[])
    if request.topics is None:
        held = logs.all_logs()
    else:
        held = [found for t in request.topics for p in dict.fromkeys(t.partitions)
                if (found := logs.get_log(t.topic, p)) is not None]
    by_topic: dict[str, list[DescribeLogDirsPartition]] = {}
    cluster = ctx.broker.cluster
    for partition_log in sorted(held, key=lambda pl: (pl.topic, pl.partition)):
        lag = cluster.offset_lag(partition_log) if cluster is not None else 0
        by_topic.setdefault(partition_log.topic, []).append(DescribeLogDirsPartition(
            partition_index=partition_log.partition, partition_size=sum(s.size for s in partition_log.segments),
            offset_lag=lag, is_future_key=False))
    usage = shutil.disk_usage(logs.data_dir)
    return DescribeLogDirsResponse(error_code=0, results=[DescribeLogDirsResult(
        error_code=0, log_dir=str(logs.data_dir.resolve()),
        topics=[DescribeLogDirsTopic(name=name, partitions=partitions) for name, partitions in by_topic.items()],
        total_bytes=usage.total, usable_bytes=usage.free)])
