"""OpenAPI error declarations shared by the routers."""

from __future__ import annotations

from typing import Any

from orgauth.schemas import ErrorResponse


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
    return {
        code: {"model": ErrorResponse, "description": descriptions.get(code, "Error")}
        for code in codes
    }


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
