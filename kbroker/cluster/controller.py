"""The controller: the one broker that writes partition states, elected through /controller.

Every broker tries to create the ephemeral /controller when it sees none; the winner bumps
/controller_epoch, and every state it writes is conditional on that epoch's znode version, so a
deposed controller (its session expired, another one elected) cannot write. It reacts to the
cluster image: new partitions get their first leader, partitions whose leader died elect another
from the ISR (election.py), topics queued in /admin/delete_topics are removed, reassignments
queued in /admin/reassign_partitions are started and carried through (reassignment.py). Each broker then
acts on the states it reads (member.py); there are no controller-to-broker requests.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from kbroker.cluster.election import rebalance, rebalance_due, reconcile, requested_elections
from kbroker.cluster.image import NO_LEADER, PartitionState
from kbroker.cluster.metastore import MetaStore, MetaStoreError, StaleWrite
from kbroker.cluster.reassignment import begin, progress

log = logging.getLogger("kbroker.controller")

RETRY_S = 0.5
FIRST_REBALANCE_CHECK_S = 5.0  # after the election, as Kafka's KafkaController.onControllerFailover


class Controller:
    def __init__(self, store: MetaStore, broker_id: int, *, auto_rebalance: bool = False,
                 rebalance_interval_s: float = 300.0, imbalance_percentage: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._broker_id = broker_id
        self.epoch: int | None = None
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._auto_rebalance = auto_rebalance
        self._rebalance_interval_s = rebalance_interval_s
        self._imbalance_percentage = imbalance_percentage
        self._clock = clock
        self._last_rebalance = 0.0  # as if checked then: the next check is one interval later
        self._rebalance_task: asyncio.Task[None] | None = None
        # States written whose new version the image has not shown yet: deciding on the old one
        # would only write again and be refused.
        self._awaiting: dict[tuple[str, int], int] = {}
        # Likewise for the topic assignments a reassignment wrote.
        self._awaiting_topics: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self.epoch is not None

    def on_change(self) -> None:
        """The image changed: resign if someone else is controller; run for it if no one is; act."""
        controller = self._store.image.controller_id
        if self.epoch is not None and controller not in (self._broker_id, NO_LEADER):
            log.info("broker %d is no longer the controller (now %d)", self._broker_id, controller)
            self.resign()
        if controller == NO_LEADER or self.epoch is not None:
            self._kick()

    def resign(self) -> None:
        """Our session is gone: so is /controller, and with it this broker's epoch."""
        self.epoch = None
        self._awaiting.clear()
        self._awaiting_topics.clear()
        if self._rebalance_task is not None:
            self._rebalance_task.cancel()
            self._rebalance_task = None

    async def close(self) -> None:
        tasks = [t for t in (self._task, self._rebalance_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _kick(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _rebalance_timer(self) -> None:
        """Wake the controller when a rebalance check is due; `_act` decides on the clock."""
        while True:
            wait = self._last_rebalance + self._rebalance_interval_s - self._clock()
            await asyncio.sleep(max(wait, 0.05))
            if rebalance_due(self._clock(), self._last_rebalance, self._rebalance_interval_s):
                self._kick()

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                if self.epoch is None:
                    if self._store.image.controller_id != NO_LEADER:
                        return
                    self.epoch = await self._store.elect_controller(self._broker_id)
                    if self.epoch is None:
                        return
                    log.info("broker %d is the controller, epoch %d", self._broker_id, self.epoch)
                    if self._auto_rebalance:
                        self._last_rebalance = (self._clock() - self._rebalance_interval_s
                                                + min(FIRST_REBALANCE_CHECK_S, self._rebalance_interval_s))
                        self._rebalance_task = asyncio.get_running_loop().create_task(self._rebalance_timer())
                await self._act()
            except StaleWrite as exc:  # the image catches up, and the next change runs us again
                log.info("controller write refused (%s); waiting for the next change", exc)
            except MetaStoreError as exc:
                log.warning("controller: %s; retrying", exc)
                self._dirty = True
                await asyncio.sleep(RETRY_S)

    async def _act(self) -> None:
        image = self._store.image
        for name in sorted(image.deleting):
            log.info("deleting topic %s", name)
            await self._store.delete_topic(name, self.epoch)
        for key, version in list(self._awaiting.items()):
            state = image.states.get(key)
            if key[0] not in image.topics or (state is not None and state.version >= version):
                del self._awaiting[key]
        changes = {key: state for key, state in reconcile(image, self.epoch).items() if key not in self._awaiting}
        for name, version in list(self._awaiting_topics.items()):
            if name not in image.topics or image.topics[name].version >= version:
                del self._awaiting_topics[name]
        started: set[str] = set(self._awaiting_topics)
        if image.reassignments_version >= 0 and not started & {t for t, _ in image.reassignments}:
            plan = begin(image, image.reassignments)
            try:
                await self._store.write_reassignments(plan, self.epoch, image.reassignments_version)
            except StaleWrite as exc:  # taken already, or more asked for meanwhile: the image will tell
                log.info("reassignments not started (%s); waiting for the next change", exc)
            else:
                log.info("reassignments asked for: %s", ", ".join(
                    f"{t}-{p} -> {'cancel' if r is None else list(r)}"
                    for (t, p), r in sorted(image.reassignments.items(), key=lambda i: i[0])[:10]))
                self._awaiting_topics.update({name: a.version + 1 for name, a in plan.items()})
                started |= set(plan)
        moving, finished = progress(image, self.epoch)
        changes.update({key: state for key, state in moving.items()
                        if key not in changes and key not in self._awaiting and key[0] not in started})
        elected: dict[tuple[str, int], PartitionState] = {}
        if self._auto_rebalance and rebalance_due(self._clock(), self._last_rebalance, self._rebalance_interval_s):
            self._last_rebalance = self._clock()
            elected.update(rebalance(image, self.epoch, self._imbalance_percentage))
            if elected:
                log.info("auto leader rebalance: %d partitions back to their preferred replica", len(elected))
        # A pending election waits while its partition has a write of its own in flight.
        held = set(image.elections) & (set(changes) | set(self._awaiting))
        elected.update({key: state for key, state in requested_elections(image, self.epoch).items()
                        if key not in held})
        changes.update({key: state for key, state in elected.items()
                        if key not in changes and key not in self._awaiting})
        written = {}
        if changes:
            log.info("writing %d partition states: %s", len(changes), ", ".join(
                f"{t}-{p} leader {s.leader} epoch {s.leader_epoch} isr {list(s.isr)}"
                for (t, p), s in sorted(changes.items())[:10]))
            written = await self._store.write_partition_states(changes, self.epoch)
            self._awaiting.update(written)
            if len(written) < len(changes):  # their znodes moved on: the image shows how, then we decide again
                log.info("%d partition states were changed meanwhile: %s", len(changes) - len(written),
                         sorted(set(changes) - set(written))[:5])
        # A reassignment ends once its partition's state fits the target: none in flight.
        busy = {key[0] for key in (*changes, *self._awaiting)}
        finished = {name: a for name, a in finished.items() if name not in busy and name not in started}
        if finished:
            log.info("reassignments completed: %s", ", ".join(
                f"{name} {[list(r) for r in a.replicas]}" for name, a in sorted(finished.items())[:10]))
            await self._store.write_reassignments(finished, self.epoch, -1)
            self._awaiting_topics.update({name: a.version + 1 for name, a in finished.items()})
        if image.elections_version >= 0 and not held and all(key in written for key in elected
                                                            if key in image.elections):
            log.info("leader elections asked for: %s", ", ".join(
                f"{t}-{p}" + (" elected" if (t, p) in written else " not needed or not possible")
                for t, p in sorted(image.elections)[:10]))
            await self._store.complete_leader_elections(image.elections_version)
