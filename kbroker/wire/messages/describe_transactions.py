"""DescribeTransactions (key 65): the coordinator's view of transactional ids."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, array, struct

DescribeTransactionsRequest = struct("DescribeTransactionsRequest",
    Field("transactional_ids", array(STRING)),
)
TopicData = struct("TopicData",
    Field("topic", STRING),
    Field("partitions", array(INT32)),
)
TransactionState = struct("TransactionState",
    Field("error_code", INT16),
    Field("transactional_id", STRING),
    Field("transaction_state", STRING),
    Field("transaction_timeout_ms", INT32),
    Field("transaction_start_time_ms", INT64),
    Field("producer_id", INT64),
    Field("producer_epoch", INT16),
    Field("topics", array(TopicData)),
)
DescribeTransactionsResponse = struct("DescribeTransactionsResponse",
    Field("throttle_time_ms", INT32),
    Field("transaction_states", array(TransactionState)),
)

DESCRIBE_TRANSACTIONS = api(65, "DescribeTransactions", request=DescribeTransactionsRequest,
                            response=DescribeTransactionsResponse, valid="0", flexible="0+")
