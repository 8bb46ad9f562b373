"""Config entities as Kafka names them in ZooKeeper, below /config: `users/<user>`,
`clients/<client id>`, `users/<user>/clients/<client id>` and `brokers/<broker id>` (dynamic
broker configs, KIP-226).

Names are sanitized as Kafka's Sanitizer does (URL-encoded: `a b` -> `a%20b`, `*` -> `%2A`), so any
user or client id makes one znode name; `<default>`, which no sanitized name can be, is the
default entity a quota or a dynamic broker config can be set on.
"""
from __future__ import annotations

from urllib.parse import quote, unquote

from kbroker.security.quotas import QuotaEntity

DEFAULT_ENTITY = "<default>"


def sanitize(name: str) -> str:
    return quote(name, safe="").replace("~", "%7E")  # Java's URLEncoder escapes ~ too


def desanitize(name: str) -> str:
    return unquote(name)


def is_entity(entity: str) -> bool:
    parts = entity.split("/")
    return (len(parts) in (2, 4) and all(parts[1::2]) and parts[0] in ("users", "clients", "brokers")
            and (len(parts) == 2 or (parts[0], parts[2]) == ("users", "clients")))


def broker_entity(name: str) -> str:
    """`name`: a broker id, or `<default>` for the cluster-wide default."""
    return f"brokers/{name}"


def broker_of_entity(entity: str) -> str | None:
    """The broker id (or `<default>`) a `brokers/...` entity is for; None for any other entity."""
    kind, _, name = entity.partition("/")
    return name if kind == "brokers" and "/" not in name else None


def user_entity(user: str) -> str:
    return f"users/{sanitize(user)}"


def user_of_entity(entity: str) -> str | None:
    """The user a `users/<user>` entity is for (None for any other entity)."""
    kind, _, name = entity.partition("/")
    return desanitize(name) if kind == "users" and "/" not in name and name != DEFAULT_ENTITY else None


def quota_entity_path(entity: QuotaEntity) -> str:
    def name(value: str | None) -> str:
        return DEFAULT_ENTITY if value is None else sanitize(value)
    if entity.has_user and entity.has_client:
        return f"users/{name(entity.user)}/clients/{name(entity.client_id)}"
    return f"users/{name(entity.user)}" if entity.has_user else f"clients/{name(entity.client_id)}"


def quota_entity_of(path: str) -> QuotaEntity | None:
    if not is_entity(path) or broker_of_entity(path) is not None:
        return None
    parts = [None if part == DEFAULT_ENTITY else desanitize(part) for part in path.split("/")[1::2]]
    if len(parts) == 2:
        return QuotaEntity(True, parts[0], True, parts[1])
    return QuotaEntity(True, parts[0], False, None) if path.startswith("users/") else QuotaEntity(False, None, True,
                                                                                                  parts[0])
