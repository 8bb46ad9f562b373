"""The fetch purgatory on its own: who is woken, once, and what it counts for the metrics."""
from __future__ import annotations

import asyncio

from kbroker.broker.purgatory import FetchPurgatory

A, B = ("orders", 0), ("orders", 1)


async def test_a_waiter_is_woken_by_any_partition_it_watches_and_only_once():
    purgatory = FetchPurgatory()
    both = purgatory.watch([A, B])
    only_b = purgatory.watch([B])
    purgatory.notify(A)
    assert both.done() and both.result() is None and not only_b.done()
    purgatory.notify(A)  # nothing left under A; a second notify must not touch the done future
    purgatory.notify(B)
    assert only_b.done()


async def test_unwatching_forgets_the_waiter_and_its_count():
    purgatory = FetchPurgatory()
    waiter = purgatory.watch([A, B], "Produce")
    assert purgatory.waiting("Produce") == 1 and purgatory.waiting("Fetch") == 0
    purgatory.unwatch(waiter, [A, B], "Produce")
    assert purgatory.waiting("Produce") == 0
    purgatory.notify(A)
    assert not waiter.done()


async def test_a_waiter_completed_elsewhere_is_left_alone():
    purgatory = FetchPurgatory()
    waiter = purgatory.watch([A])
    waiter.set_result(True)  # its own timer fired first
    purgatory.notify(A)
    assert waiter.result() is True


async def test_a_long_poll_wakes_when_its_partition_moves():
    purgatory = FetchPurgatory()
    woken = purgatory.watch([A])
    asyncio.get_running_loop().call_soon(purgatory.notify, A)
    assert await asyncio.wait_for(woken, 1) is None
