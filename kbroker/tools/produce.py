"""`kbroker produce TOPIC`: one record per input line, from stdin or a file (kcat -P).

Records are batched per partition (`--batch-size` lines at a time) and sent to each partition's
leader with acks=all by default. Partitions: `--partition`, else the key's murmur2 hash as
Java's and kafka-python's default partitioner does (so keyed records land where those clients
would put them), else round robin. A missing topic is created where the broker auto-creates
topics (auto.create.topics.enable), as it is for Kafka's own producers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import IO

from kbroker.tools.client import LEADER_MOVED, RETRY_BACKOFF_S, BrokerError, Client, ToolError
from kbroker.tools.output import Progress, note
from kbroker.tools.record_formats import FORMATS, to_bytes
from kbroker.tools.topics import key_values
from kbroker.wire.messages.produce import PRODUCE, PartitionProduceData, ProduceRequest, TopicProduceData
from kbroker.wire.records import Compression, Record, build_batch


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    produce = commands.add_parser("produce", parents=[common], help="write lines from stdin or a file as records")
    produce.add_argument("topic")
    produce.add_argument("--file", "-f", help="read this file instead of stdin")
    produce.add_argument("--key-separator", "-K", metavar="SEP",
                         help="split each line at the first SEP into key and value")
    produce.add_argument("--key", "-k", help="the key of every record (default: none, or from --key-separator)")
    produce.add_argument("--key-format", choices=FORMATS, default="string", help="how keys are written")
    produce.add_argument("--value-format", choices=FORMATS, default="string",
                         help="how values are written (json: each must parse)")
    produce.add_argument("--header", "-H", action="append", default=[], metavar="KEY=VALUE",
                         help="a header on every record (repeatable)")
    produce.add_argument("--partition", "-p", type=int, help="all records to this partition")
    produce.add_argument("--count", "-c", type=int, help="stop after this many records")
    produce.add_argument("--compression", "-z", choices=[c.name.lower() for c in Compression], default="none")
    produce.add_argument("--acks", type=int, choices=(-1, 1), default=-1, help="-1: all in-sync replicas (default)")
    produce.add_argument("--batch-size", type=_positive, default=1000, metavar="RECORDS",
                         help="lines per request (default: %(default)s; from a terminal each line goes at once)")
    produce.set_defaults(run=produce_records)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return int(text)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Utils.murmur2), as an unsigned 32-bit value."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length - length % 4
    if length % 4 == 3:
        h ^= data[tail + 2] << 16
    if length % 4 >= 2:
        h ^= data[tail + 1] << 8
    if length % 4 >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def _lines(stream: IO[str], count: int | None) -> Iterator[str]:
    for n, line in enumerate(stream):
        if count is not None and n >= count:
            return
        yield line[:-1] if line.endswith("\n") else line


def _key_and_value(args: argparse.Namespace, line: str, line_number: int,
                   fixed_key: bytes | None) -> tuple[bytes | None, bytes]:
    key, text = fixed_key, line
    if args.key_separator:
        key_text, sep, text = line.partition(args.key_separator)
        if not sep:
            raise ToolError(f"line {line_number} has no key separator {args.key_separator!r}")
        key = to_bytes(key_text, args.key_format, f"the key on line {line_number}")
    return key, to_bytes(text, args.value_format, f"the value on line {line_number}")


def produce_records(args: argparse.Namespace) -> int:
    headers = tuple((k, v.encode()) for k, v in key_values(args.header, "--header").items())
    fixed_key = None if args.key is None else to_bytes(args.key, args.key_format, "--key")
    compression = Compression[args.compression.upper()]
    stream = open(args.file, encoding="utf-8") if args.file else sys.stdin
    size = os.fstat(stream.fileno()).st_size if args.file else None
    written: dict[int, list[int]] = {}  # partition -> [first offset, last offset]
    total = characters_read = 0  # characters: about the bytes read, for the progress bar
    with stream, Client(args.bootstrap_server, args.timeout) as client, Progress(f"producing to {args.topic}", size) as bar:
        leaders = client.leaders(args.topic, auto_create=True)  # as Kafka's producers do
        if args.partition is not None and args.partition not in leaders:
            raise ToolError(f"topic {args.topic!r} has no partition {args.partition}")
        pending: dict[int, list[Record]] = {}  # partition -> records, at their offsets within the batch
        interactive = stream.isatty()  # someone typing: send each line as it comes
        for total, line in enumerate(_lines(stream, args.count), 1):
            key, value = _key_and_value(args, line, total, fixed_key)
            if args.partition is not None:
                partition = args.partition
            elif key is not None:
                partition = (murmur2(key) & 0x7FFFFFFF) % len(leaders)
            else:
                partition = total % len(leaders)
            batch = pending.setdefault(partition, [])
            batch.append(Record(len(batch), int(time.time() * 1000), key, value, headers))
            characters_read += len(line) + 1
            if total % args.batch_size == 0 or interactive:
                _send(client, args, leaders, pending, compression, written)
                bar.update(characters_read)
        _send(client, args, leaders, pending, compression, written)
    document = {"topic": args.topic, "records": total,
                "partitions": {p: {"first_offset": f, "last_offset": last} for p, (f, last) in sorted(written.items())}}
    note(args.output, document, f"produced {total} records to topic {args.topic!r}")
    return 0


def _send(client: Client, args: argparse.Namespace, leaders: dict[int, int], pending: dict[int, list[Record]],
          compression: Compression, written: dict[int, list[int]]) -> None:
    """Send the pending records, a batch per partition; a batch whose leader moved goes again to the
    new one (it was not appended) until --timeout."""
    batches = {partition: (build_batch(records, compression=compression), len(records))
               for partition, records in pending.items()}
    pending.clear()
    deadline = time.monotonic() + args.timeout
    while batches:
        by_leader: dict[int, list[PartitionProduceData]] = {}
        for partition, (batch, _) in batches.items():
            by_leader.setdefault(leaders[partition], []).append(PartitionProduceData(index=partition, records=batch))
        again = {}
        for leader, partitions in by_leader.items():
            request = ProduceRequest(transactional_id=None, acks=args.acks, timeout_ms=int(args.timeout * 1000),
                                     topic_data=[TopicProduceData(name=args.topic, partition_data=partitions)])
            for topic in client.node(leader).request(PRODUCE, request).responses:
                for answer in topic.partition_responses:
                    if answer.error_code in LEADER_MOVED and time.monotonic() < deadline:
                        again[answer.index] = batches[answer.index]
                        continue
                    if answer.error_code:
                        raise BrokerError(answer.error_code, f"producing to {topic.name}-{answer.index}",
                                          answer.error_message)
                    last = answer.base_offset + batches[answer.index][1] - 1
                    written.setdefault(answer.index, [answer.base_offset, last])[1] = last
        batches = again
        if again:
            time.sleep(RETRY_BACKOFF_S)
            leaders.update(client.leaders(args.topic))
