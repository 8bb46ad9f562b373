"""The controller's decisions: partition states as pure functions of the cluster image.

Kafka's controller in ZooKeeper mode (PartitionStateMachine, ReplicaStateMachine):
- a new partition gets its first state once one of its replicas is alive: the first live replica
  in assignment order leads, alone in the ISR (followers join it once they have caught up),
  leader epoch 0;
- a partition whose leader is not alive elects the first replica in assignment order that is alive
  and in the ISR (no unclean election); the leader epoch goes up by one;
- with no such replica it goes offline: leader -1, the ISR kept as it was, so that one of its
  members, the only replicas known to hold every acknowledged record, leads when it returns;
- a dead follower leaves the ISR (the leader stays, so its epoch does not change);
- so does a replica no longer assigned (a reassignment finished or cancelled), and a leader no
  longer assigned is replaced as a dead one is.

Elections asked for (ElectLeaders, KIP-460; the controller's auto rebalance), as Kafka's
KafkaController.onReplicaElection decides them, each either a new state or the partition's error:
- preferred: the first replica of the assignment leads, if it is alive and in the ISR
  (PREFERRED_LEADER_NOT_AVAILABLE otherwise; ELECTION_NOT_NEEDED when it leads already); the ISR
  stays, the leader epoch goes up by one;
- unclean, for a partition without a live leader (ELECTION_NOT_NEEDED otherwise): the first live
  ISR member in assignment order, else the first live replica, alone in the ISR, as it may lack
  acknowledged records (ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is alive);
- auto rebalance (auto.leader.rebalance.enable): for each broker, the partitions it is the
  preferred replica of; when more than leader.imbalance.per.broker.percentage of them are led by
  another broker, each of those it can lead (alive, in the ISR) gets a preferred election, every
  leader.imbalance.check.interval.seconds (`rebalance_due`, the clock passed in).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

from kbroker.cluster.image import NO_LEADER, ClusterImage, PartitionState
from kbroker.errors import ErrorCode

PREFERRED = 0
UNCLEAN = 1
ELECTION_TYPES = (PREFERRED, UNCLEAN)


def initial_state(replicas: Sequence[int], live: Collection[int], controller_epoch: int) -> PartitionState | None:
    alive = tuple(r for r in replicas if r in live)
    if not alive:
        return None
    # Only the leader is in sync at first; followers join the ISR once they have caught up.
    return PartitionState(leader=alive[0], leader_epoch=0, isr=alive[:1], controller_epoch=controller_epoch)


def next_state(replicas: Sequence[int], state: PartitionState, live: Collection[int],
               controller_epoch: int) -> PartitionState | None:
    """The partition's state after brokers died or came back; None when nothing changes."""
    if state.leader != NO_LEADER and state.leader in live and state.leader in replicas:
        isr = tuple(r for r in state.isr if r in live and r in replicas)
        if isr == state.isr:
            return None
        return PartitionState(state.leader, state.leader_epoch, isr, controller_epoch, state.version)
    candidates = [r for r in replicas if r in live and r in state.isr]
    if not candidates:
        if state.leader == NO_LEADER:
            return None
        return PartitionState(NO_LEADER, state.leader_epoch + 1, state.isr, controller_epoch, state.version)
    isr = tuple(r for r in state.isr if r in live and r in replicas)
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


def preferred_election(replicas: Sequence[int], state: PartitionState | None, live: Collection[int],
                       controller_epoch: int) -> PartitionState | ErrorCode:
    if state is None or not replicas:
        return ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    preferred = replicas[0]
    if state.leader == preferred and preferred in live:
        return ErrorCode.ELECTION_NOT_NEEDED
    if preferred not in live or preferred not in state.isr:
        return ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    isr = tuple(r for r in state.isr if r in live)
    return PartitionState(preferred, state.leader_epoch + 1, isr, controller_epoch, state.version)


def unclean_election(replicas: Sequence[int], state: PartitionState | None, live: Collection[int],
                     controller_epoch: int) -> PartitionState | ErrorCode:
    if state is None:
        return ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    if state.leader != NO_LEADER and state.leader in live:
        return ErrorCode.ELECTION_NOT_NEEDED
    in_sync = [r for r in replicas if r in live and r in state.isr]
    if in_sync:  # a clean choice is still there: take it, as Kafka does
        isr = tuple(r for r in state.isr if r in live)
        return PartitionState(in_sync[0], state.leader_epoch + 1, isr, controller_epoch, state.version)
    alive = [r for r in replicas if r in live]
    if not alive:
        return ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    return PartitionState(alive[0], state.leader_epoch + 1, (alive[0],), controller_epoch, state.version)


def elect(election_type: int, image: ClusterImage, topic: str, partition: int,
          controller_epoch: int) -> PartitionState | ErrorCode:
    """The outcome of one requested election on `image`: the state to write, or the partition's error."""
    assignment = image.topics.get(topic)
    if assignment is None or topic in image.deleting or not 0 <= partition < assignment.partition_count:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    decide = preferred_election if election_type == PREFERRED else unclean_election
    return decide(assignment.replicas[partition], image.states.get((topic, partition)), image.brokers.keys(),
                  controller_epoch)


def requested_elections(image: ClusterImage, controller_epoch: int) -> dict[tuple[str, int], PartitionState]:
    """The states the elections pending in the store (image.elections) call for; the others fail."""
    changes = {}
    for (topic, partition), election_type in image.elections.items():
        outcome = elect(election_type, image, topic, partition, controller_epoch)
        if isinstance(outcome, PartitionState):
            changes[(topic, partition)] = outcome
    return changes


def rebalance(image: ClusterImage, controller_epoch: int,
              imbalance_percentage: int) -> dict[tuple[str, int], PartitionState]:
    """Kafka's checkAndTriggerAutoLeaderRebalance: preferred elections for the brokers whose share of
    partitions led by someone else, among those they are the preferred replica of, is too high."""
    by_preferred: dict[int, list[tuple[str, int]]] = {}
    for name, assignment in image.topics.items():
        if name in image.deleting:
            continue
        for partition, replicas in enumerate(assignment.replicas):
            if replicas and (name, partition) in image.states:
                by_preferred.setdefault(replicas[0], []).append((name, partition))
    changes = {}
    for broker, partitions in by_preferred.items():
        elsewhere = [key for key in partitions if image.states[key].leader != broker]
        if len(elsewhere) * 100 <= imbalance_percentage * len(partitions):
            continue
        for key in elsewhere:
            outcome = elect(PREFERRED, image, key[0], key[1], controller_epoch)
            if isinstance(outcome, PartitionState):
                changes[key] = outcome
    return changes


def rebalance_due(now: float, last_check: float, interval_s: float) -> bool:
    return now - last_check >= interval_s
