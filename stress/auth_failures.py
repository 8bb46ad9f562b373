"""A client guessing passwords in a loop, beside a legitimate producer.

    python stress/auth_failures.py [--attempts 2000] [--mechanism PLAIN|SCRAM-SHA-256]

One broker subprocess with a SASL_PLAINTEXT listener. A legitimate confluent-kafka producer sends
one record every 10 ms and measures each acknowledgement's latency, first alone (baseline), then
while a client makes --attempts failed logins one after another (a new connection each, as a
guessing tool does). Printed as JSON: the producer's p50/p99 latency in both phases, the guessing
rate, the broker's RSS before and after, and how many "Failed authentication" lines were logged
(rate-limited: 10 per listener per 10 s). Exits 1 if the producer's p99 more than doubles (and by
more than 5 ms) or the RSS grows by more than 20 MB.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kbroker.wire.messages.sasl_authenticate import SASL_AUTHENTICATE, SaslAuthenticateRequest  # noqa: E402
from kbroker.wire.messages.sasl_handshake import SASL_HANDSHAKE, SaslHandshakeRequest  # noqa: E402
from tests.broker_process import BrokerProcess, free_port  # noqa: E402
from tests.wire_client import WireClient  # noqa: E402

JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";'


def latencies(producer: Producer, stop: threading.Event, seconds: float | None) -> list[float]:
    """Acknowledgement latencies (ms) of one record every 10 ms, until `stop` or `seconds`."""
    found: list[float] = []
    started = next_send = time.monotonic()
    while not stop.is_set() and (seconds is None or time.monotonic() - started < seconds):
        sent = time.perf_counter()
        producer.produce("steady", b"x" * 100, on_delivery=lambda error, _m, t=sent: found.append(
            (time.perf_counter() - t) * 1000) if error is None else None)
        next_send += 0.01
        while (wait := next_send - time.monotonic()) > 0:  # pace: one record per 10 ms, reports served
            producer.poll(wait)
    producer.flush(10)
    return found


def guess(bootstrap: str, attempts: int, mechanism: str) -> float:
    started = time.monotonic()
    for attempt in range(attempts):
        with WireClient(bootstrap) as wire:
            assert wire.request(SASL_HANDSHAKE.key, 1, SaslHandshakeRequest(mechanism=mechanism)).error_code == 0
            token = (f"\0alice\0guess{attempt}" if mechanism == "PLAIN" else f"n,,n=alice,r=nonce{attempt}").encode()
            assert wire.request(SASL_AUTHENTICATE.key, 2, SaslAuthenticateRequest(auth_bytes=token)).error_code == 58
    return attempts / (time.monotonic() - started)


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50_ms": round(statistics.median(values), 2), "p99_ms": round(values[int(len(values) * 0.99)], 2),
            "records": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--mechanism", default="PLAIN", choices=["PLAIN", "SCRAM-SHA-256"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kbroker-auth-stress-") as directory:
        port = free_port()
        broker = BrokerProcess(Path(directory) / "data", {
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}", "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS}, port=port).start()
        try:
            process = psutil.Process(broker.process.pid)
            producer = Producer({"bootstrap.servers": broker.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                                 "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret",
                                 "linger.ms": 0})
            latencies(producer, threading.Event(), 2.0)  # warm up: topic auto-created, connections up
            baseline = latencies(producer, threading.Event(), 5.0)
            rss_before = process.memory_info().rss
            stop, during = threading.Event(), []
            steady = threading.Thread(target=lambda: during.extend(latencies(producer, stop, None)))
            steady.start()
            rate = guess(broker.bootstrap, args.attempts, args.mechanism)
            stop.set()
            steady.join()
            rss_after = process.memory_info().rss
        finally:
            broker.stop()
        logged = broker.log_path.read_text().count("Failed authentication with")
    result = {"attempts": args.attempts, "mechanism": args.mechanism, "guesses_per_s": round(rate),
              "baseline": summary(baseline), "while_guessing": summary(during),
              "rss_before_mb": round(rss_before / 2**20, 1), "rss_after_mb": round(rss_after / 2**20, 1),
              "failure_lines_logged": logged}
    print(json.dumps(result))
    slower = result["while_guessing"]["p99_ms"] > max(2 * result["baseline"]["p99_ms"],
                                                       result["baseline"]["p99_ms"] + 5)
    return 1 if slower or rss_after - rss_before > 20 * 2**20 else 0


if __name__ == "__main__":
    sys.exit(main())
