"""Client quotas of a cluster: in ZooKeeper's config entities, as Kafka keeps them
(`/config/users/<user>`, `/config/clients/<client id>`, `/config/users/<user>/clients/<client id>`,
`<default>` for a default: `{"version":1,"config":{"producer_byte_rate":"1048576"}}`), so a quota
set through any broker holds on every broker.

`settings` is the live mapping the quota managers read, as FileQuotaStore's: rebuilt in place
whenever the store reports a change. A user's znode holds its SCRAM credentials too: only quota
keys are written, merged into the znode.
"""
from __future__ import annotations

import logging

from kbroker.cluster.config_entities import quota_entity_of, quota_entity_path
from kbroker.cluster.metastore import MetaStore
from kbroker.security.quotas import QUOTA_KEYS, QuotaEntity

log = logging.getLogger("kbroker.cluster")


def _text(value: float) -> str:
    """Kafka writes the byte rates (longs) without a fraction; request_percentage is a double."""
    return str(int(value)) if value == int(value) else repr(value)


class ClusterQuotaStore:
    def __init__(self, store: MetaStore) -> None:
        self._store = store
        self._seen: object = None  # the store's mapping `settings` was last built from
        self.settings: dict[QuotaEntity, dict[str, float]] = {}
        self.refresh()

    def refresh(self) -> None:
        configs = self._store.entity_configs()
        if configs is self._seen:
            return
        self._seen = configs
        settings: dict[QuotaEntity, dict[str, float]] = {}
        for path, values in configs.items():
            entity = quota_entity_of(path)
            quotas = {}
            for key in QUOTA_KEYS:
                if key in values:
                    try:
                        quotas[key] = float(values[key])
                    except ValueError:
                        log.error("ignoring %s=%r of /config/%s: not a number", key, values[key], path)
            if entity is not None and quotas:
                settings[entity] = quotas
        self.settings.clear()  # in place: the quota managers share the dict
        self.settings.update(settings)

    async def replace(self, settings: dict[QuotaEntity, dict[str, float]]) -> None:
        """Write each entity whose quotas differ, then put what the store has in force."""
        for entity in sorted(set(settings) | set(self.settings), key=quota_entity_path):
            old, new = self.settings.get(entity, {}), settings.get(entity, {})
            if old != new:
                changes = {key: None if key not in new else _text(new[key]) for key in set(old) | set(new)
                           if old.get(key) != new.get(key)}
                await self._store.alter_entity_configs(quota_entity_path(entity), changes)
        self.refresh()
