"""Producer ids unique across the cluster: each broker claims blocks of ids in ZooKeeper
(/latest_producer_id_block, a conditional write), as Kafka's ZkProducerIdManager does.

A single node keeps its blocks in its data dir (kbroker/broker/producer_ids.py); in a cluster two
brokers handing out the same id would let one producer's sequence numbers deduplicate (drop) the
records of another writing to the same partition.
"""
from __future__ import annotations

import asyncio

from kbroker.cluster.metastore import MetaStore

BLOCK_SIZE = 1000


class ProducerIdBlocks:
    def __init__(self, store: MetaStore, broker_id: int) -> None:
        self._store = store
        self._broker_id = broker_id
        self._next = 0
        self._end = 0  # exclusive
        self._claiming = asyncio.Lock()

    async def allocate(self) -> int:
        async with self._claiming:
            if self._next >= self._end:
                self._next = await self._store.claim_producer_id_block(self._broker_id, BLOCK_SIZE)
                self._end = self._next + BLOCK_SIZE
            pid = self._next
            self._next += 1
            return pid
