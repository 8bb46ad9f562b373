"""Where client quotas live: `<data dir>/client-quotas.json` on a single node (replaced atomically).

Entries read like Kafka's `/config/users/<user>/clients/<client-id>` znodes: `{"entity": {"user":
"alice", "client-id": null}, "quotas": {"producer_byte_rate": 1048576}}`, null being `<default>`.
`settings` is the live mapping the quota managers read; `replace` writes a new one and puts it in force.
In a cluster they live in ZooKeeper instead (kbroker/cluster/client_quotas.py, the same two members).
"""
from __future__ import annotations

import json
from pathlib import Path

from kbroker.log.checkpoints import write_atomically
from kbroker.security.quotas import QuotaEntity

QUOTAS_FILE = "client-quotas.json"


class FileQuotaStore:
    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / QUOTAS_FILE
        self.settings: dict[QuotaEntity, dict[str, float]] = {}
        if self._path.exists():
            for entry in json.loads(self._path.read_text()):
                self.settings[QuotaEntity.of(entry["entity"].items())] = dict(entry["quotas"])

    async def replace(self, settings: dict[QuotaEntity, dict[str, float]]) -> None:
        """Write the new settings, then put them in force (in place: the quota managers share the dict)."""
        kept = {entity: quotas for entity, quotas in settings.items() if quotas}
        entries = [{"entity": dict(entity.components()), "quotas": quotas} for entity, quotas in kept.items()]
        write_atomically(self._path, json.dumps(entries, indent=1).encode())
        self.settings.clear()
        self.settings.update(kept)
