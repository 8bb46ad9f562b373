"""`kbroker topics list|describe|create|delete|alter-config` (Kafka's kafka-topics / kafka-configs)."""
from __future__ import annotations

import argparse
from typing import Any

from kbroker.errors import ErrorCode
from kbroker.tools.client import BrokerError, Client, ToolError, UsageError, check
from kbroker.tools.output import Table, emit, note
from kbroker.wire.messages.create_topics import (CREATE_TOPICS, CreatableTopic, CreatableTopicConfig,
                                                 CreateTopicsRequest)
from kbroker.wire.messages.delete_topics import DELETE_TOPICS, DeleteTopicsRequest
from kbroker.wire.messages.describe_configs import (DESCRIBE_CONFIGS, DescribeConfigsRequest,
                                                    DescribeConfigsResource)
from kbroker.wire.messages.incremental_alter_configs import (INCREMENTAL_ALTER_CONFIGS, AlterableConfig,
                                                             AlterConfigsResource, IncrementalAlterConfigsRequest)

TOPIC_RESOURCE = 2
_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs config_source: set on the topic itself
_SET, _DELETE = 0, 1  # IncrementalAlterConfigs operations


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    topics = commands.add_parser("topics", help="list, describe, create, delete topics; change their configs")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="every topic with its partition count")
    listing.add_argument("--exclude-internal", action="store_true", help="leave out __consumer_offsets and the like")
    listing.set_defaults(run=list_topics)
    describe = actions.add_parser("describe", parents=[common], help="partitions, leaders, replicas, configs")
    describe.add_argument("topics", nargs="*", metavar="TOPIC", help="default: every topic")
    describe.add_argument("--all-configs", action="store_true", help="also the configs left at their defaults")
    describe.set_defaults(run=describe_topics)
    create = actions.add_parser("create", parents=[common], help="create a topic")
    create.add_argument("topic")
    create.add_argument("--partitions", type=int, default=-1, help="default: the broker's num.partitions")
    create.add_argument("--replication-factor", type=int, default=-1,
                        help="default: the broker's default.replication.factor")
    create.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a topic config, e.g. cleanup.policy=compact (repeatable)")
    create.add_argument("--if-not-exists", action="store_true", help="succeed if the topic exists already")
    create.set_defaults(run=create_topic)
    delete = actions.add_parser("delete", parents=[common], help="delete topics")
    delete.add_argument("topics", nargs="+", metavar="TOPIC")
    delete.set_defaults(run=delete_topics)
    alter = actions.add_parser("alter-config", parents=[common], help="set or remove topic configs")
    alter.add_argument("topic")
    alter.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    alter.add_argument("--delete", action="append", default=[], metavar="KEY",
                       help="back to the broker default (repeatable)")
    alter.set_defaults(run=alter_config)


def key_values(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def list_topics(args: argparse.Namespace) -> int:
    with Client(args.bootstrap_server, args.timeout) as client:
        answer = client.metadata(None)
    topics = sorted((t for t in answer.topics if not (args.exclude_internal and t.is_internal)), key=lambda t: t.name)
    document = [{"topic": t.name, "partitions": len(t.partitions), "internal": t.is_internal} for t in topics]
    emit(args.output, document,
         Table(None, ("topic", "partitions", "internal"), [(t["topic"], t["partitions"], "yes" if t["internal"] else "")
                                                          for t in document]))
    return 0


def describe_topics(args: argparse.Namespace) -> int:
    with Client(args.bootstrap_server, args.timeout) as client:
        answer = client.metadata(args.topics or None)
        for topic in answer.topics:
            if topic.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                raise ToolError(f"unknown topic {topic.name!r}")
            check(topic.error_code, f"topic {topic.name!r}")
        topics = sorted(answer.topics, key=lambda t: t.name)
        configs = topic_configs(client, [t.name for t in topics]) if topics else {}
    document = []
    for topic in topics:
        shown = {name: value for name, (value, source) in configs[topic.name].items()
                 if args.all_configs or source == _DYNAMIC_TOPIC_CONFIG}
        document.append({
            "topic": topic.name, "topic_id": str(topic.topic_id), "internal": topic.is_internal,
            "partitions": [{"partition": p.partition_index, "leader": p.leader_id, "leader_epoch": p.leader_epoch,
                            "replicas": list(p.replica_nodes), "isr": list(p.isr_nodes),
                            "offline": list(p.offline_replicas)}
                           for p in sorted(topic.partitions, key=lambda p: p.partition_index)],
            "configs": shown})
    tables = []
    for topic in document:
        tables.append(Table(f"{topic['topic']}  id {topic['topic_id']}", ("partition", "leader", "replicas", "isr"),
                            [(p["partition"], p["leader"], _ids(p["replicas"]), _ids(p["isr"]))
                             for p in topic["partitions"]]))
        if topic["configs"]:
            tables.append(Table(f"{topic['topic']} configs", ("config", "value"), sorted(topic["configs"].items())))
    emit(args.output, document, *tables)
    return 0


def _ids(nodes: list[int]) -> str:
    return ",".join(map(str, nodes))


def topic_configs(client: Client, topics: list[str]) -> dict[str, dict[str, tuple[str | None, int]]]:
    """topic -> config name -> (value, config source)."""
    request = DescribeConfigsRequest(resources=[DescribeConfigsResource(resource_type=TOPIC_RESOURCE, resource_name=t,
                                                                        configuration_keys=None) for t in topics])
    answer = client.any_broker().request(DESCRIBE_CONFIGS, request)
    configs = {}
    for result in answer.results:
        check(result.error_code, f"configs of topic {result.resource_name!r}", result.error_message)
        configs[result.resource_name] = {c.name: (c.value, c.config_source) for c in result.configs}
    return configs


def create_topic(args: argparse.Namespace) -> int:
    configs = key_values(args.config, "--config")
    request = CreateTopicsRequest(topics=[CreatableTopic(
        name=args.topic, num_partitions=args.partitions, replication_factor=args.replication_factor,
        configs=[CreatableTopicConfig(name=k, value=v) for k, v in configs.items()])], timeout_ms=int(args.timeout * 1000))
    with Client(args.bootstrap_server, args.timeout) as client:
        (result,) = client.controller().request(CREATE_TOPICS, request).topics
    if result.error_code == ErrorCode.TOPIC_ALREADY_EXISTS and args.if_not_exists:
        note(args.output, {"topic": args.topic, "created": False}, f"topic {args.topic!r} exists already")
        return 0
    check(result.error_code, f"creating topic {args.topic!r}", result.error_message)
    note(args.output, {"topic": args.topic, "created": True}, f"created topic {args.topic!r}")
    return 0


def delete_topics(args: argparse.Namespace) -> int:
    request = DeleteTopicsRequest(topic_names=list(args.topics), timeout_ms=int(args.timeout * 1000))
    with Client(args.bootstrap_server, args.timeout) as client:
        results = client.controller().request(DELETE_TOPICS, request).responses
    failures = []
    for result in results:
        if result.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            failures.append(f"unknown topic {result.name!r}")
        elif result.error_code:
            failures.append(str(BrokerError(result.error_code, f"deleting topic {result.name!r}", result.error_message)))
    if failures:
        raise ToolError("; ".join(failures))
    note(args.output, {"deleted": list(args.topics)}, "deleted " + ", ".join(repr(t) for t in args.topics))
    return 0


def alter_config(args: argparse.Namespace) -> int:
    changes = [AlterableConfig(name=k, config_operation=_SET, value=v)
               for k, v in key_values(args.set, "--set").items()]
    changes += [AlterableConfig(name=k, config_operation=_DELETE, value=None) for k in args.delete]
    if not changes:
        raise UsageError("nothing to change: give --set KEY=VALUE or --delete KEY")
    request = IncrementalAlterConfigsRequest(resources=[AlterConfigsResource(
        resource_type=TOPIC_RESOURCE, resource_name=args.topic, configs=changes)])
    with Client(args.bootstrap_server, args.timeout) as client:
        (result,) = client.any_broker().request(INCREMENTAL_ALTER_CONFIGS, request).responses
    if result.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        raise ToolError(f"unknown topic {args.topic!r}")
    check(result.error_code, f"altering the configs of topic {args.topic!r}", result.error_message)
    document: dict[str, Any] = {"topic": args.topic, "set": key_values(args.set, "--set"), "deleted": args.delete}
    note(args.output, document, f"updated the configs of topic {args.topic!r}")
    return 0
