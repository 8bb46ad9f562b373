"""`assign_replicas` against Kafka's AdminUtils (core/src/main/scala/kafka/admin/AdminUtils.scala).

The fixed expectations are those of Kafka's own tests (AdminTest.testReplicaAssignment,
AdminRackAwareTest), where `fixedStartIndex` sets both the start index and the replica shift;
the properties hold for any start and shift, as Kafka draws them at random.
"""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.cluster.placement import assign_replicas
from kbroker.errors import ErrorCode, KafkaError

# AdminTest.testReplicaAssignment: brokers 0..4, 10 partitions, RF 3, fixedStartIndex 0
KAFKA_RACK_UNAWARE = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 0], [4, 0, 1],
                      [0, 2, 3], [1, 3, 4], [2, 4, 0], [3, 0, 1], [4, 1, 2]]
# AdminRackAwareTest.testGetRackAlternatedBrokerListAndAssignReplicasToBrokers: the rack-alternated
# list is 0, 3, 1, 5, 4, 2; partition 6 starts the second round with the followers shifted.
KAFKA_RACKS = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
KAFKA_RACK_AWARE = [[0, 3, 1], [3, 1, 5], [1, 5, 4], [5, 4, 2], [4, 2, 0], [2, 0, 3], [0, 4, 2]]


def no_racks(count: int) -> dict[int, str | None]:
    return {b: None for b in range(count)}


def test_rack_unaware_matches_kafka() -> None:
    assert assign_replicas(no_racks(5), 10, 3, start=0, shift=0) == KAFKA_RACK_UNAWARE


def test_added_partitions_bump_the_shift_where_they_wrap() -> None:
    """startPartitionId 8: as in Kafka, the shift grows at partition 10, not for the partitions before."""
    assert assign_replicas(no_racks(5), 4, 3, first_partition=8, start=0, shift=0) == [
        [3, 4, 0], [4, 0, 1], [0, 2, 3], [1, 3, 4]]


def test_rack_aware_matches_kafka() -> None:
    assert assign_replicas(KAFKA_RACKS, 7, 3, start=0, shift=0) == KAFKA_RACK_AWARE


@pytest.mark.parametrize("replication_factor", [0, -1, 6])
def test_impossible_replication_factor_is_refused(replication_factor: int) -> None:
    with pytest.raises(KafkaError) as refused:
        assign_replicas(no_racks(5), 10, replication_factor)
    assert refused.value.code == ErrorCode.INVALID_REPLICATION_FACTOR


def test_racks_on_some_brokers_only_are_refused() -> None:
    with pytest.raises(KafkaError) as refused:
        assign_replicas({0: "a", 1: "b", 2: None}, 3, 2)
    assert refused.value.code == ErrorCode.INVALID_REPLICATION_FACTOR


@st.composite
def placements(draw: st.DrawFn, *, racked: bool) -> tuple[dict[int, str | None], int, int, int, int, int]:
    ids = draw(st.lists(st.integers(0, 50), min_size=1, max_size=9, unique=True))
    racks = draw(st.lists(st.sampled_from("abcd"), min_size=len(ids), max_size=len(ids))) if racked else [None] * len(ids)
    brokers = dict(zip(ids, racks))
    return (brokers, draw(st.integers(1, 40)), draw(st.integers(1, len(ids))), draw(st.integers(0, 30)),
            draw(st.integers(0, len(ids) - 1)), draw(st.integers(0, len(ids) - 1)))


def check_common(brokers: dict[int, str | None], assignment: list[list[int]], partitions: int, rf: int) -> None:
    assert len(assignment) == partitions
    for replicas in assignment:
        assert len(replicas) == rf
        assert len(set(replicas)) == rf, replicas
        assert set(replicas) <= brokers.keys()


@given(placements(racked=False))
def test_rack_unaware_properties(case: tuple) -> None:
    brokers, partitions, rf, first, start, shift = case
    assignment = assign_replicas(brokers, partitions, rf, first_partition=first, start=start, shift=shift)
    check_common(brokers, assignment, partitions, rf)
    leaders = Counter(replicas[0] for replicas in assignment)
    counts = [leaders.get(b, 0) for b in brokers]
    assert max(counts) - min(counts) <= 1, leaders


@given(placements(racked=True))
def test_rack_aware_properties(case: tuple) -> None:
    brokers, partitions, rf, first, start, shift = case
    assignment = assign_replicas(brokers, partitions, rf, first_partition=first, start=start, shift=shift)
    check_common(brokers, assignment, partitions, rf)
    rack_count = len(set(brokers.values()))
    for replicas in assignment:
        assert len({brokers[b] for b in replicas}) == min(rf, rack_count), (replicas, brokers)
    leaders = Counter(replicas[0] for replicas in assignment)
    counts = [leaders.get(b, 0) for b in brokers]
    assert max(counts) - min(counts) <= 1, leaders


@given(st.integers(1, 9), st.integers(1, 20))
def test_replication_factor_above_the_broker_count_is_refused(count: int, extra: int) -> None:
    with pytest.raises(KafkaError) as refused:
        assign_replicas(no_racks(count), 3, count + extra)
    assert refused.value.code == ErrorCode.INVALID_REPLICATION_FACTOR
