"""pytest plugin (entry point `pytest11: kbroker`): a real kbroker for the tests of Kafka client code.

Fixtures:
  kafka_broker  an `EmbeddedBroker` (session scope by default: `--kafka-broker-scope` or the ini
                option `kafka_broker_scope`); `.bootstrap_servers`, `.create_topic(name, partitions=1,
                config={})`, `.delete_all_topics()`. Extra broker config: `--kafka-broker-config
                KEY=VALUE` (repeatable) or the ini option `kafka_broker_config` (one KEY=VALUE a line).
  kafka_topic   a fresh topic with a unique name for one test, deleted afterwards: the broker's
                `num.partitions` unless the test is marked `@pytest.mark.kafka_topic(partitions=3,
                config={"cleanup.policy": "compact"})`.
  kafka_cluster an `EmbeddedCluster`: ZooKeeper and 3 brokers, the same methods (topics replicated
                3 times by default), the same scope and broker config; skipped where ZooKeeper
                cannot run (it needs Java and Debian's zookeeper package).

The brokers have `EmbeddedBroker`'s dev defaults (`group.initial.rebalance.delay.ms=0`). When a
test that uses them fails, its report gets a "kafka_broker log" section (one per broker for
kafka_cluster): what the broker logged during that test. Under pytest-xdist every worker is its
own session, so it gets its own broker. Nothing starts, and kbroker.embedded is not imported,
unless a test asks for these fixtures.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kbroker.embedded import EmbeddedBroker
    from kbroker.embedded_cluster import EmbeddedCluster

_SCOPES = ("session", "package", "module", "class", "function")
_log_marks = pytest.StashKey[dict[int, int]]()  # id(broker) -> its log size when the test began
# Per pytest session (in its config's stash, not module globals: pytester runs sessions in one process).
_running = pytest.StashKey[list["EmbeddedBroker"]]()  # the brokers the fixtures have up
_topic_numbers = pytest.StashKey[Iterator[int]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kbroker", "kbroker: a real Kafka-compatible broker for tests")
    group.addoption("--kafka-broker-scope", choices=_SCOPES, default=None,
                    help="scope of the kafka_broker fixture (default: session)")
    group.addoption("--kafka-broker-config", action="append", default=[], metavar="KEY=VALUE",
                    help="broker config for kafka_broker, Kafka's names (repeatable)")
    parser.addini("kafka_broker_scope", "scope of the kafka_broker fixture", default="session")
    parser.addini("kafka_broker_config", "broker config for kafka_broker, one KEY=VALUE a line", type="linelist",
                  default=[])


def _scope(fixture_name: str, config: pytest.Config) -> str:
    scope = config.getoption("--kafka-broker-scope") or config.getini("kafka_broker_scope")
    if scope not in _SCOPES:
        raise pytest.UsageError(f"kafka_broker_scope must be one of {', '.join(_SCOPES)}, not {scope!r}")
    return scope


def _broker_config(config: pytest.Config) -> dict[str, str]:
    settings = {}
    for item in [*config.getini("kafka_broker_config"), *config.getoption("--kafka-broker-config")]:
        key, sep, value = item.partition("=")
        if not sep:
            raise pytest.UsageError(f"kafka_broker_config expects KEY=VALUE, got {item!r}")
        settings[key.strip()] = value.strip()
    return settings


@pytest.fixture(scope=_scope)
def kafka_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real kbroker on a free 127.0.0.1 port with a temporary data dir."""
    from kbroker.embedded import EmbeddedBroker

    broker = EmbeddedBroker(tmp_path_factory.mktemp("kafka_broker"), **_broker_config(request.config))
    running = request.config.stash[_running]
    with broker:
        running.append(broker)
        try:
            yield broker
        finally:
            running.remove(broker)


@pytest.fixture(scope=_scope)
def kafka_cluster(request: pytest.FixtureRequest) -> Iterator[EmbeddedCluster]:
    """ZooKeeper (Debian's, it needs Java) and 3 kbrokers; skipped, with the reason, where it cannot run."""
    from kbroker.embedded_cluster import EmbeddedCluster, zookeeper_missing

    missing = zookeeper_missing()
    if missing:
        pytest.skip(f"kafka_cluster needs a real ZooKeeper: {missing}")
    running = request.config.stash[_running]
    with EmbeddedCluster(**_broker_config(request.config)) as cluster:
        running.extend(cluster.brokers)
        try:
            yield cluster
        finally:
            for broker in cluster.brokers:
                running.remove(broker)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_running] = []
    config.stash[_topic_numbers] = itertools.count()
    config.addinivalue_line("markers", "kafka_topic(partitions=-1, config=None): how kafka_topic creates its topic")


@pytest.fixture
def kafka_topic(kafka_broker: EmbeddedBroker, request: pytest.FixtureRequest) -> Iterator[str]:
    """A topic created for this test alone, and deleted after it."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:180]
    name = f"{base}-{next(request.config.stash[_topic_numbers])}"
    marker = request.node.get_closest_marker("kafka_topic")
    settings = dict(marker.kwargs) if marker else {}
    # -1 partitions: the broker's num.partitions
    kafka_broker.create_topic(name, partitions=settings.pop("partitions", -1), config=settings.pop("config", None))
    if settings:
        raise pytest.UsageError(f"kafka_topic marker: unknown arguments {sorted(settings)}")
    yield name
    if kafka_broker.running:
        kafka_broker.delete_topics([name])


def _logs_of(item: pytest.Item) -> list[tuple[str, EmbeddedBroker]]:
    """(report section title, broker) for each broker the test used."""
    funcargs = getattr(item, "funcargs", None) or {}
    logs = [("kafka_broker log", funcargs["kafka_broker"])] if "kafka_broker" in funcargs else []
    if "kafka_cluster" in funcargs:
        logs += [(f"kafka_cluster broker {node} log", broker)
                 for node, broker in enumerate(funcargs["kafka_cluster"].brokers, 1)]
    return logs


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_log_marks] = {id(broker): broker.log_size for broker in item.config.stash[_running]}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        for title, broker in _logs_of(item):
            since = item.stash.get(_log_marks, {}).get(id(broker), 0)  # a broker this test started: all of it
            report.sections.append((title, broker.log_text(since) or "(nothing logged during this test)"))
    return report
