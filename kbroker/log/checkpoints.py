"""Small metadata files, each replaced atomically: write `<name>.tmp`, fsync it, rename it over
`<name>`, fsync the directory. A crash leaves either the old file or the new one (and perhaps a
stale .tmp, ignored and overwritten next time).

Formats are Kafka's:

  recovery-point-offset-checkpoint, log-start-offset-checkpoint (one per data dir)
      0                   version
      2                   number of entries
      my-topic 0 1234     topic, partition, offset
      my-topic 1 99

  leader-epoch-checkpoint (one per partition dir)
      0                   version
      1                   number of entries
      0 0                 leader epoch, start offset of that epoch

  partition.metadata (one per partition dir)
      version: 0
      topic_id: <topic id, base64url without padding, 22 chars>

  meta.properties (one per data dir, Java properties)
      version=1
      node.id=1
      cluster.id=<22-char base64url uuid>
"""
from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from kbroker.log.files import fsync_dir

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
PARTITION_METADATA = "partition.metadata"
META_PROPERTIES = "meta.properties"


class MalformedCheckpoint(ValueError):
    pass


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` (see the header); on OSError the old file stays and no .tmp is left."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            _write_fully(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a disk full: give back the space
        raise
    fsync_dir(path.parent)


def write_unsynced(path: Path, data: bytes) -> None:
    """Write `path` without fsync (a file whose loss or tearing is detected and tolerated);
    on OSError no partial file is left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            _write_fully(fd, data)
        finally:
            os.close(fd)
    except OSError:
        path.unlink(missing_ok=True)
        raise


def _write_entries(path: Path, entries: list[str]) -> None:
    write_atomically(path, "".join(f"{line}\n" for line in ["0", str(len(entries)), *entries]).encode())


def _read_entries(path: Path, fields: int) -> list[list[str]]:
    """The entry lines of a version-0 checkpoint, split; [] when the file does not exist."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    if len(lines) < 2 or lines[0].strip() != "0" or not lines[1].strip().isdigit():
        raise MalformedCheckpoint(f"{path}: bad version or entry count")
    entries = [line.split() for line in lines[2:] if line.strip()]
    if len(entries) != int(lines[1]) or any(len(e) != fields for e in entries):
        raise MalformedCheckpoint(f"{path}: expected {lines[1].strip()} entries of {fields} fields")
    return entries


def write_offsets(path: Path, offsets: Mapping[tuple[str, int], int]) -> None:
    _write_entries(path, [f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(offsets.items())])


def read_offsets(path: Path) -> dict[tuple[str, int], int]:
    try:
        return {(topic, int(partition)): int(offset) for topic, partition, offset in _read_entries(path, 3)}
    except ValueError as e:
        raise MalformedCheckpoint(f"{path}: {e}") from None


def write_epochs(path: Path, entries: Iterable[tuple[int, int]]) -> None:
    _write_entries(path, [f"{epoch} {start}" for epoch, start in entries])


def read_epochs(path: Path) -> list[tuple[int, int]]:
    try:
        return [(int(epoch), int(start)) for epoch, start in _read_entries(path, 2)]
    except ValueError as e:
        raise MalformedCheckpoint(f"{path}: {e}") from None


def uuid_to_base64(value: uuid.UUID) -> str:
    """Kafka's Uuid.toString(): base64url of the 16 bytes, no padding."""
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode()


def uuid_from_base64(text: str) -> uuid.UUID:
    raw = base64.urlsafe_b64decode(text + "==")
    if len(raw) != 16:
        raise ValueError(f"not a 16-byte uuid: {text!r}")
    return uuid.UUID(bytes=raw)


def write_partition_metadata(directory: Path, topic_id: uuid.UUID) -> None:
    write_atomically(directory / PARTITION_METADATA,
                     f"version: 0\ntopic_id: {uuid_to_base64(topic_id)}\n".encode())


def read_partition_metadata(directory: Path) -> uuid.UUID | None:
    """The topic id recorded in the partition dir; None if the file is missing or unreadable."""
    try:
        fields = dict(line.split(":", 1) for line in (directory / PARTITION_METADATA).read_text().splitlines()
                      if ":" in line)
        if fields.get("version", "").strip() != "0":
            return None
        return uuid_from_base64(fields["topic_id"].strip())
    except (OSError, KeyError, ValueError):
        return None


def write_properties(path: Path, properties: Mapping[str, str]) -> None:
    write_atomically(path, "".join(f"{key}={value}\n" for key, value in properties.items()).encode())


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # os.write may write less than asked
        view = view[os.write(fd, view):]
