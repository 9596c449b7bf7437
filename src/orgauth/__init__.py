"""orgauth: authentication, sessions and multi-tenant organizations for FastAPI.

Public names are imported lazily so that ``orgauth --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from orgauth._version import __version__

if TYPE_CHECKING:
    from orgauth.app import create_app
    from orgauth.extension import OrgAuth
    from orgauth.models import (
        Membership,
        Organization,
        OrgRole,
        PasswordResetToken,
        RefreshToken,
        User,
        UserSession,
    )
    from orgauth.settings import OrgAuthSettings, SettingsError

_EXPORTS = {
    "create_app": "orgauth.app",
    "OrgAuth": "orgauth.extension",
    "Membership": "orgauth.models",
    "Organization": "orgauth.models",
    "OrgRole": "orgauth.models",
    "PasswordResetToken": "orgauth.models",
    "RefreshToken": "orgauth.models",
    "User": "orgauth.models",
    "UserSession": "orgauth.models",
    "OrgAuthSettings": "orgauth.settings",
    "SettingsError": "orgauth.settings",
}

__all__ = [
    "Membership",
    "OrgAuth",
    "OrgAuthSettings",
    "OrgRole",
    "Organization",
    "PasswordResetToken",
    "RefreshToken",
    "SettingsError",
    "User",
    "UserSession",
    "__version__",
    "create_app",
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
