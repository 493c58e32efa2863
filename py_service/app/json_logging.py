"""One-line JSON log records, for the app's loggers and for gunicorn's.

gunicorn.conf.py installs these formatters with logging.config.dictConfig.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON, with fields passed via `extra=` as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _base_fields(record)
        entry["message"] = record.getMessage()
        entry.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class AccessJsonFormatter(logging.Formatter):
    """Formats gunicorn access records, whose args are gunicorn's request "atoms".

    gunicorn logs each request as `access_log.info(access_log_format, atoms)`;
    building JSON from the atoms, instead of filling a JSON-looking
    access_log_format, keeps quotes in paths and user agents from breaking it.
    """

    # JSON field -> gunicorn atom (see "access_log_format" in gunicorn's docs).
    FIELDS: Mapping[str, str] = {
        "remote_addr": "h",
        "method": "m",
        "path": "U",
        "query": "q",
        "protocol": "H",
        "status": "s",
        "response_bytes": "B",
        "duration_s": "L",
        "referer": "f",
        "user_agent": "a",
        "x_cache": "{x-cache}o",
    }

    def format(self, record: logging.LogRecord) -> str:
        atoms = cast(Mapping[str, Any], record.args)
        entry = _base_fields(record)
        entry.update((field, atoms[atom]) for field, atom in self.FIELDS.items())
        entry["duration_s"] = float(entry["duration_s"])
        return json.dumps(entry, default=str)


def _base_fields(record: logging.LogRecord) -> dict[str, Any]:
    timestamp = datetime.fromtimestamp(record.created, tz=UTC)
    return {
        "ts": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record.levelname,
        "logger": record.name,
        "pid": record.process,
    }
