"""Registers the tool commands on `kbroker`'s parser and runs one, turning failures into one line."""
from __future__ import annotations

import argparse
import os
import sys

from kbroker.errors import KafkaError
from kbroker.tools import cluster, consume, dump_log, groups, produce, topics
from kbroker.tools.client import DEFAULT_BOOTSTRAP, ToolError
from kbroker.tools.output import EXIT_CODES, EXIT_ERROR


def common_options() -> argparse.ArgumentParser:
    """The options every networked command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap-server", "-b", default=os.environ.get("KBROKER_BOOTSTRAP", DEFAULT_BOOTSTRAP),
                        metavar="HOST:PORT[,...]",
                        help="brokers to start from (default: $KBROKER_BOOTSTRAP or %(default)s)")
    common.add_argument("--output", "-O", choices=("table", "json"), default="table",
                        help="table: for people (consume: plain lines); json: for scripts (consume: JSON lines)")
    common.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                        help="per request (default: %(default)s)")
    return common


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return seconds


def register(commands: argparse._SubParsersAction) -> None:
    common = common_options()
    for group in (topics, groups, produce, consume, cluster):
        group.register(commands, common)
    dump_log.register(commands)
    for name in ("topics", "groups", "produce", "consume", "cluster", "dump-log"):
        _with_exit_codes(commands.choices[name])


def _with_exit_codes(parser: argparse.ArgumentParser) -> None:
    """Every command's --help ends with the exit codes."""
    parser.epilog = EXIT_CODES
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _with_exit_codes(sub)


def run(args: argparse.Namespace) -> int:
    command = " ".join(filter(None, ("kbroker", args.command, getattr(args, "action", None))))
    try:
        return args.run(args)
    except ToolError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KafkaError as exc:  # records that do not decode, from a broker or a file
        print(f"{command}: {exc.code.name}" + (f": {exc.message}" if exc.message else ""), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kbroker consume ... | head`: the reader has gone, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail too
        return 0
    except OSError as exc:  # a file the command was given: missing, unreadable
        print(f"{command}: {exc.filename}: {exc.strerror}" if exc.filename else f"{command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug here: still one line for a script's log, with what to report
        print(f"{command}: unexpected {type(exc).__name__}: {exc} (a kbroker bug, please report it)", file=sys.stderr)
        return EXIT_ERROR

