"""A null broker: speaks enough Kafka to be a client's ceiling, and keeps nothing.

    python benchmarks/null_broker.py --listen 127.0.0.1:9099

ApiVersions, Metadata, CreateTopics, InitProducerId, FindCoordinator, ListOffsets and Produce are answered
at once from `kbroker.wire`'s codecs; produced record batches are counted (offsets advance by
each batch's lastOffsetDelta + 1) and dropped. Whatever a client measures against it is the
client's own ceiling on this machine, less the little CPU this process takes.

For latency, a topic created with `null.keep.bytes=N` keeps the newest N bytes of batches per
partition in memory and serves them to Fetch, long-polling (max_wait_ms) until a produce
arrives — the client's own end-to-end latency with a broker that costs next to nothing.

For a consume ceiling, Fetch serves a synthetic log: a topic created with the config
`null.fetch.records=N` (and `null.fetch.size=S`, default 100) holds, in every partition, N
records that are `benchmarks.workload`'s stream — the records a real broker would hold after
the benchmark produced N of size S — built once as record batches whose base offset is patched
per answer (it lies outside the CRC). A consumer verifies them exactly as it would a real log.
"""
from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import signal
import struct
import sys
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kbroker.wire import frames  # noqa: E402
from kbroker.wire.messages.api_versions import API_VERSIONS, ApiVersion, ApiVersionsResponse  # noqa: E402
from kbroker.wire.messages.create_topics import (  # noqa: E402
    CREATE_TOPICS,
    CreatableTopicResult,
    CreateTopicsResponse,
)
from kbroker.wire.messages.fetch import (  # noqa: E402
    FETCH,
    FetchableTopicResponse,
    FetchResponse,
    PartitionData,
)
from kbroker.wire.messages.find_coordinator import (  # noqa: E402
    FIND_COORDINATOR,
    Coordinator,
    FindCoordinatorResponse,
)
from kbroker.wire.messages.init_producer_id import INIT_PRODUCER_ID, InitProducerIdResponse  # noqa: E402
from kbroker.wire.messages.list_offsets import (  # noqa: E402
    LIST_OFFSETS,
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)
from kbroker.wire.messages.metadata import (  # noqa: E402
    METADATA,
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)
from kbroker.wire.messages.produce import (  # noqa: E402
    PRODUCE,
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kbroker.wire.records import Record, build_batch  # noqa: E402
from workload import POOL, pool  # noqa: E402

log = logging.getLogger("null_broker")

# (api, highest version we answer); every API from version 0, as kbroker advertises them.
APIS = {api.key: (api, top) for api, top in [
    (API_VERSIONS, 4), (METADATA, 12), (CREATE_TOPICS, 7), (INIT_PRODUCER_ID, 5),
    (PRODUCE, 11), (FIND_COORDINATOR, 4), (FETCH, 12), (LIST_OFFSETS, 7),
]}
_LAST_OFFSET_DELTA = struct.Struct(">i")
_BASE_OFFSET = struct.Struct(">q")
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_ALREADY_EXISTS = 36
NODE_ID = 0
WRITE_CHUNK = 256 * 1024


@dataclass
class Topic:
    name: str
    partitions: int
    topic_id: uuid.UUID = field(default_factory=uuid.uuid4)
    ends: list[int] = field(default_factory=list)  # next offset per partition
    synthetic: SyntheticLog | None = None
    keep_bytes: int = 0  # null.keep.bytes: keep the newest batches, this many bytes per partition
    kept: list[deque] = field(default_factory=list)  # per partition: (base offset, end offset, batch)
    kept_size: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ends = [self.synthetic.records if self.synthetic else 0] * self.partitions
        self.kept = [deque() for _ in range(self.partitions)]
        self.kept_size = [0] * self.partitions

    def keep(self, partition: int, base: int, end: int, batch: memoryview) -> None:
        copy = bytearray(batch)
        _BASE_OFFSET.pack_into(copy, 0, base)
        kept = self.kept[partition]
        kept.append((base, end, bytes(copy)))
        self.kept_size[partition] += len(copy)
        while self.kept_size[partition] > self.keep_bytes and len(kept) > 1:
            self.kept_size[partition] -= len(kept.popleft()[2])

    def read_kept(self, partition: int, offset: int, max_bytes: int) -> bytes:
        kept = self.kept[partition]
        start = len(kept)  # consumers read near the end: walk back from it
        while start > 0 and kept[start - 1][1] > offset:
            start -= 1
        out = []
        size = 0
        for i in range(start, len(kept)):
            batch = kept[i][2]
            if out and size + len(batch) > max_bytes:
                break
            out.append(batch)
            size += len(batch)
        return b"".join(out)


class SyntheticLog:
    """`records` records of the workload stream as uncompressed batches, built once.

    Batch k holds stream records [k*per_batch, (k+1)*per_batch); since POOL is a multiple
    of per_batch, only POOL / per_batch distinct batches exist, up to their base offset.
    """

    def __init__(self, records: int, size: int) -> None:
        self.records = records
        self.per_batch = next(b for b in (1000, 500, 250, 200, 100, 50, 10, 1) if b * size <= 256 * 1024)
        values = self._values = pool(size)
        self.templates = []
        for start in range(0, POOL, self.per_batch):
            batch = build_batch([Record(offset, 0, None, values[start + offset]) for offset in range(self.per_batch)],
                                base_offset=0)
            self.templates.append(batch)

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding `offset`: at least one, then up to max_bytes."""
        out = bytearray()
        k = offset // self.per_batch
        while k * self.per_batch < self.records:
            template = self.templates[k % len(self.templates)]
            if out and len(out) + len(template) > max_bytes:
                break
            start = len(out)
            out += template
            count = min(self.per_batch, self.records - k * self.per_batch)
            if count < self.per_batch:  # the log's last batch is shorter: build it once
                out[start:] = self._tail(k)
            _BASE_OFFSET.pack_into(out, start, k * self.per_batch)
            k += 1
        return bytes(out)

    def _tail(self, k: int) -> bytes:
        count = self.records - k * self.per_batch
        first = (k * self.per_batch) % POOL
        return build_batch([Record(o, 0, None, self._values[first + o]) for o in range(count)], base_offset=0)


class NullBroker:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.topics: dict[str, Topic] = {}
        self.by_id: dict[uuid.UUID, Topic] = {}
        self.next_producer_id = 1000
        self.produced_records = 0
        self.produced_bytes = 0
        self.waiters: dict[tuple[str, int], list[asyncio.Future]] = {}  # long-polling fetches

    def handle(self, frame: bytearray) -> list | None:
        view = memoryview(frame)
        api_key, version, correlation_id = frames.peek_header(view)
        entry = APIS.get(api_key)
        if entry is None or not 0 <= version <= entry[1]:
            if api_key == API_VERSIONS.key:  # KIP-511: tell the client what we do speak
                return frames.encode_response(API_VERSIONS, 0, correlation_id, self._api_versions(35))
            raise ValueError(f"api {api_key} v{version} not served by the null broker")
        api = entry[0]
        _, request, _ = frames.decode_request(view, api, version)
        response = getattr(self, f"_{api.name}")(request, version)
        if response is None:  # Produce acks=0
            return None
        if inspect.iscoroutine(response):  # a long-polling Fetch
            return self._encode_later(api, version, correlation_id, response)
        return frames.encode_response(api, version, correlation_id, response)

    async def _encode_later(self, api, version: int, correlation_id: int, pending) -> list:
        return frames.encode_response(api, version, correlation_id, await pending)

    def _api_versions(self, error_code: int = 0) -> ApiVersionsResponse:
        return ApiVersionsResponse(error_code=error_code, api_keys=[
            ApiVersion(api_key=key, min_version=0, max_version=top) for key, (_, top) in sorted(APIS.items())])

    def _ApiVersions(self, request, version):
        return self._api_versions()

    def _Metadata(self, request, version):
        names = list(self.topics) if request.topics is None else [t.name for t in request.topics]
        topics = []
        for name in names:
            topic = self.topics.get(name)
            if topic is None:
                topics.append(MetadataResponseTopic(error_code=UNKNOWN_TOPIC_OR_PARTITION, name=name))
                continue
            topics.append(MetadataResponseTopic(error_code=0, name=name, topic_id=topic.topic_id, partitions=[
                MetadataResponsePartition(error_code=0, partition_index=i, leader_id=NODE_ID, leader_epoch=0,
                                          replica_nodes=[NODE_ID], isr_nodes=[NODE_ID])
                for i in range(topic.partitions)]))
        return MetadataResponse(brokers=[MetadataResponseBroker(node_id=NODE_ID, host=self.host, port=self.port)],
                                cluster_id="null-broker", controller_id=NODE_ID, topics=topics)

    def _CreateTopics(self, request, version):
        results = []
        for wanted in request.topics:
            if wanted.name in self.topics:
                results.append(CreatableTopicResult(name=wanted.name, error_code=TOPIC_ALREADY_EXISTS))
                continue
            configs = {c.name: c.value for c in wanted.configs}
            synthetic = None
            if int(configs.get("null.fetch.records", 0)):
                synthetic = SyntheticLog(int(configs["null.fetch.records"]), int(configs.get("null.fetch.size", 100)))
            topic = Topic(wanted.name, wanted.num_partitions if wanted.num_partitions > 0 else 1, synthetic=synthetic,
                          keep_bytes=int(configs.get("null.keep.bytes", 0)))
            if not request.validate_only:
                self.topics[topic.name] = topic
                self.by_id[topic.topic_id] = topic
            results.append(CreatableTopicResult(name=topic.name, topic_id=topic.topic_id, error_code=0,
                                                num_partitions=topic.partitions, replication_factor=1))
        return CreateTopicsResponse(topics=results)

    def _InitProducerId(self, request, version):
        self.next_producer_id += 1
        return InitProducerIdResponse(error_code=0, producer_id=self.next_producer_id, producer_epoch=0)

    def _FindCoordinator(self, request, version):
        if version >= 4:
            return FindCoordinatorResponse(coordinators=[
                Coordinator(key=key, node_id=NODE_ID, host=self.host, port=self.port, error_code=0)
                for key in request.coordinator_keys])
        return FindCoordinatorResponse(error_code=0, node_id=NODE_ID, host=self.host, port=self.port)

    def _ListOffsets(self, request, version):
        answers = []
        for wanted in request.topics:
            topic = self.topics.get(wanted.name)
            partitions = []
            for part in wanted.partitions:
                if topic is None or not 0 <= part.partition_index < topic.partitions:
                    partitions.append(ListOffsetsPartitionResponse(partition_index=part.partition_index,
                                                                   error_code=UNKNOWN_TOPIC_OR_PARTITION))
                    continue
                offset = 0 if part.timestamp == -2 else topic.ends[part.partition_index]
                partitions.append(ListOffsetsPartitionResponse(partition_index=part.partition_index, error_code=0,
                                                               old_style_offsets=[offset], offset=offset))
            answers.append(ListOffsetsTopicResponse(name=wanted.name, partitions=partitions))
        return ListOffsetsResponse(topics=answers)

    def _Produce(self, request, version):
        answers = []
        for data in request.topic_data:
            topic = self.topics.get(data.name)
            partitions = []
            for part in data.partition_data:
                if topic is None or not 0 <= part.index < topic.partitions or part.records is None:
                    partitions.append(PartitionProduceResponse(index=part.index, error_code=UNKNOWN_TOPIC_OR_PARTITION,
                                                               base_offset=-1))
                    continue
                base = topic.ends[part.index]
                records = part.records
                pos, end = 0, len(records)
                while pos + 61 <= end:  # count the records: lastOffsetDelta + 1 per batch, nothing else read
                    length = struct.unpack_from(">i", records, pos + 8)[0]
                    first = topic.ends[part.index]
                    if topic.synthetic is None:  # a synthetic log's end stays where its records end
                        topic.ends[part.index] += _LAST_OFFSET_DELTA.unpack_from(records, pos + 23)[0] + 1
                    if topic.keep_bytes:
                        topic.keep(part.index, first, topic.ends[part.index], records[pos:pos + 12 + length])
                    pos += 12 + length
                if topic.keep_bytes:
                    for waiter in self.waiters.pop((topic.name, part.index), ()):
                        if not waiter.done():
                            waiter.set_result(None)
                self.produced_bytes += end
                partitions.append(PartitionProduceResponse(index=part.index, error_code=0, base_offset=base))
            answers.append(TopicProduceResponse(name=data.name, partition_responses=partitions))
        if request.acks == 0:
            return None
        return ProduceResponse(responses=answers)

    def _Fetch(self, request, version):
        response, total, watched = self._read(request, version)
        if total or not watched or request.max_wait_ms <= 0:
            return response
        return self._long_poll(request, version, watched)

    async def _long_poll(self, request, version, watched: list[tuple[str, int]]):
        """Wait until a produce to a kept partition (or max_wait_ms), as a real broker's purgatory."""
        waiter = asyncio.get_running_loop().create_future()
        for key in watched:
            self.waiters.setdefault(key, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, request.max_wait_ms / 1000)
        except TimeoutError:
            pass
        return self._read(request, version)[0]

    def _read(self, request, version):
        remaining = request.max_bytes
        total = 0
        watched = []
        answers = []
        for wanted in request.topics:
            topic = self.by_id.get(wanted.topic_id) if version >= 13 else self.topics.get(wanted.topic)
            partitions = []
            for part in wanted.partitions:
                if topic is None or not 0 <= part.partition < topic.partitions:
                    partitions.append(PartitionData(partition_index=part.partition,
                                                    error_code=UNKNOWN_TOPIC_OR_PARTITION, high_watermark=-1))
                    continue
                end = topic.ends[part.partition]
                records = b""
                if part.fetch_offset < end and remaining > 0:
                    limit = min(part.partition_max_bytes, remaining)
                    if topic.synthetic is not None:
                        records = topic.synthetic.read(part.fetch_offset, limit)
                    elif topic.keep_bytes:
                        records = topic.read_kept(part.partition, part.fetch_offset, limit)
                    remaining -= len(records)
                    total += len(records)
                if topic.keep_bytes:
                    watched.append((topic.name, part.partition))
                partitions.append(PartitionData(partition_index=part.partition, error_code=0, high_watermark=end,
                                                last_stable_offset=end, log_start_offset=0,
                                                aborted_transactions=None, records=records))
            answers.append(FetchableTopicResponse(topic=wanted.topic, topic_id=wanted.topic_id, partitions=partitions))
        return FetchResponse(responses=answers), total, watched


class Connection(asyncio.Protocol):
    """Frames in, answers out in request order (a long-polling Fetch holds the ones after it)."""

    def __init__(self, broker: NullBroker) -> None:
        self.broker = broker
        self.reader = frames.FrameReader(100 * 2**20)
        self.transport: asyncio.Transport | None = None
        self.slots: deque = deque()  # encoded answers, or tasks that will give one
        self.waiting = False
        # Bytes to write, fed to the transport only while it is below its high-water mark:
        # Python 3.11's transport buffer is one bytearray that each partial send shifts
        # (`del buf[:n]`), so writing a multi-MB Fetch answer at once costs O(n^2) memmove.
        self.out: deque[memoryview] = deque()
        self.paused = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_CHUNK)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def _pump(self) -> None:
        while self.out and not self.paused and self.transport is not None:
            self.transport.write(self.out.popleft())

    def connection_lost(self, exc) -> None:
        self.transport = None
        for slot in self.slots:
            if isinstance(slot, asyncio.Task):
                slot.cancel()

    def data_received(self, data: bytes) -> None:
        self.reader.receive_data(data)
        try:
            while (frame := self.reader.next_frame()) is not None:
                answer = self.broker.handle(frame)
                if answer is None:
                    continue
                self.slots.append(asyncio.ensure_future(answer) if inspect.iscoroutine(answer) else answer)
        except Exception as exc:  # a benchmark tool: say why and drop the connection
            log.warning("closing connection: %s", exc)
            self.transport.close()
            return
        self._write()

    def _write(self, _done=None) -> None:
        self.waiting = False
        while self.slots and self.transport is not None:
            head = self.slots[0]
            if isinstance(head, asyncio.Task):
                if not head.done():
                    if not self.waiting:
                        self.waiting = True
                        head.add_done_callback(self._write)
                    return
                head = head.result()
            self.slots.popleft()
            for part in head:
                view = memoryview(part)
                self.out.extend(view[i:i + WRITE_CHUNK] for i in range(0, len(view), WRITE_CHUNK))
        self._pump()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    broker = NullBroker(host, port)
    server = await loop.create_server(lambda: Connection(broker), host, port, reuse_address=True)
    broker.port = server.sockets[0].getsockname()[1]
    print(f"null broker listening on {host}:{broker.port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:9099")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(host, int(port)))


if __name__ == "__main__":
    main()
