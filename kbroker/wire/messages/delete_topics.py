"""DeleteTopics (key 20): delete topics by name, or by name or topic id from v6."""
from kbroker.wire.schema import INT16, INT32, STRING, UUID, Field, api, array, struct

DeleteTopicState = struct("DeleteTopicState",
    Field("name", STRING, "6+", nullable="6+"),
    Field("topic_id", UUID, "6+"),
)
DeleteTopicsRequest = struct("DeleteTopicsRequest",
    Field("topics", array(DeleteTopicState), "6+"),
    Field("topic_names", array(STRING), "0-5"),
    Field("timeout_ms", INT32),
)

DeletableTopicResult = struct("DeletableTopicResult",
    Field("name", STRING, nullable="6+", default=""),
    Field("topic_id", UUID, "6+"),
    Field("error_code", INT16),
    Field("error_message", STRING, "5+", nullable="5+"),
)
DeleteTopicsResponse = struct("DeleteTopicsResponse",
    Field("throttle_time_ms", INT32, "1+"),
    Field("responses", array(DeletableTopicResult)),
)

DELETE_TOPICS = api(20, "DeleteTopics", request=DeleteTopicsRequest, response=DeleteTopicsResponse,
                    valid="0-6", flexible="4+")
