"""Partition reassignment (KIP-455, as Kafka's controller carried it out in ZooKeeper mode): pure
functions of the cluster image, as election.py's.

A reassignment asked for (/admin/reassign_partitions: a target replica list, or None to cancel)
is started by rewriting the topic's assignment (`begin`):
- the partition's replicas become the target followed by the original replicas not in it, the
  original being the current replicas less any still being added by an earlier reassignment
  (a new request replaces one under way); `adding` = target - original, `removing` = original -
  target. The brokers in `adding` create the partition and follow the leader (member.py) until
  the leader takes them into the ISR;
- a cancel puts the original replicas back, `adding` and `removing` cleared; the replicas that
  were being added then leave the ISR (election.next_state) and delete their copy.

`progress` then moves each reassignment under way on, once every target replica is in the ISR:
- first the state: a leader not in the target hands over to the first target replica alive and
  in the ISR (leader epoch + 1), and the removed replicas leave the ISR;
- then, that state written, the final assignment (= the target, `adding`/`removing` cleared): the
  removed replicas' brokers stop following and delete their copy (member.py).
Writing the state first means that a partition's assignment never leaves out its leader or an
ISR member, which a broker must never delete a copy of.
"""
from __future__ import annotations

from collections.abc import Mapping

from kbroker.cluster.election import next_state
from kbroker.cluster.image import ClusterImage, PartitionState, TopicAssignment


def original_replicas(assignment: TopicAssignment, partition: int) -> tuple[int, ...]:
    adding = assignment.adding.get(partition, ())
    return tuple(r for r in assignment.replicas[partition] if r not in adding)


def target_replicas(assignment: TopicAssignment, partition: int) -> tuple[int, ...]:
    removing = assignment.removing.get(partition, ())
    return tuple(r for r in assignment.replicas[partition] if r not in removing)


def ongoing(assignment: TopicAssignment, partition: int) -> bool:
    return bool(assignment.adding.get(partition) or assignment.removing.get(partition))


def _with_partition(assignment: TopicAssignment, partition: int, replicas: tuple[int, ...],
                    adding: tuple[int, ...], removing: tuple[int, ...]) -> TopicAssignment:
    all_replicas = list(assignment.replicas)
    all_replicas[partition] = replicas
    all_adding = {p: r for p, r in assignment.adding.items() if p != partition}
    all_removing = {p: r for p, r in assignment.removing.items() if p != partition}
    if adding:
        all_adding[partition] = adding
    if removing:
        all_removing[partition] = removing
    return TopicAssignment(assignment.name, assignment.topic_id, tuple(all_replicas), assignment.version,
                           all_adding, all_removing)


def removable(image: ClusterImage, broker_id: int, topic: str, partition: int) -> bool:
    """May `broker_id` delete its copy of the partition? Only when the assignment (read) leaves it
    out and the state (read) shows it neither leading nor in the ISR: the controller takes a replica
    out of both before the assignment, and a copy that may hold the only acknowledged records stays."""
    assignment = image.topics.get(topic)
    state = image.states.get((topic, partition))
    if assignment is None or not 0 <= partition < assignment.partition_count or state is None:
        return False
    return (broker_id not in assignment.replicas[partition] and state.leader != broker_id
            and broker_id not in state.isr)


def begin(image: ClusterImage,
          requests: Mapping[tuple[str, int], tuple[int, ...] | None]) -> dict[str, TopicAssignment]:
    """The topic assignments that start (or cancel) the requested reassignments; requests for a
    partition that does not exist, or cancels with nothing under way, change nothing."""
    topics: dict[str, TopicAssignment] = {}
    for (name, partition), target in sorted(requests.items(), key=lambda item: item[0]):
        assignment = topics.get(name) or image.topics.get(name)
        if assignment is None or name in image.deleting or not 0 <= partition < assignment.partition_count:
            continue
        original = original_replicas(assignment, partition)
        if target is None:
            if not ongoing(assignment, partition):
                continue
            changed = _with_partition(assignment, partition, original, (), ())
        else:
            target = tuple(target)
            replicas = tuple(dict.fromkeys((*target, *original)))
            changed = _with_partition(assignment, partition, replicas, tuple(r for r in target if r not in original),
                                      tuple(r for r in original if r not in target))
        if changed != assignment:
            topics[name] = changed
    return topics


def progress(image: ClusterImage, controller_epoch: int) -> tuple[dict[tuple[str, int], PartitionState],
                                                                  dict[str, TopicAssignment]]:
    """The partition states, then the final assignments, that move the reassignments under way on."""
    live = image.brokers.keys()
    states: dict[tuple[str, int], PartitionState] = {}
    finished: dict[str, TopicAssignment] = {}
    for name, assignment in image.topics.items():
        if name in image.deleting:
            continue
        for partition in sorted(set(assignment.adding) | set(assignment.removing)):
            if not 0 <= partition < assignment.partition_count:
                continue
            target = target_replicas(assignment, partition)
            state = image.states.get((name, partition))
            if state is None or not target or not set(target) <= set(state.isr):
                continue  # the new replicas are still catching up
            new = next_state(target, state, live, controller_epoch)
            if new is not None:
                states[(name, partition)] = new
            elif state.leader in target and state.leader in live:
                current = finished.get(name, assignment)
                finished[name] = _with_partition(current, partition, target, (), ())
    return states, finished
