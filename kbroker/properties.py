"""Java .properties files, read as `java.util.Properties.load` reads them: the broker's
server.properties and the data dir's meta.properties.

`key=value`, `key: value` or `key value`; `#` and `!` start a comment line; a trailing `\\`
continues the line. A line that is only a key sets it to "" (so a half-written file still reads).
"""
from __future__ import annotations

import re
from pathlib import Path

_LINE = re.compile(r"([^=:\s]*)\s*[=:]?\s*(.*)")


def read_properties(path: Path) -> dict[str, str]:
    """The file's properties; a missing file raises FileNotFoundError."""
    properties: dict[str, str] = {}
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        match = _LINE.fullmatch(line)
        assert match is not None  # every part of the pattern may be empty
        properties[match.group(1)] = match.group(2)
    return properties
