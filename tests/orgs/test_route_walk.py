"""Every ``/organizations/{org_id}…`` route, for every kind of caller, against the permission
table of docs/API.md.

The routes are discovered from the app, and the table below must name exactly those: a new
organization route fails this module until someone writes down who may call it. The
statuses are written out by hand, not derived from the permission module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import select

from orgauth.models import Invitation, OrgRole, WebhookEndpoint
from tests.support.http import fetch
from tests.support.orgs import API, Account, Factory, RoledOrg, assert_error
from tests.support.roles import role_rows

PREFIX = f"{API}/organizations/{{org_id}}"
ACTORS = ("owner", "admin", "member", "reader", "superuser", "outsider")
DENIED = (403, "INSUFFICIENT_ROLE")
HIDDEN = (404, "ORGANIZATION_NOT_FOUND")
WALK_HOOK = "https://walk.invalid/hook"


@dataclass(frozen=True)
class Scene:
    """A roled organization, plus a member holding a custom role with only
    ``organization:read``, a target member, a candidate who is not in it, an unheld spare
    custom role, a superuser who is not a member, a pending invitation and a webhook
    endpoint with one pending delivery, and an API key."""

    org: RoledOrg
    reader: Account
    target: Account
    candidate: Account
    superuser: Account
    invitation_id: str
    endpoint_id: str
    delivery_id: str
    api_key_id: str

    def actor(self, name: str) -> Account:
        if name == "reader":
            return self.reader
        if name == "superuser":
            return self.superuser
        if name == "outsider":
            return self.org.outsider
        return self.org.by_role(name)


@dataclass(frozen=True)
class Route:
    """One call of a route: the concrete path suffix, a body, and the expected outcome
    for each actor (a status, or a status and error code)."""

    path: Callable[[Scene], str]
    expected: dict[str, int | tuple[int, str]]
    body: Callable[[Scene], dict[str, Any]] | None = None


def _everyone(status: int) -> dict[str, int | tuple[int, str]]:
    return {
        "owner": status,
        "admin": status,
        "member": status,
        "reader": status,
        "superuser": status,
        "outsider": HIDDEN,
    }


def _managers(status: int) -> dict[str, int | tuple[int, str]]:
    """Owners, admins and superusers; members and the reader are refused."""
    return {
        "owner": status,
        "admin": status,
        "member": DENIED,
        "reader": DENIED,
        "superuser": status,
        "outsider": HIDDEN,
    }


#: (method, route template) -> the call. Ordered so that each actor can walk them in turn
#: on one organization: the organization itself is deleted last.
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", ""): Route(lambda s: "", _everyone(200)),
    ("GET", "/members"): Route(
        lambda s: "/members",
        {
            "owner": 200,
            "admin": 200,
            "member": 200,
            "reader": DENIED,
            "superuser": 200,
            "outsider": HIDDEN,
        },
    ),
    ("GET", "/roles"): Route(lambda s: "/roles", _everyone(200)),
    ("GET", "/permissions"): Route(lambda s: "/permissions", _everyone(200)),
    ("PATCH", ""): Route(lambda s: "", _managers(200), lambda s: {"name": "Walked"}),
    ("POST", "/members"): Route(
        lambda s: "/members",
        _managers(201),
        lambda s: {"user_id": str(s.candidate.id), "role": "member"},
    ),
    ("PATCH", "/members/{user_id}"): Route(
        lambda s: f"/members/{s.target.id}", _managers(200), lambda s: {"role": "admin"}
    ),
    ("DELETE", "/members/{user_id}"): Route(lambda s: f"/members/{s.target.id}", _managers(204)),
    ("POST", "/roles"): Route(
        lambda s: "/roles",
        _managers(201),
        lambda s: {"key": "walker", "name": "Walker", "permissions": ["organization:read"]},
    ),
    ("PATCH", "/roles/{role_key}"): Route(
        lambda s: "/roles/spare", _managers(200), lambda s: {"name": "Spare part"}
    ),
    ("DELETE", "/roles/{role_key}"): Route(lambda s: "/roles/spare", _managers(204)),
    ("GET", "/invitations"): Route(lambda s: "/invitations", _managers(200)),
    ("GET", "/audit-logs"): Route(lambda s: "/audit-logs", _managers(200)),
    ("GET", "/audit-logs/export"): Route(lambda s: "/audit-logs/export?format=csv", _managers(200)),
    ("POST", "/invitations"): Route(
        lambda s: "/invitations", _managers(201), lambda s: {"email": "walker@example.com"}
    ),
    ("POST", "/invitations/{invitation_id}/resend"): Route(
        lambda s: f"/invitations/{s.invitation_id}/resend", _managers(200)
    ),
    ("POST", "/invitations/{invitation_id}/revoke"): Route(
        lambda s: f"/invitations/{s.invitation_id}/revoke", _managers(200)
    ),
    # Owners only. Naming the outsider (never a member) lets owners and superusers get past
    # every permission check without the walk losing its owner; the transfer itself is
    # tested in test_transfer_ownership.py.
    ("POST", "/transfer-ownership"): Route(
        lambda s: "/transfer-ownership",
        {
            "owner": (404, "MEMBER_NOT_FOUND"),
            "admin": DENIED,
            "member": DENIED,
            "reader": DENIED,
            "superuser": (404, "MEMBER_NOT_FOUND"),
            "outsider": HIDDEN,
        },
        lambda s: {"user_id": str(s.org.outsider.id)},
    ),
    ("GET", "/api-keys"): Route(lambda s: "/api-keys", _managers(200)),
    ("POST", "/api-keys"): Route(
        lambda s: "/api-keys",
        _managers(201),
        lambda s: {"name": "walker", "permissions": ["members:read"]},
    ),
    ("POST", "/api-keys/{key_id}/revoke"): Route(
        lambda s: f"/api-keys/{s.api_key_id}/revoke", _managers(200)
    ),
    ("GET", "/webhooks"): Route(lambda s: "/webhooks", _managers(200)),
    ("POST", "/webhooks"): Route(
        lambda s: "/webhooks", _managers(201), lambda s: {"url": WALK_HOOK, "events": ["*"]}
    ),
    ("GET", "/webhooks/{endpoint_id}"): Route(
        lambda s: f"/webhooks/{s.endpoint_id}", _managers(200)
    ),
    ("PATCH", "/webhooks/{endpoint_id}"): Route(
        lambda s: f"/webhooks/{s.endpoint_id}", _managers(200), lambda s: {"description": "w"}
    ),
    ("POST", "/webhooks/{endpoint_id}/rotate-secret"): Route(
        lambda s: f"/webhooks/{s.endpoint_id}/rotate-secret", _managers(200)
    ),
    ("GET", "/webhooks/{endpoint_id}/deliveries"): Route(
        lambda s: f"/webhooks/{s.endpoint_id}/deliveries", _managers(200)
    ),
    ("POST", "/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver"): Route(
        lambda s: f"/webhooks/{s.endpoint_id}/deliveries/{s.delivery_id}/redeliver",
        {
            **_managers(409),
            "owner": (409, "DELIVERY_PENDING"),
            "admin": (409, "DELIVERY_PENDING"),
            "superuser": (409, "DELIVERY_PENDING"),
        },
    ),
    ("DELETE", "/webhooks/{endpoint_id}"): Route(
        lambda s: f"/webhooks/{s.endpoint_id}", _managers(204)
    ),
    ("DELETE", ""): Route(
        lambda s: "",
        {
            "owner": 204,
            "admin": DENIED,
            "member": DENIED,
            "reader": DENIED,
            "superuser": 204,
            "outsider": HIDDEN,
        },
    ),
}


def organization_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, template after /organizations/{org_id}) of every route the app serves."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        if not path or not (path == PREFIX or path.startswith(f"{PREFIX}/")):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, path.removeprefix(PREFIX)))
    return found


def test_the_table_names_every_organization_route(app: FastAPI) -> None:
    assert organization_routes(app) == set(ROUTES)
    assert all(set(route.expected) == set(ACTORS) for route in ROUTES.values())


@pytest.fixture
async def scene(client: httpx.AsyncClient, factory: Factory, roled_org: RoledOrg) -> Scene:
    for key, permissions in (("reader", ["organization:read"]), ("spare", ["organization:read"])):
        response = await client.post(
            f"{roled_org.url}/roles",
            json={"key": key, "name": key.title(), "permissions": permissions},
            headers=roled_org.owner.headers,
        )
        assert response.status_code == 201, response.text
    reader = await factory.account()
    await factory.add_membership(roled_org.id, reader.id, "reader")
    target = await factory.account()
    await factory.add_membership(roled_org.id, target.id, OrgRole.MEMBER)
    # A name that does not resolve is accepted (and never delivered to here).
    endpoint = (
        await client.post(
            f"{roled_org.url}/webhooks",
            json={"url": WALK_HOOK, "events": ["invitation.created"]},
            headers=roled_org.owner.headers,
        )
    ).json()
    invitation = await client.post(
        f"{roled_org.url}/invitations",
        json={"email": "invited@example.com"},
        headers=roled_org.owner.headers,
    )
    assert invitation.status_code == 201, invitation.text
    deliveries = await client.get(
        f"{roled_org.url}/webhooks/{endpoint['id']}/deliveries", headers=roled_org.owner.headers
    )
    [delivery] = deliveries.json()["data"]  # the invitation's
    api_key = await client.post(
        f"{roled_org.url}/api-keys",
        json={"name": "scene", "permissions": ["members:read"]},
        headers=roled_org.owner.headers,
    )
    assert api_key.status_code == 201, api_key.text
    return Scene(
        roled_org,
        reader,
        target,
        await factory.account(),
        await factory.superuser(),
        invitation.json()["id"],
        endpoint["id"],
        delivery["id"],
        api_key.json()["id"],
    )


async def _state(factory: Factory, org_id: uuid.UUID) -> tuple[Any, ...]:
    """What a refused call must leave alone: memberships, the organization, its roles and
    invitations."""
    invitations = await fetch(
        factory.engine,
        select(Invitation.id, Invitation.status, Invitation.token_hash, Invitation.expires_at)
        .where(Invitation.organization_id == org_id)
        .order_by(Invitation.id),
    )
    endpoints = await fetch(
        factory.engine,
        select(
            WebhookEndpoint.id,
            WebhookEndpoint.url,
            WebhookEndpoint.description,
            WebhookEndpoint.secret_encrypted,
            WebhookEndpoint.enabled,
        )
        .where(WebhookEndpoint.organization_id == org_id)
        .order_by(WebhookEndpoint.id),
    )
    return (
        await factory.roles(org_id),
        await factory.organization_row(org_id),
        await role_rows(factory.engine, org_id),
        [tuple(row) for row in invitations],
        [tuple(row) for row in endpoints],
    )


def _outcome(response: httpx.Response) -> int | tuple[int, str]:
    if response.status_code < 400:
        return response.status_code
    return response.status_code, response.json()["detail"]["code"]


@pytest.mark.parametrize("actor", ACTORS)
async def test_every_organization_route_answers_each_actor_as_documented(
    client: httpx.AsyncClient, factory: Factory, scene: Scene, actor: str
) -> None:
    caller = scene.actor(actor)
    mismatches = []
    for (method, template), route in ROUTES.items():
        before = await _state(factory, scene.org.id)
        response = await client.request(
            method,
            f"{scene.org.url}{route.path(scene)}",
            json=route.body(scene) if route.body else None,
            headers=caller.headers,
        )
        expected = route.expected[actor]
        got = _outcome(response)
        if got != expected:
            mismatches.append((method, template, expected, got, response.text[:200]))
        elif isinstance(expected, tuple):
            assert await _state(factory, scene.org.id) == before, (method, template)
    assert mismatches == []


async def test_every_organization_route_is_404_for_an_organization_that_does_not_exist(
    client: httpx.AsyncClient, scene: Scene
) -> None:
    missing = f"{API}/organizations/{uuid.uuid4()}"
    for caller in (scene.org.owner, scene.superuser):
        for (method, _), route in ROUTES.items():
            response = await client.request(
                method,
                f"{missing}{route.path(scene)}",
                json=route.body(scene) if route.body else None,
                headers=caller.headers,
            )
            assert _outcome(response) == HIDDEN, (method, route.path(scene), response.text)


async def test_every_organization_route_is_401_without_a_token(
    client: httpx.AsyncClient, scene: Scene
) -> None:
    for (method, _), route in ROUTES.items():
        response = await client.request(
            method,
            f"{scene.org.url}{route.path(scene)}",
            json=route.body(scene) if route.body else None,
        )
        assert_error(response, 401, "NOT_AUTHENTICATED")


#: Organization routes that need a person's session: an API key of the organization gets
#: 403 API_KEY_NOT_ALLOWED there (docs/API.md, "API keys"); every other route is open.
CLOSED_TO_KEYS = {
    ("DELETE", ""),
    ("POST", "/transfer-ownership"),
    ("GET", "/api-keys"),
    ("POST", "/api-keys"),
    ("POST", "/api-keys/{key_id}/revoke"),
}


async def test_an_api_key_is_refused_exactly_on_the_routes_closed_to_keys(
    client: httpx.AsyncClient, factory: Factory, scene: Scene
) -> None:
    assert set(ROUTES) >= CLOSED_TO_KEYS
    catalog = await client.get(f"{scene.org.url}/permissions", headers=scene.org.owner.headers)
    created = await client.post(
        f"{scene.org.url}/api-keys",
        json={"name": "walker", "permissions": [p["key"] for p in catalog.json()]},
        headers=scene.org.owner.headers,
    )
    key = {"X-API-Key": created.json()["key"]}
    mismatches = []
    for (method, template), route in ROUTES.items():
        before = await _state(factory, scene.org.id)
        response = await client.request(
            method,
            f"{scene.org.url}{route.path(scene)}",
            json=route.body(scene) if route.body else None,
            headers=key,
        )
        got = _outcome(response)
        if (method, template) in CLOSED_TO_KEYS:
            if got != (403, "API_KEY_NOT_ALLOWED"):
                mismatches.append((method, template, got))
            assert await _state(factory, scene.org.id) == before, (method, template)
        elif got == (403, "API_KEY_NOT_ALLOWED") or response.status_code >= 500:
            mismatches.append((method, template, got))
    assert mismatches == []
