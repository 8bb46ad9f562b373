"""Values derived from the declarations, for round-trip, cross-check and fuzz tests.

`filled` builds a value with distinct, non-default data in every field (all fields, or only
those a version carries); `projected` is what a decoder must return for a version (fields the
version does not carry back at their defaults); `values` is the Hypothesis strategy.
"""
from __future__ import annotations

import itertools
import uuid
from typing import Any

from hypothesis import strategies as st

from kbroker.wire.messages import APIS
from kbroker.wire.schema import Api, Array, Field, Primitive, fields_of

INT_RANGES = {"int8": (-2**7, 2**7 - 1), "int16": (-2**15, 2**15 - 1), "int32": (-2**31, 2**31 - 1),
              "int64": (-2**63, 2**63 - 1), "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1)}


def every_version() -> list[tuple[Api, int]]:
    """(api, version) for every registered API and every version in its valid range."""
    return [(api, version) for api in APIS.values() for version in range(api.valid.low, api.valid.high + 1)]


def carried(f: Field, version: int, flexible: bool) -> bool:
    """Whether `version` puts the field on the wire (tagged fields only in flexible versions)."""
    return f.present_in(version) or (flexible and f.tagged_in(version))


def is_struct(type_: Any) -> bool:
    return not isinstance(type_, (Primitive, Array))


def default_of(f: Field) -> Any:
    return [] if isinstance(f.type, Array) and f.default == () else f.default


# -- deterministic: every field set, every value distinct ------------------------------------

def filled(cls: type, version: int | None = None, flexible: bool = True, *, nulls: bool = False) -> Any:
    """A value with every field (every field `version` carries, if given) off its default.

    Integers stay in 1..97 so they are also valid error codes and durations for kio. With
    ``nulls`` (and a version), every field that is nullable in that version is None.
    """
    return _fill(cls, version, flexible, nulls, itertools.count())


def _fill(cls: type, version: int | None, flexible: bool, nulls: bool, counter: itertools.count) -> Any:
    values = {}
    for f in fields_of(cls):
        if version is not None and not carried(f, version, flexible):
            continue
        if nulls and version is not None and version in f.nullable:
            values[f.name] = None
            continue
        values[f.name] = _fill_type(f.type, f.default, version, flexible, nulls, counter)
    return cls(**values)


def _fill_type(type_: Any, default: Any, version: int | None, flexible: bool, nulls: bool,
               counter: itertools.count) -> Any:
    if isinstance(type_, Array):
        return [_fill_type(type_.element, None, version, flexible, nulls, counter) for _ in range(2)]
    if is_struct(type_):
        return _fill(type_, version, flexible, nulls, counter)
    n = next(counter) % 97 + 1
    kind = type_.name
    if kind == "bool":
        return not default
    if kind in INT_RANGES:
        return n if n != default else n + 1
    if kind == "float64":
        return n + 0.5
    if kind == "string":
        return f"s{n}"
    if kind in ("bytes", "records"):
        return b"b%d" % n
    if kind == "uuid":
        return uuid.UUID(int=n)
    raise AssertionError(f"no filler for {kind}")


def projected(value: Any, version: int, flexible: bool) -> Any:
    """`value` as a decoder returns it for `version`: fields it does not carry at their defaults."""
    cls = type(value)
    values = {}
    for f in fields_of(cls):
        if not carried(f, version, flexible):
            values[f.name] = default_of(f)
            continue
        values[f.name] = _project_type(f.type, getattr(value, f.name), version, flexible)
    return cls(**values)


def _project_type(type_: Any, value: Any, version: int, flexible: bool) -> Any:
    if value is None:
        return None
    if isinstance(type_, Array):
        return [_project_type(type_.element, item, version, flexible) for item in value]
    if is_struct(type_):
        return projected(value, version, flexible)
    return value


# -- Hypothesis -----------------------------------------------------------------------------

def values(cls: type, version: int, flexible: bool, max_items: int = 2) -> st.SearchStrategy:
    """Values of `cls` with arbitrary data in the fields `version` carries."""
    fields = {f.name: _field_strategy(f, version, flexible, max_items)
              for f in fields_of(cls) if carried(f, version, flexible)}
    return st.builds(cls, **fields)


def _field_strategy(f: Field, version: int, flexible: bool, max_items: int) -> st.SearchStrategy:
    strategy = _type_strategy(f.type, version, flexible, max_items)
    return st.none() | strategy if version in f.nullable else strategy


def _type_strategy(type_: Any, version: int, flexible: bool, max_items: int) -> st.SearchStrategy:
    if isinstance(type_, Array):
        element = _type_strategy(type_.element, version, flexible, max_items)
        return st.lists(element, max_size=max_items)
    if is_struct(type_):
        return st.deferred(lambda: values(type_, version, flexible, max_items))
    kind = type_.name
    if kind in INT_RANGES:
        return st.integers(*INT_RANGES[kind])
    return {
        "bool": st.booleans(),
        "float64": st.floats(allow_nan=False),
        "string": st.text(max_size=8),
        "bytes": st.binary(max_size=8),
        "records": st.binary(max_size=16),
        "uuid": st.uuids(),
    }[kind]
