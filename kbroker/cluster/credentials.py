"""SCRAM credentials of a cluster: in ZooKeeper's `/config/users/<user>`, as Kafka keeps them, so
every broker authenticates every user (written through the MetaStore, read from its cache)."""
from __future__ import annotations

import logging

from kbroker.cluster.metastore import MetaStore
from kbroker.security.credentials import credential_from_text, credential_to_text
from kbroker.security.scram import HASHES, ScramCredential

log = logging.getLogger("kbroker.cluster")


class ClusterCredentialStore:
    def __init__(self, store: MetaStore) -> None:
        self._store = store

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        text = self._store.user_configs().get(user, {}).get(mechanism)
        if text is None:
            return None
        try:
            return credential_from_text(text)
        except (KeyError, ValueError):
            log.error("ignoring the unreadable %s credential of user %s in ZooKeeper", mechanism, user)
            return None

    def describe(self) -> dict[str, dict[str, ScramCredential]]:
        found: dict[str, dict[str, ScramCredential]] = {}
        for user, configs in self._store.user_configs().items():
            for mechanism in configs:
                credential = self.get(user, mechanism) if mechanism in HASHES else None
                if credential is not None:
                    found.setdefault(user, {})[mechanism] = credential
        return found

    async def alter(self, user: str, mechanism: str, credential: ScramCredential | None) -> bool:
        configs = dict(self._store.user_configs().get(user, {}))
        if credential is None:
            if configs.pop(mechanism, None) is None:
                return False
        else:
            configs[mechanism] = credential_to_text(credential)
        await self._store.set_user_configs(user, configs)
        return True
