"""The web console in a real headless browser (Debian's Chromium) against a broker subprocess.

confluent-kafka produces JSON records and a consumer group commits part of them; Chromium loads
`/?topic=T&group=G`, runs the page's JavaScript against the broker's JSON API, and the DOM it
dumps must show the topic with its message count, the group with its lag, which client owns
the partition, and the latest records decoded. The JSON API's answers to bad queries are
checked directly.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from tests.broker_metrics import METRICS_ON, get, metrics_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Tables(HTMLParser):
    """The text of every cell of every table with an id: {id: [[cell, ...], ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id")
            self.tables.setdefault(self._table or "", [])
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rendered_tables(url: str, profile: Path) -> dict[str, list[list[str]]]:
    # No background networking, updates or sync: Chromium would otherwise reach for Google's hosts.
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    parser = Tables()
    parser.feed(dom)
    return parser.tables


@pytest.mark.skipif(CHROMIUM is None, reason="the console test needs Debian's chromium (apt-get install chromium)")
def test_the_console_shows_topics_groups_lag_and_records_in_a_real_browser(broker_factory, topic_name, tmp_path):
    broker = broker_factory(METRICS_ON)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(300):
        producer.produce(topic_name, key=b"k%d" % i, value=json.dumps({"order": i}).encode(),
                         headers=[("source", b"web")])
    assert producer.flush(30) == 0
    group = f"{topic_name}-billing"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "client.id": "billing-app",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic_name])
    read = []
    deadline = time.monotonic() + 30
    while len(read) < 120 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            read.append(message)
    consumer.commit(message=read[119], asynchronous=False)  # committed 120: lag 180
    try:  # the consumer stays in the group while the page loads: it owns the partition
        tables = rendered_tables(metrics_url(broker, f"/?topic={topic_name}&group={group}"), tmp_path / "chromium")
    finally:
        consumer.close()

    topics = {row[0]: row for row in tables["topics"][1:]}
    assert topics[topic_name][1:3] == ["1", "300"]  # partitions, messages
    assert tables["partitions"][1][4] == "300"  # high watermark
    groups = {row[0]: row for row in tables["groups"][1:]}
    assert groups[group][1:] == ["Stable", "1", "180"]
    offsets = tables["group-detail"][1]
    assert offsets[:5] == [topic_name, "0", "120", "300", "180"] and offsets[5].startswith("billing-app")
    records = tables["records"][1:]
    assert [row[0] for row in records] == [str(o) for o in range(280, 300)]
    assert records[-1][2:5] == ["k299", '{"order":299}', "source=web"]


def test_the_console_api_answers_bad_queries_clearly(broker_factory):
    broker = broker_factory(METRICS_ON)
    status, body = get(metrics_url(broker, "/api/records?topic=missing&partition=0"))
    assert (status, json.loads(body)) == (404, {"error": "no partition missing-0 on this broker"})
    status, body = get(metrics_url(broker, "/api/records?partition=zero"))
    assert status == 400 and "expected topic=" in json.loads(body)["error"]
    status, body = get(metrics_url(broker, "/api/overview"))
    assert status == 200 and json.loads(body)["brokers"][0]["controller"] is True
