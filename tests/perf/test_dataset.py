"""The list endpoints stay correct on a large dataset: 10 000 users, 1 000 organizations,
one organization with 5 000 members (built by ``bench/dataset_timings.py``'s
:func:`build_dataset`, so the benchmark and this test see the same data).

No timing is asserted here (the numbers live in docs/PERFORMANCE.md); the point is totals,
page sizes, ordering and filters at a size where an accidental full load, a missing
``LIMIT`` or a wrong ``OFFSET`` would show.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.http import API, PASSWORD, bearer
from tests.support.orgs import password_hash

pytestmark = pytest.mark.slow

BENCH_SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "dataset_timings.py"


def _load_bench() -> ModuleType:
    name = "orgauth_bench_dataset_timings"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
assert bench.PASSWORD == PASSWORD  # the dataset's users sign in with the suite's password


class Api:
    """GET helper for one signed-in user."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = bearer(token)

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(f"{API}{path}", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()


async def _sign_in(client: httpx.AsyncClient, email: str) -> Api:
    response = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return Api(client, response.json()["access_token"])


@pytest.fixture
async def dataset(db: AsyncEngine, client: httpx.AsyncClient) -> Any:
    return await bench.build_dataset(db, bench.LARGE, password_hash=password_hash())


def emails(page: dict[str, Any], key: str = "email") -> list[str]:
    return [item[key] for item in page["data"]]


def user_emails(indexes: range) -> list[str]:
    return [bench.Dataset.email(i) for i in indexes]


async def test_admin_user_list_on_10k_users(client: httpx.AsyncClient, dataset: Any) -> None:
    root = await _sign_in(client, dataset.superuser_email)

    first = await root.get("/admin/users")
    assert first["pagination"] == {
        "total": 10_000,
        "page": 1,
        "page_size": 20,
        "total_pages": 500,
        "has_next": True,
        "has_prev": False,
    }
    assert emails(first) == user_emails(range(20))  # newest first

    deep = await root.get("/admin/users", page=250, limit=40)
    assert deep["pagination"]["total_pages"] == 250
    assert (deep["pagination"]["has_next"], deep["pagination"]["has_prev"]) == (False, True)
    assert emails(deep) == user_emails(range(9_960, 10_000))
    assert (await root.get("/admin/users", page=251, limit=40))["data"] == []

    needles = await root.get("/admin/users", search="NEEDLE", limit=100)
    assert needles["pagination"]["total"] == dataset.needles == 100
    assert len(needles["data"]) == 100
    assert {item["first_name"] for item in needles["data"]} == {"Needle"}

    assert (await root.get("/admin/users", search="user-0999"))["pagination"]["total"] == 10
    assert (await root.get("/admin/users", search="o'neil"))["pagination"]["total"] == 1_250
    assert (await root.get("/admin/users", is_active="false"))["pagination"]["total"] == 200
    assert (await root.get("/admin/users", is_superuser="true"))["pagination"]["total"] == 1

    by_email = await root.get("/admin/users", sort_by="email", sort_order="desc", limit=3)
    assert emails(by_email) == user_emails(range(9_999, 9_996, -1))
    by_name = await root.get("/admin/users", sort_by="last_name", sort_order="asc", limit=100)
    assert {item["last_name"] for item in by_name["data"]} == {"Garcia"}


async def test_member_list_of_an_organization_with_5k_members(
    client: httpx.AsyncClient, dataset: Any
) -> None:
    owner = await _sign_in(client, dataset.owner_email)
    members = f"/organizations/{dataset.big_org_id}/members"

    first = await owner.get(members)
    assert first["pagination"]["total"] == 5_000
    assert first["pagination"]["total_pages"] == 250
    assert emails(first) == user_emails(range(1, 21))  # oldest first
    assert first["data"][0]["role"] == "owner"

    last = await owner.get(members, page=250)
    assert emails(last) == user_emails(range(4_981, 5_001))
    assert last["pagination"]["has_next"] is False

    hundred = await owner.get(members, page=50, limit=100)
    assert emails(hundred) == user_emails(range(4_901, 5_001))
    assert (await owner.get(members, page=51, limit=100))["data"] == []

    needles = await owner.get(members, search="needle", limit=100)
    assert needles["pagination"]["total"] == dataset.big_needles == 50
    assert {item["first_name"] for item in needles["data"]} == {"Needle"}

    admins = await owner.get(members, role="admin", limit=100)
    assert admins["pagination"]["total"] == dataset.big_admins == 50
    assert {item["role"] for item in admins["data"]} == {"admin"}
    assert (await owner.get(members, role="owner"))["pagination"]["total"] == 1
    assert (await owner.get(members, role="member"))["pagination"]["total"] == 4_949
    assert (await owner.get(members, search="user-0500"))["pagination"]["total"] == 1
    both = await owner.get(members, search="needle", role="admin")
    assert both["pagination"]["total"] == 0

    mine = await owner.get("/organizations/me")
    assert [(item["slug"], item["role"], item["member_count"]) for item in mine] == [
        ("big", "owner", 5_000)
    ]
    org = await owner.get(f"/organizations/{dataset.big_org_id}")
    assert org["member_count"] == 5_000


async def test_admin_organization_and_session_lists_on_the_large_dataset(
    client: httpx.AsyncClient, dataset: Any
) -> None:
    root = await _sign_in(client, dataset.superuser_email)

    orgs = await root.get("/admin/organizations")
    assert orgs["pagination"]["total"] == 1_000
    assert [item["slug"] for item in orgs["data"][:2]] == ["big", "org-0001"]  # newest first
    assert orgs["data"][0]["member_count"] == 5_000
    assert {item["member_count"] for item in orgs["data"][1:]} == {3}
    found = await root.get("/admin/organizations", search="organization 004")
    assert found["pagination"]["total"] == 10
    last = await root.get("/admin/organizations", page=10, limit=100)
    assert len(last["data"]) == 100

    sessions = await root.get("/admin/sessions")
    assert sessions["pagination"]["total"] == 10_001  # one each, plus this sign-in
    assert len(sessions["data"]) == 20
    owner_id = (await root.get("/admin/users", search=dataset.owner_email))["data"][0]["id"]
    own = await root.get("/admin/sessions", user_id=owner_id, active="true")
    assert own["pagination"]["total"] == 1
    assert (await root.get("/admin/sessions", active="false"))["pagination"]["total"] == 0

    stats = await root.get("/admin/stats")
    assert stats["users"] == {"total": 10_000, "active": 9_800, "superusers": 1}
    assert stats["organizations"] == {"total": 1_000}
    assert stats["sessions"] == {"active": 10_001}
