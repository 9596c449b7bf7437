"""The smallest embedding: orgauth's routes plus one route of your own, protected.

Run from the repository root: `export DATABASE_URL=sqlite:///./example-minimal.db`,
`orgauth migrate apply`, then `uvicorn examples.minimal.app:app` (or
`python examples/minimal/app.py`).
"""

from typing import Annotated

from fastapi import Depends, FastAPI

from orgauth import OrgAuth, OrgAuthSettings, User

settings = OrgAuthSettings()  # DATABASE_URL, SECRET_KEY, ... from the environment or .env
if settings.database_url is None and settings.postgres_host is None:
    # Nothing configured: this example's own file, so the examples never share a database.
    settings = OrgAuthSettings(database_url="sqlite:///./example-minimal.db")
auth = OrgAuth(settings)
app = FastAPI(title="minimal orgauth example", lifespan=auth.lifespan)
auth.install(app)  # /api/v1/auth/..., /api/v1/users/..., /health, error format, headers, CORS


@app.get("/hello")
async def hello(user: Annotated[User, Depends(auth.current_user)]) -> dict[str, str]:
    """Only signed-in users get here; everyone else gets 401."""
    return {"message": f"Hello, {user.email}!"}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
