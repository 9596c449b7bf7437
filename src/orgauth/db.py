"""Async engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from orgauth.data.statements import FixedStatement, Statements
from orgauth.settings import OrgAuthSettings

SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_COMMAND_TIMEOUT_S = 30


def create_engine(settings: OrgAuthSettings, **overrides: Any) -> AsyncEngine:
    """Create the async engine for the database named by ``settings``."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, **overrides)
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": settings.db_pool_recycle,
        "connect_args": {
            "timeout": POSTGRES_CONNECT_TIMEOUT_S,
            "command_timeout": POSTGRES_COMMAND_TIMEOUT_S,
            "server_settings": {"application_name": "orgauth"},
        },
    }
    options.update(overrides)
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "handle_error", _treat_stuck_connection_as_disconnect)
    return engine


def _treat_stuck_connection_as_disconnect(context: ExceptionContext) -> None:
    """Have SQLAlchemy invalidate an asyncpg connection stuck mid-protocol.

    A pooled connection whose server went away, or whose statement was interrupted, can be
    left "in progress" ("cannot switch to state ...; another operation ... is in progress");
    asyncpg then refuses every later use. Marking it a disconnect discards the connection
    instead of handing it out again, and the request is answered as an outage (503), not a
    500.
    """
    import asyncpg

    original = context.original_exception
    for error in (original, getattr(original, "__cause__", None)):
        if isinstance(error, asyncpg.InternalClientError) or (
            isinstance(error, asyncpg.InterfaceError) and _IN_PROGRESS in str(error)
        ):
            context.is_disconnect = True
            return


_IN_PROGRESS = "another operation is in progress"


def _create_sqlite_engine(url: str, **overrides: Any) -> AsyncEngine:
    in_memory = ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:")
    options: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    if in_memory:
        # One shared connection, or every new connection would see an empty database.
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    options.update(overrides)
    engine = create_async_engine(url, **options)
    if not in_memory:
        event.listen(engine.sync_engine, "do_connect", _check_sqlite_file_opens)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    return engine


# aiosqlite's own options; the rest of the connect arguments are sqlite3.connect's.
_AIOSQLITE_ONLY_ARGS = frozenset({"iter_chunk_size", "loop"})


def _check_sqlite_file_opens(
    _dialect: Any, _record: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]
) -> None:
    """Open (and close) the database file with the standard library before aiosqlite does.

    When aiosqlite cannot open a database (a missing directory, a directory, a location
    without write access) it stops its worker thread without waiting for it; if the event
    loop closes right after, as when a CLI command fails at once, that thread prints an
    "Event loop is closed" traceback. A path SQLite cannot open fails here instead, with
    sqlite3's own error (raised as SQLAlchemy's ``OperationalError``), before any thread
    exists. Returning None lets SQLAlchemy connect as usual.
    """
    arguments = {k: v for k, v in cparams.items() if k not in _AIOSQLITE_ONLY_ARGS}
    sqlite3.connect(*cargs, **arguments).close()


def _configure_sqlite_connection(
    dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry
) -> None:
    """Foreign keys on, WAL journal and a busy timeout, on every new SQLite connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory: objects stay usable after commit, no autoflush surprises."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def ping(statements: Statements) -> float:
    """Run a trivial query (one round trip); return its latency in milliseconds."""
    started = time.perf_counter()
    await statements.first(_PING, {})
    return (time.perf_counter() - started) * 1000


# SQLSTATEs meaning the database cannot serve anyone right now (rather than "this query
# failed"): connection exceptions (class 08), shutdown or startup in progress
# (57P01-57P03), too many connections (53300).
OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_outage_error(exc: BaseException | None) -> bool:
    """Whether a driver error (asyncpg's, or SQLAlchemy's wrapper of it) means an outage."""
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(OUTAGE_SQLSTATES)


# SQLSTATEs of a schema that is not there: undefined table (42P01) or column (42703).
MISSING_SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})
# SQLite's messages for the same (it has no SQLSTATEs).
_SQLITE_MISSING_SCHEMA = ("no such table", "no such column", "has no column named")


def is_missing_schema_error(exc: BaseException) -> bool:
    """Whether a database error means orgauth's tables or columns are not there: a
    database that was never migrated, or is behind the installed orgauth."""
    original = getattr(exc, "orig", None) or exc
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in MISSING_SCHEMA_SQLSTATES
    message = str(original).lower()
    return type(original).__name__ == "OperationalError" and message.startswith(
        _SQLITE_MISSING_SCHEMA
    )


_PING = FixedStatement(text("SELECT 1"))
