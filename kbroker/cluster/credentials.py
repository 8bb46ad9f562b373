"""SCRAM credentials of a cluster: in ZooKeeper's `/config/users/<user>`, as Kafka keeps them, so
every broker authenticates every user (written through the MetaStore, read from its cache). The
znode holds the user's quotas too: a credential is merged in, never written over them."""
from __future__ import annotations

import logging

from kbroker.cluster.config_entities import user_entity, user_of_entity
from kbroker.cluster.metastore import MetaStore
from kbroker.security.credentials import credential_from_text, credential_to_text
from kbroker.security.scram import HASHES, ScramCredential

log = logging.getLogger("kbroker.cluster")


class ClusterCredentialStore:
    def __init__(self, store: MetaStore) -> None:
        self._store = store

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        text = self._store.entity_configs().get(user_entity(user), {}).get(mechanism)
        return None if text is None else self._parse(user, mechanism, text)

    @staticmethod
    def _parse(user: str, mechanism: str, text: str) -> ScramCredential | None:
        try:
            return credential_from_text(text)
        except (KeyError, ValueError):
            log.error("ignoring the unreadable %s credential of user %s in ZooKeeper", mechanism, user)
            return None

    def describe(self) -> dict[str, dict[str, ScramCredential]]:
        found: dict[str, dict[str, ScramCredential]] = {}
        for entity, configs in self._store.entity_configs().items():
            user = user_of_entity(entity)
            for mechanism, text in configs.items():
                credential = self._parse(user, mechanism, text) if user is not None and mechanism in HASHES else None
                if credential is not None:
                    found.setdefault(user, {})[mechanism] = credential
        return found

    async def alter(self, user: str, mechanism: str, credential: ScramCredential | None) -> bool:
        if credential is None and mechanism not in self._store.entity_configs().get(user_entity(user), {}):
            return False
        await self._store.alter_entity_configs(
            user_entity(user), {mechanism: None if credential is None else credential_to_text(credential)})
        return True
