"""WriteTxnMarkers (key 27): the transaction coordinator has partition leaders write COMMIT / ABORT markers."""
from kbroker.wire.schema import BOOL, INT16, INT32, INT64, STRING, Field, api, array, struct

WritableTxnMarkerTopic = struct("WritableTxnMarkerTopic",
    Field("name", STRING),
    Field("partition_indexes", array(INT32)),
)
WritableTxnMarker = struct("WritableTxnMarker",
    Field("producer_id", INT64),
    Field("producer_epoch", INT16),
    Field("transaction_result", BOOL),  # False: ABORT, True: COMMIT
    Field("topics", array(WritableTxnMarkerTopic)),
    Field("coordinator_epoch", INT32),
)
WriteTxnMarkersRequest = struct("WriteTxnMarkersRequest",
    Field("markers", array(WritableTxnMarker)),
)

WritableTxnMarkerPartitionResult = struct("WritableTxnMarkerPartitionResult",
    Field("partition_index", INT32),
    Field("error_code", INT16),
)
WritableTxnMarkerTopicResult = struct("WritableTxnMarkerTopicResult",
    Field("name", STRING),
    Field("partitions", array(WritableTxnMarkerPartitionResult)),
)
WritableTxnMarkerResult = struct("WritableTxnMarkerResult",
    Field("producer_id", INT64),
    Field("topics", array(WritableTxnMarkerTopicResult)),
)
WriteTxnMarkersResponse = struct("WriteTxnMarkersResponse",
    Field("markers", array(WritableTxnMarkerResult)),
)

WRITE_TXN_MARKERS = api(27, "WriteTxnMarkers", request=WriteTxnMarkersRequest, response=WriteTxnMarkersResponse,
                        valid="0-1", flexible="1+")
