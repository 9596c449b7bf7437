"""The ceiling apps for the benchmark: bare FastAPI routes with no database.

``/health`` returns a constant; ``/me`` only verifies an HS256 JWT the way orgauth does
(same library, claims and checks) and answers with its subject.
"""

from __future__ import annotations

import os
from typing import Any

import jwt
from fastapi import FastAPI, Header, HTTPException

KEY = os.environ["SECRET_KEY"]
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


@app.get("/me")
async def me(authorization: str = Header("")) -> dict[str, Any]:
    token = authorization.removeprefix("Bearer ")
    try:
        claims = jwt.decode(
            token,
            KEY,
            algorithms=["HS256"],
            audience="orgauth",
            issuer="orgauth",
            options={"require": ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]},
        )
    except jwt.PyJWTError:
        raise HTTPException(401) from None
    return {"id": claims["sub"]}
