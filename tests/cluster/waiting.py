"""Waiting on a condition of the cluster, for the tests driving the store's callbacks."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

POLL_S = 0.01


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(POLL_S)
