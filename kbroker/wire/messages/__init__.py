"""Every API kbroker can decode, by key. Each module declares one API family as data."""
from kbroker.wire.messages.api_versions import API_VERSIONS
from kbroker.wire.messages.produce import PRODUCE
from kbroker.wire.schema import Api

APIS: dict[int, Api] = {a.key: a for a in (PRODUCE, API_VERSIONS)}
