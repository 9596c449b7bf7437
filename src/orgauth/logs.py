"""Logging setup: text or JSON lines, every line naming its logger."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from orgauth.settings import OrgAuthSettings

# LogRecord attributes that are not event fields; uvicorn's ``color_message`` is a copy of
# the message with ANSI colour codes, for its own console formatter only.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields attached to a record through ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, event and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update(record_fields(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: event key=value ...``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = record_fields(record)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return line


def configure_logging(settings: OrgAuthSettings) -> None:
    """Route the ``orgauth`` loggers to stderr in the configured format and level."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if settings.effective_log_format == "json" else TextFormatter()
    )
    logger = logging.getLogger("orgauth")
    for existing in list(logger.handlers):
        if getattr(existing, "_orgauth", False):
            logger.removeHandler(existing)
    handler._orgauth = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(settings.log_level)
    logger.propagate = True


def uvicorn_log_config(settings: OrgAuthSettings) -> dict[str, Any]:
    """A ``logging.config`` dict so uvicorn's own lines use orgauth's format too."""
    formatter = (
        {"()": "orgauth.logs.JsonFormatter"}
        if settings.effective_log_format == "json"
        else {"()": "orgauth.logs.TextFormatter"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "orgauth",
        "stream": "ext://sys.stderr",
    }
    loggers = {
        name: {"handlers": ["default"], "level": settings.log_level, "propagate": False}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"orgauth": formatter},
        "handlers": {"default": handler},
        "loggers": loggers,
    }
