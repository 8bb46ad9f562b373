"""Topics: name rules, and the registry of names, ids, partition counts and config overrides.

Name rules (Kafka's Topic.validate): 1-249 characters from [a-zA-Z0-9._-], and not "." or "..".
A name must also not collide with an existing topic once '.' and '_' are taken as equal (Kafka
refuses those, as their metric names would clash).

The registry is `topics.json` in the data dir, replaced atomically (checkpoints.write_atomically);
writing it is the commit point of creating a topic, adding partitions and changing configs:
    {"version": 1, "topics": [{"name": "orders", "topic_id": "<base64url, 22 chars>",
                               "partitions": 3, "configs": {"retention.ms": "86400000"}}]}
"""
from __future__ import annotations

import json
import re
import types
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.checkpoints import uuid_from_base64, uuid_to_base64, write_atomically

TOPICS_FILE = "topics.json"
MAX_NAME_LENGTH = 249
# Kafka's internal topics: written by the broker itself, never by producers.
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


def validate_topic_name(name: str) -> None:
    if not name:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name cannot be \".\" or \"..\"")
    if len(name) > MAX_NAME_LENGTH:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, "
                         f"topic name: {name}")
    if not _LEGAL.fullmatch(name):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Topic name \"{name}\" is illegal, it contains a character other than ASCII "
                         "alphanumerics, '.', '_' and '-'")


def colliding_name(name: str, existing: Iterable[str]) -> str | None:
    """An existing topic `name` clashes with once '.' and '_' are taken as equal."""
    key = name.replace(".", "_")
    return next((other for other in existing if other != name and other.replace(".", "_") == key), None)


def new_topic_id() -> uuid.UUID:
    """A random id whose base64 form does not start with '-' (Kafka's Uuid.randomUuid)."""
    while True:
        topic_id = uuid.uuid4()
        if not uuid_to_base64(topic_id).startswith("-"):
            return topic_id


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partition_count: int
    configs: Mapping[str, str]  # the overrides, as given

    @classmethod
    def of(cls, name: str, topic_id: uuid.UUID, partition_count: int, configs: Mapping[str, str]) -> TopicInfo:
        return cls(name, topic_id, partition_count, types.MappingProxyType(dict(configs)))


def load_topics(data_dir: Path) -> dict[str, TopicInfo]:
    try:
        document = json.loads((data_dir / TOPICS_FILE).read_text())
    except FileNotFoundError:
        return {}
    if document.get("version") != 1:
        raise ValueError(f"{data_dir / TOPICS_FILE}: unknown version {document.get('version')!r}")
    return {t["name"]: TopicInfo.of(t["name"], uuid_from_base64(t["topic_id"]), t["partitions"], t["configs"])
            for t in document["topics"]}


def save_topics(data_dir: Path, topics: Iterable[TopicInfo]) -> None:
    document = {"version": 1, "topics": [
        {"name": t.name, "topic_id": uuid_to_base64(t.topic_id), "partitions": t.partition_count,
         "configs": dict(t.configs)} for t in sorted(topics, key=lambda t: t.name)]}
    write_atomically(data_dir / TOPICS_FILE, (json.dumps(document, indent=1) + "\n").encode())
