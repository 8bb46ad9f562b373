"""The APIs this broker serves: handler and highest version, one line each."""
from __future__ import annotations

from kbroker.broker.dispatch import Route
from kbroker.broker.handlers.api_versions import handle_api_versions
from kbroker.broker.handlers.fetch import handle_fetch
from kbroker.broker.handlers.metadata import handle_metadata
from kbroker.broker.handlers.produce import handle_produce
from kbroker.wire.messages.api_versions import API_VERSIONS
from kbroker.wire.messages.fetch import FETCH
from kbroker.wire.messages.metadata import METADATA
from kbroker.wire.messages.produce import PRODUCE

ROUTES: list[Route] = [
    Route(PRODUCE, handle_produce, 11),
    Route(FETCH, handle_fetch, 17),
    Route(METADATA, handle_metadata, 12),
    Route(API_VERSIONS, handle_api_versions, 4),
]
