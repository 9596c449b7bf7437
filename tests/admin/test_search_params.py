"""The ``search`` parameter of every list endpoint refuses what no stored text contains."""

from __future__ import annotations

import httpx
import pytest

from tests.support.http import API
from tests.support.orgs import ADMIN, Account, RoledOrg, assert_validation_error


def search_paths(org: RoledOrg) -> list[str]:
    return [
        f"{ADMIN}/users",
        f"{ADMIN}/organizations",
        f"{ADMIN}/organizations/{org.id}/members",
        f"{API}/organizations/{org.id}/members",
    ]


@pytest.mark.parametrize("term", ["\x00", "a\x00b", "ann\x00"])
async def test_a_nul_byte_in_search_is_422_on_every_list(
    client: httpx.AsyncClient, superuser: Account, roled_org: RoledOrg, term: str
) -> None:
    for path in search_paths(roled_org):
        headers = roled_org.owner.headers if path.startswith(f"{API}/organizations") else None
        response = await client.get(
            path, params={"search": term}, headers=headers or superuser.headers
        )
        assert_validation_error(response)


async def test_ordinary_search_terms_still_work_on_every_list(
    client: httpx.AsyncClient, superuser: Account, roled_org: RoledOrg
) -> None:
    for path in search_paths(roled_org):
        headers = roled_org.owner.headers if path.startswith(f"{API}/organizations") else None
        response = await client.get(
            path, params={"search": "%_\\ x"}, headers=headers or superuser.headers
        )
        assert response.status_code == 200, (path, response.text)
        assert response.json()["pagination"]["total"] == 0
