from __future__ import annotations

import json
import logging
import sys

from gunicorn.glogging import SafeAtoms

from py_service.app.json_logging import AccessJsonFormatter, JsonFormatter


def record(msg: str, args: object = None, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("py_service.test", logging.WARNING, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


def test_record_is_one_json_line_with_extra_fields() -> None:
    line = JsonFormatter().format(record("redis %s", ("down",), error='Timeout: "slow"\nreally'))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "py_service.test"
    assert entry["message"] == "redis down"
    assert entry["error"] == 'Timeout: "slow"\nreally'
    assert entry["ts"].endswith("Z")


def test_exception_is_included() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        failing = record("failed")
        failing.exc_info = sys.exc_info()

    entry = json.loads(JsonFormatter().format(failing))

    assert "ValueError: bad" in entry["exception"]


def test_access_record_fields_come_from_gunicorn_atoms() -> None:
    atoms = SafeAtoms(
        {
            "h": "127.0.0.1",
            "m": "GET",
            "U": "/time",
            "q": "",
            "H": "HTTP/1.1",
            "s": "200",
            "B": 21,
            "L": "0.000812",
            "f": "-",
            "a": "curl/8",
            "{x-cache}o": "HIT",
        }
    )

    entry = json.loads(AccessJsonFormatter().format(record("%(r)s", atoms)))

    assert entry["method"] == "GET"
    assert entry["path"] == "/time"
    assert entry["status"] == "200"
    assert entry["response_bytes"] == 21
    assert entry["duration_s"] == 0.000812
    assert entry["x_cache"] == "HIT"
