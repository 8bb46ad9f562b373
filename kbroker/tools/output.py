"""What the tools print: rich tables for people, `--output json` for scripts, and exit codes.

Every command builds one JSON-able document and, for the table view, the tables that show it;
`emit` prints one or the other on stdout. Failures are one line on stderr (see `run` in
`kbroker.tools.commands`), with the exit codes in `EXIT_CODES`.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_CODES = ("exit codes: 0 ok; 1 an error from the broker, something not found, or a problem found in "
              "a log file; 2 bad usage; 3 broker unreachable")


@dataclass(frozen=True, slots=True)
class Table:
    title: str | None
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def emit(output: str, document: Any, *tables: Table) -> None:
    if output == "json":
        print(json.dumps(document, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    # A pipe gets wide lines rather than rich's 80 columns, so cells are not cut or wrapped.
    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    for table in tables:
        if table.title:  # above the table, not as its title: a title would wrap at the table's width
            console.print(table.title, style="bold", soft_wrap=True)
        rich_table = RichTable(show_edge=False, header_style="bold")
        for column in table.columns:
            rich_table.add_column(column, overflow="fold")
        for row in table.rows:
            rich_table.add_row(*("" if cell is None else str(cell) for cell in row))
        console.print(rich_table)


def note(output: str, document: Any, line: str) -> None:
    """A command's outcome: one line for people, the document for scripts."""
    if output == "json":
        print(json.dumps(document, indent=2, default=str))
    else:
        print(line)


class Progress:
    """A progress bar on stderr while a long command reads its input; nothing unless stderr is a terminal."""

    def __init__(self, description: str, total: int | None) -> None:
        self._bar: Any = None
        if sys.stderr.isatty() and total:
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, completed: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed)
