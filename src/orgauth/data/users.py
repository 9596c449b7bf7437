"""Users built from rows read outside the ORM session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import make_transient_to_detached

from orgauth.models import User

USER_COLUMNS: tuple[str, ...] = tuple(column.key for column in User.__table__.columns)  # type: ignore[attr-defined]


def user_from_row(row: Mapping[str, Any]) -> User:
    """A detached :class:`User` from a row holding every column of ``users``.

    Detached (it has its identity), so ``session.add(user)`` followed by changes updates
    the row rather than inserting a new one.
    """
    user = User.model_validate({name: row[name] for name in USER_COLUMNS})
    make_transient_to_detached(user)
    return user
