"""Where SCRAM credentials live, behind one small interface.

Each credential is kept as Kafka writes it into ZooKeeper's `/config/users/<user>`:
`salt=<base64>,stored_key=<base64>,server_key=<base64>,iterations=<n>` under its mechanism's
name — never a password. A single node keeps them in `<data dir>/scram-credentials.json`
(user -> mechanism -> that text), replaced atomically (tmp, fsync, rename); a cluster keeps
them in ZooKeeper, shared by every broker (kbroker/cluster/credentials.py).
"""
from __future__ import annotations

import asyncio
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

    async def alter(self, user: str, mechanism: str, credential: ScramCredential | None) -> bool:
        """Set (or with None delete) one credential; False: there was none to delete."""


def credential_to_text(credential: ScramCredential) -> str:
    return (f"salt={base64.b64encode(credential.salt).decode()},"
            f"stored_key={base64.b64encode(credential.stored_key).decode()},"
            f"server_key={base64.b64encode(credential.server_key).decode()},iterations={credential.iterations}")


def credential_from_text(text: str) -> ScramCredential:
    """ValueError (or KeyError) for text that is not a credential."""
    fields = dict(item.split("=", 1) for item in text.split(","))
    return ScramCredential(base64.b64decode(fields["salt"], validate=True), int(fields["iterations"]),
                           base64.b64decode(fields["stored_key"], validate=True),
                           base64.b64decode(fields["server_key"], validate=True))


class FileCredentialStore:
    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / CREDENTIALS_FILE
        self._users: dict[str, dict[str, ScramCredential]] = {}
        self._writing = asyncio.Lock()
        if self._path.exists():
            self._users = {user: {mechanism: credential_from_text(text) for mechanism, text in mechanisms.items()}
                           for user, mechanisms in json.loads(self._path.read_text()).items()}

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        return self._users.get(user, {}).get(mechanism)

    def describe(self) -> dict[str, dict[str, ScramCredential]]:
        return {user: dict(mechanisms) for user, mechanisms in self._users.items()}

    async def alter(self, user: str, mechanism: str, credential: ScramCredential | None) -> bool:
        if not self._change(user, mechanism, credential):
            return False
        async with self._writing:  # one write at a time, each of the latest state
            await asyncio.to_thread(write_atomically, self._path, self._document())
        return True

    def set(self, user: str, mechanism: str, credential: ScramCredential | None) -> bool:
        """`alter` for a data dir no broker runs on (`kbroker scram-user`)."""
        if not self._change(user, mechanism, credential):
            return False
        write_atomically(self._path, self._document())
        return True

    def _change(self, user: str, mechanism: str, credential: ScramCredential | None) -> bool:
        if credential is not None:
            self._users.setdefault(user, {})[mechanism] = credential
            return True
        if self._users.get(user, {}).pop(mechanism, None) is None:
            return False
        if not self._users[user]:
            del self._users[user]
        return True

    def _document(self) -> bytes:
        document = {user: {mechanism: credential_to_text(credential) for mechanism, credential in mechanisms.items()}
                    for user, mechanisms in self._users.items()}
        return json.dumps(document, indent=1, sort_keys=True).encode()
