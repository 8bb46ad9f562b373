"""All partition logs of one data directory, and the topics they belong to.

Data directory (Kafka's layout, plus the topic registry, see topics.py):
    .lock                               held locked while a broker runs here (data_dir.py)
    meta.properties                     version, node.id, cluster.id (generated once)
    topics.json                         topic names, ids, partition counts, config overrides
    recovery-point-offset-checkpoint    per partition: everything below it is fsynced
    log-start-offset-checkpoint         per partition: the log start offset
    .kafka_cleanshutdown                exists only from a clean shutdown to the next start-up
    <topic>-<partition>/                one PartitionLog each
    <topic>-<partition>.<topic id hex>-delete/   a partition of a deleted topic, being removed
    <topic>-<partition>.<random hex>-stray/      a partition dir no topic owns, set aside, kept

Start-up (`load`): the data dir is locked (a second broker on it refuses to start); meta.properties is read or written; `-delete` dirs are removed, and a topic with
such a dir is dropped from the registry (the rename committed its deletion); partition dirs no
topic owns are set aside as `-stray`; every partition is opened. Without the clean-shutdown marker
the segments above each recovery point are CRC-scanned and their torn tails cut (recovery.py);
with it the files are trusted (bad indexes are still rebuilt) and the marker is deleted.

Deleting a topic: each partition dir is renamed to `-delete` (the commit point), the files in
them are removed (first, so that a full disk gets its space back before anything is written), the
registry is rewritten, the dirs are removed. Shutdown: every log is closed (final index entries,
producer snapshot, fsync), both checkpoints are written, and the clean-shutdown marker last, only
if all of that worked.

Damaged metadata at start-up: a meta.properties without a readable cluster.id gets a new one; a
topics.json that does not parse is kept aside as `topics.json.damaged` and the registry is
rebuilt from the partition directories (names, partition counts, topic ids from
partition.metadata), losing only config overrides, which are logged (internal topics get
cleanup.policy=compact back). Unreadable checkpoints are ignored (the logs are then recovered
from offset 0).

I/O errors (disk full): creating or changing a topic that fails on disk answers
KAFKA_STORAGE_ERROR and leaves the registry as it was; checkpoints that cannot be written are
logged and written at the next interval (the recovery points on disk only lag); see
partition_log.py for appends.

Threads: every method runs on the event-loop thread except `checkpoint`, which may run in a worker
thread. It works on a snapshot of the log map (the map is replaced, never mutated in place), and
checkpoint files are written under a lock.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

from kbroker.clock import Clock, wall_clock_ms
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.checkpoints import (
    LOG_START_OFFSET_CHECKPOINT,
    META_PROPERTIES,
    RECOVERY_POINT_CHECKPOINT,
    MalformedCheckpoint,
    read_offsets,
    read_partition_metadata,
    uuid_to_base64,
    write_atomically,
    write_offsets,
    write_properties,
)
from kbroker.log.config import LogConfig
from kbroker.log.data_dir import DataDirError, lock_data_dir, unlock_data_dir
from kbroker.log.files import OpenFiles, fsync_dir
from kbroker.log.partition_log import PartitionLog
from kbroker.log.topics import (
    INTERNAL_TOPICS,
    TOPICS_FILE,
    TopicInfo,
    colliding_name,
    load_topics,
    new_topic_id,
    save_topics,
    validate_topic_name,
)
from kbroker.properties import read_properties

log = logging.getLogger("kbroker.log")

CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
_PARTITION_DIR = re.compile(r"(?P<topic>.+)-(?P<partition>\d+)")
_CLUSTER_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_DELETE_DIR = re.compile(r"(?P<topic>.+)-(?P<partition>\d+)\.(?P<topic_id>[0-9a-f]{32})-delete")
# One replica moved away (cluster: a reassignment), its topic still here: only that directory goes.
_REMOVED_DIR = re.compile(r"(?P<topic>.+)-(?P<partition>\d+)\.(?P<topic_id>[0-9a-f]{32})-removed")


def _dir_name_with_suffix(partition_dir: str, suffix: str) -> str:
    """`<topic>-<partition><suffix>` within 255 bytes: a long topic name (Kafka allows 249 characters)
    is cut short, as Kafka's logDirNameWithSuffixCappedLength does; the suffix carries what start-up reads."""
    topic, _, partition = partition_dir.rpartition("-")
    tail = f"-{partition}{suffix}"
    return topic[:255 - len(tail)] + tail


def _storage_error(doing: str, e: OSError) -> KafkaError:
    log.error("%s failed: %s", doing, e)
    return KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"{doing} failed: {e.strerror or e}")


class LogManager:
    def __init__(self, data_dir: Path, defaults: LogConfig, *, node_id: int = 1, cluster_id: str | None = None,
                 hosts_every_partition: bool = True, clock: Clock = wall_clock_ms,
                 files: OpenFiles | None = None) -> None:
        """`files`: the open segment-file budget of every log here (the server sizes it from the
        descriptor limit; default: DEFAULT_CAPACITY)."""
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.files = files if files is not None else OpenFiles()
        self.defaults = defaults
        self.node_id = node_id
        # In a cluster the cluster id comes from ZooKeeper, and a broker hosts only the partitions
        # assigned to it (`host_partitions`); a single node makes its own id and hosts everything.
        self._cluster_id_given = cluster_id
        self._hosts_every_partition = hosts_every_partition
        self.cluster_id = ""
        self._topics: dict[str, TopicInfo] = {}
        self._topics_by_id: dict[uuid.UUID, TopicInfo] = {}  # Fetch v13+ names topics by id
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._checkpoint_lock = threading.Lock()
        self._dir_lock: int | None = None

    # -- start-up ----------------------------------------------------------------------------------

    def load(self) -> LogManager:
        """Lock the data dir and load it; a data dir that cannot be used or read raises DataDirError."""
        self._dir_lock = lock_data_dir(self.data_dir)
        try:
            return self._load()
        except OSError as e:  # e.g. a segment file that cannot be opened: the broker cannot start
            raise DataDirError(f"data directory {self.data_dir} cannot be loaded: {e}") from e

    def _load(self) -> LogManager:
        new = not (self.data_dir / META_PROPERTIES).exists()
        self._load_meta_properties()
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        clean = marker.exists()
        recovery_points = self._read_checkpoint(RECOVERY_POINT_CHECKPOINT)
        log_starts = self._read_checkpoint(LOG_START_OFFSET_CHECKPOINT)
        try:
            topics = load_topics(self.data_dir)
        except (ValueError, KeyError, TypeError) as e:  # json.JSONDecodeError is a ValueError
            topics = self._rebuild_topics(e)
        deleted_ids = self._finish_deletions()
        if any(t.topic_id in deleted_ids for t in topics.values()):
            topics = {name: t for name, t in topics.items() if t.topic_id not in deleted_ids}
            save_topics(self.data_dir, topics.values())
        self._set_topics(topics)
        self._set_aside_strays(deleted_ids)
        now_ms = self.clock()
        logs = {}
        for topic in topics.values():
            for partition in range(topic.partition_count):
                key = (topic.name, partition)
                if not self._hosts_every_partition and not (self.data_dir / f"{topic.name}-{partition}").is_dir():
                    continue
                logs[key] = self._open_log(topic, partition, now_ms, clean_shutdown=clean,
                                           recovery_point=recovery_points.get(key, 0),
                                           log_start_offset=log_starts.get(key, 0))
        self._logs = logs
        if clean:
            marker.unlink()
            fsync_dir(self.data_dir)
        log.info("loaded %d partitions of %d topics from %s (%s)", len(logs), len(topics), self.data_dir,
                 "a new data dir" if new else "clean shutdown" if clean else "unclean shutdown")
        return self

    def _load_meta_properties(self) -> None:
        path = self.data_dir / META_PROPERTIES
        try:
            properties: dict[str, str] | None = read_properties(path)
        except FileNotFoundError:
            properties = None
        given = self._cluster_id_given
        if properties is None:
            self.cluster_id = given or uuid_to_base64(new_topic_id())
            write_properties(path, {"version": "1", "node.id": str(self.node_id), "cluster.id": self.cluster_id})
            return
        stored = properties.get("node.id")
        if stored is not None and stored != str(self.node_id):
            raise DataDirError(f"{path}: stored node.id {stored} does not match the configured node.id {self.node_id}")
        cluster_id = properties.get("cluster.id", "")
        if given and _CLUSTER_ID.fullmatch(cluster_id) and cluster_id != given:
            raise DataDirError(f"{path}: the data dir belongs to cluster {cluster_id}, but ZooKeeper holds cluster "
                             f"{given}: wrong zookeeper.connect, or a data dir from another cluster")
        if not _CLUSTER_ID.fullmatch(cluster_id):
            self.cluster_id = given or uuid_to_base64(new_topic_id())
            log.warning("%s has no valid cluster.id (%r); writing a new one, %s", path, cluster_id, self.cluster_id)
            write_properties(path, {"version": "1", "node.id": str(self.node_id), "cluster.id": self.cluster_id})
            return
        self.cluster_id = cluster_id

    def _rebuild_topics(self, damage: Exception) -> dict[str, TopicInfo]:
        """topics.json is unreadable: rebuild the registry from the partition directories."""
        path = self.data_dir / TOPICS_FILE
        os.replace(path, path.with_name(path.name + ".damaged"))
        found: dict[str, dict[int, uuid.UUID | None]] = {}
        for entry in sorted(os.listdir(self.data_dir)):
            match = _PARTITION_DIR.fullmatch(entry)
            if match is None or not (self.data_dir / entry).is_dir():
                continue
            try:
                validate_topic_name(match["topic"])
            except KafkaError:
                continue
            found.setdefault(match["topic"], {})[int(match["partition"])] = read_partition_metadata(self.data_dir / entry)
        topics = {}
        for name, partitions in found.items():
            ids = {topic_id for topic_id in partitions.values() if topic_id is not None}
            if len(ids) > 1:
                log.warning("partition directories of %s name %d topic ids; leaving them to be set aside", name, len(ids))
                continue
            configs = {"cleanup.policy": "compact"} if name in INTERNAL_TOPICS else {}
            topics[name] = TopicInfo.of(name, ids.pop() if ids else new_topic_id(), max(partitions) + 1, configs)
        log.error("%s is unreadable (%s), kept as %s.damaged; rebuilt the registry from the partition "
                  "directories: %s; topic config overrides are lost and must be set again", path, damage,
                  path.name, ", ".join(f"{t.name} ({t.partition_count} partitions)" for t in topics.values()) or "none")
        save_topics(self.data_dir, topics.values())
        return topics

    def _read_checkpoint(self, name: str) -> dict[tuple[str, int], int]:
        try:
            return read_offsets(self.data_dir / name)
        except MalformedCheckpoint as e:
            log.warning("ignoring %s", e)
            return {}

    def _finish_deletions(self) -> set[uuid.UUID]:
        deleted = set()
        for entry in os.listdir(self.data_dir):
            match = _DELETE_DIR.fullmatch(entry)
            if match and (self.data_dir / entry).is_dir():
                deleted.add(uuid.UUID(hex=match["topic_id"]))
                shutil.rmtree(self.data_dir / entry)
            elif _REMOVED_DIR.fullmatch(entry) and (self.data_dir / entry).is_dir():
                shutil.rmtree(self.data_dir / entry)
        return deleted

    def _set_aside_strays(self, deleted_ids: set[uuid.UUID]) -> None:
        for entry in os.listdir(self.data_dir):
            match = _PARTITION_DIR.fullmatch(entry)
            path = self.data_dir / entry
            if match is None or not path.is_dir():
                continue
            topic = self._topics.get(match["topic"])
            topic_id = read_partition_metadata(path)
            if topic is not None and int(match["partition"]) < topic.partition_count and topic_id in (None, topic.topic_id):
                continue
            if topic_id in deleted_ids:  # a partition whose topic's deletion was committed
                shutil.rmtree(path)
            else:
                self._set_aside(path)

    def _set_aside(self, path: Path) -> None:
        stray = path.with_name(_dir_name_with_suffix(path.name, f".{uuid.uuid4().hex}-stray"))
        log.warning("partition directory %s belongs to no known topic; moved to %s", path, stray.name)
        os.rename(path, stray)

    def _open_log(self, topic: TopicInfo, partition: int, now_ms: int, *, clean_shutdown: bool,
                  recovery_point: int = 0, log_start_offset: int = 0) -> PartitionLog:
        config = LogConfig.from_topic_configs(topic.configs, self.defaults)
        return PartitionLog.open(self.data_dir / f"{topic.name}-{partition}", topic.name, partition, topic.topic_id,
                                 config, now_ms=now_ms, log_start_offset=log_start_offset,
                                 recovery_point=recovery_point, clean_shutdown=clean_shutdown,
                                 on_log_start_change=self._write_log_starts, files=self.files,
                                 clock=self.clock)

    # -- lookups -----------------------------------------------------------------------------------

    def topic(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def topics(self) -> list[TopicInfo]:
        return sorted(self._topics.values(), key=lambda t: t.name)

    def topic_names(self) -> list[str]:
        return sorted(self._topics)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return self._topics_by_id.get(topic_id)

    def get_log(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def all_logs(self) -> list[PartitionLog]:
        return list(self._logs.values())

    # -- topic changes -----------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int, configs: Mapping[str, str], topic_id: uuid.UUID | None = None,
                     validate_only: bool = False) -> TopicInfo:
        validate_topic_name(name)
        if name in self._topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        other = colliding_name(name, self._topics)
        if other is not None:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic '{name}' collides with existing topic: {other}")
        if partitions < 1:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        LogConfig.from_topic_configs(configs, self.defaults)
        if topic_id is not None and self.topic_by_id(topic_id) is not None:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic id {topic_id} is already in use.")
        topic = TopicInfo.of(name, topic_id or new_topic_id(), partitions, configs)
        if validate_only:
            return topic
        self._commit_topics({**self._topics, name: topic})
        self._open_partitions(topic, range(partitions), previous=None)
        log.info("created topic %s (%s) with %d partitions", name, topic.topic_id, partitions)
        return topic

    def create_partitions(self, name: str, new_total: int, validate_only: bool = False) -> TopicInfo:
        topic = self._existing(name)
        if new_total < topic.partition_count:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"Topic currently has {topic.partition_count} partitions, "
                                                           f"which is higher than the requested {new_total}.")
        if new_total == topic.partition_count:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {new_total} partitions.")
        grown = TopicInfo.of(name, topic.topic_id, new_total, topic.configs)
        if validate_only:
            return grown
        self._commit_topics({**self._topics, name: grown})
        self._open_partitions(grown, range(topic.partition_count, new_total), previous=topic)
        return grown

    def host_partitions(self, topic: TopicInfo, partitions: list[int]) -> None:
        """Cluster: know `topic` as the store has it, and host `partitions` of it here.

        A topic known under another id is deleted first (it was re-created while we were away);
        config changes apply to the open logs; partitions not yet here are created.
        """
        known = self._topics.get(topic.name)
        if known is not None and known.topic_id != topic.topic_id:
            self.delete_topic(topic.name)
            known = None
        if known != topic:
            self._commit_topics({**self._topics, topic.name: topic})
            if known is not None and known.configs != topic.configs:
                config = LogConfig.from_topic_configs(topic.configs, self.defaults)
                for plog in self._logs.values():
                    if plog.topic == topic.name:
                        plog.config = config
        missing = [p for p in partitions if (topic.name, p) not in self._logs]
        if missing:
            self._open_partitions(topic, missing, previous=known)

    def alter_topic_configs(self, name: str, configs: Mapping[str, str], validate_only: bool = False) -> TopicInfo:
        """Replace the topic's config overrides with `configs` (the whole set) and apply them."""
        topic = self._existing(name)
        config = LogConfig.from_topic_configs(configs, self.defaults)
        altered = TopicInfo.of(name, topic.topic_id, topic.partition_count, configs)
        if validate_only:
            return altered
        self._commit_topics({**self._topics, name: altered})
        for partition in range(topic.partition_count):
            self._logs[(name, partition)].config = config
        return altered

    def set_defaults(self, defaults: LogConfig) -> None:
        """New broker-wide topic defaults (a dynamic broker config changed): every partition's
        config is derived again, so a topic without its own override follows at once."""
        self.defaults = defaults
        configs = {name: LogConfig.from_topic_configs(topic.configs, defaults) for name, topic in self._topics.items()}
        for (name, _partition), plog in self._logs.items():
            plog.config = configs[name]

    def delete_topic(self, name: str) -> None:
        topic = self._existing(name)
        doomed = []
        try:
            for partition in range(topic.partition_count):
                source = self.data_dir / f"{name}-{partition}"
                target = self.data_dir / _dir_name_with_suffix(source.name, f".{topic.topic_id.hex}-delete")
                if source.exists():
                    os.rename(source, target)
                    doomed.append(target)
            fsync_dir(self.data_dir)
        except OSError as e:  # renamed dirs are deleted at the next start-up all the same
            raise _storage_error(f"deleting topic {name}", e) from e
        self._set_topics({n: t for n, t in self._topics.items() if n != name})
        self._logs = {key: plog for key, plog in self._logs.items() if key[0] != name}
        try:
            for path in doomed:  # the data first: on a full disk the registry needs the space
                for entry in os.listdir(path):
                    (path / entry).unlink()
            save_topics(self.data_dir, self._topics.values())
            for path in doomed:
                shutil.rmtree(path)
        except OSError as e:
            log.warning("topic %s is deleted, but cleaning up after it failed (%s); start-up finishes it", name, e)
            return
        log.info("deleted topic %s (%s)", name, topic.topic_id)

    def delete_partition(self, name: str, partition: int) -> None:
        """Cluster: stop hosting one partition of a topic still known here (its replica moved to other
        brokers). Renamed aside first, so that a crash midway leaves nothing start-up would open."""
        topic = self._existing(name)
        if self._logs.pop((name, partition), None) is None:
            return
        source = self.data_dir / f"{name}-{partition}"
        target = self.data_dir / _dir_name_with_suffix(source.name, f".{topic.topic_id.hex}-removed")
        try:
            if source.exists():
                os.rename(source, target)
                fsync_dir(self.data_dir)
        except OSError as e:
            raise _storage_error(f"deleting partition {name}-{partition}", e) from e
        try:
            if target.exists():
                shutil.rmtree(target)
        except OSError as e:
            log.warning("%s-%d is deleted, but cleaning up after it failed (%s); start-up finishes it", name,
                        partition, e)
            return
        log.info("deleted partition %s-%d (%s)", name, partition, topic.topic_id)

    def _existing(self, name: str) -> TopicInfo:
        topic = self._topics.get(name)
        if topic is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist.")
        return topic

    def _commit_topics(self, topics: dict[str, TopicInfo]) -> None:
        try:
            save_topics(self.data_dir, topics.values())
        except OSError as e:
            raise _storage_error(f"writing {TOPICS_FILE}", e) from e
        self._set_topics(topics)

    def _set_topics(self, topics: dict[str, TopicInfo]) -> None:
        self._topics = topics
        self._topics_by_id = {t.topic_id: t for t in topics.values()}

    def _open_partitions(self, topic: TopicInfo, partitions: range | list[int], *, previous: TopicInfo | None) -> None:
        """Create the new partitions' logs; if that fails on disk, undo the registry change (`previous`)."""
        now_ms = self.clock()
        logs = dict(self._logs)
        created = []
        try:
            for partition in partitions:
                path = self.data_dir / f"{topic.name}-{partition}"
                if path.exists():  # debris of an earlier life of this name
                    self._set_aside(path)
                created.append(path)
                logs[(topic.name, partition)] = self._open_log(topic, partition, now_ms, clean_shutdown=True)
        except OSError as e:
            for path in created:
                shutil.rmtree(path, ignore_errors=True)
            restored = {n: t for n, t in self._topics.items() if n != topic.name}
            if previous is not None:
                restored[topic.name] = previous
            try:
                self._commit_topics(restored)
            except KafkaError:  # start-up opens the partitions the registry names
                pass
            raise _storage_error(f"creating partitions of {topic.name}", e) from e
        self._logs = logs

    # -- maintenance -------------------------------------------------------------------------------

    def roll_idle_segments(self, now_ms: int) -> int:
        """Roll every active segment older than its segment.ms (see PartitionLog.roll_if_idle)."""
        return sum(plog.roll_if_idle(now_ms) for plog in self.all_logs())

    def delete_old_segments(self, now_ms: int) -> int:
        """Apply retention to every log (call every log.retention.check.interval.ms)."""
        return sum(plog.delete_old_segments(now_ms) for plog in self.all_logs())

    def checkpoint(self) -> None:
        """fsync rolled segments, then write both offset checkpoints (safe in a worker thread).

        A log whose fsync fails keeps its recovery point; the checkpoints are written regardless.
        """
        logs = self.all_logs()
        for plog in logs:
            try:
                plog.flush(plog.active_segment_base)
            except OSError:
                pass  # logged by the log; its recovery point did not move
        try:
            self._write_checkpoints(logs, recovery_points=True)
        except OSError as e:
            log.warning("could not write the offset checkpoints: %s; trying again at the next interval", e)

    def _write_log_starts(self) -> None:
        try:
            self._write_checkpoints(self.all_logs(), recovery_points=False)
        except OSError as e:
            log.warning("could not write %s: %s; trying again at the next checkpoint", LOG_START_OFFSET_CHECKPOINT, e)

    def _write_checkpoints(self, logs: list[PartitionLog], *, recovery_points: bool) -> None:
        with self._checkpoint_lock:
            if recovery_points:
                write_offsets(self.data_dir / RECOVERY_POINT_CHECKPOINT,
                              {(p.topic, p.partition): p.recovery_point for p in logs})
            write_offsets(self.data_dir / LOG_START_OFFSET_CHECKPOINT,
                          {(p.topic, p.partition): p.log_start_offset for p in logs})

    def shutdown(self) -> None:
        """Close every log cleanly, checkpoint, and write the clean-shutdown marker last.

        If any of it fails on disk, every log is still closed but no marker is written: the next
        start-up recovers the logs as after a crash.
        """
        logs = self.all_logs()
        failures = []
        for plog in logs:
            try:
                plog.close()
            except OSError as e:
                failures.append(f"{plog.topic}-{plog.partition}: {e}")
        self._logs = {}
        try:
            self._write_checkpoints(logs, recovery_points=True)
            if not failures:
                write_atomically(self.data_dir / CLEAN_SHUTDOWN_MARKER, b"")
        except OSError as e:
            failures.append(str(e))
        if self._dir_lock is not None:
            unlock_data_dir(self._dir_lock)
            self._dir_lock = None
        if failures:
            log.error("log manager shut down, not cleanly (the next start-up recovers the logs): %s",
                      "; ".join(failures[:5]))
            return
        log.info("log manager shut down cleanly")
