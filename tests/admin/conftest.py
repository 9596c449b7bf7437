"""Fixtures for the admin API tests: the organization factories plus a signed-in superuser.

The factories and their fixtures live in ``tests/orgs/conftest.py``; importing a fixture
into this conftest makes it available to the tests of this directory.
"""

from __future__ import annotations

import pytest

from orgs.conftest import (  # noqa: F401 - fixtures re-exported for this directory
    API,
    Account,
    Factory,
    app_factory,
    factory,
    roled_org,
)

ADMIN = f"{API}/admin"


@pytest.fixture
async def superuser(factory: Factory) -> Account:  # noqa: F811 - the imported fixture
    """A superuser signed in on the default app (is_superuser set in the database)."""
    return await factory.superuser()
