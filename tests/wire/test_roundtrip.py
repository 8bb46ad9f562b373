"""Every registered API, every valid version, request and response: encode, decode, compare."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.wire import codec, frames
from kbroker.wire.schema import Api, fields_of

from .declared_values import carried, default_of, every_version, filled, projected, values

CASES = every_version()
SIDES = ("request", "response")


def case_id(case: object) -> str:
    return f"{case.name}" if isinstance(case, Api) else f"v{case}"


def frame_round_trip(api: Api, version: int, side: str, value: object) -> object:
    """Through a whole frame (header included); asserts the frame is consumed exactly."""
    if side == "request":
        frame = memoryview(frames.encode_request(api, version, 7, "kbroker-test", value))[4:]
        header, decoded, used = frames.decode_request(frame, api, version)
        assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == \
            (api.key, version, 7, "kbroker-test")
    else:
        parts = frames.encode_response(api, version, 7, value)
        frame = memoryview(b"".join(bytes(part) for part in parts))[4:]
        correlation_id, decoded, used = frames.decode_response(frame, api, version)
        assert correlation_id == 7
    assert used == len(frame)
    return decoded


def assert_no_field_at_its_default(value: object, version: int, flexible: bool) -> None:
    """Self-check of the generator: a field left at its default would hide a codec bug."""
    for f in fields_of(type(value)):
        field_value = getattr(value, f.name)
        if not carried(f, version, flexible):
            continue
        assert field_value != default_of(f), f"{type(value).__name__}.{f.name}"
        for item in field_value if isinstance(field_value, list) else [field_value]:
            if hasattr(type(item), "__fields_decl__"):
                assert_no_field_at_its_default(item, version, flexible)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("api", "version"), CASES, ids=case_id)
def test_every_version_round_trips(api: Api, version: int, side: str) -> None:
    cls = getattr(api, side)
    flexible = api.is_flexible(version)

    value = filled(cls, version, flexible)
    assert_no_field_at_its_default(value, version, flexible)
    assert frame_round_trip(api, version, side, value) == value

    with_nulls = filled(cls, version, flexible, nulls=True)
    assert frame_round_trip(api, version, side, with_nulls) == with_nulls

    # Data in every field of every version: those this version lacks come back as defaults.
    everything = filled(cls)
    buf = codec.encode(cls, version, flexible, everything).buf
    decoded, used = codec.decode(cls, version, flexible, memoryview(bytes(buf)))
    assert used == len(buf)
    assert decoded == projected(everything, version, flexible)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_arbitrary_values_round_trip(data: st.DataObject) -> None:
    api, version = data.draw(st.sampled_from(CASES), label="api, version")
    side = data.draw(st.sampled_from(SIDES), label="side")
    value = data.draw(values(getattr(api, side), version, api.is_flexible(version)), label="value")
    assert frame_round_trip(api, version, side, value) == value
