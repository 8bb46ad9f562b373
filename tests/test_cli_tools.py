"""The admin CLI's own logic, without a broker: dump-log on crafted segments, version negotiation
against a fake broker, the partitioner, key/value formats, usage errors and exit codes.
(compat_tests/test_admin_cli.py runs every command against a real broker.)"""
from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.cli import main
from kbroker.log.index import OffsetIndex, TimeIndex
from kbroker.tools.client import Connection, ToolError, UsageError
from kbroker.tools.produce import murmur2
from kbroker.tools.record_formats import from_bytes, to_bytes
from kbroker.wire import frames
from kbroker.wire.messages.api_versions import API_VERSIONS, ApiVersion, ApiVersionsResponse
from kbroker.wire.messages.fetch import FETCH
from kbroker.wire.messages.metadata import METADATA
from kbroker.wire.messages.produce import PRODUCE
from kbroker.wire.records import Compression, Record, build_batch
from tests.broker_process import free_port

SEGMENT = "00000000000000000100.log"


def write_segment(directory: Path, *, index: list[tuple[int, int]] | None = None,
                  time_index: list[tuple[int, int]] | None = None, tail: bytes = b"") -> list[bytes]:
    """Three batches from offset 100 (2, 3 and 1 records, the second gzip); indexes as Kafka writes them
    unless given: an offset entry per batch, a time entry per batch that raised the largest timestamp."""
    directory.mkdir(exist_ok=True)
    batches = [build_batch([Record(100, 1000, b"a", b"x"), Record(101, 1001, None, b"y", (("h", b"v"),))]),
               build_batch([Record(o, 900 + o, b"k", b"v%d" % o) for o in (102, 103, 104)], compression=Compression.GZIP),
               build_batch([Record(105, 2000, None, None)], producer_id=7, producer_epoch=1, base_sequence=0)]
    positions = [0, len(batches[0]), len(batches[0]) + len(batches[1])]
    if index is None:
        index = [(1, positions[0]), (4, positions[1]), (5, positions[2])]
    if time_index is None:
        time_index = [(1001, 1), (1004, 4), (2000, 5)]
    (directory / SEGMENT).write_bytes(b"".join(batches) + tail)
    (directory / SEGMENT).with_suffix(".index").write_bytes(b"".join(OffsetIndex.ENTRY.pack(*e) for e in index))
    (directory / SEGMENT).with_suffix(".timeindex").write_bytes(b"".join(TimeIndex.ENTRY.pack(*e) for e in time_index))
    return batches


def dump(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict, str]:
    code = main(["dump-log", *args, "--output", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_dump_log_shows_batches_records_and_finds_no_problem_in_a_sound_segment(tmp_path, capsys):
    write_segment(tmp_path / "t-0")
    code, document, err = dump(capsys, str(tmp_path), "--print-records")
    assert (code, err, document["problems"]) == (0, "", [])
    (segment,) = document["segments"]
    assert (segment["base_offset"], segment["index_entries"], segment["time_index_entries"]) == (100, 3, 3)
    batches = segment["batches"]
    assert [(b["base_offset"], b["last_offset"], b["compression"], b["producer_id"], b["crc_valid"]) for b in batches] == [
        (100, 101, "none", -1, True), (102, 104, "gzip", -1, True), (105, 105, "none", 7, True)]
    assert batches[0]["records"][1] == {"offset": 101, "timestamp": 1001, "key": None, "value": "y",
                                        "headers": [["h", "v"]]}
    assert [r["value"] for r in batches[1]["records"]] == ["v102", "v103", "v104"]


def test_dump_log_reports_a_bad_crc_and_goes_on_to_the_next_batch(tmp_path, capsys):
    batches = write_segment(tmp_path)
    data = bytearray((tmp_path / SEGMENT).read_bytes())
    data[len(batches[0]) - 1] ^= 0x01  # the last byte of the first batch's last record
    (tmp_path / SEGMENT).write_bytes(data)
    code, document, err = dump(capsys, str(tmp_path / SEGMENT))
    assert code == 1
    assert [b["crc_valid"] for b in document["segments"][0]["batches"]] == [False, True, True]
    assert err.splitlines() == [f"kbroker dump-log: {tmp_path / SEGMENT}: CRC mismatch in the batch at position 0 "
                                f"(offset 100): stored {document['segments'][0]['batches'][0]['crc']:#010x}"]


def test_dump_log_reports_a_torn_tail_and_indexes_that_do_not_match_the_log(tmp_path, capsys):
    batches = write_segment(tmp_path, index=[(1, 0), (4, 5)],
                            time_index=[(1001, 1), (999, 4)], tail=b"\x00" * 30)
    code, document, err = dump(capsys, str(tmp_path / SEGMENT).replace(".log", ".index"))
    assert code == 1
    problems = [p.split(": ", 1)[1] for p in document["problems"]]
    assert problems == [
        "torn batch header: 30 bytes at position %d; 30 bytes after the last whole batch" % sum(map(len, batches)),
        "00000000000000000100.index: entry (4, 5) is not at a batch start",
        "00000000000000000100.timeindex: entry (999, 4): the largest timestamp up to offset 104 is 1004",
        "00000000000000000100.timeindex: entry (999, 4) does not increase"]
    assert len(err.splitlines()) == 4


def test_dump_log_takes_a_jvm_brokers_preallocated_index_zeros_as_unused_space(tmp_path, capsys):
    write_segment(tmp_path, index=[(1, 0)] + [(0, 0)] * 100, time_index=[(1001, 1)] + [(0, 0)] * 100)
    code, document, _ = dump(capsys, str(tmp_path))
    assert (code, document["problems"]) == (0, [])
    assert (document["segments"][0]["index_entries"], document["segments"][0]["time_index_entries"]) == (1, 1)


def test_dump_log_of_something_that_is_not_a_segment_is_one_line_and_exit_1(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["dump-log", str(tmp_path / "notes.txt")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["dump-log", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err == f"kbroker dump-log: {tmp_path / 'missing'}: no such file or directory\n"
    assert main(["dump-log", str(tmp_path)]) == 1  # a directory without segments
    assert "no segment files" in capsys.readouterr().err


@pytest.fixture
def fake_broker() -> Iterator[tuple[int, list[ApiVersion]]]:
    """Answers one ApiVersions request with the ranges the test puts in the list, then hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))
    ranges: list[ApiVersion] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            size = int.from_bytes(conn.recv(4), "big")
            frame = b""
            while len(frame) < size:
                frame += conn.recv(size - len(frame))
            correlation_id = frames.peek_header(memoryview(frame))[2]
            answer = frames.encode_response(API_VERSIONS, 0, correlation_id, ApiVersionsResponse(api_keys=ranges))
            conn.sendall(b"".join(bytes(part) for part in answer))
            conn.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], ranges
    listener.close()
    thread.join(5)


def test_versions_are_the_highest_both_sides_speak_and_a_gap_is_a_clear_error(fake_broker):
    port, ranges = fake_broker
    ranges += [ApiVersion(3, 0, 9), ApiVersion(1, 4, 17), ApiVersion(0, 0, 2)]
    connection = Connection("127.0.0.1", port, timeout_s=5)
    try:
        assert connection.version(METADATA) == 9  # theirs tops out below ours
        assert connection.version(FETCH) == 12  # ours tops out below theirs (v13+ names topics by id)
        with pytest.raises(ToolError, match=r"does not support Produce versions 3-11 \(it speaks 0-2\)"):
            connection.version(PRODUCE)
    finally:
        connection.close()


def test_murmur2_partitions_as_kafka_pythons_java_compatible_partitioner():
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

    rng = random.Random(15)
    for length in range(40):
        key = rng.randbytes(length)
        assert murmur2(key) == kafka_python_murmur2(key) & 0xFFFFFFFF, key
    assert murmur2(b"21") - (1 << 32) == -973932308  # Kafka's Utils.murmur2 test vector


def test_formats_round_trip_and_reject_bad_input():
    assert to_bytes("aGk=", "base64", "v") == b"hi" and from_bytes(b"hi", "base64") == "aGk="
    assert to_bytes("00ff", "hex", "v") == b"\x00\xff" and from_bytes(b"\x00\xff", "hex") == "00ff"
    assert from_bytes(b'{"a": 1}', "json") == {"a": 1} and from_bytes(b"not json", "json") == "not json"
    assert from_bytes(b"\xff", "string") == "\ufffd" and from_bytes(None, "string") is None
    for text, fmt in (("%%", "base64"), ("0g", "hex"), ("{", "json")):
        with pytest.raises(UsageError):
            to_bytes(text, fmt, "the value")


def test_usage_errors_exit_2_and_an_unreachable_bootstrap_from_the_environment_exits_3(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exited:
        main(["groups", "reset-offsets", "g", "--all-topics"])  # no --to-...
    assert exited.value.code == 2
    assert main(["topics", "alter-config", "t", "--set", "novalue"]) == 2
    assert capsys.readouterr().err.endswith("kbroker topics alter-config: --set expects KEY=VALUE, got 'novalue'\n")
    port = free_port()
    monkeypatch.setenv("KBROKER_BOOTSTRAP", f"127.0.0.1:{port}")
    assert main(["cluster", "describe"]) == 3
    assert capsys.readouterr().err == (f"kbroker cluster describe: broker unreachable: cannot connect to "
                                       f"127.0.0.1:{port}: Connection refused\n")
