"""The clock, in milliseconds since the epoch. Whatever decides by time (segment rolls, retention,
group sessions, transaction timeouts) takes a `Clock` or a `now_ms` argument instead of reading
the wall clock itself, so tests drive time; the broker passes `wall_clock_ms`."""
from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return int(time.time() * 1000)
