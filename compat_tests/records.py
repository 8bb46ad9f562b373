"""Test data sets and the whole-record comparison the compat tests share.

`mixed_records` builds records that exercise the record format: keys that are null, empty,
binary or repeated; values that are null (tombstones), empty, binary, text and up to 20 KiB;
headers with duplicate names, empty, binary and (where the client can send one) null values,
non-ASCII names; explicit CreateTime timestamps, some of them out of order. It asks the
client what it can send (kafka-python: no null header values; kcat: no per-record
timestamps, one header set and partition per run) and shapes the data to fit, so every
client sends as much of the variety as it can.
"""
from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence

from compat_tests.clients import Client, Delivery, Kcat, Received, Record

HEADER_SETS: tuple[tuple[tuple[str, bytes | None], ...], ...] = (
    (),
    (("trace-id", b"4bf92f3577b34da6a3ce929d0e0e4736"),),
    (("dup", b"first"), ("dup", b"second"), ("dup", b"")),            # duplicate names, an empty value
    (("bin", bytes(range(1, 256))), ("cl\u00e9-\u00fc", "v\u00e4rde \u2603".encode())),  # binary value, non-ASCII
    (("nul", None), ("empty", b""), ("nul", b"not null")),           # a null value
)

_WINDOW_SLACK_MS = 2000


def header_sets(client: Client) -> list[tuple[tuple[str, bytes | None], ...]]:
    if client.null_header_values:
        return list(HEADER_SETS)
    return [tuple(h for h in hs if h[1] is not None) for hs in HEADER_SETS]


def _key(rng: random.Random, i: int) -> bytes | None:
    if i % 7 == 0:
        return None
    if i % 13 == 0:
        return b""
    if i % 3 == 0:
        return rng.randbytes(rng.randint(1, 40))
    return f"key-{i % 500}".encode()


def _value(rng: random.Random, i: int) -> bytes | None:
    if i % 11 == 0:
        return None
    if i % 17 == 0:
        return b""
    if i % 97 == 0:
        return (f"large {i} ".encode() * 1500)[: rng.randint(8 * 1024, 20 * 1024)] + rng.randbytes(256)
    if i % 2 == 0:
        return rng.randbytes(rng.randint(1, 300))
    return f"value {i} \u00e9t\u00e9 ".encode() * rng.randint(1, 8)


def _kcat_clean(data: bytes | None) -> bytes | None:
    return None if data is None else data.translate(_KCAT_TRANSLATION)


_KCAT_TRANSLATION = bytes(0x20 if b in (0x1d, 0x1e, 0x1f) else b for b in range(256))


def mixed_records(client: Client, n: int, partitions: int, seed: int = 0,
                  base_timestamp: int | None = None) -> list[Record]:
    """n records for `client` spread over `partitions`.

    Timestamps (where the client can set them) run from about two days ago, inside the default
    7-day retention and the broker's timestamp limits; every 23rd is an hour older (out of order).
    For kcat the records come in per-partition blocks, each with one header set and the records
    that need `-Z` last, so a block is two kcat runs.
    """
    rng = random.Random(seed)
    base = base_timestamp if base_timestamp is not None else int(time.time() * 1000) - 2 * 86_400_000
    sets = header_sets(client)
    records = []
    for i in range(n):
        ts = None
        if client.explicit_timestamps:
            ts = base - 3_600_000 + i if i % 23 == 0 else base + i * 10
        key, value = _key(rng, i), _value(rng, i)
        if key is None and value is None and not client.null_key_and_value:
            value = b""
        records.append(Record(rng.randrange(partitions), key, value, sets[i % len(sets)], ts))
    if isinstance(client, Kcat):
        records = _shape_for_kcat(records, partitions, sets)
    return records


def _shape_for_kcat(records: list[Record], partitions: int, sets) -> list[Record]:
    shaped: list[Record] = []
    for p in range(partitions):
        headers = sets[(p + 2) % len(sets)]  # partition 0 gets the duplicate names, 1 binary, 2 null values
        block = []
        for r in records:
            if r.partition != p:
                continue
            key, value = _kcat_clean(r.key), _kcat_clean(r.value)
            if key is None and value == b"":
                value = b"v"
            if key == b"" and value is None:
                key = b"k"
            block.append(Record(p, key, value, headers, None))
        plain = [r for r in block if not Kcat.line_for(r)[1]]
        nulls = [r for r in block if Kcat.line_for(r)[1]]
        shaped += plain + nulls
    assert all(Kcat.can_send(r) for r in shaped)
    return shaped


def simple_records(client: Client, n: int, partitions: int = 1, prefix: str = "r",
                   with_timestamps: bool = True) -> list[Record]:
    """Small, readable records: key "<prefix>-k<i>", value "<prefix>-v<i>", one header; for kcat blocks."""
    base = int(time.time() * 1000) - 3_600_000
    records = [Record(i % partitions, f"{prefix}-k{i}".encode(), f"{prefix}-v{i}".encode() * (1 + i % 5),
                      (("n", str(i % partitions).encode()),),
                      base + i if (with_timestamps and client.explicit_timestamps) else None)
               for i in range(n)]
    return sorted(records, key=lambda r: r.partition) if isinstance(client, Kcat) else records


def by_partition(records: Sequence[Record]) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        out[r.partition].append(r)
    return dict(out)


def ranges_for(records: Sequence[Record], start_offsets: dict[int, int] | None = None) -> dict[int, tuple[int, int]]:
    """{partition: (first offset, end offset)} for records appended from start_offsets (default 0)."""
    counts = {p: len(rs) for p, rs in by_partition(records).items()}
    start_offsets = start_offsets or {}
    return {p: (start_offsets.get(p, 0), start_offsets.get(p, 0) + n) for p, n in counts.items()}


def _show(r) -> str:
    text = repr(r)
    return text if len(text) < 400 else text[:400] + "..."


def assert_same_records(sent: Sequence[Record], received: Sequence[Received], *,
                        start_offsets: dict[int, int] | None = None,
                        deliveries: Sequence[Delivery] | None = None,
                        window: tuple[int, int] | None = None,
                        timestamp_type: str = "CreateTime") -> None:
    """Every sent record came back, byte for byte, in the partition it was sent to, in order.

    Per partition the received offsets must run contiguously from the start offset (default 0).
    A record sent without a timestamp must come back stamped inside `window` (ms, the produce
    call's start and end). With `deliveries`, each record's offset must be the one the producer
    was told.
    """
    sent_by_p = by_partition(sent)
    got_by_p: dict[int, list[Received]] = defaultdict(list)
    for r in received:
        got_by_p[r.partition].append(r)
    problems = []
    if set(got_by_p) - set(sent_by_p):
        problems.append(f"records in partitions nobody sent to: {sorted(set(got_by_p) - set(sent_by_p))}")
    expected_offsets: dict[int, list[int | None]] = defaultdict(list)
    if deliveries is not None:
        for r, d in zip(sent, deliveries):
            expected_offsets[r.partition].append(d.offset)
    for p, want in sorted(sent_by_p.items()):
        got = got_by_p.get(p, [])
        if len(got) != len(want):
            problems.append(f"partition {p}: sent {len(want)}, received {len(got)}")
        start = (start_offsets or {}).get(p, 0)
        for i, (w, g) in enumerate(zip(want, got)):
            if g.offset != start + i:
                problems.append(f"partition {p} record {i}: offset {g.offset}, expected {start + i}")
                break
            if deliveries is not None and expected_offsets[p][i] is not None and expected_offsets[p][i] != g.offset:
                problems.append(f"partition {p} record {i}: read at offset {g.offset} but the producer was told "
                                f"{expected_offsets[p][i]}")
                break
            if g.timestamp_type != timestamp_type:
                problems.append(f"partition {p} offset {g.offset}: timestamp type {g.timestamp_type}, "
                                f"expected {timestamp_type}")
                break
            if w.timestamp is None:
                lo, hi = window if window else (0, 2**63)
                if not lo - _WINDOW_SLACK_MS <= g.timestamp <= hi + _WINDOW_SLACK_MS:
                    problems.append(f"partition {p} offset {g.offset}: timestamp {g.timestamp} outside the "
                                    f"produce window {window}")
                    break
            if g.sent(with_timestamp=w.timestamp is not None) != w:
                problems.append(f"partition {p} offset {g.offset} differs:\n  sent     {_show(w)}\n"
                                f"  received {_show(g)}")
                break
    if problems:
        raise AssertionError(f"{len(sent)} sent, {len(received)} received; " + "\n".join(problems[:20]))


def now_ms() -> int:
    return int(time.time() * 1000)


def assert_delivered(deliveries: Sequence[Delivery], *, offsets: bool = False) -> None:
    """No delivery report carries an error; with offsets=True each one also names its offset."""
    failed = [d for d in deliveries if d.error_code is not None or d.error]
    assert not failed, f"{len(failed)} of {len(deliveries)} records failed, first: {failed[0]}"
    if offsets:
        missing = [d for d in deliveries if d.offset is None]
        assert not missing, f"{len(missing)} delivery reports without an offset, first: {missing[0]}"
