"""orgauth: authentication, sessions and multi-tenant organizations for FastAPI.

Public names are imported lazily so that ``orgauth --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from orgauth._version import __version__

if TYPE_CHECKING:
    from orgauth.app import create_app
    from orgauth.dependencies import (
        current_principal,
        current_superuser,
        current_user,
        optional_user,
        require_org_permission,
        require_org_role,
    )
    from orgauth.email import EmailMessage, EmailSender
    from orgauth.extension import OrgAuth
    from orgauth.hooks import Hooks
    from orgauth.migrate import exclude_orgauth_tables
    from orgauth.models import (
        AuditEvent,
        EmailVerificationToken,
        Invitation,
        Membership,
        Organization,
        OrganizationApiKey,
        OrganizationRole,
        OrgRole,
        PasswordResetToken,
        RefreshToken,
        User,
        UserSession,
        WebhookDelivery,
        WebhookEndpoint,
    )
    from orgauth.services.api_keys import KeyPrincipal
    from orgauth.services.auth import ResetDelivery
    from orgauth.services.invitations import InvitationDelivery
    from orgauth.services.organizations import OrgAccess
    from orgauth.services.permissions import BUILT_IN_PERMISSIONS, OrgPermission
    from orgauth.services.sessions import Principal
    from orgauth.services.verification import VerificationDelivery
    from orgauth.settings import OrgAuthSettings, SettingsError

_EXPORTS = {
    "create_app": "orgauth.app",
    "current_user": "orgauth.dependencies",
    "current_principal": "orgauth.dependencies",
    "optional_user": "orgauth.dependencies",
    "current_superuser": "orgauth.dependencies",
    "require_org_role": "orgauth.dependencies",
    "require_org_permission": "orgauth.dependencies",
    "EmailMessage": "orgauth.email",
    "EmailSender": "orgauth.email",
    "Hooks": "orgauth.hooks",
    "exclude_orgauth_tables": "orgauth.migrate",
    "OrgAuth": "orgauth.extension",
    "AuditEvent": "orgauth.models",
    "EmailVerificationToken": "orgauth.models",
    "OrganizationApiKey": "orgauth.models",
    "Invitation": "orgauth.models",
    "Membership": "orgauth.models",
    "Organization": "orgauth.models",
    "OrganizationRole": "orgauth.models",
    "OrgRole": "orgauth.models",
    "PasswordResetToken": "orgauth.models",
    "RefreshToken": "orgauth.models",
    "User": "orgauth.models",
    "UserSession": "orgauth.models",
    "WebhookDelivery": "orgauth.models",
    "WebhookEndpoint": "orgauth.models",
    "ResetDelivery": "orgauth.services.auth",
    "KeyPrincipal": "orgauth.services.api_keys",
    "Principal": "orgauth.services.sessions",
    "InvitationDelivery": "orgauth.services.invitations",
    "OrgAccess": "orgauth.services.organizations",
    "BUILT_IN_PERMISSIONS": "orgauth.services.permissions",
    "OrgPermission": "orgauth.services.permissions",
    "VerificationDelivery": "orgauth.services.verification",
    "OrgAuthSettings": "orgauth.settings",
    "SettingsError": "orgauth.settings",
}

__all__ = [
    "BUILT_IN_PERMISSIONS",
    "AuditEvent",
    "EmailMessage",
    "EmailSender",
    "EmailVerificationToken",
    "Hooks",
    "Invitation",
    "InvitationDelivery",
    "KeyPrincipal",
    "Membership",
    "OrgAccess",
    "OrgAuth",
    "OrgAuthSettings",
    "OrgPermission",
    "OrgRole",
    "Organization",
    "OrganizationApiKey",
    "OrganizationRole",
    "PasswordResetToken",
    "Principal",
    "RefreshToken",
    "ResetDelivery",
    "SettingsError",
    "User",
    "UserSession",
    "VerificationDelivery",
    "WebhookDelivery",
    "WebhookEndpoint",
    "__version__",
    "create_app",
    "current_principal",
    "current_superuser",
    "current_user",
    "exclude_orgauth_tables",
    "optional_user",
    "require_org_permission",
    "require_org_role",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orgauth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
