"""Dynamic broker configs (KIP-226): the one live `Config` every part of the broker reads.

`DynamicBrokerConfig.current` is the config in force. A change (Alter/IncrementalAlterConfigs on a
BROKER resource, or another broker's change seen in ZooKeeper) is checked by the key declarations
(`Config.with_dynamic`), persisted, then put in force: `current` is replaced and each subscriber
(the log manager's topic defaults, the acceptor's connection limits) gets the new config. The
other services read only read-only keys, so the config they were built with cannot go stale.

Where the settings live, by entity as Kafka names them (`<default>` the cluster default, else a
broker id):
- single node: `<data dir>/dynamic-broker-configs.json`, `{"<default>": {"log.retention.ms":
  "3600000"}, "1": {...}}`, replaced atomically;
- cluster: ZooKeeper's `/config/brokers/<default>` and `/config/brokers/<id>`
  (`{"version":1,"config":{...}}`), so a default set through any broker holds on every broker.
"""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Callable, Mapping

from kbroker.cluster.config_entities import DEFAULT_ENTITY, broker_entity, broker_of_entity
from kbroker.cluster.metastore import MetaStore
from kbroker.config import Config, ConfigError
from kbroker.log.checkpoints import write_atomically

log = logging.getLogger("kbroker.config")

DYNAMIC_CONFIGS_FILE = "dynamic-broker-configs.json"

Settings = Mapping[str, Mapping[str, str]]  # entity name (`<default>` or a broker id) -> key -> text


class FileDynamicConfigs:
    def __init__(self, data_dir: Path) -> None:
        self._path = Path(data_dir) / DYNAMIC_CONFIGS_FILE

    def load(self) -> Settings:
        """ConfigError for a file that is not the JSON this class writes (edited by hand)."""
        if not self._path.exists():
            return {}
        try:
            stored = json.loads(self._path.read_text())
            return {str(entity): {str(key): str(value) for key, value in values.items()}
                    for entity, values in stored.items()}
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"{self._path} is not a JSON object of objects: {exc}") from exc

    async def write(self, entity: str, configs: Mapping[str, str]) -> None:
        settings = {**self.load(), entity: dict(configs)}
        kept = {name: values for name, values in settings.items() if values}
        write_atomically(self._path, json.dumps(kept, indent=1, sort_keys=True).encode())


class ClusterDynamicConfigs:
    def __init__(self, store: MetaStore) -> None:
        self._store = store

    def load(self) -> Settings:
        return {name: dict(values) for entity, values in self._store.entity_configs().items()
                if (name := broker_of_entity(entity)) is not None}

    async def write(self, entity: str, configs: Mapping[str, str]) -> None:
        old = self.load().get(entity, {})
        changes = {key: configs.get(key) for key in {*old, *configs} if old.get(key) != configs.get(key)}
        await self._store.alter_entity_configs(broker_entity(entity), changes)


def _in_force(config: Config, settings: Settings) -> Config:
    return config.with_dynamic(settings.get(str(config.node_id), {}), settings.get(DEFAULT_ENTITY, {}))


def load_dynamic(config: Config) -> Config:
    """Single node: `config` with the dynamic settings of the data dir in force, before the logs
    load (a cluster's arrive with the first ZooKeeper watches: `refresh`). Settings that do not
    apply (a key no longer dynamic, a bad value) are logged and left out, as Kafka does, rather
    than keeping the broker from starting."""
    try:
        return _in_force(config, FileDynamicConfigs(config.data_dir).load())
    except ConfigError as exc:
        log.error("dynamic broker configs not applied: %s", exc)
        return config


class DynamicBrokerConfig:
    def __init__(self, config: Config, store: MetaStore | None) -> None:
        self.current = config
        self._store = FileDynamicConfigs(config.data_dir) if store is None else ClusterDynamicConfigs(store)
        self._subscribers: list[Callable[[Config], None]] = []
        self._altering = asyncio.Lock()  # two alters of one entity must not both start from the old set
        self._refused: Settings | None = None  # what the store had when it last did not apply: logged once

    def subscribe(self, on_change: Callable[[Config], None]) -> None:
        self._subscribers.append(on_change)

    def _entity_settings(self, entity: str) -> dict[str, str]:
        config = self.current
        return dict(config.dynamic_default if entity == DEFAULT_ENTITY else config.dynamic_broker)

    async def alter(self, entity: str, change: Callable[[dict[str, str]], dict[str, str]],
                    validate_only: bool) -> None:
        """Replace the entity's settings by `change(its settings)`; ConfigError if they do not
        apply. `entity`: `<default>` or this broker's id."""
        async with self._altering:
            settings = change(self._entity_settings(entity))
            config = self.current
            per_broker = settings if entity != DEFAULT_ENTITY else config.dynamic_broker
            default = settings if entity == DEFAULT_ENTITY else config.dynamic_default
            updated = config.with_dynamic(per_broker, default)
            if validate_only:
                return
            await self._store.write(entity, settings)
            self._put_in_force(updated)

    def refresh(self) -> None:
        """Cluster: put what ZooKeeper has now (changed through any broker) in force here."""
        config = self.current
        settings = self._store.load()
        if settings == self._refused or (dict(settings.get(str(config.node_id), {})) == config.dynamic_broker
                                         and dict(settings.get(DEFAULT_ENTITY, {})) == config.dynamic_default):
            return
        try:
            self._put_in_force(_in_force(config, settings))
        except ConfigError as exc:
            self._refused = settings
            log.error("dynamic broker configs %s not applied: %s", settings, exc)

    def replace(self, config: Config) -> None:
        """Put a config the server derived at start-up in force (the listeners' bound ports)."""
        self._put_in_force(config)

    def _put_in_force(self, config: Config) -> None:
        self.current = config
        for on_change in self._subscribers:
            on_change(config)
