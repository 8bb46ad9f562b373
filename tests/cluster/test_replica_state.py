"""The leader's view of its followers (kbroker/cluster/replica_state.py): high watermark and ISR."""
from __future__ import annotations

from kbroker.cluster.replica_state import LeaderReplicas

LAG_MS = 30_000


def leader_with(isr: tuple[int, ...], leader_end: int = 10) -> LeaderReplicas:
    replicas = LeaderReplicas(1, (1, 2, 3), isr, now_ms=0)
    replicas.leader_end = leader_end
    return replicas


def test_the_high_watermark_is_the_smallest_log_end_in_the_isr() -> None:
    replicas = leader_with((1, 2))
    replicas.on_fetch(2, 7, leader_end=10, now_ms=1)
    replicas.on_fetch(3, 2, leader_end=10, now_ms=1)  # not in the ISR: does not hold it back
    assert replicas.high_watermark() == 7
    assert replicas.to_add(7, now_ms=2, lag_ms=LAG_MS) == set()  # 3 is behind


def test_a_follower_whose_addition_is_being_written_holds_the_high_watermark() -> None:
    """The race a reassignment test hit: a follower caught up to the high watermark joins the ISR;
    records appended while that write is in flight must not be acknowledged without it, since the
    controller may elect it as soon as the write lands."""
    replicas = leader_with((1,), leader_end=106)
    replicas.on_fetch(2, 106, leader_end=106, now_ms=1)
    assert replicas.to_add(replicas.high_watermark(), now_ms=1, lag_ms=LAG_MS) == {2}
    replicas.start_joining({2}, version=4)
    replicas.leader_end = 107  # an append while the ISR write is in flight
    assert replicas.high_watermark() == 106
    replicas.sync_isr((1,), version=4)  # the store has not moved yet: still counted
    assert replicas.high_watermark() == 106
    replicas.sync_isr((1, 2), version=5)  # the write landed
    assert replicas.isr == {1, 2} and replicas.high_watermark() == 106


def test_an_addition_that_did_not_land_stops_counting_once_the_store_moves_on() -> None:
    replicas = leader_with((1,), leader_end=106)
    replicas.on_fetch(2, 106, leader_end=106, now_ms=1)
    replicas.start_joining({2}, version=4)
    replicas.leader_end = 110
    replicas.sync_isr((1,), version=5)  # someone else wrote the state: ours was refused
    assert replicas.isr == {1} and replicas.high_watermark() == 110


def test_a_follower_dropped_from_the_isr_rejoins_only_by_fetching_again() -> None:
    replicas = leader_with((1, 2))
    replicas.on_fetch(2, 10, leader_end=10, now_ms=1)
    replicas.sync_isr((1,), version=3)  # the controller took it out (its broker died)
    assert replicas.to_add(0, now_ms=2, lag_ms=LAG_MS) == set()  # its old log end no longer counts
    replicas.on_fetch(2, 10, leader_end=10, now_ms=3)
    assert replicas.to_add(10, now_ms=3, lag_ms=LAG_MS) == {2}


def test_a_follower_not_caught_up_for_the_lag_time_leaves_the_isr() -> None:
    replicas = leader_with((1, 2, 3))
    replicas.on_fetch(2, 10, leader_end=10, now_ms=1_000)
    replicas.on_fetch(3, 4, leader_end=10, now_ms=1_000)
    assert replicas.to_remove(now_ms=LAG_MS + 500, lag_ms=LAG_MS) == {3}
