"""Options shared by the Alembic environment and the schema drift check."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from orgauth.models import ORGAUTH_TABLES, UTCDateTime

VERSION_TABLE = "orgauth_alembic_version"


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Only orgauth's tables (and their indexes and constraints) take part.

    A host application's tables may share SQLModel's metadata and the database; its own
    migrations own them, so orgauth's autogenerate neither creates nor drops them.
    """
    if type_ == "table":
        return name in ORGAUTH_TABLES
    table = getattr(obj, "table", None)
    if table is not None:
        return table.name in ORGAUTH_TABLES
    return True


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render orgauth's UTC timestamp type as a plain timezone-aware DateTime."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def migration_context_options(connection: Connection) -> dict[str, Any]:
    """Options for ``context.configure`` / ``MigrationContext.configure``."""
    return {
        "target_metadata": SQLModel.metadata,
        "version_table": VERSION_TABLE,
        "include_object": include_object,
        "render_item": render_item,
        "render_as_batch": connection.dialect.name == "sqlite",
        "compare_type": True,
        "compare_server_default": False,
    }
