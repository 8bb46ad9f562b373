"""Mutated real-client requests through the real dispatcher and handlers, in-process.

Each example mutates a captured client frame (tests/wire/golden) — its bytes, or its decoded
field values re-encoded (tests/wire/mutations.py) — and hands it to `Dispatcher.handle` exactly
as a connection would. Each outcome must be one of the closed set in tests/fuzz_outcomes.py,
and fit the request: an answer that decodes as the response of the request's api and version,
with its correlation id and no UNKNOWN_SERVER_ERROR; ApiVersions past our range answered
UNSUPPORTED_VERSION; no answer only for Produce acks=0; held (past a short wait) only for a
request that waits by design, any other must be answered; or the connection closed for a
reason the request explains (its bytes do not parse, an api key or version we do not serve, a
failed acks=0 Produce). A handler that raised is a bug a client could trigger, even when the
dispatcher answered for it (it logs each).
With a fixed seed, each kind of input (bytes mutated, values mutated, truncated, unknown api
key, version past the range) must also reach the outcomes it exists to reach, and the histogram
is printed.

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
import struct
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.broker.broker import Broker
from kbroker.broker.connection import CloseReason, close_reason_of
from kbroker.config import build_config
from kbroker.errors import ProtocolViolation
from kbroker.log.log_manager import LogManager
from kbroker.wire import frames
from kbroker.wire.messages import APIS
from kbroker.wire.messages.api_versions import API_VERSIONS
from tests.fuzz_outcomes import MAY_BE_HELD, PRODUCE, REQUEST_CLOSES, answer_problem, joined, served_version
from tests.wire.mutations import HEADER, golden_frames, mutate, mutate_values

pytestmark = pytest.mark.timeout(600)

GOLDEN = golden_frames()
GOLDEN_BYTES = [entry["frame"] for entry in GOLDEN]
SERVED = [entry for entry in GOLDEN if entry["api_key"] in APIS]
HELD_WAIT = 0.5  # seconds an answer may take before it counts as held (fine when the request waits)
HUNG_WAIT = 20  # seconds a request that does not wait by design may take on a loaded machine
OUTCOMES: Counter[str] = Counter()


class FakeConnection:
    peer = "127.0.0.1:9"
    listener_name = None
    sasl = None

    def __init__(self) -> None:
        self.closed: CloseReason | None = None

    def close(self, reason: CloseReason, detail: str) -> None:
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


def _closed(header: tuple[int, int, int], reason: CloseReason, frame: bytes) -> str:
    """A request that closed its connection: for a reason that fits what was wrong with it."""
    api_key, version, _ = header
    assert reason in REQUEST_CLOSES, f"closed for {reason.value}"
    if reason is CloseReason.UNKNOWN_API:
        assert api_key not in APIS, f"api key {api_key} is served"
    elif reason is CloseReason.UNSUPPORTED_VERSION:
        assert api_key != API_VERSIONS.key, "ApiVersions past our range is answered, not closed"
        assert api_key in APIS and not served_version(api_key, version), f"v{version} of {api_key} is served"
    elif reason is CloseReason.UNDECODABLE:
        if served_version(api_key, version):  # the request itself, not a handler, did not parse
            with pytest.raises(ProtocolViolation):
                frames.decode_request(memoryview(frame), APIS[api_key], version)
    elif reason is CloseReason.UNANSWERED_ERROR:
        assert api_key == PRODUCE and _decoded(frame).acks == 0, f"api key {api_key} closed for {reason.value}"
    return f"closed: {reason.value}"


def _answered(header: tuple[int, int, int], parts: list | None, connection: FakeConnection, frame: bytes) -> str:
    api_key, version, correlation_id = header
    if connection.closed is not None:  # a failed acks=0 Produce: closing is its only answer
        assert parts is None, f"an answer, and the connection closed for {connection.closed.value}"
        return _closed(header, connection.closed, frame)
    if parts is None:
        assert api_key == PRODUCE and _decoded(frame).acks == 0, f"no answer to api key {api_key} v{version}"
        return "no answer (acks=0)"
    problem, _ = answer_problem(joined(parts)[4:], api_key, version, correlation_id)
    assert problem is None, problem
    if api_key == API_VERSIONS.key and not served_version(api_key, version):
        return "UNSUPPORTED_VERSION (ApiVersions)"
    return "answer"


def _decoded(frame: bytes):
    api_key, version, _ = frames.peek_header(memoryview(frame))
    return frames.decode_request(memoryview(frame), APIS[api_key], version)[1]


async def dispatch(broker: Broker, frame: bytes) -> str:
    """The outcome of one request, from the closed set in tests/fuzz_outcomes.py; AssertionError
    for anything else."""
    connection = FakeConnection()
    try:
        header = frames.peek_header(memoryview(frame))
    except ProtocolViolation:
        header = (-1, -1, -1)
    try:
        outcome = broker.dispatcher.handle(bytearray(frame), connection)  # type: ignore[arg-type]
    except ProtocolViolation as exc:
        return _closed(header, close_reason_of(exc), frame)
    if outcome is None or isinstance(outcome, list):
        return _answered(header, outcome, connection, frame)
    task = asyncio.ensure_future(outcome)
    try:
        parts = await asyncio.wait_for(asyncio.shield(task), HELD_WAIT if header[0] in MAY_BE_HELD else HUNG_WAIT)
    except TimeoutError:
        task.cancel()  # a request that waits (long poll, rebalance): not a bug in itself
        assert header[0] in MAY_BE_HELD, f"api key {header[0]} v{header[1]} unanswered after {HUNG_WAIT}s"
        return "held"
    except ProtocolViolation as exc:
        return _closed(header, close_reason_of(exc), frame)
    return _answered(header, parts, connection, frame)


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


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(loop: asyncio.AbstractEventLoop, broker: Broker, frame: bytes) -> str:
    with no_handler_failure():
        outcome = loop.run_until_complete(asyncio.wait_for(dispatch(broker, frame), 30))
    OUTCOMES[outcome] += 1
    return outcome


@FUZZ
@given(index=st.integers(0, len(GOLDEN) - 1), rng=st.randoms(use_true_random=False))
def test_mutated_requests_get_an_answer_or_close_the_connection(fuzz_broker, index: int, rng: random.Random) -> None:
    loop, broker = fuzz_broker
    run(loop, broker, mutate(GOLDEN[index]["frame"], rng, GOLDEN_BYTES))


@FUZZ
@given(index=st.integers(0, len(GOLDEN) - 1), rng=st.randoms(use_true_random=False))
def test_requests_with_hostile_field_values_get_an_answer(fuzz_broker, index: int, rng: random.Random) -> None:
    """Validly encoded, so they reach the handlers: odd names, boundary numbers, crafted batches."""
    loop, broker = fuzz_broker
    frame = mutate_values(GOLDEN[index], rng)
    if frame is not None:
        run(loop, broker, frame)


def test_unmutated_golden_requests_are_answered(fuzz_broker) -> None:
    loop, broker = fuzz_broker
    outcomes = Counter(run(loop, broker, entry["frame"]) for entry in SERVED)
    # An acks=0 Produce to a topic the fuzz deleted before this test closes its connection.
    assert set(outcomes) <= {"answer", "no answer (acks=0)", "held", "closed: error without an answer"}, outcomes
    assert outcomes["answer"] > len(SERVED) / 2, outcomes


def _truncated(frame: bytes, rng: random.Random) -> bytes:
    return frame[:rng.randrange(HEADER, len(frame))]


def _unknown_api(frame: bytes, rng: random.Random) -> bytes:
    return struct.pack(">h", rng.choice([-1, 999, 0x7FFF, max(APIS) + 1])) + frame[2:]


def _version_past_range(frame: bytes, rng: random.Random) -> bytes:
    api_key = struct.unpack_from(">h", frame)[0]
    return frame[:2] + struct.pack(">h", rng.choice([-1, APIS[api_key].valid.high + 1, 0x7FFF])) + frame[4:]


# Each kind of input with a fixed seed: the outcomes it must land in, and those it must hit.
HISTOGRAM_SEED = 20260601
KINDS: dict[str, tuple[Callable[[dict, random.Random], bytes | None], set[str], set[str]]] = {
    "bytes mutated": (lambda entry, rng: mutate(entry["frame"], rng, GOLDEN_BYTES),
                      set(), {"answer", "closed: undecodable request"}),
    "values mutated": (mutate_values, set(), {"answer"}),
    "truncated": (lambda entry, rng: _truncated(entry["frame"], rng),
                  {"closed: undecodable request"}, {"closed: undecodable request"}),
    "unknown api key": (lambda entry, rng: _unknown_api(entry["frame"], rng),
                        {"closed: unknown api key"}, {"closed: unknown api key"}),
    "version past the range": (lambda entry, rng: _version_past_range(entry["frame"], rng),
                               {"closed: unsupported version", "UNSUPPORTED_VERSION (ApiVersions)"},
                               {"closed: unsupported version", "UNSUPPORTED_VERSION (ApiVersions)"}),
}
HISTOGRAM_EXAMPLES = {"bytes mutated": 300, "values mutated": 300, "truncated": 100, "unknown api key": 30,
                      "version past the range": 100}


def test_each_kind_of_input_lands_in_its_expected_outcomes(fuzz_broker) -> None:
    """With a fixed seed: every input ends in an outcome of the closed set (dispatch() asserts it),
    the outcomes a kind of input must come to are the only ones it comes to, and each kind hits
    the outcomes it is there to reach."""
    loop, broker = fuzz_broker
    rng = random.Random(HISTOGRAM_SEED)
    histogram: dict[str, Counter[str]] = {}
    for kind, (make, only, hit) in KINDS.items():
        counted = histogram.setdefault(kind, Counter())
        for _ in range(HISTOGRAM_EXAMPLES[kind]):
            frame = make(rng.choice(SERVED), rng)
            if frame is not None:
                counted[run(loop, broker, frame)] += 1
        assert not only or set(counted) <= only, (kind, counted)
        assert hit <= set(counted), (kind, counted)
    print(f"\noutcomes by input (seed {HISTOGRAM_SEED}):", {kind: dict(c) for kind, c in histogram.items()})
