"""One consumer-group member as its own process, so a test can SIGKILL it like a crash.

    python -m compat_tests.group_member --client kafka-python --bootstrap HOST:PORT --topic T --group G
        [--session-ms 6000] [--assignor range|roundrobin|sticky|cooperative-sticky]
        [--instance-id ID] [--protocol classic|consumer] [--client-id NAME]

It subscribes, polls, and after every batch commits synchronously (auto-commit off), printing one
JSON line per event on stdout (flushed at once):

    {"event": "subscribed"}                      the client subscribed (the clock for join times)
    {"event": "assigned", "partitions": [...]}   the whole assignment after every change
    {"event": "records", "records": [[partition, offset], ...]}   a batch, before its commit
    {"event": "committed", "offsets": {"partition": next offset}}  after the commit returned
    {"event": "error", "text": ...}                                 a client error it kept going after
    {"event": "closed"}                                             after a clean close (SIGTERM)

The settings each client gets are its defaults except: group.id, auto-commit off, earliest reset
(the records of a test start at offset 0), and what the flags name.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

stopping = False


def emit(event: str, **fields) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def _stop(*_args) -> None:
    global stopping
    stopping = True


def run_kafka_python(args: argparse.Namespace) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                 "sticky": StickyPartitionAssignor, "cooperative-sticky": CooperativeStickyAssignor}
    settings = dict(bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False,
                    auto_offset_reset="earliest", client_id=args.client_id)
    if args.session_ms:
        settings.update(session_timeout_ms=args.session_ms, heartbeat_interval_ms=max(args.session_ms // 3, 100))
    if args.assignor:
        settings["partition_assignment_strategy"] = [assignors[args.assignor]]
    if args.instance_id:
        settings["group_instance_id"] = args.instance_id
    consumer = KafkaConsumer(**settings)

    cooperative = args.assignor == "cooperative-sticky"

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            if cooperative:  # only these go; the rest stay assigned
                gone = {tp.partition for tp in revoked}
                emit("assigned", partitions=sorted(tp.partition for tp in consumer.assignment()
                                                   if tp.partition not in gone))

        def on_partitions_assigned(self, assigned):
            emit("assigned", partitions=sorted(tp.partition for tp in consumer.assignment()))

    consumer.subscribe([args.topic], listener=Listener())
    emit("subscribed")
    while not stopping:
        batch = consumer.poll(timeout_ms=200)
        records = [[m.partition, m.offset] for msgs in batch.values() for m in msgs]
        if records:
            emit("records", records=records)
            consumer.commit()
            emit("committed", offsets={str(tp.partition): msgs[-1].offset + 1 for tp, msgs in batch.items()})
    consumer.close()
    emit("closed")


def run_confluent(args: argparse.Namespace) -> None:
    from confluent_kafka import Consumer, KafkaException

    settings = {"bootstrap.servers": args.bootstrap, "group.id": args.group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "client.id": args.client_id}
    if args.protocol == "consumer":
        settings["group.protocol"] = "consumer"
    else:
        if args.session_ms:
            settings["session.timeout.ms"] = args.session_ms
            settings["heartbeat.interval.ms"] = max(args.session_ms // 3, 100)
        if args.assignor:
            settings["partition.assignment.strategy"] = args.assignor
    if args.instance_id:
        settings["group.instance.id"] = args.instance_id
    consumer = Consumer(settings)

    # The library (un)assigns by itself after these callbacks; incrementally for cooperative
    # rebalancing (cooperative-sticky, and always with group.protocol=consumer), else eagerly.
    current: set[int] = set()
    cooperative = args.assignor == "cooperative-sticky" or args.protocol == "consumer"

    def on_assign(c, partitions):
        if not cooperative:
            current.clear()
        current.update(tp.partition for tp in partitions)
        emit("assigned", partitions=sorted(current))

    def on_revoke(c, partitions):
        if not cooperative:
            current.clear()
        else:
            current.difference_update(tp.partition for tp in partitions)
        emit("assigned", partitions=sorted(current))

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    emit("subscribed")
    while not stopping:
        messages = consumer.consume(num_messages=500, timeout=0.2)
        records = []
        for m in messages:
            if m.error():
                emit("error", text=str(m.error()))
                continue
            records.append([m.partition(), m.offset()])
        if records:
            emit("records", records=records)
            try:
                committed = consumer.commit(asynchronous=False)
            except KafkaException as exc:
                emit("error", text=f"commit: {exc}")
                continue
            emit("committed", offsets={str(tp.partition): tp.offset for tp in committed or []})
    consumer.close()
    emit("closed")


def run_aiokafka(args: argparse.Namespace) -> None:
    async def main() -> None:
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor
        from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

        assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                     "sticky": StickyPartitionAssignor}
        settings = dict(bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False,
                        auto_offset_reset="earliest", client_id=args.client_id)
        if args.session_ms:
            settings.update(session_timeout_ms=args.session_ms, heartbeat_interval_ms=max(args.session_ms // 3, 100))
        if args.assignor:
            settings["partition_assignment_strategy"] = (assignors[args.assignor],)
        if args.instance_id:
            settings["group_instance_id"] = args.instance_id
        consumer = AIOKafkaConsumer(**settings)

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                pass

            async def on_partitions_assigned(self, assigned):
                emit("assigned", partitions=sorted(tp.partition for tp in assigned))

        await consumer.start()
        consumer.subscribe([args.topic], listener=Listener())
        emit("subscribed")
        try:
            while not stopping:
                batch = await consumer.getmany(timeout_ms=200)
                records = [[m.partition, m.offset] for msgs in batch.values() for m in msgs]
                if records:
                    emit("records", records=records)
                    await consumer.commit()
                    emit("committed", offsets={str(tp.partition): msgs[-1].offset + 1 for tp, msgs in batch.items()})
        finally:
            await consumer.stop()
        emit("closed")

    asyncio.run(main())


RUNNERS = {"kafka-python": run_kafka_python, "confluent-kafka": run_confluent, "aiokafka": run_aiokafka}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", required=True, choices=sorted(RUNNERS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--session-ms", type=int, default=0)
    parser.add_argument("--assignor")
    parser.add_argument("--instance-id")
    parser.add_argument("--protocol", default="classic", choices=["classic", "consumer"])
    parser.add_argument("--client-id", default="group-member")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    RUNNERS[args.client](args)


if __name__ == "__main__":
    main()
