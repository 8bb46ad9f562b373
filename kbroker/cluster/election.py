"""The controller's decisions: partition states as pure functions of the cluster image.

Kafka's controller in ZooKeeper mode (PartitionStateMachine, ReplicaStateMachine):
- a new partition gets its first state once one of its replicas is alive: the first live replica
  in assignment order leads, alone in the ISR (followers join it once they have caught up),
  leader epoch 0;
- a partition whose leader is not alive elects the first replica in assignment order that is alive
  and in the ISR (no unclean election); the leader epoch goes up by one;
- with no such replica it goes offline: leader -1, the ISR kept as it was, so that one of its
  members, the only replicas known to hold every acknowledged record, leads when it returns;
- a dead follower leaves the ISR (the leader stays, so its epoch does not change).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

from kbroker.cluster.image import NO_LEADER, ClusterImage, PartitionState


def initial_state(replicas: Sequence[int], live: Collection[int], controller_epoch: int) -> PartitionState | None:
    alive = tuple(r for r in replicas if r in live)
    if not alive:
        return None
    # Only the leader is in sync at first; followers join the ISR once they have caught up.
    return PartitionState(leader=alive[0], leader_epoch=0, isr=alive[:1], controller_epoch=controller_epoch)


def next_state(replicas: Sequence[int], state: PartitionState, live: Collection[int],
               controller_epoch: int) -> PartitionState | None:
    """The partition's state after brokers died or came back; None when nothing changes."""
    if state.leader != NO_LEADER and state.leader in live:
        isr = tuple(r for r in state.isr if r in live)
        if isr == state.isr:
            return None
        return PartitionState(state.leader, state.leader_epoch, isr, controller_epoch, state.version)
    candidates = [r for r in replicas if r in live and r in state.isr]
    if not candidates:
        if state.leader == NO_LEADER:
            return None
        return PartitionState(NO_LEADER, state.leader_epoch + 1, state.isr, controller_epoch, state.version)
    isr = tuple(r for r in state.isr if r in live)
    return PartitionState(candidates[0], state.leader_epoch + 1, isr, controller_epoch, state.version)


def reconcile(image: ClusterImage, controller_epoch: int) -> dict[tuple[str, int], PartitionState]:
    """Every partition state the controller should write now."""
    live = image.brokers.keys()
    changes = {}
    for name, assignment in image.topics.items():
        if name in image.deleting:
            continue
        for partition, replicas in enumerate(assignment.replicas):
            state = image.states.get((name, partition))
            if state is None:
                new = initial_state(replicas, live, controller_epoch)
            else:
                new = next_state(replicas, state, live, controller_epoch)
            if new is not None:
                changes[(name, partition)] = new
    return changes
