"""How keys, values and headers are written on the command line and shown: --key-format / --value-format."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from kbroker.tools.client import UsageError

FORMATS = ("string", "json", "base64", "hex")


def to_bytes(text: str, fmt: str, what: str) -> bytes:
    """Input text as record bytes; `json` must parse (and is stored as given)."""
    try:
        if fmt == "base64":
            return base64.b64decode(text, validate=True)
        if fmt == "hex":
            return bytes.fromhex(text)
        if fmt == "json":
            json.loads(text)
    except (ValueError, binascii.Error) as exc:
        raise UsageError(f"{what} is not {fmt}: {text[:60]!r} ({exc})") from None
    return text.encode()


def from_bytes(data: bytes | None, fmt: str) -> Any:
    """Record bytes as shown: text (invalid UTF-8 replaced), parsed JSON (text if it does not parse), base64, hex."""
    if data is None:
        return None
    if fmt == "base64":
        return base64.b64encode(data).decode()
    if fmt == "hex":
        return data.hex()
    text = data.decode(errors="replace")
    if fmt == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
