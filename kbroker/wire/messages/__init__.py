"""Every API kbroker can decode, by key. Each module declares one API family as data."""
from kbroker.wire.messages.api_versions import API_VERSIONS
from kbroker.wire.messages.fetch import FETCH
from kbroker.wire.messages.metadata import METADATA
from kbroker.wire.messages.produce import PRODUCE
from kbroker.wire.schema import Api

APIS: dict[int, Api] = {a.key: a for a in (
    PRODUCE,
    FETCH,
    METADATA,
    API_VERSIONS,
)}
