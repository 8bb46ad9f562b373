"""Reading a broker subprocess's Prometheus metrics (`metrics.listener`): what tests poll to know
the broker reached a state they cannot see on the wire (a parked Fetch, a connection it closed)."""
from __future__ import annotations

import re
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.broker_process import BrokerProcess
from tests.waiting import wait_until

METRICS_ON = {"metrics.listener": "http://127.0.0.1:0", "group.initial.rebalance.delay.ms": "0"}
_METRICS_PORT = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_url(broker: BrokerProcess, path: str = "/metrics") -> str:
    """The listener's URL, from the broker's start-up line (the port is chosen by the OS)."""
    def port() -> str | None:
        match = _METRICS_PORT.search(broker.log_path.read_text(errors="replace"))
        return match.group(1) if match else None
    return f"http://127.0.0.1:{wait_until(port, 'the metrics listener in the broker log')}{path}"


def get(url: str | urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(broker: BrokerProcess) -> Samples:
    status, text = get(metrics_url(broker))
    assert status == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def parked_fetches(broker: BrokerProcess) -> float | None:
    return value(scrape(broker), "kafka_server_delayedoperationpurgatory_purgatorysize", delayedoperation="Fetch")


def open_connections(broker: BrokerProcess) -> float | None:
    return value(scrape(broker), "kafka_server_socketservermetrics_connection_count", listener="PLAINTEXT")
