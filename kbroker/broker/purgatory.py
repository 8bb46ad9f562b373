"""Fetches waiting for data (Kafka's "fetch purgatory").

A long-poll Fetch that has less than min_bytes registers one future under every partition
it reads; the first high-watermark move on any of them, or their topic's deletion, wakes it (result None; the Fetch's own
timer completes it with True), and it re-reads. Waiters are woken, never completed with data
here: the Fetch handler owns what it sends. A Produce with acks=all, and a WriteTxnMarkers in a
cluster, wait here the same way for their partitions' high watermarks (partitions.py).
"""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable

TopicPartition = tuple[str, int]


class FetchPurgatory:
    def __init__(self) -> None:
        self._waiters: dict[TopicPartition, set[asyncio.Future[bool | None]]] = {}
        self._waiting: Counter[str] = Counter()  # by operation, for the metrics

    def watch(self, partitions: Iterable[TopicPartition], operation: str = "Fetch") -> asyncio.Future[bool | None]:
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        for tp in partitions:
            self._waiters.setdefault(tp, set()).add(future)
        self._waiting[operation] += 1
        return future

    def waiting(self, operation: str) -> int:
        """Requests of `operation` ("Fetch", or "Produce" waiting for acks=all) parked here now."""
        return self._waiting[operation]

    def unwatch(self, future: asyncio.Future[bool | None], partitions: Iterable[TopicPartition],
                operation: str = "Fetch") -> None:
        self._waiting[operation] -= 1
        for tp in partitions:
            waiters = self._waiters.get(tp)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[tp]

    def notify(self, tp: TopicPartition) -> None:
        for future in self._waiters.pop(tp, ()):
            if not future.done():
                future.set_result(None)
