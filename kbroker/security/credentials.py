"""Where SCRAM credentials live, behind one small interface.

A single node keeps them in `<data dir>/scram-credentials.json` (replaced atomically: tmp, fsync,
rename), user -> mechanism -> salt, iterations, StoredKey, ServerKey in base64 — the same fields
Kafka keeps in ZooKeeper's `/config/users/<user>`. Never a password.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Protocol

from kbroker.log.checkpoints import write_atomically
from kbroker.security.scram import ScramCredential

CREDENTIALS_FILE = "scram-credentials.json"


class CredentialStore(Protocol):
    def get(self, user: str, mechanism: str) -> ScramCredential | None: ...

    def describe(self) -> dict[str, dict[str, ScramCredential]]: ...

    def upsert(self, user: str, mechanism: str, credential: ScramCredential) -> None: ...

    def delete(self, user: str, mechanism: str) -> bool: ...


class FileCredentialStore:
    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / CREDENTIALS_FILE
        self._users: dict[str, dict[str, ScramCredential]] = {}
        if self._path.exists():
            self._users = {user: {mechanism: _decode(fields) for mechanism, fields in mechanisms.items()}
                           for user, mechanisms in json.loads(self._path.read_text()).items()}

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        return self._users.get(user, {}).get(mechanism)

    def describe(self) -> dict[str, dict[str, ScramCredential]]:
        return {user: dict(mechanisms) for user, mechanisms in self._users.items()}

    def upsert(self, user: str, mechanism: str, credential: ScramCredential) -> None:
        self._users.setdefault(user, {})[mechanism] = credential
        self._save()

    def delete(self, user: str, mechanism: str) -> bool:
        if self._users.get(user, {}).pop(mechanism, None) is None:
            return False
        if not self._users[user]:
            del self._users[user]
        self._save()
        return True

    def _save(self) -> None:
        document = {user: {mechanism: _encode(credential) for mechanism, credential in mechanisms.items()}
                    for user, mechanisms in self._users.items()}
        write_atomically(self._path, json.dumps(document, indent=1, sort_keys=True).encode())


def _encode(credential: ScramCredential) -> dict[str, object]:
    return {"salt": base64.b64encode(credential.salt).decode(), "iterations": credential.iterations,
            "stored_key": base64.b64encode(credential.stored_key).decode(),
            "server_key": base64.b64encode(credential.server_key).decode()}


def _decode(fields: dict[str, object]) -> ScramCredential:
    return ScramCredential(base64.b64decode(str(fields["salt"])), int(fields["iterations"]),  # type: ignore[arg-type]
                           base64.b64decode(str(fields["stored_key"])), base64.b64decode(str(fields["server_key"])))
