"""Log lines: JSON and text formats, and uvicorn's own lines in orgauth's format."""

from __future__ import annotations

import json
import logging

from orgauth.logs import JsonFormatter, TextFormatter


def _uvicorn_record() -> logging.LogRecord:
    """A record the way uvicorn logs its startup lines: a plain and a coloured message."""
    return logging.getLogger("uvicorn.error").makeRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        ("http", "127.0.0.1", 8000),
        None,
        extra={
            "color_message": "Uvicorn running on \x1b[1m%s://%s:%d\x1b[0m (Press CTRL+C to quit)"
        },
    )


def test_json_lines_leave_out_uvicorns_coloured_copy_of_the_message() -> None:
    line = JsonFormatter().format(_uvicorn_record())

    payload = json.loads(line)
    assert payload["event"] == "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
    assert set(payload) == {"timestamp", "level", "logger", "event"}
    assert "\\u001b" not in line


def test_text_lines_leave_out_uvicorns_coloured_copy_of_the_message() -> None:
    line = TextFormatter().format(_uvicorn_record())

    assert line.endswith(
        "uvicorn.error: Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
    )
    assert "\x1b" not in line
    assert "color_message" not in line


def test_event_fields_are_kept() -> None:
    record = logging.getLogger("orgauth.audit").makeRecord(
        "orgauth.audit", logging.INFO, __file__, 1, "login.success", (), None, extra={"ip": "::1"}
    )

    assert json.loads(JsonFormatter().format(record))["ip"] == "::1"
    assert TextFormatter().format(record).endswith("orgauth.audit: login.success ip=::1")
