"""The controller: the one broker that writes partition states, elected through /controller.

Every broker tries to create the ephemeral /controller when it sees none; the winner bumps
/controller_epoch, and every state it writes is conditional on that epoch's znode version, so a
deposed controller (its session expired, another one elected) cannot write. It reacts to the
cluster image: new partitions get their first leader, partitions whose leader died elect another
from the ISR (election.py), topics queued in /admin/delete_topics are removed. Each broker then
acts on the states it reads (member.py); there are no controller-to-broker requests.
"""
from __future__ import annotations

import asyncio
import logging

from kbroker.cluster.election import reconcile
from kbroker.cluster.image import NO_LEADER
from kbroker.cluster.metastore import MetaStore, MetaStoreError, StaleWrite

log = logging.getLogger("kbroker.controller")

RETRY_S = 0.5


class Controller:
    def __init__(self, store: MetaStore, broker_id: int) -> None:
        self._store = store
        self._broker_id = broker_id
        self.epoch: int | None = None
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        # States written whose new version the image has not shown yet: deciding on the old one
        # would only write again and be refused.
        self._awaiting: dict[tuple[str, int], int] = {}

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
            self._dirty = True
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._run())

    def resign(self) -> None:
        """Our session is gone: so is /controller, and with it this broker's epoch."""
        self.epoch = None
        self._awaiting.clear()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

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
        if changes:
            log.info("writing %d partition states: %s", len(changes), ", ".join(
                f"{t}-{p} leader {s.leader} epoch {s.leader_epoch} isr {list(s.isr)}"
                for (t, p), s in sorted(changes.items())[:10]))
            written = await self._store.write_partition_states(changes, self.epoch)
            self._awaiting.update(written)
            if len(written) < len(changes):  # their znodes moved on: the image shows how, then we decide again
                log.info("%d partition states were changed meanwhile: %s", len(changes) - len(written),
                         sorted(set(changes) - set(written))[:5])
