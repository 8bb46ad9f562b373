"""Our declarations against kio's (generated from Kafka's JSON specs), for every version kio has.

kio omits the versions Kafka 4.0 removed (e.g. ListOffsets v0, OffsetCommit v0-1); those are
covered by the golden frames and the round-trip tests only.

Three checks per (API, version, request/response): the layouts agree field by field (names,
wire types, nullability, tags, explicit defaults); our bytes equal kio's bytes for the same
value; each side decodes the other's bytes to the same value.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib
import io
import re
import uuid
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.serial._introspect import (EntityField, EntityTupleField, PrimitiveTupleField, classify_field,
                                   is_optional)

from kbroker.wire import codec
from kbroker.wire.messages import APIS
from kbroker.wire.schema import Api, Array, Field, Primitive, fields_of

from .declared_values import filled

# kio turns Kafka's *Ms fields into timedelta/datetime and drops the "_ms" from their names.
KIO_TIME_TYPES = {"timedelta_i32": "int32", "timedelta_i64": "int64", "datetime_i64": "int64"}
KIO_WIRE_TYPES = {**KIO_TIME_TYPES, "error_code": "int16"}
ZERO_UUID = uuid.UUID(int=0)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def kio_class(api: Api, version: int, side: str) -> type | None:
    try:
        module = importlib.import_module(f"kio.schema.{snake(api.name)}.v{version}.{side}")
    except ModuleNotFoundError:
        return None
    return getattr(module, f"{api.name}{side.title()}")


CASES = [(api, version, side, kio_cls)
         for api in APIS.values()
         for version in range(api.valid.low, api.valid.high + 1)
         for side in ("request", "response")
         if (kio_cls := kio_class(api, version, side)) is not None]


def case_id(case: object) -> str:
    if isinstance(case, Api):
        return case.name
    if isinstance(case, type):
        return "kio"
    return f"v{case}" if isinstance(case, int) else str(case)


# -- the converter: our values <-> kio values -----------------------------------------------

def kio_type(kio_field: dataclasses.Field) -> str | None:
    return kio_field.metadata.get("kafka_type")


def our_name(kio_field: dataclasses.Field) -> str:
    return kio_field.name + "_ms" if kio_type(kio_field) in KIO_TIME_TYPES else kio_field.name


def to_kio(kio_cls: type, value: Any) -> Any:
    converted = {}
    for kf in dataclasses.fields(kio_cls):
        field_class = classify_field(kf)
        converted[kf.name] = _to_kio_value(kf, field_class, getattr(value, our_name(kf)))
    return kio_cls(**converted)


def _to_kio_value(kf: dataclasses.Field, field_class: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(field_class, (EntityTupleField, PrimitiveTupleField)):
        return tuple(_to_kio_item(kf, field_class.type_, item) for item in value)
    return _to_kio_item(kf, field_class.type_, value)


def _to_kio_item(kf: dataclasses.Field, item_type: type, value: Any) -> Any:
    if dataclasses.is_dataclass(item_type):
        return to_kio(item_type, value)
    kind = kio_type(kf)
    if kind in ("timedelta_i32", "timedelta_i64"):
        return datetime.timedelta(milliseconds=value)
    if kind == "datetime_i64":
        utc = datetime.timezone.utc
        return None if value == -1 else datetime.datetime.fromtimestamp(value / 1000, tz=utc)
    if kind == "error_code":
        return ErrorCode(value)
    return value


def from_kio(cls: type, kio_value: Any) -> Any:
    decls = {f.name: f for f in fields_of(cls)}
    converted = {}
    for kf in dataclasses.fields(kio_value):
        name = our_name(kf)
        converted[name] = _from_kio_value(decls[name].type, getattr(kio_value, kf.name))
    return cls(**converted)


def _from_kio_value(type_: Any, value: Any) -> Any:
    if isinstance(type_, Array):
        return None if value is None else [_from_kio_value(type_.element, item) for item in value]
    if not isinstance(type_, Primitive):
        return None if value is None else from_kio(type_, value)
    if type_.name == "uuid" and value is None:  # kio reads the zero UUID as None
        return ZERO_UUID
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    if value is None and type_.name == "int64":  # kio's nullable datetime: -1
        return -1
    if isinstance(value, ErrorCode):
        return value.value
    return value


# -- layout ----------------------------------------------------------------------------------

def our_kind(type_: Any) -> str:
    if isinstance(type_, Array):
        return "[]" + our_kind(type_.element)
    return type_.name if isinstance(type_, Primitive) else "struct"


def kio_kind(kf: dataclasses.Field) -> str:
    field_class = classify_field(kf)
    if isinstance(field_class, (EntityField, EntityTupleField)):
        kind = "struct"
    else:
        kind = KIO_WIRE_TYPES.get(kio_type(kf), kio_type(kf))
    return "[]" + kind if field_class.is_array else kind


def kio_default(kf: dataclasses.Field) -> Any:
    default = kf.default
    if kio_type(kf) == "datetime_i64" and default is None:
        return -1
    if isinstance(default, datetime.timedelta):
        return round(default.total_seconds() * 1000)
    if isinstance(default, ErrorCode):
        return default.value
    return default


def assert_same_layout(cls: type, kio_cls: type, version: int, flexible: bool, path: str) -> None:
    assert cls.__name__ == kio_cls.__name__, path
    ours = [f for f in fields_of(cls) if f.present_in(version)]
    ours_tagged = {f.tag: f for f in fields_of(cls) if flexible and f.tagged_in(version)}
    kio_fields = [kf for kf in dataclasses.fields(kio_cls) if "tag" not in kf.metadata]
    kio_tagged = {kf.metadata["tag"]: kf for kf in dataclasses.fields(kio_cls) if "tag" in kf.metadata}

    assert [f.name for f in ours] == [our_name(kf) for kf in kio_fields], path
    assert sorted(ours_tagged) == sorted(kio_tagged), f"{path}: tags"
    pairs = list(zip(ours, kio_fields)) + [(ours_tagged[tag], kio_tagged[tag]) for tag in ours_tagged]
    for f, kf in pairs:
        where = f"{path}.{f.name}"
        assert f.name == our_name(kf), where
        assert our_kind(f.type) == kio_kind(kf), where
        if kio_type(kf) not in ("uuid", "datetime_i64") and f.tag is None:
            assert (version in f.nullable) == is_optional(kf), f"{where}: nullable"
        _assert_same_default(f, kf, where)
        field_class = classify_field(kf)
        if isinstance(field_class, (EntityField, EntityTupleField)):
            element = f.type.element if isinstance(f.type, Array) else f.type
            assert_same_layout(element, field_class.type_, version, flexible, where)


def _assert_same_default(f: Field, kf: dataclasses.Field, where: str) -> None:
    if kf.default is dataclasses.MISSING or isinstance(f.type, Array) or kio_type(kf) == "uuid":
        return
    if not isinstance(f.type, Primitive):
        return  # struct defaults: kio builds one, we use None until set
    assert f.default == kio_default(kf), f"{where}: default"


@pytest.mark.parametrize(("api", "version", "side", "kio_cls"), CASES, ids=case_id)
def test_layout_matches_kio(api: Api, version: int, side: str, kio_cls: type) -> None:
    cls = getattr(api, side)
    assert_same_layout(cls, kio_cls, version, api.is_flexible(version), cls.__name__)


# -- values both ways ------------------------------------------------------------------------

def kio_encode(kio_cls: type, value: Any) -> bytes:
    out = io.BytesIO()
    entity_writer(kio_cls)(out, value)
    return out.getvalue()


@pytest.mark.parametrize(("api", "version", "side", "kio_cls"), CASES, ids=case_id)
def test_values_cross_decode_with_kio(api: Api, version: int, side: str, kio_cls: type) -> None:
    cls = getattr(api, side)
    flexible = api.is_flexible(version)
    for value in filled(cls, version, flexible), filled(cls, version, flexible, nulls=True):
        ours = bytes(codec.encode(cls, version, flexible, value).buf)
        read_by_kio, end = entity_reader(kio_cls)(ours, 0)
        assert end == len(ours)
        assert from_kio(cls, read_by_kio) == value

        theirs = kio_encode(kio_cls, to_kio(kio_cls, value))
        assert theirs == ours
        read_by_us, end = codec.decode(cls, version, flexible, memoryview(theirs))
        assert end == len(theirs)
        assert read_by_us == value


def test_kio_covers_most_versions() -> None:
    """Guards against a kio upgrade silently dropping the cross-check (e.g. a renamed module)."""
    assert len(CASES) >= 300
