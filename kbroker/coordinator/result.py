"""What one step of a group or offset machine did: Kafka's `CoordinatorResult(records, response)`.

Every state-changing operation of `classic.ClassicGroup`, `consumer.ConsumerGroup` and
`offsets.OffsetStore` returns one. `records` are the `__consumer_offsets` records the step writes;
`response` is the caller's answer; `replies` answer requests held earlier (a classic group's
JoinGroup / SyncGroup, Kafka's futures completed from the append future). The group coordinator
(`GroupCoordinator._commit`) appends the records as one batch, waits until they are durable (and in
a cluster replicated), replays the offset records into the offset store, and only then releases
the response and the replies: no step's answer leaves before its records are safe. A later step
may read the group's memory before an earlier step's records are written, so where that matters
the machine waits for the write's outcome: a classic group whose leader sent the assignment stays
CompletingRebalance, holding every member's SyncGroup (Kafka's doSyncGroup / storeGroup), until
the coordinator tells it the GroupMetadata is written (`append_committed`, whose result answers
them) or was not (`append_failed`).

A failed append answers Kafka's mapped error instead (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
...). The offset store is untouched then (its change is the replay). A group machine changed its
state while taking the step; Kafka reverts it (its timeline goes back to the last committed
offset), we do not keep a timeline: the group is told (`append_failed`) and a classic group whose
GroupMetadata was not stored rebalances, as Kafka's classic groups do; a consumer group keeps the
state it reached and its next write carries it again.

The transaction coordinator does not use it, as Kafka's does not either (its TransactionStateManager
appends with a callback, not on the CoordinatorRuntime): a step there is one pending transit (`Transit`,
Kafka's TxnTransitMetadata) that is its record, made the state by `complete` once written or
dropped by `cancel` if not, which is this type's job done with a revert Kafka's groups get from
their timeline. Wrapping the transit would give the same thing two shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kbroker.coordinator.records import CoordinatorRecord

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer a held request: `waiter` is its opaque handle (a future, in the coordinator)."""
    waiter: Any
    result: Any


@dataclass(frozen=True, slots=True)
class CoordinatorResult(Generic[T]):
    records: tuple[CoordinatorRecord, ...] = ()
    response: T = None  # type: ignore[assignment]  # None: the caller is answered through a Reply
    replies: tuple[Reply, ...] = ()
