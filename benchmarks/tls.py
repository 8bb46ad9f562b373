"""Produce and consume throughput over PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-256) on one broker,
and SCRAM logins per second.

    python benchmarks/tls.py [--records 200000] [--size 1024] [--logins 500]

One broker subprocess serves the three listeners (test certificates made on the spot). For each
listener, in turn: confluent-kafka produces --records records of --size bytes to a fresh topic
(acks=all, default batching) and a consumer reads them back from offset 0. Printed per listener:
produce and consume MB/s and the broker's CPU-seconds (user+system) per GB moved. Over TLS the
broker copies Fetch data through user space (no sendfile), so consume shows the cost most.
Then --logins connections one after another over SASL_PLAINTEXT and SASL_SSL, each a full
SCRAM-SHA-256 login (our own client: TCP, TLS handshake, SaslHandshake, two SaslAuthenticate),
printed as logins/s and broker CPU-milliseconds per login. The client's PBKDF2 (4096 iterations)
is part of each login, as it is for a real client. Between the two, end-to-end latency per
listener at --latency-rate msg/s (benchmarks/throughput.py's latency phase, 100 B records).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kbroker.security.scram import salted_password  # noqa: E402
from kbroker.wire.messages.sasl_authenticate import SASL_AUTHENTICATE, SaslAuthenticateRequest  # noqa: E402
from kbroker.wire.messages.sasl_handshake import SASL_HANDSHAKE, SaslHandshakeRequest  # noqa: E402
from benchmarks.throughput import latency  # noqa: E402
from tests.broker_process import BrokerProcess, free_port  # noqa: E402
from tests.certificates import make_certificates  # noqa: E402
from tests.wire_client import WireClient  # noqa: E402

USER, PASSWORD = "bench", "bench-secret"


def client_settings(listener: str, ca: Path) -> dict:
    settings: dict = {"security.protocol": listener}
    if listener != "PLAINTEXT":
        settings["ssl.ca.location"] = str(ca)
    if listener == "SASL_SSL":
        settings.update({"sasl.mechanism": "SCRAM-SHA-256", "sasl.username": USER, "sasl.password": PASSWORD})
    return settings


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def run(bootstrap: str, settings: dict, topic: str, records: int, size: int, broker: psutil.Process) -> dict:
    payload = b"x" * size
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **settings})
    cpu, started = cpu_seconds(broker), time.perf_counter()
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, payload)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(60) == 0
    produce_s, produce_cpu = time.perf_counter() - started, cpu_seconds(broker) - cpu
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}",
                         "enable.auto.commit": False, **settings})
    consumer.assign([TopicPartition(topic, 0, 0)])
    cpu, started, received = cpu_seconds(broker), time.perf_counter(), 0
    while received < records:
        for message in consumer.consume(10000, timeout=5):
            assert message.error() is None, message.error()
            received += 1
    consume_s, consume_cpu = time.perf_counter() - started, cpu_seconds(broker) - cpu
    consumer.close()
    gigabytes = records * size / 1e9
    return {"produce_mb_s": records * size / 1e6 / produce_s, "consume_mb_s": records * size / 1e6 / consume_s,
            "produce_cpu_s_per_gb": produce_cpu / gigabytes, "consume_cpu_s_per_gb": consume_cpu / gigabytes}


def scram_login(wire: WireClient) -> None:
    """A SCRAM-SHA-256 login (RFC 5802, client side) over an open connection."""
    assert wire.request(SASL_HANDSHAKE.key, 1, SaslHandshakeRequest(mechanism="SCRAM-SHA-256")).error_code == 0
    first_bare = f"n={USER},r={secrets.token_urlsafe(18)}"
    answer = wire.request(SASL_AUTHENTICATE.key, 2, SaslAuthenticateRequest(auth_bytes=f"n,,{first_bare}".encode()))
    server_first = bytes(answer.auth_bytes).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = salted_password("SCRAM-SHA-256", PASSWORD, base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c=biws,r={fields['r']}"
    signature = hmac.digest(hashlib.sha256(client_key).digest(),
                            f"{first_bare},{server_first},{without_proof}".encode(), "sha256")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    final = wire.request(SASL_AUTHENTICATE.key, 2,
                         SaslAuthenticateRequest(auth_bytes=f"{without_proof},p={proof}".encode()))
    assert final.error_code == 0, final.error_message


def logins(bootstrap: str, tls: ssl.SSLContext | None, count: int, broker: psutil.Process) -> dict:
    cpu, started = cpu_seconds(broker), time.perf_counter()
    for _ in range(count):
        with WireClient(bootstrap) as wire:
            if tls is not None:
                wire.sock = tls.wrap_socket(wire.sock, server_hostname="127.0.0.1")
            scram_login(wire)
    elapsed, used = time.perf_counter() - started, cpu_seconds(broker) - cpu
    return {"logins_per_s": count / elapsed, "broker_cpu_ms_per_login": used * 1000 / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--logins", type=int, default=500)
    parser.add_argument("--latency-rate", type=int, default=1000, help="msg/s for the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kbroker-tls-bench-") as directory:
        base = Path(directory)
        certs = make_certificates(base / "certs")
        subprocess.run([sys.executable, "-m", "kbroker", "scram-user", "--data-dir", str(base / "data"),
                        "--user", USER, "--password", PASSWORD, "--mechanism", "SCRAM-SHA-256"], check=True)
        ports = {name: free_port() for name in ("PLAINTEXT", "SSL", "SASL_SSL")}
        sasl_plaintext = free_port()
        broker = BrokerProcess(base / "data", {
            "listeners": ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
                         + f",SASL_PLAINTEXT://127.0.0.1:{sasl_plaintext}",
            "ssl.keystore.location": str(certs.server), "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        }, port=ports["PLAINTEXT"]).start()
        try:
            process = psutil.Process(broker.process.pid)
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            print(f"{args.records} records of {args.size} B, acks=all, one partition")
            print(f"{'listener':<10} {'produce MB/s':>12} {'consume MB/s':>12} {'CPU s/GB prod':>14} "
                  f"{'CPU s/GB cons':>14}")
            for listener, port in ports.items():
                topic = f"bench-{listener.lower()}"
                for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
                    future.result(30)
                result = run(f"127.0.0.1:{port}", client_settings(listener, certs.ca), topic, args.records,
                             args.size, process)
                print(f"{listener:<10} {result['produce_mb_s']:>12.1f} {result['consume_mb_s']:>12.1f} "
                      f"{result['produce_cpu_s_per_gb']:>14.1f} {result['consume_cpu_s_per_gb']:>14.1f}",
                      flush=True)
            for listener, port in ports.items():  # end-to-end latency at a fixed rate, produce to consume
                topic = f"latency-{listener.lower()}"
                for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
                    future.result(30)
                result = latency(f"127.0.0.1:{port}", topic, args.latency_rate, args.latency_seconds,
                                 client_settings(listener, certs.ca))
                print(f"{listener:<10} latency at {args.latency_rate} msg/s: p50 {result['p50_ms']:.2f} ms, "
                      f"p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms", flush=True)
            del admin  # its connections close before the broker does
            tls = ssl.create_default_context(cafile=str(certs.ca))
            for listener, port, context in (("SASL_PLAINTEXT", sasl_plaintext, None),
                                            ("SASL_SSL", ports["SASL_SSL"], tls)):
                result = logins(f"127.0.0.1:{port}", context, args.logins, process)
                print(f"{listener:<14} {result['logins_per_s']:>8.0f} SCRAM-SHA-256 logins/s, "
                      f"broker {result['broker_cpu_ms_per_login']:.2f} CPU-ms per login", flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
