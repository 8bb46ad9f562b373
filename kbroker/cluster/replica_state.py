"""What the leader of a replicated partition knows of its followers (Kafka's Partition/Replica).

Each follower's log end offset is the fetch offset of its latest Fetch. A follower is caught up
at a fetch that asks for the leader's log end as it was at that fetch's start, or at its previous
fetch (Kafka's lastCaughtUpTimeMs): one that has not been caught up for replica.lag.time.max.ms
leaves the ISR. A follower outside the ISR joins it once its log end reaches the high watermark.

The high watermark is the smallest log end in the ISR (the leader's own included): every record
below it is on every in-sync replica, which is what acks=all waits for. While followers are
joining (their ISR write in flight) they count too, Kafka's "maximal ISR": once the write lands
the controller may elect them, so nothing may be acknowledged that they do not have. Pure: the clock is
passed in; the member writes the ISR changes to the store.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class FollowerState:
    log_end_offset: int = -1
    last_caught_up_ms: int = -1
    last_fetch_ms: int = -1
    last_fetch_leader_end: int = -1  # the leader's log end at the follower's previous fetch


class LeaderReplicas:
    def __init__(self, leader: int, replicas: Iterable[int], isr: Iterable[int], now_ms: int) -> None:
        self.leader = leader
        self.isr = set(isr) | {leader}
        # As Kafka does for a new leader: assume followers in the ISR caught up now, so that
        # they get replica.lag.time.max.ms to show up before they are dropped.
        self.followers = {r: FollowerState(last_caught_up_ms=now_ms if r in self.isr else -1)
                          for r in replicas if r != leader}
        self.leader_end = 0  # the leader's own bound: its log end, or what an fsync covered
        # The znode version of our last ISR write: until the image shows it, the image's ISR is
        # older than ours and must not replace it (a follower just added would be ignored).
        self.written_version = -1
        self.joining: set[int] = set()  # followers whose addition to the ISR is being written
        self._joining_from = -1  # the state version that write was made against

    def set_replicas(self, replicas: Iterable[int]) -> None:
        """The assignment changed (a reassignment): new followers start unknown, removed ones are forgotten."""
        wanted = [r for r in replicas if r != self.leader]
        self.followers = {r: self.followers.get(r) or FollowerState() for r in wanted}

    def start_joining(self, followers: set[int], version: int) -> None:
        """Count `followers` from now on, while their addition (made against `version`) is written."""
        self.joining = set(followers)
        self._joining_from = version

    def sync_isr(self, isr: Iterable[int], version: int) -> None:
        """The store's ISR, unless it predates our own latest write. Once the state has moved past
        the version an addition was written against, the store says whether it took (a lost reply
        cannot tell us), and the joining followers count only if it did."""
        if version > self._joining_from:
            self.joining = set()
        if version >= self.written_version:
            new = set(isr) | {self.leader}
            for removed in self.isr - new:  # what we knew of it is stale: it rejoins by fetching again
                if removed in self.followers:
                    self.followers[removed] = FollowerState()
            self.isr = new

    def on_fetch(self, replica: int, fetch_offset: int, leader_end: int, now_ms: int) -> None:
        follower = self.followers.get(replica)
        if follower is None:
            return
        if fetch_offset >= leader_end:
            follower.last_caught_up_ms = now_ms
        elif fetch_offset >= follower.last_fetch_leader_end >= 0:
            follower.last_caught_up_ms = max(follower.last_caught_up_ms, follower.last_fetch_ms)
        follower.log_end_offset = fetch_offset
        follower.last_fetch_ms = now_ms
        follower.last_fetch_leader_end = leader_end

    def high_watermark(self) -> int:
        """The smallest log end in the ISR and among the followers joining it, the leader's own bound included."""
        return min([self.leader_end, *(self.followers[r].log_end_offset for r in self.isr | self.joining
                                       if r in self.followers)])

    def to_add(self, high_watermark: int, now_ms: int, lag_ms: int) -> set[int]:
        """Followers outside the ISR that have caught up to the high watermark and fetch now."""
        return {r for r, f in self.followers.items()
                if r not in self.isr and f.log_end_offset >= max(high_watermark, 0)
                and now_ms - f.last_fetch_ms <= lag_ms}

    def to_remove(self, now_ms: int, lag_ms: int) -> set[int]:
        """Followers in the ISR not caught up for more than `lag_ms`."""
        return {r for r in self.isr if r in self.followers and now_ms - self.followers[r].last_caught_up_ms > lag_ms}
