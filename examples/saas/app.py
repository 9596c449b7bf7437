"""A multi-tenant SaaS on orgauth: projects scoped to an organization, guarded by roles
and permissions.

The app declares two permissions of its own: `projects:read` (members and up) and
`billing:manage` (admins and up, and any custom role holding it). Readers list the
organization's projects; admins and owners create and delete them; holders of
`billing:manage` see the bill; everyone else gets 404, as for orgauth's own organization
routes. Run from the repository root (see README.md):
`export DATABASE_URL=sqlite:///./example-saas.db`, `orgauth migrate apply`,
`alembic -c examples/saas/alembic.ini upgrade head`, then `uvicorn examples.saas.app:app`.
"""

import sys
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orgauth import Membership, OrgAccess, OrgAuth, OrgPermission

if not __package__:  # `python examples/saas/app.py`: make `examples.saas` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.saas.models import (
    PRICE_PER_PROJECT_CENTS,
    Billing,
    Project,
    ProjectCreate,
    ProjectPublic,
)
from examples.saas.settings import example_settings

# The app's own organization permissions, next to orgauth's built-in ones. `min_role` is the
# lowest built-in role holding it (default "admin"); owners and admins can also hand it out
# through a custom role (POST /api/v1/organizations/{org_id}/roles).
PERMISSIONS = [
    OrgPermission("projects:read", "List the organization's projects", min_role="member"),
    OrgPermission("billing:manage", "Manage billing and invoices"),  # min_role="admin"
]

auth = OrgAuth(example_settings(), permissions=PERMISSIONS)  # settings.py: DATABASE_URL, ...
app = FastAPI(title="SaaS orgauth example", lifespan=auth.lifespan)
auth.install(app)

# The request's database session: the same one orgauth's checks used in this request.
Db = Annotated[AsyncSession, Depends(auth.get_db)]
# All need an {org_id} path parameter. Non-members get 404; too little 403 INSUFFICIENT_ROLE.
ProjectReader = Annotated[OrgAccess, Depends(auth.require_org_permission("projects:read"))]
BillingManager = Annotated[OrgAccess, Depends(auth.require_org_permission("billing:manage"))]
OrgAdmin = Annotated[Membership, Depends(auth.require_org_role("admin"))]


def project_not_found() -> HTTPException:
    # The same body shape as orgauth's errors, so clients handle one format.
    detail = {"code": "PROJECT_NOT_FOUND", "message": "No such project in this organization."}
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=detail)


@app.get("/orgs/{org_id}/projects")
async def list_projects(org_id: uuid.UUID, access: ProjectReader, db: Db) -> list[ProjectPublic]:
    """Every project of the organization (`projects:read`: members and up)."""
    projects = await db.scalars(
        select(Project)
        .where(Project.organization_id == access.organization_id)  # type: ignore[arg-type]
        .order_by(Project.name, Project.id)  # type: ignore[arg-type]
    )
    return [ProjectPublic.model_validate(project) for project in projects]


@app.post("/orgs/{org_id}/projects", status_code=status.HTTP_201_CREATED)
async def create_project(
    org_id: uuid.UUID, body: ProjectCreate, membership: OrgAdmin, db: Db
) -> ProjectPublic:
    """Create a project (admins and owners)."""
    project = Project(
        name=body.name, organization_id=membership.organization_id, created_by=membership.user_id
    )
    db.add(project)
    await db.commit()
    return ProjectPublic.model_validate(project)


@app.delete("/orgs/{org_id}/projects/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(
    org_id: uuid.UUID, project_id: uuid.UUID, membership: OrgAdmin, db: Db
) -> Response:
    """Delete a project (admins and owners). Another organization's project is a 404."""
    project = await db.get(Project, project_id)
    # Always filter by the organization from the path that the role check approved.
    if project is None or project.organization_id != membership.organization_id:
        raise project_not_found()
    await db.delete(project)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@app.get("/orgs/{org_id}/billing")
async def get_billing(org_id: uuid.UUID, access: BillingManager, db: Db) -> Billing:
    """This month's bill (`billing:manage`: admins, owners and the roles holding it)."""
    count = await db.scalar(
        select(func.count())
        .select_from(Project)
        .where(Project.organization_id == access.organization_id)  # type: ignore[arg-type]
    )
    count = count or 0
    return Billing(
        organization_id=access.organization_id,
        projects=count,
        amount_due_cents=count * PRICE_PER_PROJECT_CENTS,
        # The caller's role key ("owner", "admin" or a custom one), or an API key's.
        viewed_as=access.role or "api_key",
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
