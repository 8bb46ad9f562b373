"""The APIs this broker serves: API and handler, one line each.

The versions served are the API's own declaration (`Api.valid` in `kbroker.wire.messages`): the
wire declares only versions we implement in full, and every API is advertised from version 0
(see `dispatch`).
"""
from __future__ import annotations

from kbroker.broker.dispatch import Route
from kbroker.broker.handlers.acls import handle_create_acls, handle_delete_acls, handle_describe_acls
from kbroker.broker.handlers.api_versions import handle_api_versions
from kbroker.broker.handlers.client_quotas import handle_alter_client_quotas, handle_describe_client_quotas
from kbroker.broker.handlers.cluster import handle_describe_cluster, handle_find_coordinator
from kbroker.broker.handlers.configs import (
    handle_alter_configs,
    handle_describe_configs,
    handle_incremental_alter_configs,
)
from kbroker.broker.handlers.consumer_groups import handle_consumer_group_describe, handle_consumer_group_heartbeat
from kbroker.broker.handlers.describe_producers import handle_describe_producers
from kbroker.broker.handlers.elections import handle_elect_leaders
from kbroker.broker.handlers.fetch import handle_fetch
from kbroker.broker.handlers.groups import (
    handle_delete_groups,
    handle_describe_groups,
    handle_heartbeat,
    handle_join_group,
    handle_leave_group,
    handle_list_groups,
    handle_offset_commit,
    handle_offset_delete,
    handle_offset_fetch,
    handle_sync_group,
)
from kbroker.broker.handlers.init_producer_id import handle_init_producer_id
from kbroker.broker.handlers.leader_epochs import handle_offset_for_leader_epoch
from kbroker.broker.handlers.list_offsets import handle_list_offsets
from kbroker.broker.handlers.log_dirs import handle_describe_log_dirs
from kbroker.broker.handlers.metadata import handle_metadata
from kbroker.broker.handlers.produce import handle_produce
from kbroker.broker.handlers.reassignments import (
    handle_alter_partition_reassignments,
    handle_list_partition_reassignments,
)
from kbroker.broker.handlers.sasl import handle_sasl_authenticate, handle_sasl_handshake
from kbroker.broker.handlers.scram_credentials import (
    handle_alter_user_scram_credentials,
    handle_describe_user_scram_credentials,
)
from kbroker.broker.handlers.topics import (
    handle_create_partitions,
    handle_create_topics,
    handle_delete_records,
    handle_delete_topics,
)
from kbroker.broker.handlers.transactions import (
    handle_add_offsets_to_txn,
    handle_add_partitions_to_txn,
    handle_describe_transactions,
    handle_end_txn,
    handle_list_transactions,
    handle_txn_offset_commit,
)
from kbroker.broker.handlers.txn_markers import handle_write_txn_markers
from kbroker.wire.messages.add_offsets_to_txn import ADD_OFFSETS_TO_TXN
from kbroker.wire.messages.add_partitions_to_txn import ADD_PARTITIONS_TO_TXN
from kbroker.wire.messages.alter_client_quotas import ALTER_CLIENT_QUOTAS
from kbroker.wire.messages.alter_configs import ALTER_CONFIGS
from kbroker.wire.messages.alter_partition_reassignments import ALTER_PARTITION_REASSIGNMENTS
from kbroker.wire.messages.alter_user_scram_credentials import ALTER_USER_SCRAM_CREDENTIALS
from kbroker.wire.messages.api_versions import API_VERSIONS
from kbroker.wire.messages.create_acls import CREATE_ACLS
from kbroker.wire.messages.consumer_group_describe import CONSUMER_GROUP_DESCRIBE
from kbroker.wire.messages.consumer_group_heartbeat import CONSUMER_GROUP_HEARTBEAT
from kbroker.wire.messages.create_partitions import CREATE_PARTITIONS
from kbroker.wire.messages.create_topics import CREATE_TOPICS
from kbroker.wire.messages.delete_acls import DELETE_ACLS
from kbroker.wire.messages.delete_groups import DELETE_GROUPS
from kbroker.wire.messages.delete_records import DELETE_RECORDS
from kbroker.wire.messages.delete_topics import DELETE_TOPICS
from kbroker.wire.messages.describe_acls import DESCRIBE_ACLS
from kbroker.wire.messages.describe_client_quotas import DESCRIBE_CLIENT_QUOTAS
from kbroker.wire.messages.describe_cluster import DESCRIBE_CLUSTER
from kbroker.wire.messages.describe_configs import DESCRIBE_CONFIGS
from kbroker.wire.messages.describe_groups import DESCRIBE_GROUPS
from kbroker.wire.messages.describe_log_dirs import DESCRIBE_LOG_DIRS
from kbroker.wire.messages.describe_producers import DESCRIBE_PRODUCERS
from kbroker.wire.messages.describe_transactions import DESCRIBE_TRANSACTIONS
from kbroker.wire.messages.describe_user_scram_credentials import DESCRIBE_USER_SCRAM_CREDENTIALS
from kbroker.wire.messages.elect_leaders import ELECT_LEADERS
from kbroker.wire.messages.end_txn import END_TXN
from kbroker.wire.messages.fetch import FETCH
from kbroker.wire.messages.find_coordinator import FIND_COORDINATOR
from kbroker.wire.messages.heartbeat import HEARTBEAT
from kbroker.wire.messages.incremental_alter_configs import INCREMENTAL_ALTER_CONFIGS
from kbroker.wire.messages.init_producer_id import INIT_PRODUCER_ID
from kbroker.wire.messages.join_group import JOIN_GROUP
from kbroker.wire.messages.leave_group import LEAVE_GROUP
from kbroker.wire.messages.list_groups import LIST_GROUPS
from kbroker.wire.messages.list_offsets import LIST_OFFSETS
from kbroker.wire.messages.list_partition_reassignments import LIST_PARTITION_REASSIGNMENTS
from kbroker.wire.messages.list_transactions import LIST_TRANSACTIONS
from kbroker.wire.messages.metadata import METADATA
from kbroker.wire.messages.offset_commit import OFFSET_COMMIT
from kbroker.wire.messages.offset_delete import OFFSET_DELETE
from kbroker.wire.messages.offset_fetch import OFFSET_FETCH
from kbroker.wire.messages.offset_for_leader_epoch import OFFSET_FOR_LEADER_EPOCH
from kbroker.wire.messages.produce import PRODUCE
from kbroker.wire.messages.sasl_authenticate import SASL_AUTHENTICATE
from kbroker.wire.messages.sasl_handshake import SASL_HANDSHAKE
from kbroker.wire.messages.sync_group import SYNC_GROUP
from kbroker.wire.messages.txn_offset_commit import TXN_OFFSET_COMMIT
from kbroker.wire.messages.write_txn_markers import WRITE_TXN_MARKERS

ROUTES: list[Route] = [
    Route(PRODUCE, handle_produce),
    Route(FETCH, handle_fetch),
    Route(LIST_OFFSETS, handle_list_offsets),
    Route(METADATA, handle_metadata),
    Route(OFFSET_COMMIT, handle_offset_commit),
    Route(OFFSET_FETCH, handle_offset_fetch),
    Route(FIND_COORDINATOR, handle_find_coordinator),
    Route(JOIN_GROUP, handle_join_group),
    Route(HEARTBEAT, handle_heartbeat),
    Route(LEAVE_GROUP, handle_leave_group),
    Route(SYNC_GROUP, handle_sync_group),
    Route(DESCRIBE_GROUPS, handle_describe_groups),
    Route(LIST_GROUPS, handle_list_groups),
    Route(API_VERSIONS, handle_api_versions),
    Route(CREATE_TOPICS, handle_create_topics),
    Route(DELETE_TOPICS, handle_delete_topics),
    Route(DELETE_RECORDS, handle_delete_records),
    Route(INIT_PRODUCER_ID, handle_init_producer_id),
    Route(OFFSET_FOR_LEADER_EPOCH, handle_offset_for_leader_epoch),
    Route(ADD_PARTITIONS_TO_TXN, handle_add_partitions_to_txn),
    Route(ADD_OFFSETS_TO_TXN, handle_add_offsets_to_txn),
    Route(END_TXN, handle_end_txn),
    Route(TXN_OFFSET_COMMIT, handle_txn_offset_commit),
    Route(DESCRIBE_CONFIGS, handle_describe_configs),
    Route(ALTER_CONFIGS, handle_alter_configs),
    Route(DESCRIBE_LOG_DIRS, handle_describe_log_dirs),
    Route(CREATE_PARTITIONS, handle_create_partitions),
    Route(DELETE_GROUPS, handle_delete_groups),
    Route(ELECT_LEADERS, handle_elect_leaders),
    Route(INCREMENTAL_ALTER_CONFIGS, handle_incremental_alter_configs),
    Route(ALTER_PARTITION_REASSIGNMENTS, handle_alter_partition_reassignments),
    Route(LIST_PARTITION_REASSIGNMENTS, handle_list_partition_reassignments),
    Route(OFFSET_DELETE, handle_offset_delete),
    Route(DESCRIBE_CLUSTER, handle_describe_cluster),
    Route(CONSUMER_GROUP_HEARTBEAT, handle_consumer_group_heartbeat),
    Route(CONSUMER_GROUP_DESCRIBE, handle_consumer_group_describe),
    Route(SASL_HANDSHAKE, handle_sasl_handshake),
    Route(SASL_AUTHENTICATE, handle_sasl_authenticate),
    Route(DESCRIBE_USER_SCRAM_CREDENTIALS, handle_describe_user_scram_credentials),
    Route(ALTER_USER_SCRAM_CREDENTIALS, handle_alter_user_scram_credentials),
    Route(DESCRIBE_ACLS, handle_describe_acls),
    Route(CREATE_ACLS, handle_create_acls),
    Route(DELETE_ACLS, handle_delete_acls),
    Route(DESCRIBE_CLIENT_QUOTAS, handle_describe_client_quotas),
    Route(ALTER_CLIENT_QUOTAS, handle_alter_client_quotas),
    Route(DESCRIBE_TRANSACTIONS, handle_describe_transactions),
    Route(LIST_TRANSACTIONS, handle_list_transactions),
    Route(WRITE_TXN_MARKERS, handle_write_txn_markers),
    Route(DESCRIBE_PRODUCERS, handle_describe_producers),
]
