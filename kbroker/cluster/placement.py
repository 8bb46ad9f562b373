"""Replica assignment for new topics and partitions, as Kafka's AdminUtils does it.

Without racks: partition p's first replica is broker (p + start) mod n, and the followers are
spread by a shift that grows each time p wraps around the broker list, so leaders and followers
both spread evenly (`assignReplicasToBrokersRackUnaware`). With racks (every broker has one):
the brokers are first ordered so that racks alternate, and each next replica skips brokers whose
rack or whose id the partition already uses while others remain, with the shift multiplied by the
number of racks (`assignReplicasToBrokersRackAware`).
`start` and `shift` are random for a new topic; partitions added later start where partition 0's
leader sits (admin.py, as Kafka's AdminZkClient). Tests pass them in.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from kbroker.errors import ErrorCode, KafkaError


def assign_replicas(brokers: Mapping[int, str | None], partitions: int, replication_factor: int, *,
                    first_partition: int = 0, start: int | None = None,
                    shift: int | None = None) -> list[list[int]]:
    """Replica lists for partitions `first_partition ..` (brokers: id -> rack or None)."""
    if replication_factor < 1:
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                         f"Unable to replicate the partition {replication_factor} time(s): The target replication "
                         f"factor of {replication_factor} cannot be reached because only {len(brokers)} broker(s) "
                         "are registered.")
    racks = {b: r for b, r in brokers.items() if r is not None}
    if racks and len(racks) != len(brokers):
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                         "Not all brokers have rack information for replica rack aware assignment.")
    ordered = _rack_alternated(racks) if racks else sorted(brokers)
    n = len(ordered)
    start = random.randrange(n) if start is None else start
    shift = random.randrange(n) if shift is None else shift
    assignment = []
    for pid in range(first_partition, first_partition + partitions):
        if pid > 0 and pid % n == 0:
            shift += 1
        first = (pid + start) % n
        if racks:
            # Kafka shifts by whole rounds of racks here, so the followers keep alternating racks.
            rack_shift = shift * len(set(racks.values()))
            assignment.append(_rack_aware_replicas(ordered, racks, first, rack_shift, replication_factor))
        else:
            assignment.append([ordered[first]] + [ordered[_replica_index(first, shift, j, n)]
                                                  for j in range(replication_factor - 1)])
    return assignment


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    return (first + 1 + (shift + j) % (n - 1)) % n


def _rack_alternated(racks: Mapping[int, str]) -> list[int]:
    """Brokers ordered so that consecutive ones sit in different racks (Kafka's getRackAlternatedBrokerList)."""
    by_rack: dict[str, list[int]] = {}
    for broker in sorted(racks):
        by_rack.setdefault(racks[broker], []).append(broker)
    queues = [by_rack[r] for r in sorted(by_rack)]
    ordered: list[int] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def _rack_aware_replicas(ordered: Sequence[int], racks: Mapping[int, str], first: int, shift: int,
                         replication_factor: int) -> list[int]:
    n = len(ordered)
    leader = ordered[first]
    replicas = [leader]
    used_racks = {racks[leader]}
    all_racks = set(racks.values())
    k = 0
    while len(replicas) < replication_factor:
        broker = ordered[_replica_index(first, shift, k, n)]
        k += 1
        rack_ok = racks[broker] not in used_racks or used_racks == all_racks
        if broker not in replicas and (rack_ok or k > 2 * n):
            replicas.append(broker)
            used_racks.add(racks[broker])
            if used_racks == all_racks:
                used_racks = set()
                all_racks = set()  # every rack has a replica: from here any broker not used will do
    return replicas
