"""Pagination and search query parameters shared by every list endpoint (docs/API.md)."""

from typing import Annotated

from fastapi import Query

from orgauth.schemas import MAX_PAGE_SIZE, MAX_SEARCH_LENGTH

PageParam = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]
LimitParam = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page (1-100).")]
# No NUL: PostgreSQL refuses it in text and SQLite's LIKE stops at it (matching everything).
NO_NUL = r"^[^\x00]*$"
SearchParam = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_SEARCH_LENGTH,
        pattern=NO_NUL,
        description="Literal substring search.",
    ),
]
