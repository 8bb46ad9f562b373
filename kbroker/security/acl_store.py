"""Where ACL bindings live: `<data dir>/acls.json` on a single node (replaced atomically); in a
cluster, ZooKeeper (kbroker/cluster/acls.py, with the same `load` and `change`).

Each binding is stored by name (`{"resource_type": "TOPIC", "name": "orders", "pattern_type":
"LITERAL", "principal": "User:alice", "host": "*", "operation": "READ", "permission": "ALLOW"}`),
so the file reads like `kafka-acls --list`.
"""
from __future__ import annotations

import json
from pathlib import Path

from kbroker.log.checkpoints import write_atomically
from kbroker.security.acls import AclBinding, Operation, PatternType, Permission, ResourceType

ACLS_FILE = "acls.json"


class FileAclStore:
    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / ACLS_FILE

    def load(self) -> set[AclBinding]:
        if not self._path.exists():
            return set()
        return {AclBinding(ResourceType[entry["resource_type"]], entry["name"], PatternType[entry["pattern_type"]],
                           entry["principal"], entry["host"], Operation[entry["operation"]],
                           Permission[entry["permission"]])
                for entry in json.loads(self._path.read_text())}

    @staticmethod
    def problem(_binding: AclBinding) -> str | None:
        """Why this store cannot keep a binding: the file keeps any."""
        return None

    async def change(self, added: set[AclBinding], removed: set[AclBinding]) -> set[AclBinding]:
        """Store the changes durably; every binding there is then, to put in force."""
        current = self.load()
        bindings = (current - removed) | added
        if bindings != current:
            self.save(bindings)
        return bindings

    def save(self, bindings: set[AclBinding]) -> None:
        entries = sorted(({"resource_type": b.resource_type.name, "name": b.name, "pattern_type": b.pattern_type.name,
                           "principal": b.principal, "host": b.host, "operation": b.operation.name,
                           "permission": b.permission.name} for b in bindings),
                         key=lambda e: tuple(e.values()))
        write_atomically(self._path, json.dumps(entries, indent=1).encode())
