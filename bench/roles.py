"""Custom roles against built-in ones, over HTTP: ``python bench/roles.py`` (also
``python bench/run.py --only roles``).

Two members of one organization, the same requests: one holds the built-in ``member``
role (resolved in memory), the other a custom role created with
``POST /organizations/{org_id}/roles`` (``organization:read`` and ``members:read``, the same
permissions, read with the membership in one query). ``orgauth serve`` in production mode
and wrk, pinned as in ``bench/run.py``, on a seeded database: 10 000 users, 1 000
organizations of 20 members (20 000 memberships), a custom role in every organization.
Each route is measured built-in, custom, custom, built-in (drift cancels) and the two
measurements of each are averaged. Then, in-process on the same database, the statements
each request sends are captured (``before_cursor_execute``) and the permission check's
membership + role query is run again under ``EXPLAIN (ANALYZE, BUFFERS)`` (PostgreSQL) or
``EXPLAIN QUERY PLAN`` (SQLite). Prints a Markdown table and the plan and writes them to
``bench/results-<database>-roles.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from run import (
    HERE,
    MIN_PRODUCTION_ROUNDS,
    PASSWORD,
    Result,
    Server,
    database_kinds,
    drop_database,
    prepare_database,
    production_env,
    request_json,
    saturate,
    wait_ready,
)

USERS = 10_000
ORGANIZATIONS = 1_000
MEMBERS_PER_ORGANIZATION = 20
CUSTOM_ROLE = "viewer"
#: The same permissions as the built-in ``member`` role.
CUSTOM_PERMISSIONS = ["members:read", "organization:read"]
BUILT_IN_EMAIL = "builtin@roles.example.com"
CUSTOM_EMAIL = "custom@roles.example.com"
#: Built-in, custom, custom, built-in: linear drift of the machine hits both alike.
ORDER = ("built-in", "custom", "custom", "built-in")
RATIO_TARGET = 0.9
CHUNK = 2_000


def seed_email(index: int) -> str:
    return f"seed-{index:05d}@roles.example.com"


def seed_role(position: int) -> str:
    """Position in an organization: 0 owner, 1 admin, odd ones the custom role."""
    if position == 0:
        return "owner"
    if position == 1:
        return "admin"
    return CUSTOM_ROLE if position % 2 else "member"


@dataclass(frozen=True)
class Seeded:
    org_id: uuid.UUID  # the measured organization (its role and two members come by HTTP)
    owner_email: str
    later_custom: list[uuid.UUID]  # its seeded members moved to the custom role by HTTP


async def seed(url: str, rounds: int) -> Seeded:
    """Core ``insert()`` executemany of orgauth's tables, one bcrypt hash for every user.

    Organization ``j`` has users ``(10 j + k) % USERS`` for ``k < 20`` (each user in two
    organizations) in the roles of :func:`seed_role`; every organization but 0 gets its
    custom role here. Organization 0, the measured one, gets 18 seeded built-in members:
    its custom role, the role changes and the two measured members go through the API.
    """
    from sqlalchemy import insert

    from orgauth.db import create_engine
    from orgauth.models import Membership, Organization, OrganizationRole, User, utcnow
    from orgauth.security.passwords import hash_password_sync
    from orgauth.settings import OrgAuthSettings

    password_hash = hash_password_sync(PASSWORD, rounds)
    base = utcnow() - timedelta(hours=1)
    user_ids = [uuid.uuid4() for _ in range(USERS)]
    org_ids = [uuid.uuid4() for _ in range(ORGANIZATIONS)]
    users = [
        {
            "id": user_ids[i],
            "email": seed_email(i),
            "hashed_password": password_hash,
            "first_name": f"First{i}",
            "last_name": "Seed",
            "is_active": True,
            "is_superuser": False,
            "created_at": base,
            "updated_at": base,
            "password_changed_at": base,
        }
        for i in range(USERS)
    ]
    organizations = [
        {
            "id": org_ids[j],
            "name": f"Organization {j:04d}",
            "slug": f"org-{j:04d}",
            "created_at": base,
            "updated_at": base,
        }
        for j in range(ORGANIZATIONS)
    ]
    roles = [
        {
            "id": uuid.uuid4(),
            "organization_id": org_ids[j],
            "key": CUSTOM_ROLE,
            "name": "Viewer",
            "description": None,
            "permissions": CUSTOM_PERMISSIONS,
            "created_at": base,
            "updated_at": base,
        }
        for j in range(1, ORGANIZATIONS)
    ]
    memberships = []
    later_custom = []
    for j in range(ORGANIZATIONS):
        # Organization 0 leaves two places for the measured members.
        size = MEMBERS_PER_ORGANIZATION - 2 if j == 0 else MEMBERS_PER_ORGANIZATION
        for k in range(size):
            user_id, role = user_ids[(10 * j + k) % USERS], seed_role(k)
            if j == 0 and role == CUSTOM_ROLE:
                role = "member"
                later_custom.append(user_id)
            memberships.append(
                {
                    "organization_id": org_ids[j],
                    "user_id": user_id,
                    "role": role,
                    "joined_at": base + timedelta(seconds=k),
                }
            )
    settings = OrgAuthSettings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            for model, rows in (
                (User, users),
                (Organization, organizations),
                (OrganizationRole, roles),
                (Membership, memberships),
            ):
                for start in range(0, len(rows), CHUNK):
                    await connection.execute(insert(model), rows[start : start + CHUNK])
    finally:
        await engine.dispose()
    return Seeded(org_ids[0], seed_email(0), later_custom)


async def analyze(url: str) -> None:
    from orgauth.db import create_engine
    from orgauth.settings import OrgAuthSettings

    engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    try:
        async with engine.begin() as connection:  # statistics are transactional too
            await connection.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()


def set_up_members(base: str, data: Seeded) -> dict[str, str]:
    """Through the API, as its owner: the organization's custom role, its seeded members
    moved to it, and the two measured members. Their access tokens by variant."""
    api = base + "/api/v1"
    orgs = f"{api}/organizations/{data.org_id}"
    owner = request_json(api + "/auth/login", {"email": data.owner_email, "password": PASSWORD})
    token = str(owner["access_token"])
    request_json(
        orgs + "/roles",
        {"key": CUSTOM_ROLE, "name": "Viewer", "permissions": CUSTOM_PERMISSIONS},
        token=token,
    )
    for user_id in data.later_custom:
        request_json(
            f"{orgs}/members/{user_id}", {"role": CUSTOM_ROLE}, method="PATCH", token=token
        )
    tokens = {}
    for variant, email, role in (
        ("built-in", BUILT_IN_EMAIL, "member"),
        ("custom", CUSTOM_EMAIL, CUSTOM_ROLE),
    ):
        request_json(api + "/auth/register", {"email": email, "password": PASSWORD})
        request_json(orgs + "/members", {"email": email, "role": role}, token=token)
        login = request_json(api + "/auth/login", {"email": email, "password": PASSWORD})
        tokens[variant] = str(login["access_token"])
    return tokens


def check_access(base: str, data: Seeded, tokens: dict[str, str]) -> None:
    """Both members hold the same permissions, one through each kind of role."""
    for variant, expected in (("built-in", "member"), ("custom", CUSTOM_ROLE)):
        mine = request_json(base + "/api/v1/organizations/me", method="GET", token=tokens[variant])
        (listed,) = (o for o in mine if o["id"] == str(data.org_id))
        if listed["role"] != expected or listed["permissions"] != CUSTOM_PERMISSIONS:
            raise RuntimeError(f"the {variant} member holds {listed['role']}: {listed}")


def routes(data: Seeded) -> list[tuple[str, str]]:
    """(label, path) of the measured routes."""
    orgs = f"/api/v1/organizations/{data.org_id}"
    return [
        ("GET /organizations/{id}", orgs),
        ("GET /organizations/{id}/members?limit=20", orgs + "/members?limit=20"),
    ]


def bearer_script(workdir: Path, variant: str, token: str) -> Path:
    path = workdir / f"roles-{variant}.lua"
    path.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    return path


def mean_result(name: str, runs: list[Result]) -> Result:
    """The measurements of one route and variant, averaged (non-2xx summed)."""
    return Result(
        name,
        statistics.fmean(r.rps for r in runs),
        statistics.fmean(r.p50_ms for r in runs),
        statistics.fmean(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        note=" / ".join(f"{r.rps:.0f}" for r in runs),
    )


# --- statements and plan, in-process on the same database -------------------------------


@dataclass
class Capture:
    statements: dict[tuple[str, str], int] = field(default_factory=dict)  # (route, variant)
    check_sql: str = ""
    check_parameters: dict[str, Any] = field(default_factory=dict)  # by variant
    plans: dict[str, list[str]] = field(default_factory=dict)  # by variant


def is_permission_check(statement: str) -> bool:
    """The organization + caller's membership + caller's role query of ``get_organization``."""
    flat = " ".join(statement.split())
    return (
        "FROM organizations LEFT OUTER JOIN organization_members" in flat
        and "LEFT OUTER JOIN organization_roles" in flat
    )


async def capture(url: str, secret_key: str, data: Seeded, tokens: dict[str, str]) -> Capture:
    """Every statement the app sends for each request (``before_cursor_execute``); the
    permission check's query, with each member's bind values, under EXPLAIN."""
    import httpx
    from sqlalchemy import event

    from orgauth.app import create_app
    from orgauth.settings import OrgAuthSettings

    settings = OrgAuthSettings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        secret_key=secret_key,  # the server's: its access tokens are valid here too
        rate_limit_enabled=False,
        log_level="WARNING",
    )
    app = create_app(settings)
    out = Capture()
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    async with app.router.lifespan_context(app):
        engine = app.state.orgauth.engine
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            event.listen(engine.sync_engine, "before_cursor_execute", record)
            try:
                for label, path in routes(data):
                    for variant, token in tokens.items():
                        headers = {"Authorization": f"Bearer {token}"}
                        (await client.get(path, headers=headers)).raise_for_status()
                        seen.clear()
                        (await client.get(path, headers=headers)).raise_for_status()
                        out.statements[label, variant] = len(seen)
                        checks = [(s, p) for s, p in seen if is_permission_check(s)]
                        if len(checks) != 1:
                            raise RuntimeError(f"{label}: {len(checks)} permission checks")
                        out.check_sql, out.check_parameters[variant] = checks[0]
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", record)
        async with engine.connect() as connection:
            for variant, parameters in out.check_parameters.items():
                if engine.dialect.name == "postgresql":
                    sql = f"EXPLAIN (ANALYZE, BUFFERS) {out.check_sql}"
                    await connection.exec_driver_sql(sql, parameters)  # warm: plan the 2nd
                    result = await connection.exec_driver_sql(sql, parameters)
                    out.plans[variant] = [row[0] for row in result]
                else:
                    sql = f"EXPLAIN QUERY PLAN {out.check_sql}"
                    result = await connection.exec_driver_sql(sql, parameters)
                    out.plans[variant] = [" | ".join(str(c) for c in row) for row in result]
    return out


# --- the run ----------------------------------------------------------------------------


@dataclass
class RolesRun:
    results: dict[tuple[str, str], Result]  # (route, variant)
    reference: Result  # GET /users/me on the same server
    capture: Capture
    seed_seconds: float


def run_database(kind: str, args: argparse.Namespace) -> RolesRun:
    workdir = Path(tempfile.mkdtemp(prefix="orgauth-bench-roles-"))
    url, pg_name = prepare_database(kind, args.postgres_url, workdir)
    try:
        started = time.perf_counter()
        data = asyncio.run(seed(url, args.rounds))
        seed_seconds = time.perf_counter() - started
        env = production_env(url, workdir, args.rounds)
        server = Server.orgauth(env, workdir)
        try:
            wait_ready(server.base + "/health")
            tokens = set_up_members(server.base, data)
            check_access(server.base, data, tokens)
            if kind == "postgresql":
                asyncio.run(analyze(url))  # what autovacuum does within a minute of a load
            scripts = {v: bearer_script(workdir, v, t) for v, t in tokens.items()}
            # The authentication-only route on the same server: the fixed cost of a request.
            me = saturate(
                "GET /users/me (reference)",
                server.base + "/api/v1/users/me",
                args,
                script=scripts["built-in"],
            )
            measured: dict[tuple[str, str], list[Result]] = {}
            for label, path in routes(data):
                for variant in ORDER:
                    result = saturate(label, server.base + path, args, script=scripts[variant])
                    measured.setdefault((label, variant), []).append(result)
                    print(f"# {kind} {label} {variant}: {result.rps:.1f} req/s", file=sys.stderr)
        finally:
            server.stop()
        results = {
            key: mean_result(f"{key[0]} as {key[1]}", runs) for key, runs in measured.items()
        }
        plan = asyncio.run(capture(url, env["SECRET_KEY"], data, tokens))
    finally:
        drop_database(args.postgres_url, pg_name)
    return RolesRun(results, me, plan, seed_seconds)


def render(kind: str, run: RolesRun) -> str:
    lines = [
        f"### {kind}: custom role against built-in `member`",
        "",
        f"{USERS} users, {ORGANIZATIONS} organizations of {MEMBERS_PER_ORGANIZATION} members, "
        f"a custom role in each (seeded in {run.seed_seconds:.1f} s). Each row: the mean of "
        f"two measurements, order {', '.join(ORDER)} (their req/s in the note).",
        "",
        "| scenario | req/s | p50 ms | p99 ms | p99/p50 | non-2xx | statements | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    me = run.reference
    cells = [me.name, f"{me.rps:.1f}", f"{me.p50_ms:.2f}", f"{me.p99_ms:.2f}", f"{me.tail:.1f}"]
    lines.append("| " + " | ".join([*cells, str(me.errors), "1", "once, first"]) + " |")
    labels = list(dict.fromkeys(label for label, _ in run.results))
    for label in labels:
        for variant in ("built-in", "custom"):
            r = run.results[label, variant]
            cells = [r.name, f"{r.rps:.1f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.tail:.1f}"]
            cells += [str(r.errors), str(run.capture.statements[label, variant]), r.note]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| budget | measured | target | met |", "|---|---:|---:|:---:|"]
    for label in labels:
        ratio = run.results[label, "custom"].rps / run.results[label, "built-in"].rps
        met = "yes" if ratio >= RATIO_TARGET else "NO"
        lines.append(f"| {label}: custom / built-in | {ratio:.2f}x | >= {RATIO_TARGET}x | {met} |")
    explain = "EXPLAIN (ANALYZE, BUFFERS)" if kind == "postgresql" else "EXPLAIN QUERY PLAN"
    for variant in ("custom", "built-in"):
        lines += [
            "",
            f"Permission check ({explain}), {variant} member, parameters "
            f"`{run.capture.check_parameters[variant]}`:",
            "",
            "```",
            *run.capture.plans[variant],
            "```",
        ]
    lines += ["", "```", run.capture.check_sql.strip(), "```", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    for kind in database_kinds(args):
        table = render(kind, run_database(kind, args))
        (HERE / f"results-{kind}-roles.md").write_text(table)
        print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql", "both"], default="postgresql"
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=12, help="BCRYPT_ROUNDS for the run (production: >= 12)"
    )
    args = parser.parse_args()
    if args.rounds < MIN_PRODUCTION_ROUNDS:
        parser.error(f"--rounds must be at least {MIN_PRODUCTION_ROUNDS}: the run is production")
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install wrk")
    run(args)


if __name__ == "__main__":
    main()
