"""`kbroker cluster describe`: cluster id, controller and brokers (DescribeCluster, else Metadata)."""
from __future__ import annotations

import argparse

from kbroker.tools.client import Client, check
from kbroker.tools.output import Table, emit
from kbroker.wire.messages.describe_cluster import DESCRIBE_CLUSTER, DescribeClusterRequest


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cluster = commands.add_parser("cluster", help="the cluster's id, controller and brokers")
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("describe", parents=[common], help="cluster id, controller, brokers").set_defaults(run=describe)


def describe(args: argparse.Namespace) -> int:
    with Client(args.bootstrap_server, args.timeout) as client:
        metadata = client.metadata(None)
        connection = client.any_broker()
        if connection.supports(DESCRIBE_CLUSTER):
            answer = connection.request(DESCRIBE_CLUSTER, DescribeClusterRequest())
            check(answer.error_code, "describing the cluster", answer.error_message)
            cluster_id, controller = answer.cluster_id, answer.controller_id
            brokers = [(b.broker_id, b.host, b.port, b.rack) for b in answer.brokers]
        else:  # brokers before Kafka 2.8
            cluster_id, controller = metadata.cluster_id, metadata.controller_id
            brokers = [(b.node_id, b.host, b.port, b.rack) for b in metadata.brokers]
    leaders: dict[int, int] = {}
    for topic in metadata.topics:
        for partition in topic.partitions:
            leaders[partition.leader_id] = leaders.get(partition.leader_id, 0) + 1
    document = {"cluster_id": cluster_id, "controller_id": controller,
                "brokers": [{"node_id": n, "host": h, "port": p, "rack": r, "leader_of": leaders.get(n, 0)}
                            for n, h, p, r in sorted(brokers)],
                "topics": len(metadata.topics),
                "partitions": sum(len(t.partitions) for t in metadata.topics)}
    emit(args.output, document, Table(
        f"cluster {cluster_id}: controller {controller}, {document['topics']} topics, "
        f"{document['partitions']} partitions",
        ("node", "host", "port", "rack", "leader of"),
        [(b["node_id"], b["host"], b["port"], b["rack"] or "-", b["leader_of"]) for b in document["brokers"]]))
    return 0
