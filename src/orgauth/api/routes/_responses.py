"""OpenAPI error declarations shared by the routers."""

from __future__ import annotations

from typing import Any

from orgauth.schemas import ErrorResponse, ValidationErrorResponse


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting orgauth's error body for each status code."""
    descriptions = {
        400: "Bad request",
        401: "Not authenticated (carries WWW-Authenticate: Bearer)",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        422: "Invalid input",
        429: "Too many requests (carries Retry-After)",
    }
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        # 422 is either a field-level validation error list or an orgauth error (e.g.
        # WEAK_PASSWORD).
        model: Any = ValidationErrorResponse | ErrorResponse if code == 422 else ErrorResponse
        documented[code] = {"model": model, "description": descriptions.get(code, "Error")}
    return documented


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
