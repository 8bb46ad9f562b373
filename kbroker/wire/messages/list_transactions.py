"""ListTransactions (key 66): the transactional ids a coordinator owns, filtered."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, array, struct

ListTransactionsRequest = struct("ListTransactionsRequest",
    Field("state_filters", array(STRING)),
    Field("producer_id_filters", array(INT64)),
    Field("duration_filter", INT64, "1+", default=-1),  # v1: only those open longer than this (ms)
)
TransactionState = struct("TransactionState",
    Field("transactional_id", STRING),
    Field("producer_id", INT64),
    Field("transaction_state", STRING),
)
ListTransactionsResponse = struct("ListTransactionsResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    Field("unknown_state_filters", array(STRING)),
    Field("transaction_states", array(TransactionState)),
)

LIST_TRANSACTIONS = api(66, "ListTransactions", request=ListTransactionsRequest, response=ListTransactionsResponse,
                        valid="0-1", flexible="0+")
