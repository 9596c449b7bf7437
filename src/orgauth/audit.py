"""Structured audit events on the ``orgauth.audit`` logger (docs/SECURITY.md).

Fields are ids, IPs and outcomes; never passwords, hashes or tokens.
"""

from __future__ import annotations

import logging
from typing import Any

audit_logger = logging.getLogger("orgauth.audit")

_FORBIDDEN_FIELDS = frozenset({"password", "token", "refresh_token", "access_token", "hash"})


def audit(event: str, **fields: Any) -> None:
    """Log one audit event, e.g. ``audit("login.success", user_id=..., ip=...)``."""
    leaked = _FORBIDDEN_FIELDS.intersection(fields)
    if leaked:  # a programming error; never let a secret reach the log
        raise ValueError(f"audit fields must not include secrets: {sorted(leaked)}")
    audit_logger.info(event, extra={key: _plain(value) for key, value in fields.items()})


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
