"""The SaaS example's own table: projects, each owned by one orgauth organization, and the
bill computed from them.

The host's models live in SQLModel's shared metadata next to orgauth's, so foreign keys can
name ``organizations.id`` and ``users.id``. The host's Alembic environment
(``migrations/env.py``) creates and changes only these tables; orgauth's own migrations
(`orgauth migrate apply`) own orgauth's.
"""

import uuid
from typing import ClassVar

from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

import orgauth.models  # noqa: F401  (registers `organizations` and `users` for the foreign keys)

PROJECT_NAME_MAX_LENGTH = 100
PRICE_PER_PROJECT_CENTS = 900  # $9 per project and month


class ProjectBase(SQLModel):
    name: str = Field(min_length=1, max_length=PROJECT_NAME_MAX_LENGTH)


class ProjectCreate(ProjectBase):
    """What a client may send: a name, nothing else."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]


class Project(ProjectBase, table=True):
    """Storage. Deleting the organization deletes its projects (ON DELETE CASCADE);
    deleting the user who created one keeps the project (ON DELETE SET NULL)."""

    __tablename__: ClassVar[str] = "projects"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    organization_id: uuid.UUID = Field(
        foreign_key="organizations.id", ondelete="CASCADE", index=True
    )
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")


class ProjectPublic(ProjectBase):
    """What a client gets back."""

    id: uuid.UUID
    organization_id: uuid.UUID
    created_by: uuid.UUID | None


class Billing(SQLModel):
    """An organization's bill for this month (computed, not stored)."""

    organization_id: uuid.UUID
    projects: int
    amount_due_cents: int
    viewed_as: str | None = Field(description="The caller's role key in the organization.")
