"""Live fuzz: many connections send mutated real-client frames at a running broker for a bounded time.

Shared by tests/broker/test_live_fuzz.py (CI-sized) and stress/live_fuzz.py (longer). Each of
`connections` asyncio workers connects and, until time is up, sends requests made from the
captured client frames (tests/wire/golden) by `mutations.mutate` (bytes) or
`mutations.mutate_values` (field values, validly encoded), a few pipelined at a time.
Now and then a frame goes out unmutated, split into small pieces, with a lying size prefix, or
with garbage after it. A reader per connection decodes whatever answers come back (by the api
and version its request header named) and counts their error codes; when the broker closes
the connection the worker counts it and reconnects.

What was tried and what it hit ends up in `FuzzStats`: frames sent and answered, connections the
broker closed, the distinct error codes in answers (api, code), and, read from the broker's log
afterwards, the distinct reasons it gave for closing connections. `broker_failures` lists the
log lines that must never appear (a traceback, an internal error).
"""
from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from kbroker.errors import ProtocolViolation
from kbroker.wire import frames
from kbroker.wire.messages import APIS
from tests.wire.mutations import golden_frames, mutate, mutate_values

GOLDEN = golden_frames()
GOLDEN_BYTES = [entry["frame"] for entry in GOLDEN]
CORRELATION = struct.Struct(">i")

FAILURE_PATTERNS = ("Traceback", "failed; closing the connection", "Task exception was never retrieved",
                    "Fatal error", "Exception in callback", "ERROR")


@dataclass
class FuzzStats:
    seconds: float = 0.0
    frames_sent: int = 0
    answers: int = 0
    undecodable_answers: int = 0
    connections: int = 0
    closed_by_broker: int = 0
    sent_by_api: Counter = field(default_factory=Counter)
    mutations: Counter = field(default_factory=Counter)
    answer_errors: Counter = field(default_factory=Counter)  # "Api code" -> count
    close_reasons: Counter = field(default_factory=Counter)  # from the broker log, numbers masked

    def summary(self) -> dict:
        return {"seconds": round(self.seconds, 1), "frames_sent": self.frames_sent, "answers": self.answers,
                "connections": self.connections, "closed_by_broker": self.closed_by_broker,
                "distinct_answer_errors": len(self.answer_errors), "distinct_close_reasons": len(self.close_reasons),
                "apis_sent": len(self.sent_by_api)}


def _error_codes(value: object, out: set[int]) -> None:
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            child = getattr(value, f.name)
            if f.name == "error_code" and isinstance(child, int):
                out.add(child)
            else:
                _error_codes(child, out)
    elif isinstance(value, list):
        for child in value:
            _error_codes(child, out)


def _variant(entry: dict, rng: random.Random, stats: FuzzStats) -> list[bytes]:
    """The bytes to write for one request: size prefix + a frame mutated in its bytes or in its
    field values (about half each), now and then worse."""
    frame = entry["frame"]
    applied: list[str] = []
    body = None
    if rng.random() < 0.5:
        body = mutate_values(entry, rng)
        if body is not None:
            applied.append("field values")
    if body is None:
        body = frame if rng.random() < 0.05 else mutate(frame, rng, GOLDEN_BYTES, applied)
    stats.mutations.update(applied or ["none"])
    roll = rng.random()
    if roll < 0.03:  # a size prefix that lies
        stats.mutations["lying size prefix"] += 1
        return [CORRELATION.pack(max(0, len(body) + rng.choice([-3, -1, 1, 7, 1000]))) + body]
    if roll < 0.05:  # a frame followed by raw garbage
        stats.mutations["trailing garbage"] += 1
        return [CORRELATION.pack(len(body)) + body + bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))]
    data = CORRELATION.pack(len(body)) + body
    if roll < 0.10:  # dribbled out in small pieces
        stats.mutations["split into pieces"] += 1
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
        return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    return [data]


async def _connection(port: int, rng: random.Random, stop_at: float, stats: FuzzStats, pipeline: int) -> None:
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        stats.connections += 1
        sent: dict[int, tuple[int, int]] = {}  # correlation id -> (api key, version) named by the header
        correlation = rng.randrange(1 << 30)
        closed = asyncio.Event()

        async def read_answers() -> None:
            try:
                while True:
                    size = CORRELATION.unpack(await reader.readexactly(4))[0]
                    frame = await reader.readexactly(size)
                    stats.answers += 1
                    _count_answer(frame, sent, stats)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                closed.set()

        reading = asyncio.create_task(read_answers())
        try:
            while time.monotonic() < stop_at and not closed.is_set():
                for _ in range(rng.randint(1, pipeline)):
                    entry = rng.choice(GOLDEN)
                    pieces = _variant(entry, rng, stats)
                    correlation += 1
                    first = bytearray(pieces[0])
                    if len(first) >= 12:  # our own correlation ids, to match answers to requests
                        first[8:12] = CORRELATION.pack(correlation)
                        api_key, version = struct.unpack_from(">hh", first, 4)
                        sent[correlation] = (api_key, version)
                        stats.sent_by_api[APIS[api_key].name if api_key in APIS else f"key {api_key}"] += 1
                    pieces[0] = bytes(first)
                    for piece in pieces:
                        writer.write(piece)
                        if len(pieces) > 1:
                            await writer.drain()
                            await asyncio.sleep(0.001)
                    stats.frames_sent += 1
                await writer.drain()
                try:
                    await asyncio.wait_for(closed.wait(), rng.choice([0.001, 0.01, 0.05]))
                except TimeoutError:
                    pass
        except (ConnectionError, OSError):
            closed.set()
        finally:
            if closed.is_set() and time.monotonic() < stop_at:
                stats.closed_by_broker += 1
            reading.cancel()
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


def _count_answer(frame: bytes, sent: dict[int, tuple[int, int]], stats: FuzzStats) -> None:
    if len(frame) < 4:
        stats.undecodable_answers += 1
        return
    correlation_id = CORRELATION.unpack_from(frame)[0]
    api_key, version = sent.pop(correlation_id, (None, None))
    if api_key not in APIS:
        stats.undecodable_answers += 1
        return
    api = APIS[api_key]
    try:
        _, body, _ = frames.decode_response(memoryview(frame), api, version)
    except ProtocolViolation:
        stats.undecodable_answers += 1
        return
    codes: set[int] = set()
    _error_codes(body, codes)
    for code in codes:
        stats.answer_errors[f"{api.name} {code}"] += 1


async def run(port: int, connections: int, seconds: float, seed: int = 0, pipeline: int = 4) -> FuzzStats:
    stats = FuzzStats()
    started = time.monotonic()
    stop_at = started + seconds
    rngs = [random.Random(seed * 100_003 + i) for i in range(connections)]
    await asyncio.gather(*(_connection(port, rng, stop_at, stats, pipeline) for rng in rngs))
    stats.seconds = time.monotonic() - started
    return stats


_CLOSE = re.compile(r"closing connection from \S+: (.*)$")


def close_reasons(broker_log: str) -> Counter:
    """The broker's reasons for closing connections, with numbers and quoted names masked."""
    reasons: Counter = Counter()
    for line in broker_log.splitlines():
        match = _CLOSE.search(line)
        if match:
            reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", match.group(1))
            reasons[re.sub(r"-?\d+", "N", reason)] += 1
    return reasons


_LOG_LINE_START = re.compile(r"^\d{4}-\d\d-\d\d ")


def broker_failures(broker_log: str) -> list[str]:
    """Each log record that reports a failure, with the traceback lines that follow it."""
    failures: list[str] = []
    in_failure = False
    for line in broker_log.splitlines():
        if _LOG_LINE_START.match(line):
            in_failure = any(p in line for p in FAILURE_PATTERNS)
            if in_failure:
                failures.append(line)
        elif in_failure:
            failures[-1] += "\n" + line
    return failures
