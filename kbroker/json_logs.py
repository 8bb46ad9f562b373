"""`kbroker serve --log-format json`: one JSON object per log line, for log pipelines."""
from __future__ import annotations

import json
import logging
import time


class JsonFormatter(logging.Formatter):
    """ts (RFC 3339, UTC, ms), level, logger, msg, and exc with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
