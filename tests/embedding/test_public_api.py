"""The public library API (docs/EMBEDDING.md): every exported name, the documented snippet,
mounting the router by hand, and the app-level dependencies.

No ``from __future__ import annotations``: host routes are declared inside test functions,
and FastAPI must see their ``Depends(...)`` annotations as objects, not strings.
"""

import importlib.resources
import inspect
import subprocess
import sys
import typing
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

import orgauth
from orgauth import (
    Membership,
    OrgAuth,
    OrgAuthSettings,
    User,
    current_superuser,
    current_user,
    optional_user,
    require_org_role,
)
from tests.support.settings import TEST_SECRET_KEY, make_settings

from .helpers import (
    API,
    PASSWORD,
    add_member,
    create_org,
    error_code,
    register,
    running,
    sign_in,
    sign_up,
)

DOCUMENTED_NAMES = {
    "OrgAuth",
    "OrgAuthSettings",
    "create_app",
    "User",
    "UserSession",
    "Organization",
    "Membership",
    "OrgRole",
    "current_user",
    "optional_user",
    "current_superuser",
    "require_org_role",
}


# --- exports and typing -----------------------------------------------------------------


def test_all_lists_at_least_the_documented_names() -> None:
    assert set(orgauth.__all__) >= DOCUMENTED_NAMES
    assert len(orgauth.__all__) == len(set(orgauth.__all__))


@pytest.mark.parametrize("name", sorted(orgauth.__all__))
def test_every_public_name_is_importable(name: str) -> None:
    value = getattr(orgauth, name)

    assert value is not None
    assert name in dir(orgauth)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, Any] = {}
    exec("from orgauth import *", namespace)  # noqa: S102 - the statement a user would write

    assert set(namespace) - {"__builtins__"} == set(orgauth.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = orgauth.Nope


def test_py_typed_marker_is_shipped() -> None:
    marker = importlib.resources.files("orgauth") / "py.typed"

    assert marker.is_file()


def _public_callables() -> list[tuple[str, Callable[..., Any]]]:
    found: list[tuple[str, Callable[..., Any]]] = []
    for name in orgauth.__all__:
        value = getattr(orgauth, name)
        if inspect.isfunction(value):
            found.append((name, value))
    for name, member in vars(OrgAuth).items():
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, property) and member.fget is not None:
            found.append((f"OrgAuth.{name}", member.fget))
        elif inspect.isfunction(member):
            found.append((f"OrgAuth.{name}", member))
    return found


PUBLIC_CALLABLES = _public_callables()


@pytest.mark.parametrize(
    ("name", "function"), PUBLIC_CALLABLES, ids=[name for name, _ in PUBLIC_CALLABLES]
)
def test_public_callables_are_fully_annotated(name: str, function: Callable[..., Any]) -> None:
    target = inspect.unwrap(function)
    hints = typing.get_type_hints(target)  # also proves the annotations resolve
    parameters = [
        p for p in inspect.signature(target).parameters.values() if p.name not in {"self", "cls"}
    ]

    assert "return" in hints, name
    assert [p.name for p in parameters if p.name not in hints] == [], name


@pytest.mark.slow
def test_host_code_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    """A host module using the docs/EMBEDDING.md API passes ``mypy --strict`` (with pydantic's
    plugin,
    which pydantic users enable), so the shipped annotations are usable from outside."""
    host = tmp_path / "host_app.py"
    host.write_text(
        "from typing import Annotated\n\n"
        "from fastapi import Depends, FastAPI\n\n"
        "from orgauth import Membership, OrgAccess, OrgAuth, OrgAuthSettings, OrgPermission\n"
        "from orgauth import User\n\n"
        'settings = OrgAuthSettings(database_url="sqlite:///app.db", secret_key="k" * 40)\n'
        'auth = OrgAuth(settings, permissions=[OrgPermission("billing:manage"), "reports:read"])\n'
        "app = FastAPI(lifespan=auth.lifespan)\n"
        "auth.install(app)\n\n\n"
        '@app.get("/projects")\n'
        "async def projects(user: Annotated[User, Depends(auth.current_user)]) -> str:\n"
        "    return user.email\n\n\n"
        '@app.delete("/orgs/{org_id}/billing")\n'
        "async def cancel(\n"
        '    membership: Annotated[Membership, Depends(auth.require_org_role("admin"))],\n'
        ") -> str:\n"
        "    return str(membership.role)\n\n\n"
        '@app.get("/orgs/{org_id}/invoices")\n'
        "async def invoices(\n"
        "    access: Annotated[\n"
        '        OrgAccess, Depends(auth.require_org_permission("billing:manage"))\n'
        "    ],\n"
        ") -> list[str]:\n"
        "    return sorted(access.permissions)\n"
    )
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = true\nplugins = pydantic.mypy\n")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(host),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# --- the documented snippet, literally ----------------------------------------------------


async def test_documented_snippet_works_as_written(db: AsyncEngine, database_url: str) -> None:
    # Exactly the two settings the docs show; everything else at its default.
    auth = OrgAuth(OrgAuthSettings(database_url=database_url, secret_key=TEST_SECRET_KEY))
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)  # routes under API_PREFIX, headers, limits, CORS

    @app.get("/projects")
    async def projects(user=Depends(auth.current_user)):  # type: ignore[no-untyped-def]
        return {"owner": user.email}

    @app.delete("/orgs/{org_id}/billing")
    async def cancel(membership=Depends(auth.require_org_role("admin"))):  # type: ignore[no-untyped-def]
        return {"role": str(membership.role)}

    async with running(app) as client:
        owner = await sign_up(client)
        member = await sign_up(client)
        outsider = await sign_up(client)
        org_id = await create_org(client, owner)
        await add_member(client, org_id, owner, member, "member")

        anonymous = await client.get("/projects")
        mine = await client.get("/projects", headers=owner.headers)
        by_owner = await client.delete(f"/orgs/{org_id}/billing", headers=owner.headers)
        by_member = await client.delete(f"/orgs/{org_id}/billing", headers=member.headers)
        by_outsider = await client.delete(f"/orgs/{org_id}/billing", headers=outsider.headers)
        health = await client.get("/health")

    assert anonymous.status_code == 401
    assert error_code(anonymous) == "NOT_AUTHENTICATED"
    assert mine.json() == {"owner": owner.email}
    assert by_owner.json() == {"role": "owner"}
    assert (by_member.status_code, error_code(by_member)) == (403, "INSUFFICIENT_ROLE")
    assert (by_outsider.status_code, error_code(by_outsider)) == (404, "ORGANIZATION_NOT_FOUND")
    # install() also brought /health and the security headers to the host's own routes.
    assert health.status_code == 200
    assert mine.headers["x-content-type-options"] == "nosniff"


# --- dependencies: bound to the instance and app-level -------------------------------------


def _build_host(auth: OrgAuth, *, app_level: bool) -> FastAPI:
    """A host app whose routes use either ``auth.<dependency>`` or ``orgauth.<dependency>``."""
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)
    user_dep = current_user if app_level else auth.current_user
    optional_dep = optional_user if app_level else auth.optional_user
    superuser_dep = current_superuser if app_level else auth.current_superuser
    admin_dep = require_org_role("admin") if app_level else auth.require_org_role("admin")

    @app.get("/me")
    async def me(user: Annotated[User, Depends(user_dep)]) -> dict[str, str]:
        return {"email": user.email}

    @app.get("/maybe")
    async def maybe(user: Annotated[User | None, Depends(optional_dep)]) -> dict[str, Any]:
        return {"email": user.email if user else None}

    @app.get("/staff")
    async def staff(user: Annotated[User, Depends(superuser_dep)]) -> dict[str, str]:
        return {"email": user.email}

    @app.get("/orgs/{org_id}/settings")
    async def org_settings(
        membership: Annotated[Membership, Depends(admin_dep)],
    ) -> dict[str, str]:
        return {"role": str(membership.role), "organization_id": str(membership.organization_id)}

    return app


@pytest.fixture
def superuser_email() -> str:
    return f"root-{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture
def host_auth(database_url: str, tmp_path: Path, superuser_email: str) -> OrgAuth:
    settings = make_settings(
        database_url,
        tmp_path,
        first_superuser_email=superuser_email,
        first_superuser_password=PASSWORD,
    )
    return OrgAuth(settings)


@pytest.mark.parametrize("app_level", [False, True], ids=["auth.dependency", "orgauth.dependency"])
async def test_dependencies_answer_as_documented(
    db: AsyncEngine, host_auth: OrgAuth, superuser_email: str, app_level: bool
) -> None:
    app = _build_host(host_auth, app_level=app_level)

    async with running(app) as client:
        user = await sign_up(client)
        root = await sign_in(client, superuser_email)
        org_id = await create_org(client, user)
        member = await sign_up(client)
        await add_member(client, org_id, user, member, "member")

        me_anonymous = await client.get("/me")
        me_user = await client.get("/me", headers=user.headers)
        me_forged = await client.get("/me", headers={"Authorization": "Bearer not-a-token"})
        maybe_anonymous = await client.get("/maybe")
        maybe_user = await client.get("/maybe", headers=user.headers)
        maybe_forged = await client.get("/maybe", headers={"Authorization": "Bearer not-a-token"})
        staff_user = await client.get("/staff", headers=user.headers)
        staff_root = await client.get("/staff", headers=root.headers)
        staff_anonymous = await client.get("/staff")
        org_owner = await client.get(f"/orgs/{org_id}/settings", headers=user.headers)
        org_member = await client.get(f"/orgs/{org_id}/settings", headers=member.headers)
        org_root = await client.get(f"/orgs/{org_id}/settings", headers=root.headers)
        org_unknown = await client.get(f"/orgs/{uuid.uuid4()}/settings", headers=user.headers)
        org_bad_id = await client.get("/orgs/not-a-uuid/settings", headers=user.headers)

    assert (me_anonymous.status_code, error_code(me_anonymous)) == (401, "NOT_AUTHENTICATED")
    assert me_anonymous.headers["www-authenticate"] == "Bearer"
    assert me_user.json() == {"email": user.email}
    assert (me_forged.status_code, error_code(me_forged)) == (401, "INVALID_TOKEN")
    assert maybe_anonymous.json() == {"email": None}
    assert maybe_user.json() == {"email": user.email}
    assert (maybe_forged.status_code, error_code(maybe_forged)) == (401, "INVALID_TOKEN")
    assert (staff_user.status_code, error_code(staff_user)) == (403, "SUPERUSER_REQUIRED")
    assert staff_root.json() == {"email": superuser_email}
    assert staff_anonymous.status_code == 401
    assert org_owner.json() == {"role": "owner", "organization_id": str(org_id)}
    assert (org_member.status_code, error_code(org_member)) == (403, "INSUFFICIENT_ROLE")
    assert org_root.json()["role"] == "owner"  # superusers act as owners
    assert (org_unknown.status_code, error_code(org_unknown)) == (404, "ORGANIZATION_NOT_FOUND")
    assert org_bad_id.status_code == 422


@pytest.mark.parametrize("app_level", [False, True], ids=["auth.dependency", "orgauth.dependency"])
async def test_deactivated_user_is_refused_at_once(
    db: AsyncEngine, host_auth: OrgAuth, app_level: bool
) -> None:
    app = _build_host(host_auth, app_level=app_level)

    async with running(app) as client:
        user = await sign_up(client)
        before = await client.get("/me", headers=user.headers)
        async with db.begin() as connection:
            await connection.execute(
                update(User).where(User.id == user.id).values(is_active=False)  # type: ignore[arg-type]
            )
        after = await client.get("/me", headers=user.headers)

    assert before.status_code == 200
    assert (after.status_code, error_code(after)) == (401, "INVALID_TOKEN")


async def test_app_level_dependency_without_install_is_a_clear_error(host_auth: OrgAuth) -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(user: Annotated[User, Depends(current_user)]) -> dict[str, str]:
        return {"email": user.email}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with pytest.raises(RuntimeError, match=r"install\(app\)"):
            await client.get("/me", headers={"Authorization": "Bearer x"})


# --- auth.router mounted by the host itself -----------------------------------------------


async def test_router_mounted_without_install_keeps_orgauth_errors(
    db: AsyncEngine, host_auth: OrgAuth
) -> None:
    """``app.include_router(auth.router)`` alone: the routes work and answer orgauth's error
    body (not a bare 500), validation errors do not echo passwords; nothing else of
    install() is there (no /health, no security headers)."""
    app = FastAPI(lifespan=host_auth.lifespan)
    app.include_router(host_auth.router)

    async with running(app) as client:
        user = await register(client)
        login = await client.post(
            f"{API}/auth/login", json={"email": user["email"], "password": PASSWORD}
        )
        me = await client.get(
            f"{API}/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
        anonymous = await client.get(f"{API}/users/me")
        wrong_password = await client.post(
            f"{API}/auth/login", json={"email": user["email"], "password": "Wrong-password-42!"}
        )
        invalid = await client.post(
            f"{API}/auth/register",
            json={"password": "hunter2-secret"},  # no email
        )
        health = await client.get("/health")

    assert login.status_code == 200
    assert me.json()["email"] == user["email"]
    assert (anonymous.status_code, error_code(anonymous)) == (401, "NOT_AUTHENTICATED")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (wrong_password.status_code, error_code(wrong_password)) == (401, "INVALID_CREDENTIALS")
    assert invalid.status_code == 422
    assert "hunter2-secret" not in invalid.text
    assert health.status_code == 404
    assert "x-content-type-options" not in me.headers


async def test_router_can_be_mounted_under_a_further_prefix(
    db: AsyncEngine, host_auth: OrgAuth
) -> None:
    app = FastAPI(lifespan=host_auth.lifespan)
    app.include_router(host_auth.router, prefix="/identity")

    async with running(app) as client:
        user = await register(client, prefix=f"/identity{API}")
        account = await sign_in(client, user["email"], prefix=f"/identity{API}")
        me = await client.get(f"/identity{API}/users/me", headers=account.headers)

    assert me.json()["id"] == user["id"]


def test_router_is_built_once_per_instance(host_auth: OrgAuth) -> None:
    app = FastAPI()
    app.include_router(host_auth.router)
    paths = set(app.openapi()["paths"])

    assert host_auth.router is host_auth.router
    assert f"{API}/auth/login" in paths
    assert f"{API}/organizations/{{org_id}}/members" in paths
    assert all(path.startswith(API) for path in paths)


async def test_install_serves_every_users_me_method_and_host_routes_keep_precedence(
    db: AsyncEngine, host_auth: OrgAuth
) -> None:
    """install() puts GET /users/me and /health on the app's own router (fast matching);
    that must not change what a host relies on: its routes registered before install()
    still win, PATCH /users/me still reaches orgauth, and the schema lists each once."""
    app = FastAPI(lifespan=host_auth.lifespan)

    @app.get("/health")
    async def host_health() -> dict[str, str]:
        return {"owner": "host"}

    host_auth.install(app)

    async with running(app) as client:
        account = await sign_up(client)
        me = await client.get(f"{API}/users/me", headers=account.headers)
        renamed = await client.patch(
            f"{API}/users/me", json={"first_name": "Ada"}, headers=account.headers
        )
        anonymous = await client.get(f"{API}/users/me")
        health = await client.get("/health")

    assert me.status_code == 200
    assert me.json()["email"] == account.email
    assert renamed.status_code == 200
    assert renamed.json()["first_name"] == "Ada"
    assert (anonymous.status_code, error_code(anonymous)) == (401, "NOT_AUTHENTICATED")
    assert health.json() == {"owner": "host"}
    operations = [
        (path, method)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if path == f"{API}/users/me"
    ]
    assert sorted(operations) == [(f"{API}/users/me", "get"), (f"{API}/users/me", "patch")]
    assert app.openapi()["paths"][f"{API}/users/me"]["get"]["security"] == [{"OrgAuthBearer": []}]
