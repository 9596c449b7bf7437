"""OpenAPI error declarations shared by the routers."""

from __future__ import annotations

from typing import Any

from orgauth.schemas import ErrorResponse, ValidationErrorResponse


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting orgauth's error body for each status code.

    An authenticated route (401 listed) also documents 400: a request sending both
    ``Authorization`` and ``X-API-Key`` is ``BAD_REQUEST``."""
    descriptions = {
        400: "Bad request",
        401: "Not authenticated (carries WWW-Authenticate: Bearer)",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        422: "Invalid input",
        429: "Too many requests (carries Retry-After)",
    }
    if 401 in codes and 400 not in codes:
        codes = (400, *codes)
    documented: dict[int | str, dict[str, Any]] = {}
    for code in sorted(codes):
        # 422 is either a field-level validation error list or an orgauth error (e.g.
        # WEAK_PASSWORD).
        model: Any = ValidationErrorResponse | ErrorResponse if code == 422 else ErrorResponse
        documented[code] = {"model": model, "description": descriptions.get(code, "Error")}
    return documented


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
