"""Produce and consume throughput over PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-256) on one broker.

    python benchmarks/tls.py [--records 200000] [--size 1024]

One broker subprocess serves the three listeners (test certificates made on the spot). For each
listener, in turn: confluent-kafka produces --records records of --size bytes to a fresh topic
(acks=all, default batching) and a consumer reads them back from offset 0. Printed per listener:
produce and consume MB/s and the broker's CPU-seconds (user+system) per GB moved. Over TLS the
broker copies Fetch data through user space (no sendfile), so consume shows the cost most.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.broker_process import BrokerProcess, free_port  # noqa: E402
from tests.certificates import make_certificates  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kbroker-tls-bench-") as directory:
        base = Path(directory)
        certs = make_certificates(base / "certs")
        subprocess.run([sys.executable, "-m", "kbroker", "scram-user", "--data-dir", str(base / "data"),
                        "--user", USER, "--password", PASSWORD, "--mechanism", "SCRAM-SHA-256"], check=True)
        ports = {name: free_port() for name in ("PLAINTEXT", "SSL", "SASL_SSL")}
        broker = BrokerProcess(base / "data", {
            "listeners": ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items()),
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
            del admin  # its connections close before the broker does
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
