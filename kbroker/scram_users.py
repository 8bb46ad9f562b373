"""`kbroker scram-user`: add (or remove) a SCRAM user in a data dir before the broker starts,
as Kafka's `kafka-storage format --add-scram` does. A running broker takes users through
AlterUserScramCredentials instead (`kafka-configs --alter --add-config 'SCRAM-SHA-256=[...]'`),
so the data dir must not be in use."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kbroker.log.data_dir import DataDirError, lock_data_dir, unlock_data_dir
from kbroker.security.credentials import FileCredentialStore
from kbroker.security.scram import HASHES, MAX_ITERATIONS, MIN_ITERATIONS, make_credential


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("scram-user", help="add or delete a SCRAM user before the broker starts")
    parser.add_argument("--data-dir", type=Path, default=Path("./kbroker-data"), help="data directory (log.dirs)")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", help="the new password (default: read from stdin)")
    parser.add_argument("--mechanism", action="append", choices=sorted(HASHES),
                        help="repeatable; default: both SCRAM-SHA-256 and SCRAM-SHA-512")
    parser.add_argument("--iterations", type=int, default=MIN_ITERATIONS)
    parser.add_argument("--delete", action="store_true", help="remove the user's credentials instead")


def run(args: argparse.Namespace) -> int:
    mechanisms = args.mechanism or sorted(HASHES)
    if not MIN_ITERATIONS <= args.iterations <= MAX_ITERATIONS:
        print(f"kbroker: --iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}", file=sys.stderr)
        return 2
    try:
        fd = lock_data_dir(args.data_dir)
    except DataDirError as exc:
        print(f"kbroker: {exc}", file=sys.stderr)
        return 1
    try:
        store = FileCredentialStore(args.data_dir)
        if args.delete:
            for mechanism in mechanisms:
                store.set(args.user, mechanism, None)
            return 0
        password = args.password if args.password is not None else sys.stdin.readline().rstrip("\n")
        if not password:
            print("kbroker: an empty password is not allowed", file=sys.stderr)
            return 2
        for mechanism in mechanisms:
            store.set(args.user, mechanism, make_credential(mechanism, password, args.iterations))
        return 0
    finally:
        unlock_data_dir(fd)
