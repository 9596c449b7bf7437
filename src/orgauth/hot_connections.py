"""Pooled PostgreSQL connections kept at hand for the per-request statements.

Checking a connection out of SQLAlchemy's pool and back costs tens of microseconds per
request (the pool's bookkeeping and two greenlet switches), as much as a third of the
per-request query itself. While an :class:`~orgauth.OrgAuth` runs, its hot statements
(:class:`orgauth.db.HotQuery`) therefore keep a few connections checked out between
requests in a small LIFO list:

* at most ``max_idle`` wait there; more concurrent statements check out of the pool as
  usual, so the pool's size and overflow still bound the total;
* a connection goes back to the pool on its first use after :data:`HOLD_SECONDS` out of
  it, so the pool's recycling and its sharing with the ORM sessions keep working;
* a connection that failed, or whose statement was interrupted (a cancelled request), is
  invalidated, one the server closed while idle is dropped before reuse, and a database
  outage discards every idle one: none is ever reused in an unknown state;
* :func:`close_hot_connections` (the lifespan's shutdown) returns them all before the
  engine is disposed.

Without a registration (the CLI, scripts) every statement checks out of the pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable

from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

HOLD_SECONDS = 30.0
logger = logging.getLogger("orgauth.db")


class DirectConnections:
    """Every statement checks a connection out of the pool and returns it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def acquire(self) -> tuple[PoolProxiedConnection, float]:
        """A checked-out connection and the time it left the pool."""
        return await self.engine.raw_connection(), time.monotonic()

    async def release(self, pooled: PoolProxiedConnection, since: float) -> None:
        """Hand back a healthy connection after use."""
        # Returning may close an overflow connection, which awaits the driver: greenlet.
        await greenlet_spawn(pooled.close)

    async def discard(self, pooled: PoolProxiedConnection, error: BaseException | None) -> None:
        """Throw away a connection in an unknown or broken state (never raises)."""
        try:
            await _quietly(greenlet_spawn(pooled.invalidate, error))
        finally:
            await _quietly(greenlet_spawn(pooled.close))


class HotConnections(DirectConnections):
    """Up to ``max_idle`` checked-out connections reused across requests (LIFO)."""

    def __init__(self, engine: AsyncEngine, max_idle: int) -> None:
        super().__init__(engine)
        self.max_idle = max_idle
        self.users = 0
        self._idle: list[tuple[PoolProxiedConnection, float]] = []
        self._closed = False

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    async def acquire(self) -> tuple[PoolProxiedConnection, float]:
        while self._idle:
            pooled, since = self._idle.pop()
            driver = pooled.driver_connection
            if driver is None or driver.is_closed():
                # The server closed it while idle (restart, idle timeout): never hand it out.
                await super().discard(pooled, None)
            elif time.monotonic() - since >= HOLD_SECONDS:
                # Held long enough: back to the pool, whose recycling then applies.
                await _quietly(super().release(pooled, since))
            else:
                return pooled, since
        return await super().acquire()

    async def release(self, pooled: PoolProxiedConnection, since: float) -> None:
        keep = (
            not self._closed
            and len(self._idle) < self.max_idle
            and time.monotonic() - since < HOLD_SECONDS
        )
        if keep:
            self._idle.append((pooled, since))
        else:
            await super().release(pooled, since)

    async def discard(self, pooled: PoolProxiedConnection, error: BaseException | None) -> None:
        await super().discard(pooled, error)
        if error is not None:
            # One broken connection in an outage means the idle ones are broken too.
            await self._invalidate_idle(error)

    async def close(self) -> None:
        """Return every idle connection to the pool; later releases go there directly."""
        self._closed = True
        idle, self._idle = self._idle, []
        for pooled, since in idle:
            await _quietly(super().release(pooled, since))

    async def _invalidate_idle(self, error: BaseException) -> None:
        idle, self._idle = self._idle, []
        for pooled, _ in idle:
            await super().discard(pooled, error)


async def _quietly(step: Awaitable[None]) -> None:
    """Run a clean-up step; its failure is logged, never raised over the real outcome."""
    try:
        await step
    except Exception as exc:
        logger.warning("could not clean up a database connection", extra={"error": repr(exc)})


_REGISTRY: dict[int, HotConnections] = {}


def connections_for(engine: AsyncEngine) -> DirectConnections:
    """The hot connections registered for ``engine``, or direct pool checkouts."""
    return _REGISTRY.get(id(engine.sync_engine)) or DirectConnections(engine)


def open_hot_connections(engine: AsyncEngine, max_idle: int) -> None:
    """Start keeping up to ``max_idle`` connections for ``engine`` (counted per caller)."""
    key = id(engine.sync_engine)
    hot = _REGISTRY.get(key)
    if hot is None:
        hot = _REGISTRY[key] = HotConnections(engine, max_idle)
    hot.users += 1


async def close_hot_connections(engine: AsyncEngine) -> None:
    """Undo one :func:`open_hot_connections`; the last one returns the connections."""
    key = id(engine.sync_engine)
    hot = _REGISTRY.get(key)
    if hot is None:
        return
    hot.users -= 1
    if hot.users <= 0:
        del _REGISTRY[key]
        await hot.close()
