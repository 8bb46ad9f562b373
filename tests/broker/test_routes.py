"""Each API's version range is written once, in its wire declaration: the routes, the version
check and the ApiVersions answer all read `Api.valid`, so a route cannot serve a version its
codec was not declared for."""
from __future__ import annotations

import dataclasses

import pytest

from kbroker.broker.dispatch import Dispatcher, Route
from kbroker.broker.handlers.api_versions import handle_api_versions
from kbroker.broker.routes import ROUTES
from kbroker.wire.messages import APIS
from kbroker.wire.messages.api_versions import API_VERSIONS
from kbroker.wire.schema import Versions


def test_each_route_serves_the_api_the_wire_declares_for_its_key() -> None:
    keys = [route.api.key for route in ROUTES]
    assert len(keys) == len(set(keys))
    for route in ROUTES:
        assert route.api is APIS[route.api.key], route.api.name


def test_api_versions_advertises_each_declared_range_from_0() -> None:
    advertised = Dispatcher(None, ROUTES).advertised()  # type: ignore[arg-type]
    served = sorted(route.api.key for route in ROUTES)
    assert [(v.api_key, v.min_version, v.max_version) for v in advertised] == \
        [(key, 0, APIS[key].valid.high) for key in served]


@pytest.mark.parametrize("valid", [Versions(1, 4), Versions(0, None)], ids=["not-from-0", "open-ended"])
def test_a_route_whose_declared_range_cannot_be_advertised_is_refused(valid: Versions) -> None:
    api = dataclasses.replace(API_VERSIONS, valid=valid)
    with pytest.raises(ValueError, match="ApiVersions"):
        Dispatcher(None, [Route(api, handle_api_versions)])  # type: ignore[arg-type]
