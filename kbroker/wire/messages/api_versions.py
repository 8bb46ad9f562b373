"""ApiVersions (key 18): which APIs and versions the broker speaks (KIP-35, KIP-511)."""
from kbroker.wire.schema import BOOL, INT16, INT32, INT64, STRING, Field, api, array, struct

ApiVersionsRequest = struct("ApiVersionsRequest",
    Field("client_software_name", STRING, "3+"),
    Field("client_software_version", STRING, "3+"),
)

ApiVersion = struct("ApiVersion",
    Field("api_key", INT16),
    Field("min_version", INT16),
    Field("max_version", INT16),
)
SupportedFeatureKey = struct("SupportedFeatureKey",
    Field("name", STRING, "3+"),
    Field("min_version", INT16, "3+"),
    Field("max_version", INT16, "3+"),
)
FinalizedFeatureKey = struct("FinalizedFeatureKey",
    Field("name", STRING, "3+"),
    Field("max_version_level", INT16, "3+"),
    Field("min_version_level", INT16, "3+"),
)
ApiVersionsResponse = struct("ApiVersionsResponse",
    Field("error_code", INT16),
    Field("api_keys", array(ApiVersion)),
    Field("throttle_time_ms", INT32, "1+"),
    # Tagged fields: left at their defaults they are not written, which librdkafka <= 2.1
    # (Debian's kcat, rsyslog, syslog-ng) needs: it cannot skip non-empty tags.
    Field("supported_features", array(SupportedFeatureKey), "3+", tag=0),
    Field("finalized_features_epoch", INT64, "3+", tag=1, default=-1),
    Field("finalized_features", array(FinalizedFeatureKey), "3+", tag=2),
    Field("zk_migration_ready", BOOL, "3+", tag=3),
)

API_VERSIONS = api(18, "ApiVersions", request=ApiVersionsRequest, response=ApiVersionsResponse,
                   valid="0-4", flexible="3+")
