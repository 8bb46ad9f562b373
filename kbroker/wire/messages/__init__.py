"""Every API kbroker can decode, by key. Each module declares one API family as data."""
from kbroker.wire.messages.alter_client_quotas import ALTER_CLIENT_QUOTAS
from kbroker.wire.messages.add_offsets_to_txn import ADD_OFFSETS_TO_TXN
from kbroker.wire.messages.add_partitions_to_txn import ADD_PARTITIONS_TO_TXN
from kbroker.wire.messages.alter_configs import ALTER_CONFIGS
from kbroker.wire.messages.alter_partition_reassignments import ALTER_PARTITION_REASSIGNMENTS
from kbroker.wire.messages.alter_user_scram_credentials import ALTER_USER_SCRAM_CREDENTIALS
from kbroker.wire.messages.api_versions import API_VERSIONS
from kbroker.wire.messages.consumer_group_describe import CONSUMER_GROUP_DESCRIBE
from kbroker.wire.messages.consumer_group_heartbeat import CONSUMER_GROUP_HEARTBEAT
from kbroker.wire.messages.create_acls import CREATE_ACLS
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
from kbroker.wire.schema import Api

APIS: dict[int, Api] = {a.key: a for a in (
    PRODUCE,
    FETCH,
    LIST_OFFSETS,
    METADATA,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    FIND_COORDINATOR,
    JOIN_GROUP,
    HEARTBEAT,
    LEAVE_GROUP,
    SYNC_GROUP,
    DESCRIBE_GROUPS,
    LIST_GROUPS,
    API_VERSIONS,
    CREATE_TOPICS,
    DELETE_TOPICS,
    DELETE_RECORDS,
    INIT_PRODUCER_ID,
    OFFSET_FOR_LEADER_EPOCH,
    DESCRIBE_CONFIGS,
    DESCRIBE_ACLS,
    CREATE_ACLS,
    DELETE_ACLS,
    DESCRIBE_CLIENT_QUOTAS,
    ALTER_CLIENT_QUOTAS,
    ALTER_CONFIGS,
    DESCRIBE_LOG_DIRS,
    CREATE_PARTITIONS,
    DELETE_GROUPS,
    ELECT_LEADERS,
    ALTER_PARTITION_REASSIGNMENTS,
    LIST_PARTITION_REASSIGNMENTS,
    INCREMENTAL_ALTER_CONFIGS,
    OFFSET_DELETE,
    DESCRIBE_CLUSTER,
    CONSUMER_GROUP_HEARTBEAT,
    CONSUMER_GROUP_DESCRIBE,
    SASL_HANDSHAKE,
    SASL_AUTHENTICATE,
    DESCRIBE_USER_SCRAM_CREDENTIALS,
    ALTER_USER_SCRAM_CREDENTIALS,
    ADD_PARTITIONS_TO_TXN,
    ADD_OFFSETS_TO_TXN,
    END_TXN,
    TXN_OFFSET_COMMIT,
    DESCRIBE_TRANSACTIONS,
    LIST_TRANSACTIONS,
    WRITE_TXN_MARKERS,
    DESCRIBE_PRODUCERS,
)}
