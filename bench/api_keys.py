"""API key against bearer token, over HTTP: ``python bench/api_keys.py`` (also
``python bench/run.py --only api-keys``).

The same organization, the same route (``GET /organizations/{id}``), the same permissions:
once with an owner's access token, once with an API key of the organization holding
``organization:read`` (sent as ``X-API-Key``). ``orgauth serve`` in production mode and wrk,
pinned as in ``bench/run.py``. Measured bearer, key, key, bearer (drift cancels) and each
variant's two measurements averaged. Prints a Markdown table and writes it to
``bench/results-<database>-api-keys.md``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

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

ORDER = ("bearer", "key", "key", "bearer")
RATIO_TARGET = 0.9
OWNER_EMAIL = "owner@keys.example.com"


def set_up(base: str) -> tuple[str, dict[str, str]]:
    """An owner, their organization and a key of it; the path and each variant's header."""
    api = base + "/api/v1"
    request_json(api + "/auth/register", {"email": OWNER_EMAIL, "password": PASSWORD})
    login = request_json(api + "/auth/login", {"email": OWNER_EMAIL, "password": PASSWORD})
    token = str(login["access_token"])
    org = request_json(api + "/organizations", {"name": "Key bench"}, token=token)
    created = request_json(
        f"{api}/organizations/{org['id']}/api-keys",
        {"name": "bench", "permissions": ["organization:read"]},
        token=token,
    )
    path = f"/api/v1/organizations/{org['id']}"
    return path, {"bearer": f"Authorization: Bearer {token}", "key": f"X-API-Key: {created['key']}"}


def header_script(workdir: Path, variant: str, header: str) -> Path:
    name, value = header.split(": ", 1)
    path = workdir / f"api-keys-{variant}.lua"
    path.write_text(f'wrk.headers["{name}"] = "{value}"\n')
    return path


def run_database(kind: str, args: argparse.Namespace) -> dict[str, list[Result]]:
    workdir = Path(tempfile.mkdtemp(prefix="orgauth-bench-keys-"))
    url, pg_name = prepare_database(kind, args.postgres_url, workdir)
    measured: dict[str, list[Result]] = {}
    try:
        server = Server.orgauth(production_env(url, workdir, args.rounds), workdir)
        try:
            wait_ready(server.base + "/health")
            path, headers = set_up(server.base)
            scripts = {v: header_script(workdir, v, h) for v, h in headers.items()}
            for variant in ORDER:
                result = saturate(
                    f"GET /organizations/{{id}} with {variant}",
                    server.base + path,
                    args,
                    script=scripts[variant],
                )
                if result.errors:
                    raise RuntimeError(f"{variant}: {result.errors} non-2xx answers")
                measured.setdefault(variant, []).append(result)
                print(f"# {kind} {variant}: {result.rps:.1f} req/s", file=sys.stderr)
        finally:
            server.stop()
    finally:
        drop_database(args.postgres_url, pg_name)
        shutil.rmtree(workdir, ignore_errors=True)
    return measured


def render(kind: str, measured: dict[str, list[Result]]) -> str:
    lines = [
        f"### {kind}: API key against bearer token",
        "",
        f"`GET /organizations/{{id}}`, order {', '.join(ORDER)}; each row the mean of two "
        "measurements (their req/s in the note).",
        "",
        "| credential | req/s | p50 ms | p99 ms | note |",
        "|---|---:|---:|---:|---|",
    ]
    rates = {}
    for variant in ("bearer", "key"):
        runs = measured[variant]
        rates[variant] = statistics.fmean(r.rps for r in runs)
        p50 = statistics.fmean(r.p50_ms for r in runs)
        p99 = statistics.fmean(r.p99_ms for r in runs)
        note = " / ".join(f"{r.rps:.0f}" for r in runs)
        lines.append(f"| {variant} | {rates[variant]:.1f} | {p50:.2f} | {p99:.2f} | {note} |")
    ratio = rates["key"] / rates["bearer"]
    met = "yes" if ratio >= RATIO_TARGET else "NO"
    lines += [
        "",
        "| budget | measured | target | met |",
        "|---|---:|---:|:---:|",
        f"| key / bearer | {ratio:.2f}x | >= {RATIO_TARGET}x | {met} |",
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    for kind in database_kinds(args):
        table = render(kind, run_database(kind, args))
        (HERE / f"results-{kind}-api-keys.md").write_text(table)
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
