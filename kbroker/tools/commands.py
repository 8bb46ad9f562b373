"""Registers the tool commands on `kbroker`'s parser and runs one, turning failures into one line."""
from __future__ import annotations

import argparse
import os
import sys

from kbroker.tools import cluster, consume, dump_log, groups, produce, topics
from kbroker.tools.client import DEFAULT_BOOTSTRAP, ToolError
from kbroker.tools.output import EXIT_ERROR


def common_options() -> argparse.ArgumentParser:
    """The options every networked command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap-server", "-b", default=os.environ.get("KBROKER_BOOTSTRAP", DEFAULT_BOOTSTRAP),
                        metavar="HOST:PORT[,...]",
                        help="brokers to start from (default: $KBROKER_BOOTSTRAP or %(default)s)")
    common.add_argument("--output", "-O", choices=("table", "json"), default="table", help="default: %(default)s")
    common.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per request (default: %(default)s)")
    return common


def register(commands: argparse._SubParsersAction) -> None:
    common = common_options()
    for group in (topics, groups, produce, consume, cluster):
        group.register(commands, common)
    dump_log.register(commands)


def run(args: argparse.Namespace) -> int:
    command = " ".join(filter(None, ("kbroker", args.command, getattr(args, "action", None))))
    try:
        return args.run(args)
    except ToolError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kbroker consume ... | head`: the reader has gone, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail too
        return 0
    except OSError as exc:  # a file the command was given: missing, unreadable
        print(f"{command}: {exc.filename}: {exc.strerror}" if exc.filename else f"{command}: {exc}", file=sys.stderr)
        return EXIT_ERROR

