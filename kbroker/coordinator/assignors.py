"""Server-side partition assignors for KIP-848 consumer groups: `uniform` (Kafka's default) and
`range`. Pure functions of the members' subscriptions, the topics and the previous target.

Both take:
    subscriptions  member id -> the topic ids it subscribes to (that exist)
    topics         topic id -> (name, partition count)
    previous       member id -> topic id -> partitions: the last target assignment
and return member id -> topic id -> partitions, with every subscribed partition assigned to
exactly one member subscribed to its topic.

uniform: balanced (member counts differ by at most one when everyone subscribes to the same
    topics; as even as eligibility allows otherwise) and sticky: a partition stays with its
    previous owner unless balance needs it elsewhere, so a rebalance moves few partitions.
range: per topic, the subscribed members in member-id order get contiguous ranges, the first
    `partitions % members` one partition more: co-partitioned topics line up, as with the
    client-side RangeAssignor.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping

Assignment = dict[str, dict[uuid.UUID, set[int]]]


def uniform(subscriptions: Mapping[str, set[uuid.UUID]], topics: Mapping[uuid.UUID, tuple[str, int]],
            previous: Mapping[str, Mapping[uuid.UUID, set[int]]]) -> Assignment:
    members = sorted(subscriptions)
    result: Assignment = {m: {} for m in members}
    if not members:
        return result
    counts = {m: 0 for m in members}
    eligible: dict[uuid.UUID, list[str]] = {}
    for topic_id in sorted(topics, key=lambda t: topics[t][0]):
        eligible[topic_id] = [m for m in members if topic_id in subscriptions[m]]
    every = [(t, p) for t in eligible if eligible[t] for p in range(topics[t][1])]
    # Homogeneous quota: the most any member may keep in the sticky pass.
    quota = -(-len(every) // len(members))
    owner: dict[tuple[uuid.UUID, int], str] = {}
    for member in members:  # keep what each member had, while it is still eligible and under quota
        for topic_id, partitions in sorted(previous.get(member, {}).items(), key=lambda kv: str(kv[0])):
            if topic_id not in eligible or member not in eligible[topic_id]:
                continue
            for partition in sorted(partitions):
                tp = (topic_id, partition)
                if partition < topics[topic_id][1] and tp not in owner and counts[member] < quota:
                    owner[tp] = member
                    counts[member] += 1
    for tp in every:  # hand out the rest to the least loaded eligible member
        if tp not in owner:
            member = min(eligible[tp[0]], key=lambda m: (counts[m], m))
            owner[tp] = member
            counts[member] += 1
    _balance(owner, counts, eligible)
    for (topic_id, partition), member in owner.items():
        result[member].setdefault(topic_id, set()).add(partition)
    return result


def _balance(owner: dict[tuple[uuid.UUID, int], str], counts: dict[str, int],
             eligible: Mapping[uuid.UUID, list[str]]) -> None:
    """Move partitions from the most to the least loaded eligible member until no move helps."""
    for _ in range(len(owner) + 1):
        moved = False
        for tp in sorted(owner, key=lambda k: (-counts[owner[k]], str(k[0]), -k[1])):
            current = owner[tp]
            target = min(eligible[tp[0]], key=lambda m: (counts[m], m))
            if counts[current] - counts[target] > 1:
                owner[tp] = target
                counts[current] -= 1
                counts[target] += 1
                moved = True
                break
        if not moved:
            return


def range_(subscriptions: Mapping[str, set[uuid.UUID]], topics: Mapping[uuid.UUID, tuple[str, int]],
           previous: Mapping[str, Mapping[uuid.UUID, set[int]]]) -> Assignment:
    result: Assignment = {m: {} for m in subscriptions}
    for topic_id, (_, partition_count) in topics.items():
        members = sorted(m for m, subscribed in subscriptions.items() if topic_id in subscribed)
        if not members:
            continue
        per, extra = divmod(partition_count, len(members))
        start = 0
        for index, member in enumerate(members):
            size = per + (1 if index < extra else 0)
            if size:
                result[member][topic_id] = set(range(start, start + size))
            start += size
    return result


ASSIGNORS = {"uniform": uniform, "range": range_}
