"""The declaration language for Kafka messages: messages are data, codecs are derived.

A message is declared once, the way Kafka's JSON specs do it
(``clients/src/main/resources/common/message/*.json``)::

    PartitionData = struct("PartitionData",
        Field("index", INT32),
        Field("records", RECORDS, nullable="0+"),
    )
    ProduceRequest = struct("ProduceRequest",
        Field("transactional_id", STRING, "3+", nullable="3+"),
        Field("acks", INT16),
        Field("topic_data", array(TopicData)),
    )

`struct` returns a frozen, slotted dataclass whose instances are the decoded values; a field
absent from a version takes its default. `kbroker.wire.codec` compiles encoders and decoders
from these declarations for each (struct, version). An `Api` binds a request and a response
struct to an API key with Kafka's valid and flexible version ranges.

Defaults follow Kafka: 0 for numbers, False, "" and b"", an empty array, the zero UUID;
nullable fields without a declared default to None, a nested struct to one with default fields. Tagged fields (flexible versions only) are written only when
they differ from their default — which is also why ApiVersions answers carry none.
"""
from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Versions:
    """An inclusive version range; ``high`` None means open-ended ("3+")."""

    low: int
    high: int | None

    def __contains__(self, version: int) -> bool:
        return self.low <= version and (self.high is None or version <= self.high)

    @classmethod
    def parse(cls, spec: str) -> Versions:
        if spec == "none":
            return NO_VERSIONS
        match = re.fullmatch(r"(\d+)(\+|-(\d+))?", spec)
        if not match:
            raise ValueError(f"bad version range {spec!r}")
        low = int(match.group(1))
        if match.group(2) == "+":
            return cls(low, None)
        return cls(low, int(match.group(3)) if match.group(3) else low)


NO_VERSIONS = Versions(0, -1)


@dataclass(frozen=True, slots=True)
class Primitive:
    name: str
    default: Any


BOOL = Primitive("bool", False)
INT8 = Primitive("int8", 0)
INT16 = Primitive("int16", 0)
INT32 = Primitive("int32", 0)
INT64 = Primitive("int64", 0)
UINT16 = Primitive("uint16", 0)
UINT32 = Primitive("uint32", 0)
FLOAT64 = Primitive("float64", 0.0)
STRING = Primitive("string", "")
BYTES = Primitive("bytes", b"")
UUID = Primitive("uuid", uuid.UUID(int=0))
# Record batches: decoded as a zero-copy memoryview; encoded from bytes or any sized payload
# (Fetch answers carry file slices the server sends with sendfile, see codec.SizedPayload).
RECORDS = Primitive("records", None)


@dataclass(frozen=True, slots=True)
class Array:
    element: Any  # a Primitive or a struct class


def array(element: Any) -> Array:
    return Array(element)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: Any  # Primitive, Array or a struct class
    versions: Versions
    nullable: Versions
    tag: int | None
    tagged: Versions
    default: Any

    def __init__(self, name: str, type: Any, versions: str = "0+", *, nullable: str = "none",
                 tag: int | None = None, tagged: str | None = None, default: Any = dataclasses.MISSING):
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "type", type)
        set_(self, "versions", Versions.parse(versions))
        set_(self, "nullable", Versions.parse(nullable))
        set_(self, "tag", tag)
        set_(self, "tagged", Versions.parse(tagged or versions) if tag is not None else NO_VERSIONS)
        if default is dataclasses.MISSING:
            default = None if nullable != "none" else _type_default(type)
        set_(self, "default", default)

    def present_in(self, version: int) -> bool:
        return version in self.versions and self.tag is None

    def tagged_in(self, version: int) -> bool:
        return self.tag is not None and version in self.tagged


def _type_default(type_: Any) -> Any:
    if isinstance(type_, Primitive):
        return type_.default
    if isinstance(type_, Array):
        return ()  # replaced by an empty list per instance
    return type_()  # a nested struct: all of its fields at their defaults, as Kafka does


def struct(name: str, *fields: Field) -> type:
    """Declare a struct: returns a frozen dataclass carrying its field declarations."""
    specs = []
    for f in fields:
        if isinstance(f.type, Array) and f.default == ():
            spec = dataclasses.field(default_factory=list)
        else:
            spec = dataclasses.field(default=f.default)
        specs.append((f.name, Any, spec))
    # A docstring of our own: without one, dataclasses (3.11) builds it from inspect.signature,
    # a third of the cost of declaring the structs at start-up.
    doc = f"{name}({', '.join(f.name for f in fields)})"
    cls = dataclasses.make_dataclass(name, specs, namespace={"__doc__": doc}, frozen=True, slots=True)
    cls.__fields_decl__ = fields
    return cls


def fields_of(struct_cls: type) -> tuple[Field, ...]:
    return struct_cls.__fields_decl__


@dataclass(frozen=True, slots=True)
class Api:
    """One Kafka API: its key, request/response structs and Kafka's version ranges."""

    key: int
    name: str
    request: type
    response: type
    valid: Versions
    flexible: Versions

    def is_flexible(self, version: int) -> bool:
        return version in self.flexible

    def request_header_version(self, version: int) -> int:
        return 2 if self.is_flexible(version) else 1

    def response_header_version(self, version: int) -> int:
        # ApiVersions answers always use header v0 so a client can parse them before it
        # knows which versions the broker speaks (KIP-511).
        if self.key == 18:
            return 0
        return 1 if self.is_flexible(version) else 0


def api(key: int, name: str, *, request: type, response: type, valid: str, flexible: str) -> Api:
    return Api(key, name, request, response, Versions.parse(valid), Versions.parse(flexible))
