"""Drive a ClassicGroup the way the broker does, with a fake clock and named waiters."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from kbroker.coordinator.classic import (
    ClassicGroup,
    ClassicGroupConfig,
    JoinResult,
    Protocol,
    SyncResult,
    with_error,
)
from kbroker.coordinator.records import GROUP_METADATA, CoordinatorRecord
from kbroker.coordinator.result import CoordinatorResult
from kbroker.errors import ErrorCode

RANGE = [Protocol("range", b"range-meta")]


@dataclass
class Harness:
    config: ClassicGroupConfig = field(default_factory=ClassicGroupConfig)
    now: int = 1_000_000
    group: ClassicGroup = None  # type: ignore[assignment]
    replies: dict[object, JoinResult | SyncResult] = field(default_factory=dict)
    stores: list[CoordinatorRecord] = field(default_factory=list)  # the GroupMetadata records written
    # Steps whose records are being written; unless `hold_writes`, each write completes at once.
    writing: list[CoordinatorResult] = field(default_factory=list)
    hold_writes: bool = False

    def __post_init__(self) -> None:
        ids = itertools.count(1)
        self.group = ClassicGroup("g", self.config, self.now,
                                  member_ids=lambda prefix: f"{prefix}-{next(ids)}")
        self._waiters = itertools.count()

    def absorb(self, result: CoordinatorResult) -> None:
        """What the coordinator does with a step's result: its replies leave once its records are
        written, and the group is told the write's outcome."""
        assert all(record.kind is GROUP_METADATA for record in result.records)
        if not result.records:
            self._answer(result)
            return
        self.writing.append(result)
        if not self.hold_writes:
            self.complete_writes()

    def _answer(self, result: CoordinatorResult, error: ErrorCode | None = None) -> None:
        for reply in result.replies:
            assert reply.waiter not in self.replies, f"{reply.waiter} answered twice"
            self.replies[reply.waiter] = reply.result if error is None else with_error(reply.result, error)

    def complete_writes(self) -> None:
        """The writes in flight are durable, in order."""
        while self.writing:
            result = self.writing.pop(0)
            self.stores.extend(result.records)
            self._answer(result)
            self.absorb(self.group.append_committed(self.now, result))

    def fail_writes(self, error: ErrorCode) -> None:
        """The writes in flight fail; `error` is what the coordinator maps the log's error to."""
        while self.writing:
            result = self.writing.pop(0)
            self._answer(result, error)
            self.absorb(self.group.append_failed(self.now, result, error))

    def join(self, member_id: str = "", *, client_id: str = "c", instance_id: str | None = None,
             protocols=RANGE, protocol_type: str = "consumer", session: int = 10_000, rebalance: int = 30_000,
             require_known: bool = True, skip_assignment: bool = False) -> object:
        waiter = ("join", next(self._waiters))
        self.absorb(self.group.join(
            self.now, waiter, member_id=member_id, group_instance_id=instance_id, client_id=client_id,
            client_host="/127.0.0.1", session_timeout_ms=session, rebalance_timeout_ms=rebalance,
            protocol_type=protocol_type, protocols=protocols, require_known_member_id=require_known,
            supports_skip_assignment=skip_assignment))
        return waiter

    def sync(self, member_id: str, generation: int, assignments=None, instance_id=None,
             protocol_type=None, protocol_name=None) -> object:
        waiter = ("sync", next(self._waiters))
        self.absorb(self.group.sync(self.now, waiter, member_id=member_id, group_instance_id=instance_id,
                                    generation_id=generation, protocol_type=protocol_type,
                                    protocol_name=protocol_name, assignments=assignments or {}))
        return waiter

    def heartbeat(self, member_id: str, generation: int, instance_id=None):
        return self.group.heartbeat(self.now, member_id=member_id, group_instance_id=instance_id,
                                    generation_id=generation)

    def leave(self, *members):
        result = self.group.leave(self.now, list(members))
        self.absorb(result)
        return result.response

    def tick(self, ms: int) -> None:
        self.now += ms
        self.absorb(self.group.advance(self.now))

    def answered(self, waiter) -> JoinResult | SyncResult | None:
        return self.replies.get(waiter)

    def join_dynamic(self, client_id: str = "c", **kwargs) -> tuple[str, object]:
        """First join (MEMBER_ID_REQUIRED) and the rejoin: the member id and the held waiter."""
        first = self.join(client_id=client_id, **kwargs)
        member_id = self.replies[first].member_id
        return member_id, self.join(member_id, client_id=client_id, **kwargs)

    def stable_group(self, n: int, **kwargs) -> list[str]:
        """n dynamic members, through the initial delay and a full sync; returns their ids."""
        joined = [self.join_dynamic(client_id=f"c{i}", **kwargs) for i in range(n)]
        for _ in range(n + 1):
            self.tick(self.config.initial_rebalance_delay_ms)
        results = [self.replies[w] for _, w in joined]
        generation = results[0].generation_id
        leader = results[0].leader
        ids = [m for m, _ in joined]
        assignments = {m: f"assignment-{m}".encode() for m in ids}
        for m in ids:
            if m != leader:
                self.sync(m, generation)
        self.sync(leader, generation, assignments)
        return ids
