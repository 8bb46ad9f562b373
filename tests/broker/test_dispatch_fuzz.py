"""Mutated real-client requests through the real dispatcher and handlers, in-process.

Each example mutates a captured client frame (tests/wire/golden) — its bytes, or its decoded
field values re-encoded (tests/wire/mutations.py) — and hands it to `Dispatcher.handle` exactly
as a connection would. The only acceptable outcomes are an answer,
no answer (acks=0), or ProtocolViolation (that connection closes); an awaited answer must come
without any other exception, or still be held after a short wait when the request says to wait
(a long-poll Fetch, a JoinGroup). Any other exception is a broker bug a client could trigger, and
so is an answer the dispatcher had to make up because a handler raised (it logs each one).

The broker runs on a tmp data dir with the topics the golden frames name (and, for Fetch v13+,
the topic ids they name), so mutations reach the log, the groups and the admin paths, not just
UNKNOWN_TOPIC_OR_PARTITION. The same operations at scale, over sockets, are the live fuzz
(test_live_fuzz.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.broker.broker import Broker
from kbroker.config import build_config
from kbroker.errors import ProtocolViolation
from kbroker.log.log_manager import LogManager
from kbroker.wire import frames
from kbroker.wire.messages import APIS
from tests.wire.mutations import golden_frames, mutate, mutate_values

pytestmark = pytest.mark.timeout(600)

GOLDEN = golden_frames()
GOLDEN_BYTES = [entry["frame"] for entry in GOLDEN]
HELD_WAIT = 0.5  # seconds an answer may take before it counts as held (fine when the request waits)
OUTCOMES: Counter[str] = Counter()


class FakeConnection:
    peer = "127.0.0.1:9"
    listener_name = None
    sasl = None

    def __init__(self) -> None:
        self.closed: str | None = None

    def close(self, reason: str) -> None:
        self.closed = reason


def named_topics() -> tuple[set[str], set[uuid.UUID]]:
    """Topic names and ids the golden requests mention."""
    names: set[str] = set()
    ids: set[uuid.UUID] = set()

    def walk(value: object) -> None:
        if dataclasses.is_dataclass(value):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            if any(k in fields for k in ("partitions", "partition_data", "partition_indexes")):
                for key in ("name", "topic"):
                    if isinstance(fields.get(key), str):
                        names.add(fields[key])
                if isinstance(fields.get("topic_id"), uuid.UUID) and fields["topic_id"].int:
                    ids.add(fields["topic_id"])
            for child in fields.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    for entry in GOLDEN:
        if entry["api_key"] in APIS:
            try:
                walk(frames.decode_request(memoryview(entry["frame"]), APIS[entry["api_key"]], entry["api_version"])[1])
            except ProtocolViolation:
                pass
    return {n for n in names if n and not n.startswith("__")}, ids


@pytest.fixture(scope="module")
def fuzz_broker(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("dispatch-fuzz")
    config = build_config({"log.dirs": str(data_dir), "group.initial.rebalance.delay.ms": "0",
                           "log.segment.bytes": "100000"})
    loop = asyncio.new_event_loop()
    logs = LogManager(config.data_dir, config.log_defaults(), node_id=config.node_id).load()
    broker = Broker(config, logs)
    names, ids = named_topics()
    for name in sorted(names):
        logs.create_topic(name, 3, {})
    for topic_id in sorted(ids):
        logs.create_topic(f"golden-{topic_id.hex[:12]}", 3, {}, topic_id=topic_id)

    async def start() -> None:
        await broker.groups.load()
        broker.groups.start()

    loop.run_until_complete(start())
    yield loop, broker
    print(f"\ndispatch fuzz outcomes: {dict(OUTCOMES)}")

    async def stop() -> None:
        await broker.groups.close()

    loop.run_until_complete(stop())
    broker.flusher.close()
    logs.shutdown()
    loop.close()


async def dispatch(broker: Broker, frame: bytes) -> str:
    connection = FakeConnection()
    try:
        outcome = broker.dispatcher.handle(bytearray(frame), connection)  # type: ignore[arg-type]
    except ProtocolViolation:
        return "protocol violation"
    if outcome is None:
        return "no answer"
    if isinstance(outcome, list):
        return "answer"
    task = asyncio.ensure_future(outcome)
    try:
        await asyncio.wait_for(asyncio.shield(task), HELD_WAIT)
    except TimeoutError:
        task.cancel()  # a request that waits (long poll, rebalance): not a bug in itself
        return "held"
    except ProtocolViolation:
        return "protocol violation (late)"
    return "answer (late)"


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def no_handler_failure() -> Iterator[None]:
    """No handler raised: the dispatcher logs every request it answers for a failed handler."""
    failures = _Failures()
    logger = logging.getLogger("kbroker.dispatch")
    logger.addHandler(failures)
    try:
        yield
    finally:
        logger.removeHandler(failures)
    assert not failures.records, failures.records[0].getMessage()


FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(index=st.integers(0, len(GOLDEN) - 1), rng=st.randoms(use_true_random=False))
def test_mutated_requests_get_an_answer_or_close_the_connection(fuzz_broker, index: int, rng: random.Random) -> None:
    loop, broker = fuzz_broker
    frame = mutate(GOLDEN[index]["frame"], rng, GOLDEN_BYTES)
    with no_handler_failure():
        OUTCOMES[loop.run_until_complete(asyncio.wait_for(dispatch(broker, frame), 30))] += 1


@FUZZ
@given(index=st.integers(0, len(GOLDEN) - 1), rng=st.randoms(use_true_random=False))
def test_requests_with_hostile_field_values_get_an_answer(fuzz_broker, index: int, rng: random.Random) -> None:
    """Validly encoded, so they reach the handlers: odd names, boundary numbers, crafted batches."""
    loop, broker = fuzz_broker
    frame = mutate_values(GOLDEN[index], rng)
    if frame is not None:
        with no_handler_failure():
            OUTCOMES[loop.run_until_complete(asyncio.wait_for(dispatch(broker, frame), 30))] += 1


def test_unmutated_golden_requests_are_answered(fuzz_broker) -> None:
    loop, broker = fuzz_broker
    with no_handler_failure():
        outcomes = Counter(loop.run_until_complete(dispatch(broker, entry["frame"])) for entry in GOLDEN
                           if entry["api_key"] in APIS)
    assert outcomes["answer"] + outcomes["answer (late)"] + outcomes["no answer"] + outcomes["held"] == sum(
        outcomes.values()), outcomes
