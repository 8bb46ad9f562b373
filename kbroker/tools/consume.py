"""`kbroker consume TOPIC`: records to stdout, one per line (kcat -C).

Plain output is each value (or key, separator, value with `--key-separator`); `--output json`
writes JSON lines with topic, partition, offset, timestamp, key, value and headers.

Positions: `--offset beginning|end|N|-N` (N from the end), `--from-beginning`, or with
`--group` the group's committed offsets (partitions without one start at the end, or the
beginning with `--from-beginning`, like Kafka's console consumer). The consumer is standalone
— it fetches the partitions itself rather than joining the group — and with `--group` it
commits what it read when it stops, which the broker takes only while the group has no members.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from kbroker.errors import ErrorCode
from kbroker.tools.client import (EARLIEST, LATEST, LEADER_MOVED, RETRY_BACKOFF_S, BrokerError, Client, Partition,
                                  ToolError, UsageError, check)
from kbroker.tools.groups import commit_offsets, committed_offsets
from kbroker.tools.record_formats import FORMATS, from_bytes
from kbroker.wire.messages.fetch import FETCH, FetchPartition, FetchRequest, FetchTopic
from kbroker.wire.records import decode_records, scan_batches

_PARTITION_MAX_BYTES = 1 << 20
_MAX_WAIT_MS = 500


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    consume = commands.add_parser("consume", parents=[common], help="print records, as lines or JSON lines")
    consume.add_argument("topic")
    consume.add_argument("--partition", "-p", type=int, action="append", help="only this partition (repeatable)")
    consume.add_argument("--offset", "-o", metavar="beginning|end|N|-N",
                         help="where to start: default end, or the group's committed offsets")
    consume.add_argument("--from-beginning", action="store_true", help="--offset beginning")
    consume.add_argument("--group", "-G", help="start from this group's offsets and commit what was read")
    consume.add_argument("--count", "-c", type=int, help="stop after this many records")
    consume.add_argument("--exit-at-end", "-e", action="store_true",
                         help="stop once every partition is read up to its end")
    consume.add_argument("--key-separator", "-K", metavar="SEP", help="plain output: print the key, SEP, the value")
    consume.add_argument("--key-format", choices=FORMATS, default="string", help="how keys are shown")
    consume.add_argument("--value-format", choices=FORMATS, default="string", help="how values are shown")
    consume.set_defaults(run=consume_records)


def _start_offsets(client: Client, args: argparse.Namespace, partitions: list[Partition]) -> dict[Partition, int]:
    if args.group and args.offset is None:
        committed = committed_offsets(client.coordinator(args.group), args.group)
        missing = [tp for tp in partitions if tp not in committed]
        reset = client.list_offsets(missing, EARLIEST if args.from_beginning else LATEST) if missing else {}
        return {tp: committed.get(tp, reset.get(tp)) for tp in partitions}
    offset = "beginning" if args.from_beginning and args.offset is None else args.offset
    if offset in (None, "end"):
        return client.list_offsets(partitions, LATEST)
    if offset == "beginning":
        return client.list_offsets(partitions, EARLIEST)
    try:
        number = int(offset)
    except ValueError:
        raise UsageError(f"--offset expects beginning, end, N or -N, got {offset!r}") from None
    earliest = client.list_offsets(partitions, EARLIEST)
    if number < 0:
        latest = client.list_offsets(partitions, LATEST)
        return {tp: max(latest[tp] + number, earliest[tp]) for tp in partitions}
    return {tp: max(number, earliest[tp]) for tp in partitions}


def consume_records(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_sigint(*_: object) -> None:
        # Ctrl-C, how a consumer without --count or -e ends: stop before the next record, so what was
        # printed is what gets committed; a second Ctrl-C does not wait for the answer in flight.
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with Client(args.bootstrap_server, args.timeout) as client:
            leaders = client.leaders(args.topic)
            chosen = args.partition or sorted(leaders)
            for partition in chosen:
                if partition not in leaders:
                    raise ToolError(f"topic {args.topic!r} has no partition {partition}")
            positions = _start_offsets(client, args, [(args.topic, p) for p in chosen])
            _fetch_loop(client, args, leaders, positions, stop)
            if args.group:
                commit_offsets(client.coordinator(args.group), args.group, positions)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 130 if stop.is_set() else 0


def _fetch_loop(client: Client, args: argparse.Namespace, leaders: dict[int, int],
                positions: dict[Partition, int], stop: threading.Event) -> None:
    """Fetch from each leader in turn until --count records, with --exit-at-end every end, or `stop`."""
    printed = 0
    at_end: set[Partition] = set()
    while not stop.is_set():
        leader_moved = False
        by_leader: dict[int, list[int]] = {}
        for (_, partition) in positions:
            by_leader.setdefault(leaders[partition], []).append(partition)
        for leader, partitions in sorted(by_leader.items()):
            request = FetchRequest(replica_id=-1, max_wait_ms=_MAX_WAIT_MS, min_bytes=1, session_epoch=-1, topics=[
                FetchTopic(topic=args.topic, partitions=[FetchPartition(
                    partition=p, fetch_offset=positions[(args.topic, p)], partition_max_bytes=_PARTITION_MAX_BYTES)
                    for p in partitions])])
            answer = client.node(leader).request(FETCH, request)
            check(answer.error_code, f"fetching from {args.topic}")
            for topic in answer.responses:
                for data in topic.partitions:
                    tp = (args.topic, data.partition_index)
                    if data.error_code in LEADER_MOVED:
                        leader_moved = True
                        continue
                    if data.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                        raise ToolError(f"offset {positions[tp]} is out of range in {args.topic}-{tp[1]}")
                    check(data.error_code, f"fetching {args.topic}-{tp[1]}")
                    for record in _records(data.records, positions[tp], f"{args.topic}-{tp[1]}"):
                        if stop.is_set() or (args.count is not None and printed >= args.count):
                            return
                        _print(args, tp[1], record)
                        printed += 1
                        positions[tp] = record.offset + 1
                    if data.records:
                        positions[tp] = max(positions[tp], _next_offset(data.records, positions[tp]))
                    if positions[tp] >= data.high_watermark:
                        at_end.add(tp)
        sys.stdout.flush()
        if leader_moved:
            time.sleep(RETRY_BACKOFF_S)
            leaders.update(client.leaders(args.topic))
        if args.count is not None and printed >= args.count:
            return
        if args.exit_at_end and at_end >= set(positions):
            return


def _records(records: Any, position: int, where: str) -> list[Any]:
    """The records at or after `position` in a Fetch answer's batches (control batches skipped)."""
    if not records:
        return []
    scan = scan_batches(records)
    found = []
    for pos, header in scan:
        if header.is_control:
            continue
        found += [r for r in decode_records(records[pos:pos + header.size]) if r.offset >= position]
    if scan.error and "CRC" in scan.error:  # a torn last batch is normal (the answer is cut at max bytes)
        raise BrokerError(ErrorCode.CORRUPT_MESSAGE, f"fetching {where}", scan.error)
    return found


def _next_offset(records: Any, position: int) -> int:
    """Past the last whole batch: control batches and compacted-away offsets move the position too."""
    last = position
    for _, header in scan_batches(records, verify_crc=False):
        last = max(last, header.next_offset)
    return last


def _print(args: argparse.Namespace, partition: int, record: Any) -> None:
    if args.output == "json":
        print(json.dumps({"topic": args.topic, "partition": partition, "offset": record.offset,
                          "timestamp": record.timestamp, "key": from_bytes(record.key, args.key_format),
                          "value": from_bytes(record.value, args.value_format),
                          "headers": [[k, from_bytes(v, "string")] for k, v in record.headers]}))
        return
    text = _plain(from_bytes(record.value, args.value_format))
    if args.key_separator is not None:
        text = f"{_plain(from_bytes(record.key, args.key_format))}{args.key_separator}{text}"
    print(text)


def _plain(shown: Any) -> str:
    return "" if shown is None else shown if isinstance(shown, str) else json.dumps(shown)
