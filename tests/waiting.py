"""Waiting for a condition with a deadline: what a test does instead of sleeping for a guess.

A sleep long enough on a quiet machine is too short on a loaded CI runner, and wastes time
everywhere else; polling the condition the test needs ends as soon as it holds and fails with
what was awaited when it never does.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

POLL_S = 0.01
T = TypeVar("T")


def _described(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def wait_until(condition: Callable[[], T], what: str | Callable[[], str], timeout: float = 10.0,
               poll: float = POLL_S) -> T:
    """Call `condition` until it returns something true, and return that. `what` may be a callable:
    called on a timeout, it says what was awaited with the state at that moment (a log, a view)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_described(what)}")
        time.sleep(poll)


async def wait_until_async(condition: Callable[[], bool], what: str | Callable[[], str], timeout: float = 5.0) -> None:
    """`wait_until` on the event loop: the tasks that make `condition` true run meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_described(what)}")
        await asyncio.sleep(POLL_S)
