"""Live fuzz, CI-sized: mutated real-client frames from many connections at a broker subprocess.

For LIVE_FUZZ_SECONDS, LIVE_FUZZ_CONNECTIONS connections send requests made by mutating the
captured client frames (tests/live_fuzz.py). Afterwards the broker must still be up and serving,
every answer must be the response its request asks for (tests/fuzz_outcomes.py), every
connection it closed must be for a reason in live_fuzz.LIVE_CLOSES (and the usual ones, an
undecodable request, an unknown api key, an unsupported version, must be among them), its log
must hold no traceback or internal error, it must shut down cleanly, every partition's
files must pass the audit (CRC of every batch, indexes agree with the log), and after a restart
confluent-kafka must produce and consume normally. What was tried (frames, answers, distinct
error codes in answers, distinct reasons the broker gave for closing connections) is printed;
`stress/live_fuzz.py` runs the same for longer. KBROKER_FUZZ_SEED replays a run.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import time

import pytest
from confluent_kafka import Consumer, Producer

from kbroker.broker.connection import CloseReason
from kbroker.wire.messages.api_versions import ApiVersionsRequest
from tests import live_fuzz
from tests.log_audit import audit_data_dir, problems_in
from tests.wire_client import WireClient

LIVE_FUZZ_SECONDS = float(os.environ.get("KBROKER_FUZZ_SECONDS", 40))
LIVE_FUZZ_CONNECTIONS = 24
FUZZ_BROKER = {"connections.max.idle.ms": "5000", "socket.request.max.bytes": "1000000",
               "log.segment.bytes": "100000", "group.initial.rebalance.delay.ms": "0"}

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def clean_client_round_trip(bootstrap: str, topic: str, count: int = 1000) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, key=b"k%d" % (i % 10), value=b"after-fuzz-%d" % i)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    values, deadline = [], time.monotonic() + 60
    while len(values) < count and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            values.append(message.value())
    consumer.close()
    assert sorted(values) == sorted(b"after-fuzz-%d" % i for i in range(count))


def test_live_fuzz_leaves_the_broker_serving_and_the_log_intact(broker_factory):
    seed = int(os.environ.get("KBROKER_FUZZ_SEED", random.randrange(1 << 30)))
    broker = broker_factory(FUZZ_BROKER)
    stats = asyncio.run(live_fuzz.run(broker.port, LIVE_FUZZ_CONNECTIONS, LIVE_FUZZ_SECONDS, seed=seed))

    assert broker.process.poll() is None, f"the broker died (seed {seed}):\n{broker.log()}"
    with WireClient(broker.bootstrap) as client:
        assert client.request(18, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1")
                              ).error_code == 0
    log_text = broker.log_path.read_text(errors="replace")
    stats.close_reasons = live_fuzz.close_reasons(log_text)
    print(f"\nlive fuzz (seed {seed}): {json.dumps(stats.summary())}")
    print("answer errors:", dict(stats.answer_errors.most_common()))
    print("close reasons:", dict(stats.close_reasons.most_common()))
    print("mutations:", dict(stats.mutations.most_common()))
    failures = live_fuzz.broker_failures(log_text)
    assert not failures, f"seed {seed}:\n" + "\n".join(failures[:20])
    assert not stats.wrong_answers, f"seed {seed}: {dict(stats.wrong_answers.most_common(20))}"
    closed_for = live_fuzz.close_reason_kinds(stats.close_reasons)
    assert set(closed_for) <= live_fuzz.LIVE_CLOSES, f"seed {seed}: {closed_for}"
    assert {CloseReason.UNDECODABLE, CloseReason.UNKNOWN_API, CloseReason.UNSUPPORTED_VERSION} <= set(closed_for)
    assert stats.frames_sent > 2000 and stats.answers > 200
    assert len(stats.close_reasons) >= 5 and len(stats.answer_errors) >= 5

    assert broker.stop(timeout=60) == 0
    problems = problems_in(audit_data_dir(broker.data_dir))
    assert not problems, problems[:20]
    broker.start()
    clean_client_round_trip(broker.bootstrap, "after-the-fuzz")
