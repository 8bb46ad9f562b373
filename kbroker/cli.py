"""`kbroker serve`: command-line flags and server.properties into a Config, then run.

The admin commands (`kbroker topics ...`, `groups`, `produce`, `consume`, `cluster`, `dump-log`)
live in `kbroker.tools`; only their subparsers are registered here.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from kbroker import __version__, scram_users
from kbroker.config import ConfigError, build_config
from kbroker.json_logs import JsonFormatter
from kbroker.properties import read_properties
from kbroker.tools import commands as tools
from kbroker.tools.output import EXIT_CODES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kbroker", description="A Kafka wire-protocol compatible broker.",
                                     epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"kbroker {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the broker")
    serve.add_argument("--config", type=Path, help="a Kafka server.properties file")
    serve.add_argument("--data-dir", help="data directory (log.dirs); default ./kbroker-data")
    serve.add_argument("--listen", help="HOST:PORT to listen on (listeners); default 127.0.0.1:9092")
    serve.add_argument("--advertised-host", help="host clients should connect back to")
    serve.add_argument("--zookeeper", metavar="HOST:PORT[/CHROOT]",
                       help="join a cluster through ZooKeeper (zookeeper.connect)")
    serve.add_argument("--node-id", type=int, help="this broker's id in the cluster (node.id / broker.id)")
    serve.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                       help="set any Kafka broker config, e.g. -o num.partitions=3 (repeatable)")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--log-format", default="text", choices=["text", "json"],
                       help="json: one JSON object per line (ts, level, logger, msg, exc)")
    tools.register(commands)
    scram_users.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "scram-user":
        return scram_users.run(args)
    if args.command != "serve":
        return tools.run(args)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_format == "json":
        logging.getLogger().handlers[0].setFormatter(JsonFormatter())
    try:
        settings = read_properties(args.config) if args.config else {}
        for item in args.override:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"-o expects KEY=VALUE, got {item!r}")
            settings[key.strip()] = value.strip()
        if args.data_dir:
            settings["log.dirs"] = args.data_dir
        if args.listen:
            settings["listeners"] = args.listen
        if args.zookeeper:
            settings["zookeeper.connect"] = args.zookeeper
        if args.node_id is not None:
            settings["node.id"] = str(args.node_id)
        config = build_config(settings)
        if args.advertised_host:
            first = config.listeners[0]
            config = build_config({**settings, "advertised.listeners": f"{first.name}://{args.advertised_host}:{first.port}"})
    except (ConfigError, OSError) as exc:
        print(f"kbroker: configuration error: {exc}", file=sys.stderr)
        return 2
    from kbroker.broker.server import ListenError, StartupError, serve
    from kbroker.log.data_dir import DataDirError

    try:
        asyncio.run(serve(config))
    except (ListenError, StartupError, DataDirError) as exc:
        logging.getLogger("kbroker").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
