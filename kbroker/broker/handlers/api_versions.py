"""ApiVersions: the APIs and version ranges this broker serves."""
from __future__ import annotations

from kbroker.broker.dispatch import RequestContext
from kbroker.wire.messages.api_versions import ApiVersionsRequest, ApiVersionsResponse


def handle_api_versions(ctx: RequestContext, request: ApiVersionsRequest) -> ApiVersionsResponse:
    # No top-level tagged fields (features, epochs): librdkafka <= 2.1 cannot skip them.
    return ApiVersionsResponse(error_code=0, api_keys=ctx.broker.dispatcher.advertised())
