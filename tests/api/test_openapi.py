"""OpenAPI operation ids: short, stable names that generated clients can use as is."""

from __future__ import annotations

import re

from fastapi import FastAPI

from orgauth import OrgAuth, OrgAuthSettings

EXPECTED = {
    ("get", "/health"): "health",
    ("get", "/api/v1/users/me"): "users_get_me",
    ("patch", "/api/v1/users/me"): "users_update_me",
    ("post", "/api/v1/users/me/password"): "users_change_password",
    ("post", "/api/v1/users/me/email"): "users_request_email_change",
    ("post", "/api/v1/users/me/email/confirm"): "users_confirm_email_change",
    ("get", "/api/v1/sessions/me"): "sessions_list_mine",
    ("delete", "/api/v1/sessions/{session_id}"): "sessions_revoke",
    ("post", "/api/v1/auth/register"): "auth_register",
    ("post", "/api/v1/auth/login"): "auth_login",
    ("post", "/api/v1/auth/login/oauth"): "auth_login_form",
    ("post", "/api/v1/auth/refresh"): "auth_refresh",
    ("post", "/api/v1/auth/logout"): "auth_logout",
    ("post", "/api/v1/auth/logout-all"): "auth_logout_all",
    ("post", "/api/v1/auth/password-reset/request"): "auth_request_password_reset",
    ("post", "/api/v1/auth/password-reset/confirm"): "auth_confirm_password_reset",
    ("post", "/api/v1/auth/verify-email/request"): "auth_request_email_verification",
    ("post", "/api/v1/auth/verify-email/confirm"): "auth_confirm_email_verification",
    ("post", "/api/v1/organizations"): "organizations_create",
    ("get", "/api/v1/organizations/me"): "organizations_list_mine",
    ("get", "/api/v1/organizations/{org_id}"): "organizations_get",
    ("patch", "/api/v1/organizations/{org_id}"): "organizations_update",
    ("delete", "/api/v1/organizations/{org_id}"): "organizations_delete",
    ("get", "/api/v1/organizations/{org_id}/members"): "organizations_list_members",
    ("post", "/api/v1/organizations/{org_id}/members"): "organizations_add_member",
    ("patch", "/api/v1/organizations/{org_id}/members/{user_id}"): (
        "organizations_change_member_role"
    ),
    ("delete", "/api/v1/organizations/{org_id}/members/{user_id}"): "organizations_remove_member",
    ("post", "/api/v1/organizations/{org_id}/transfer-ownership"): (
        "organizations_transfer_ownership"
    ),
    ("get", "/api/v1/organizations/{org_id}/roles"): "organizations_list_roles",
    ("post", "/api/v1/organizations/{org_id}/roles"): "organizations_create_role",
    ("patch", "/api/v1/organizations/{org_id}/roles/{role_key}"): "organizations_update_role",
    ("delete", "/api/v1/organizations/{org_id}/roles/{role_key}"): "organizations_delete_role",
    ("get", "/api/v1/organizations/{org_id}/permissions"): "organizations_list_permissions",
    ("post", "/api/v1/organizations/{org_id}/invitations"): "organizations_create_invitation",
    ("get", "/api/v1/organizations/{org_id}/invitations"): "organizations_list_invitations",
    ("post", "/api/v1/organizations/{org_id}/invitations/{invitation_id}/resend"): (
        "organizations_resend_invitation"
    ),
    ("post", "/api/v1/organizations/{org_id}/invitations/{invitation_id}/revoke"): (
        "organizations_revoke_invitation"
    ),
    ("get", "/api/v1/invitations/me"): "invitations_list_mine",
    ("get", "/api/v1/organizations/{org_id}/audit-logs"): "organizations_list_audit_events",
    ("get", "/api/v1/admin/audit-logs"): "admin_list_audit_events",
    ("get", "/api/v1/organizations/{org_id}/audit-logs/export"): (
        "organizations_export_audit_events"
    ),
    ("get", "/api/v1/admin/audit-logs/export"): "admin_export_audit_events",
    ("post", "/api/v1/organizations/{org_id}/api-keys"): "organizations_create_api_key",
    ("get", "/api/v1/organizations/{org_id}/api-keys"): "organizations_list_api_keys",
    ("post", "/api/v1/organizations/{org_id}/api-keys/{key_id}/revoke"): (
        "organizations_revoke_api_key"
    ),
    ("post", "/api/v1/organizations/{org_id}/webhooks"): "organizations_create_webhook",
    ("get", "/api/v1/organizations/{org_id}/webhooks"): "organizations_list_webhooks",
    ("get", "/api/v1/organizations/{org_id}/webhooks/{endpoint_id}"): "organizations_get_webhook",
    ("patch", "/api/v1/organizations/{org_id}/webhooks/{endpoint_id}"): (
        "organizations_update_webhook"
    ),
    ("delete", "/api/v1/organizations/{org_id}/webhooks/{endpoint_id}"): (
        "organizations_delete_webhook"
    ),
    ("post", "/api/v1/organizations/{org_id}/webhooks/{endpoint_id}/rotate-secret"): (
        "organizations_rotate_webhook_secret"
    ),
    ("get", "/api/v1/organizations/{org_id}/webhooks/{endpoint_id}/deliveries"): (
        "organizations_list_webhook_deliveries"
    ),
    (
        "post",
        "/api/v1/organizations/{org_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    ): "organizations_redeliver_webhook",
    ("post", "/api/v1/invitations/accept"): "invitations_accept",
    ("post", "/api/v1/invitations/decline"): "invitations_decline",
    ("get", "/api/v1/admin/users"): "admin_list_users",
    ("post", "/api/v1/admin/users"): "admin_create_user",
    ("post", "/api/v1/admin/users/bulk-action"): "admin_bulk_action",
    ("get", "/api/v1/admin/users/{user_id}"): "admin_get_user",
    ("patch", "/api/v1/admin/users/{user_id}"): "admin_update_user",
    ("delete", "/api/v1/admin/users/{user_id}"): "admin_delete_user",
    ("delete", "/api/v1/admin/users/{user_id}/sessions"): "admin_revoke_user_sessions",
    ("get", "/api/v1/admin/sessions"): "admin_list_sessions",
    ("get", "/api/v1/admin/organizations"): "admin_list_organizations",
    ("post", "/api/v1/admin/organizations"): "admin_create_organization",
    ("get", "/api/v1/admin/organizations/{org_id}"): "admin_get_organization",
    ("patch", "/api/v1/admin/organizations/{org_id}"): "admin_update_organization",
    ("delete", "/api/v1/admin/organizations/{org_id}"): "admin_delete_organization",
    ("get", "/api/v1/admin/organizations/{org_id}/members"): "admin_organizations_list_members",
    ("post", "/api/v1/admin/organizations/{org_id}/members"): "admin_organizations_add_member",
    ("patch", "/api/v1/admin/organizations/{org_id}/members/{user_id}"): (
        "admin_organizations_change_member_role"
    ),
    ("delete", "/api/v1/admin/organizations/{org_id}/members/{user_id}"): (
        "admin_organizations_remove_member"
    ),
    ("get", "/api/v1/admin/stats"): "admin_stats",
}


def operation_ids(app: FastAPI) -> dict[tuple[str, str], str]:
    return {
        (method, path): operation["operationId"]
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
    }


def test_every_operation_has_its_short_stable_id(app: FastAPI) -> None:
    assert operation_ids(app) == EXPECTED
    for operation_id in EXPECTED.values():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation_id)


def test_a_host_app_gets_the_same_ids(settings: OrgAuthSettings) -> None:
    auth = OrgAuth(settings)
    installed = FastAPI()
    auth.install(installed)
    mounted = FastAPI()
    mounted.include_router(auth.router)

    assert operation_ids(installed) == EXPECTED
    assert operation_ids(mounted) == {k: v for k, v in EXPECTED.items() if k[1] != "/health"}
