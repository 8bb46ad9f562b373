"""The broker's two clocks, passed in to whatever decides by time so that tests drive them.

`Clock` is wall-clock time in milliseconds since the epoch: for what is written down or compared
with timestamps in records and on disk (segment rolls, retention, cleaner lag, group sessions,
transaction timeouts, registration timestamps). The broker passes `wall_clock_ms`.

`MonotonicClock` is milliseconds on a clock that never jumps (its zero is arbitrary): for intervals,
deadlines and leases that must not move when an operator or NTP sets the wall clock (flush.ms, the
checkpoint and retention cadence, the ZooKeeper session lease, re-authentication, waits). The broker
passes `monotonic_ms`.

The broker builds both once (the LogManager holds the wall clock, `Broker` the monotonic one) and
hands them down: coordinators, flusher, maintenance, cleaner, cluster member (its lease, ISR lag,
controller cadence), replica fetchers. Left reading time themselves, on purpose: durations that are
measured rather than decided on (log lines such as "loaded in %.2fs", the cleaner's stats, request
and fsync latency metrics, the handler time the request quota charges), the cleaner's "yield the GIL
every few ms" pacing, the event loop's own `loop.time()` for idle and long-poll timeouts (asyncio's
timers run on it), and the CLI tools and test harnesses (embedded, zookeeper_process) waiting on a
real process.
"""
from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
MonotonicClock = Callable[[], int]


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000
