"""Versions kio lacks (removed in Kafka 4.0) against kafka-python's hand-written legacy schemas.

kio is generated from Kafka 4.x specs, so ListOffsets v0, OffsetCommit v0-1, CreateTopics v0-1
and the like are missing there; real clients still send some of them (kcat: ListOffsets v2,
aiokafka: OffsetCommit v3) and librdkafka wants v0 advertised. kafka-python 3 keeps its old
per-version schemas in `kafka.protocol.old`: an independent source for exactly these versions.
"""
from __future__ import annotations

import importlib
import io
import pkgutil
import warnings
from typing import Any

import pytest

from kbroker.wire import codec
from kbroker.wire.messages import APIS
from kbroker.wire.schema import Api, Array, Primitive, fields_of

from .declared_values import filled
from .test_kio_crosscheck import kio_class


def legacy_classes() -> dict[str, type]:
    found = {}
    with warnings.catch_warnings():  # kafka-python loads its JSON with deprecated importlib calls
        warnings.simplefilter("ignore", DeprecationWarning)
        package = importlib.import_module("kafka.protocol.old")
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"kafka.protocol.old.{info.name}")
            found.update((name, obj) for name, obj in vars(module).items() if hasattr(obj, "SCHEMA"))
    return found


LEGACY = legacy_classes()
GAPS = [(api, version, side)
        for api in APIS.values()
        for version in range(api.valid.low, api.valid.high + 1)
        for side in ("request", "response")
        if kio_class(api, version, side) is None]
# kafka-python's own mistakes, each checked another way below.
LEGACY_ERRATA = {
    # Its DescribeLogDirsRequest_v0 has `partitions` as one int32, where Kafka's spec has []int32;
    # Kafka says v1 is the same as v0, and kio has v1.
    ("DescribeLogDirs", 0, "request"),
    # kafka-python never had WriteTxnMarkers (a broker-to-broker API); Kafka says v0 is v1 without
    # the flexible encoding, and kio has v1.
    ("WriteTxnMarkers", 0, "request"),
    ("WriteTxnMarkers", 0, "response"),
}
CASES = [(api, version, side, LEGACY[f"{api.name}{side.title()}_v{version}"]) for api, version, side in GAPS
         if (api.name, version, side) not in LEGACY_ERRATA]


def as_tuples(value: Any, version: int) -> tuple:
    """Our value in kafka-python's shape: a tuple per struct, in wire order."""
    return tuple(_as_tuples(f.type, getattr(value, f.name), version)
                 for f in fields_of(type(value)) if f.present_in(version))


def _as_tuples(type_: Any, value: Any, version: int) -> Any:
    if value is None:
        return None
    if isinstance(type_, Array):
        return [_as_tuples(type_.element, item, version) for item in value]
    if not isinstance(type_, Primitive):
        return as_tuples(value, version)
    return bytes(value) if type_.name == "records" else value


def test_every_version_kio_lacks_has_a_legacy_schema() -> None:
    assert len(CASES) + len(LEGACY_ERRATA) == len(GAPS) >= 30


@pytest.mark.parametrize("nulls", [False, True], ids=["filled", "nulls"])
def test_describe_log_dirs_v0_request_is_v1(nulls: bool) -> None:
    cls = APIS[35].request
    value = filled(cls, 0, False, nulls=nulls)
    assert bytes(codec.encode(cls, 0, False, value).buf) == bytes(codec.encode(cls, 1, False, value).buf)


@pytest.mark.parametrize("nulls", [False, True], ids=["filled", "nulls"])
@pytest.mark.parametrize(("api", "version", "side", "legacy"), CASES,
                         ids=[f"{api.name}-v{version}-{side}" for api, version, side, _ in CASES])
def test_values_cross_decode_with_kafka_python(api: Api, version: int, side: str, legacy: type,
                                               nulls: bool) -> None:
    cls = getattr(api, side)
    value = filled(cls, version, False, nulls=nulls)
    ours = bytes(codec.encode(cls, version, False, value).buf)

    stream = io.BytesIO(ours)
    assert legacy.SCHEMA.decode(stream) == as_tuples(value, version)
    assert stream.tell() == len(ours)
    assert legacy.SCHEMA.encode(as_tuples(value, version)) == ours
