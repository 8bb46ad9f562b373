"""Live fuzz: many connections send mutated real-client frames at a running broker for a bounded time.

Shared by tests/broker/test_live_fuzz.py (CI-sized) and stress/live_fuzz.py (longer). Each of
`connections` asyncio workers connects and, until time is up, sends requests made from the
captured client frames (tests/wire/golden) by `mutations.mutate` (bytes) or
`mutations.mutate_values` (field values, validly encoded), a few pipelined at a time.
Now and then a frame goes out unmutated, split into small pieces, with a lying size prefix, or
with garbage after it. A reader per connection checks each answer against the request its
correlation id names (tests/fuzz_outcomes.py: the response of that api and version, decoded
whole, no UNKNOWN_SERVER_ERROR) and counts its error codes; when the broker closes the
connection the worker counts it and reconnects.

What was tried and what it hit ends up in `FuzzStats`: frames sent and answered, answers that
failed the check (`wrong_answers`: broker bugs), connections the broker closed, the distinct
error codes in answers (api, code), and, read from the broker's log afterwards, the reasons it
gave for closing connections: each a `CloseReason`, which must be one of LIVE_CLOSES.
`broker_failures` lists the log lines that must never appear (a traceback, an internal error).
"""
from __future__ import annotations

import asyncio
import random
import re
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from kbroker.broker.connection import CloseReason
from kbroker.wire.messages import APIS
from tests.fuzz_outcomes import answer_problem, error_codes
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
    unattributable_answers: int = 0  # read after a frame that broke the framing (see _variant)
    connections: int = 0
    closed_by_broker: int = 0
    sent_by_api: Counter = field(default_factory=Counter)
    mutations: Counter = field(default_factory=Counter)
    answer_errors: Counter = field(default_factory=Counter)  # "Api code" -> count
    wrong_answers: Counter = field(default_factory=Counter)  # what answer_problem found: broker bugs
    close_reasons: Counter = field(default_factory=Counter)  # from the broker log, numbers masked

    def summary(self) -> dict:
        return {"seconds": round(self.seconds, 1), "frames_sent": self.frames_sent, "answers": self.answers,
                "wrong_answers": sum(self.wrong_answers.values()), "unattributable_answers": self.unattributable_answers,
                "connections": self.connections, "closed_by_broker": self.closed_by_broker,
                "distinct_answer_errors": len(self.answer_errors), "distinct_close_reasons": len(self.close_reasons),
                "apis_sent": len(self.sent_by_api)}


def _variant(entry: dict, rng: random.Random, stats: FuzzStats, correlation: int) -> tuple[list[bytes], bool]:
    """The bytes to write for one request: size prefix + a frame mutated in its bytes or in its
    field values (about half each), now and then worse; our own `correlation` id written in, to
    match its answer. True with them when the frame breaks the framing of those that follow."""
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
    body = body[:4] + CORRELATION.pack(correlation) + body[8:] if len(body) >= 8 else body
    roll = rng.random()
    if roll < 0.03:  # a size prefix that lies
        stats.mutations["lying size prefix"] += 1
        return [CORRELATION.pack(max(0, len(body) + rng.choice([-3, -1, 1, 7, 1000]))) + body], True
    if roll < 0.05:  # a frame followed by raw garbage
        stats.mutations["trailing garbage"] += 1
        return [CORRELATION.pack(len(body)) + body + bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))], True
    data = CORRELATION.pack(len(body)) + body
    if roll < 0.10:  # dribbled out in small pieces
        stats.mutations["split into pieces"] += 1
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
        return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])], False
    return [data], False


async def _connection(port: int, rng: random.Random, stop_at: float, stats: FuzzStats, pipeline: int) -> None:
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        stats.connections += 1
        sent: dict[int, tuple[int, int]] = {}  # correlation id -> (api key, version) named by the header
        # After a lying size prefix or trailing garbage the broker reads frames no request was:
        # their answers name no request we sent.
        framing_broken = False
        correlation = rng.randrange(1 << 30)
        closed = asyncio.Event()

        async def read_answers() -> None:
            try:
                while True:
                    size = CORRELATION.unpack(await reader.readexactly(4))[0]
                    frame = await reader.readexactly(size)
                    stats.answers += 1
                    _count_answer(frame, sent, framing_broken, stats)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                closed.set()

        reading = asyncio.create_task(read_answers())
        try:
            while time.monotonic() < stop_at and not closed.is_set():
                for _ in range(rng.randint(1, pipeline)):
                    correlation += 1
                    pieces, breaks_framing = _variant(rng.choice(GOLDEN), rng, stats, correlation)
                    data = b"".join(pieces)
                    if len(data) >= 12:
                        api_key, version = struct.unpack_from(">hh", data, 4)
                        sent[correlation] = (api_key, version)
                        stats.sent_by_api[APIS[api_key].name if api_key in APIS else f"key {api_key}"] += 1
                    framing_broken = framing_broken or breaks_framing
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


def _count_answer(frame: bytes, sent: dict[int, tuple[int, int]], framing_broken: bool, stats: FuzzStats) -> None:
    correlation_id = CORRELATION.unpack_from(frame)[0] if len(frame) >= 4 else None
    if correlation_id not in sent:
        if framing_broken:
            stats.unattributable_answers += 1
        else:
            stats.wrong_answers[f"an answer to no request (correlation id {correlation_id})"] += 1
        return
    api_key, version = sent.pop(correlation_id)
    problem, body = answer_problem(frame, api_key, version, correlation_id)
    if problem is not None:
        stats.wrong_answers[problem] += 1
        return
    for code in error_codes(body):
        stats.answer_errors[f"{APIS[api_key].name} {code}"] += 1


async def run(port: int, connections: int, seconds: float, seed: int = 0, pipeline: int = 4) -> FuzzStats:
    stats = FuzzStats()
    started = time.monotonic()
    stop_at = started + seconds
    rngs = [random.Random(seed * 100_003 + i) for i in range(connections)]
    await asyncio.gather(*(_connection(port, rng, stop_at, stats, pipeline) for rng in rngs))
    stats.seconds = time.monotonic() - started
    return stats


_CLOSE = re.compile(r"closing connection from \S+ \(([^)]*)\): (.*)$")
# Why the broker may close a fuzzing connection; anything else (an internal error, unreadable
# records) is a bug. Authentication closes need a SASL listener, which the live fuzz has not.
LIVE_CLOSES = frozenset({CloseReason.FRAME_SIZE, CloseReason.UNDECODABLE, CloseReason.UNKNOWN_API,
                         CloseReason.UNSUPPORTED_VERSION, CloseReason.UNANSWERED_ERROR, CloseReason.IDLE})


def close_reasons(broker_log: str) -> Counter:
    """The broker's reasons for closing connections ("reason: detail"), numbers and quoted names masked."""
    reasons: Counter = Counter()
    for line in broker_log.splitlines():
        match = _CLOSE.search(line)
        if match:
            detail = re.sub(r"-?\d+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", match.group(2)))
            reasons[f"{match.group(1)}: {detail}"] += 1
    return reasons


def close_reason_kinds(reasons: Counter) -> Counter:
    """`close_reasons` by CloseReason (a ValueError for a reason the broker does not have)."""
    kinds: Counter = Counter()
    for reason, count in reasons.items():
        kinds[CloseReason(reason.split(": ", 1)[0])] += count
    return kinds


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
