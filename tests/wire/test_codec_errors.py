"""Malformed bytes raise DecodeError (a connection-fatal ProtocolViolation), never anything else.

A peer's bad bytes must close one connection with a log line: any other exception would look
like our bug, and a hang or a huge allocation would hurt every connection.
"""
from __future__ import annotations

import json
import random
import struct
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.wire import frames
from kbroker.wire.messages import APIS
from kbroker.wire.messages.describe_groups import DESCRIBE_GROUPS
from kbroker.wire.messages.heartbeat import HEARTBEAT, HeartbeatRequest
from kbroker.wire.messages.join_group import JOIN_GROUP, JoinGroupRequest, JoinGroupRequestProtocol
from kbroker.wire.messages.produce import PRODUCE
from kbroker.wire.primitives import DecodeError
from kbroker.wire.schema import Api

from .declared_values import every_version, filled
from .mutations import mutate

pytestmark = pytest.mark.timeout(60)

CASES = every_version()

GOLDEN_LINES = [json.loads(line) for line in
                (Path(__file__).parent / "golden" / "requests.jsonl").read_text().splitlines()]


def header(api: Api, version: int) -> bytes:
    """A request header with client id "t" (and an empty tagged-field section for v2)."""
    out = struct.pack(">hhih", api.key, version, 1, 1) + b"t"
    return out + b"\x00" if api.request_header_version(version) >= 2 else out


def decode(api: Api, version: int, body: bytes) -> object:
    return frames.decode_request(memoryview(header(api, version) + body), api, version)[1]


def i16(n: int) -> bytes:
    return struct.pack(">h", n)


def i32(n: int) -> bytes:
    return struct.pack(">i", n)


def compact(text: str) -> bytes:
    data = text.encode()
    return bytes([len(data) + 1]) + data


def classic(text: str) -> bytes:
    data = text.encode()
    return i16(len(data)) + data


# -- truncation: every byte position ---------------------------------------------------------

def golden_samples() -> list[tuple[Api, int, bytes, int]]:
    """The first golden frame of each (api, version), with the number of bytes it really uses."""
    seen, samples = set(), []
    for line in GOLDEN_LINES:
        key = (line["api_key"], line["api_version"])
        if line["api_key"] in APIS and key not in seen:
            seen.add(key)
            frame = bytes.fromhex(line["hex"])
            samples.append((APIS[key[0]], key[1], frame, len(frame) - (3 if "note" in line else 0)))
    return samples


def encoded_samples() -> list[tuple[Api, int, str, bytes]]:
    samples = []
    for api, version in CASES:
        value = filled(api.request, version, api.is_flexible(version))
        samples.append((api, version, "request", frames.encode_request(api, version, 1, "t", value)[4:]))
        value = filled(api.response, version, api.is_flexible(version))
        parts = frames.encode_response(api, version, 1, value)
        samples.append((api, version, "response", b"".join(bytes(part) for part in parts)[4:]))
    return samples


GOLDEN_SAMPLES = golden_samples()
ENCODED = encoded_samples()


@pytest.mark.parametrize(("api", "version", "frame", "used"), GOLDEN_SAMPLES,
                         ids=[f"{api.name}-v{version}" for api, version, _, _ in GOLDEN_SAMPLES])
def test_truncated_golden_frames_raise_decode_error(api: Api, version: int, frame: bytes, used: int) -> None:
    for size in range(used):
        with pytest.raises(DecodeError):
            frames.decode_request(memoryview(frame[:size]), api, version)
    for size in range(used, len(frame) + 1):  # the librdkafka 5049 frame: its 3 extra bytes are optional
        assert frames.decode_request(memoryview(frame[:size]), api, version)[2] == used


@pytest.mark.parametrize(("api", "version", "side", "frame"), ENCODED,
                         ids=[f"{api.name}-v{version}-{side}" for api, version, side, _ in ENCODED])
def test_truncated_encoded_frames_raise_decode_error(api: Api, version: int, side: str, frame: bytes) -> None:
    decoder = frames.decode_request if side == "request" else frames.decode_response
    for size in range(len(frame)):
        with pytest.raises(DecodeError):
            decoder(memoryview(frame[:size]), api, version)


# -- hostile lengths and nulls ---------------------------------------------------------------

@pytest.mark.parametrize(("api", "version", "body"), [
    (DESCRIBE_GROUPS, 0, i32(0x7FFFFFFF)),
    (DESCRIBE_GROUPS, 0, i32(0x7FFFFFFF) + classic("g") * 4),
    (DESCRIBE_GROUPS, 5, b"\xff\xff\xff\xff\x07" + compact("g") + b"\x00\x00"),
    (DESCRIBE_GROUPS, 5, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),  # 2**64 - 1 elements
    (JOIN_GROUP, 0, classic("g") + i32(1) + classic("") + classic("consumer") + i32(2**31 - 1)),
], ids=["classic", "classic-with-some-bytes", "compact", "compact-2**64", "nested"])
def test_huge_array_count_raises_decode_error(api: Api, version: int, body: bytes) -> None:
    with pytest.raises(DecodeError, match="claims"):
        decode(api, version, body)


@pytest.mark.parametrize(("api", "version", "body"), [
    (HEARTBEAT, 0, i16(-2) + b"g" + i32(1) + classic("m")),
    (HEARTBEAT, 0, i16(-32768) + i32(1) + classic("m")),
    (JOIN_GROUP, 5, classic("g") + i32(1) + i32(1) + classic("m") + i16(-2)),  # nullable string
    (JOIN_GROUP, 0, classic("g") + i32(1) + classic("m") + classic("c") + i32(1) + classic("p") + i32(-5)),
    (DESCRIBE_GROUPS, 0, i32(-2)),
    (PRODUCE, 3, i16(-1) + i16(1) + i32(0) + i32(1) + classic("t") + i32(1) + i32(0) + i32(-2)),
], ids=["string", "string-min", "nullable-string", "bytes", "array", "nullable-records"])
def test_negative_length_raises_decode_error(api: Api, version: int, body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(api, version, body)


@pytest.mark.parametrize(("api", "version", "body"), [
    (HEARTBEAT, 0, i16(-1) + i32(1) + classic("m")),
    (HEARTBEAT, 4, b"\x00" + i32(1) + compact("m") + b"\x00\x00"),
    (DESCRIBE_GROUPS, 0, i32(-1)),
    (DESCRIBE_GROUPS, 5, b"\x00\x00\x00"),
    (JOIN_GROUP, 0, classic("g") + i32(1) + classic("m") + classic("c") + i32(1) + classic("p") + i32(-1)),
], ids=["classic-string", "compact-string", "classic-array", "compact-array", "bytes"])
def test_null_in_a_non_nullable_field_raises_decode_error(api: Api, version: int, body: bytes) -> None:
    with pytest.raises(DecodeError, match="null"):
        decode(api, version, body)


def test_invalid_utf8_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        decode(HEARTBEAT, 0, i16(2) + b"\xff\xfe" + i32(1) + classic("m"))


def test_overlong_varint_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="varint"):
        decode(HEARTBEAT, 4, b"\xff" * 11)


# -- tagged fields ---------------------------------------------------------------------------

HEARTBEAT_V4 = HeartbeatRequest(group_id="g", generation_id=1, member_id="m", group_instance_id=None)


def test_unknown_tagged_fields_are_skipped() -> None:
    body = compact("g") + i32(1) + compact("m") + b"\x00"
    unknown = b"\x02" + b"\x05\x03xyz" + b"\x7f\x00"  # tag 5 with 3 bytes, tag 127 empty
    assert decode(HEARTBEAT, 4, body + unknown) == HEARTBEAT_V4


def test_unknown_tagged_fields_in_the_request_header_are_skipped() -> None:
    frame = struct.pack(">hhih", 12, 4, 1, 1) + b"t" + b"\x01\x09\x02ab"
    frame += compact("g") + i32(1) + compact("m") + b"\x00" + b"\x00"
    header_, body, used = frames.decode_request(memoryview(frame), HEARTBEAT, 4)
    assert (header_.client_id, body, used) == ("t", HEARTBEAT_V4, len(frame))


def test_unknown_tagged_fields_in_nested_structs_are_skipped() -> None:
    protocol = compact("range") + b"\x04abc" + b"\x01\x2a\x01z"  # JoinGroupRequestProtocol + tag 42
    body = (compact("g") + i32(1) + i32(2) + compact("m") + b"\x00" + compact("consumer")
            + b"\x02" + protocol + b"\x00")
    assert decode(JOIN_GROUP, 6, body) == JoinGroupRequest(
        group_id="g", session_timeout_ms=1, rebalance_timeout_ms=2, member_id="m", group_instance_id=None,
        protocol_type="consumer", protocols=[JoinGroupRequestProtocol(name="range", metadata=b"abc")])


def test_tagged_field_running_past_the_frame_raises_decode_error() -> None:
    body = compact("g") + i32(1) + compact("m") + b"\x00" + b"\x01\x05\x09xyz"
    with pytest.raises(DecodeError, match="tagged"):
        decode(HEARTBEAT, 4, body)


# -- fuzzing ---------------------------------------------------------------------------------

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_raises_decode_error(decoder: object, frame: bytes, api: Api, version: int) -> None:
    try:
        decoder(memoryview(frame), api, version)
    except DecodeError:
        pass


@FUZZ
@given(case=st.sampled_from(CASES), body=st.binary(max_size=64))
def test_random_bodies_raise_only_decode_error(case: tuple[Api, int], body: bytes) -> None:
    api, version = case
    decodes_or_raises_decode_error(frames.decode_request, header(api, version) + body, api, version)


@FUZZ
@given(case=st.sampled_from(CASES), frame=st.binary(max_size=64))
def test_random_frames_raise_only_decode_error(case: tuple[Api, int], frame: bytes) -> None:
    api, version = case
    decodes_or_raises_decode_error(frames.decode_request, frame, api, version)
    decodes_or_raises_decode_error(frames.decode_response, frame, api, version)


@FUZZ
@given(sample=st.sampled_from(ENCODED), data=st.data())
def test_mutated_frames_raise_only_decode_error(sample: tuple[Api, int, str, bytes],
                                                data: st.DataObject) -> None:
    api, version, side, frame = sample
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        at = data.draw(st.integers(0, len(mutated) - 1), label="at")
        mutated[at] = data.draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]) | st.integers(0, 255),
                                label="byte")
    decoder = frames.decode_request if side == "request" else frames.decode_response
    decodes_or_raises_decode_error(decoder, bytes(mutated), api, version)


# -- real client frames, mutated ---------------------------------------------------------------

GOLDEN_SERVED = [(APIS[line["api_key"]], line["api_version"], bytes.fromhex(line["hex"]))
                 for line in GOLDEN_LINES if line["api_key"] in APIS]
GOLDEN_BYTES = [frame for _, _, frame in GOLDEN_SERVED]
# A decoded value is Python objects, bigger than its bytes (a 1-byte empty struct is a ~100-byte
# object), but bounded by them: no length, count or varint may make the decoder allocate more.
BYTES_PER_FRAME_BYTE = 512
ALLOCATION_SLACK = 64 << 10


def decode_within_bounds(frame: bytes, api: Api, version: int) -> None:
    """Decode: only DecodeError, quickly, allocating at most BYTES_PER_FRAME_BYTE per frame byte."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        frames.decode_request(memoryview(frame), api, version)
    except DecodeError:
        pass
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 2.0, f"decoding {len(frame)} bytes took {elapsed:.1f} s"
    assert peak <= BYTES_PER_FRAME_BYTE * len(frame) + ALLOCATION_SLACK, f"{peak} bytes for a {len(frame)}-byte frame"


@FUZZ
@given(sample=st.sampled_from(GOLDEN_SERVED), rng=st.randoms(use_true_random=False))
def test_mutated_real_client_frames_raise_only_decode_error_in_bounded_time_and_memory(
        sample: tuple[Api, int, bytes], rng: random.Random) -> None:
    api, version, frame = sample
    decode_within_bounds(mutate(frame, rng, GOLDEN_BYTES), api, version)


@FUZZ
@given(sample=st.sampled_from(GOLDEN_SERVED), rng=st.randoms(use_true_random=False))
def test_mutated_frames_decoded_as_the_api_their_header_names(sample: tuple[Api, int, bytes],
                                                              rng: random.Random) -> None:
    """What the dispatcher does: route by the (possibly mutated) header, then decode."""
    mutated = mutate(sample[2], rng, GOLDEN_BYTES)
    try:
        api_key, version, _ = frames.peek_header(memoryview(mutated))
    except DecodeError:
        return
    if api_key in APIS and version in APIS[api_key].valid:
        decode_within_bounds(mutated, APIS[api_key], version)


def test_a_claimed_count_cannot_make_the_decoder_allocate() -> None:
    """A 2**31 - 1 element array of int32s in a 20-byte frame fails before allocating."""
    decode_within_bounds(header(DESCRIBE_GROUPS, 0) + i32(0x7FFFFFFF) + b"\x00" * 8, DESCRIBE_GROUPS, 0)


# -- the frame reader: size prefixes over a byte stream ---------------------------------------

@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@FUZZ
@given(payloads=st.lists(st.binary(max_size=300), max_size=8), data=st.data(),
       large_frame=st.sampled_from([1, 50, 64 << 10]), staging=st.sampled_from([1, 100, 256 << 10]))
def test_frame_reader_returns_the_same_frames_however_the_stream_is_cut(payloads: list[bytes],
                                                                        data: st.DataObject, large_frame: int,
                                                                        staging: int) -> None:
    """receive_data of bytes read elsewhere: a chunk may end a large frame and start the next."""
    stream = b"".join(struct.pack(">i", len(p)) + p for p in payloads)
    reader = frames.FrameReader(max_size=300, large_frame=large_frame, staging_bytes=staging)
    out = []
    for chunk in data.draw(chunked(stream)):
        reader.receive_data(chunk)
        while (frame := reader.next_frame()) is not None:
            out.append(bytes(frame))
    assert out == payloads and reader.buffered == 0


@FUZZ
@given(stream=st.binary(max_size=400), limit=st.integers(0, 200), data=st.data())
def test_frame_reader_on_random_bytes_yields_frames_within_the_limit_or_decode_error(
        stream: bytes, limit: int, data: st.DataObject) -> None:
    reader = frames.FrameReader(max_size=limit)
    received = 0
    try:
        for chunk in data.draw(chunked(stream)):
            reader.receive_data(chunk)
            received += len(chunk)
            while (frame := reader.next_frame()) is not None:
                assert len(frame) <= limit
            assert reader.buffered <= received
    except DecodeError as exc:
        assert "frame size" in str(exc)


@FUZZ
@given(payloads=st.lists(st.binary(max_size=300), max_size=8), reads=st.lists(st.integers(1, 400), min_size=1),
       large_frame=st.integers(1, 120), staging=st.integers(1, 200))
def test_frame_reader_read_in_place_returns_the_same_frames_however_the_socket_delivers(
        payloads: list[bytes], reads: list[int], large_frame: int, staging: int) -> None:
    """As asyncio drives it: recv_into(get_buffer()) of up to n bytes, buffer_updated, next_frame
    until None — with buffers small enough that frames straddle, move to their own buffer and
    make the staging buffer compact and grow."""
    stream = memoryview(b"".join(struct.pack(">i", len(p)) + p for p in payloads))
    reader = frames.FrameReader(max_size=300, large_frame=large_frame, staging_bytes=staging)
    out, i = [], 0
    while stream:
        buffer = reader.get_buffer()
        count = min(len(buffer), len(stream), reads[i % len(reads)])
        assert len(buffer) > 0
        buffer[:count] = stream[:count]
        del buffer
        reader.buffer_updated(count)
        stream, i = stream[count:], i + 1
        while (frame := reader.next_frame()) is not None:
            out.append(bytes(frame))
    assert out == payloads and reader.buffered == 0


def test_frame_reader_reads_the_rest_of_a_large_frame_straight_into_the_frame_it_returns() -> None:
    reader = frames.FrameReader(max_size=1 << 20, large_frame=1000, staging_bytes=4096)
    body = bytes(range(256)) * 40
    first = struct.pack(">i", len(body)) + body[:3000]
    buffer = reader.get_buffer()
    buffer[:len(first)] = first
    del buffer
    reader.buffer_updated(len(first))
    assert reader.next_frame() is None
    target = reader.get_buffer()
    assert len(target) == len(body) - 3000
    target[:] = body[3000:]
    owner = target.obj
    del target
    reader.buffer_updated(len(body) - 3000)
    frame = reader.next_frame()
    assert frame == body and frame is owner and reader.buffered == 0


@pytest.mark.parametrize("prefix", [struct.pack(">i", 101), struct.pack(">i", -1), b"\x80\x00\x00\x00"])
def test_frame_reader_refuses_a_bad_size_as_soon_as_the_prefix_is_in(prefix: bytes) -> None:
    reader = frames.FrameReader(max_size=100)
    reader.receive_data(prefix)  # no body: it must not wait for 100+ bytes that may never come
    with pytest.raises(DecodeError):
        reader.next_frame()
