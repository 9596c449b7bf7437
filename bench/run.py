"""One-command HTTP benchmark of orgauth: ``python bench/run.py``.

Measures what users run: ``orgauth serve`` in production mode (JSON log lines, an access
log line for every request, written to a file), one worker pinned to core 0, the load
generator (wrk) pinned to core 1. In the same run the ceilings: a bare FastAPI health
route and a bare app that only verifies a JWT (uvicorn, no access log). Prints a Markdown
table (requests/s, p50/p99 and their ratio, logins against raw bcrypt on the same core,
peak RSS) per database and writes it to ``bench/results-<database>.md``. Needs ``wrk``
(Debian package) and, for PostgreSQL, a server reachable at ``--postgres-url``.
``--only roles`` runs ``bench/roles.py`` instead (custom against built-in roles), ``--only
api-keys`` ``bench/api_keys.py`` (API key against bearer token); ``--only`` is repeatable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PASSWORD = "bench-correct-horse-battery-staple"
EMAIL = "bench@example.com"
# Refresh tokens work once; the Lua script recycles each response's new token, and a
# spare token per connection keeps the queue from running dry.
REFRESH_CONNECTIONS = 8


# Each saturated scenario first runs this long unmeasured: the pool's connections are
# opened and the first requests' one-off work is done before the measured seconds.
WARMUP_SECONDS = 2
MIN_PRODUCTION_ROUNDS = 12


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    note: str = ""

    @property
    def tail(self) -> float:
        """p99 / p50."""
        return self.p99_ms / self.p50_ms if self.p50_ms else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not become ready")


def request_json(
    url: str, body: dict[str, object] | None = None, *, method: str = "POST", token: str = ""
) -> Any:
    """One JSON request (a bearer token if given), its decoded body; raises on non-2xx."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


def post_json(url: str, body: dict[str, object]) -> dict[str, object]:
    return dict(request_json(url, body))


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    percentiles = {}
    for pct, value, unit in re.findall(
        r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", output, re.M
    ):
        percentiles[pct] = float(value) * _UNITS[unit]
    errors = 0
    for match in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(match)
    return rps, percentiles.get("50", 0.0), percentiles.get("99", 0.0), errors


def wrk(
    url: str,
    *,
    duration: int,
    connections: int,
    script: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[float, float, float, int]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    proc = subprocess.run(
        pinned(1, [*command, url]),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return parse_wrk(proc.stdout)


def lua_scripts(directory: Path, access_token: str, refresh_tokens: list[str]) -> dict[str, Path]:
    scripts = {
        "me": f"""
            wrk.headers["Authorization"] = "Bearer {access_token}"
        """,
        "login": f"""
            wrk.method = "POST"
            wrk.headers["Content-Type"] = "application/json"
            wrk.body = '{{"email": "{EMAIL}", "password": "{PASSWORD}"}}'
        """,
        # Each refresh token works once: keep a queue, feed each response's new token back.
        "refresh": """
            local queue = {TOKENS}
            wrk.method = "POST"
            wrk.headers["Content-Type"] = "application/json"
            request = function()
              local token = table.remove(queue, 1)
              if token == nil then token = "exhausted" end
              return wrk.format(nil, nil, nil, '{"refresh_token": "' .. token .. '"}')
            end
            response = function(status, headers, body)
              local token = string.match(body, '"refresh_token":"([^"]+)"')
              if token ~= nil then table.insert(queue, token) end
            end
        """.replace("TOKENS", ", ".join(f'"{t}"' for t in refresh_tokens)),
    }
    paths = {}
    for name, body in scripts.items():
        path = directory / f"{name}.lua"
        path.write_text(textwrap.dedent(body))
        paths[name] = path
    return paths


_PROBE = """
import http.client, json, statistics, sys, time
port, path = int(sys.argv[1]), sys.argv[2]
seconds, interval = float(sys.argv[3]), float(sys.argv[4])
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
samples, deadline = [], time.monotonic() + seconds
while time.monotonic() < deadline:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
    samples.append((time.perf_counter() - started) * 1000)
    time.sleep(max(0.0, interval - (time.perf_counter() - started)))
samples.sort()
print(json.dumps([statistics.median(samples), samples[int(len(samples) * 0.99) - 1], len(samples)]))
"""


def paced_probe(
    port: int, path: str, *, seconds: float, interval: float
) -> tuple[float, float, int]:
    """Latency of a steady, light request stream (p50 ms, p99 ms, count), from core 1."""
    out = subprocess.run(
        pinned(1, [sys.executable, "-c", _PROBE, str(port), path, str(seconds), str(interval)]),
        capture_output=True,
        text=True,
        check=True,
    )
    p50, p99, count = json.loads(out.stdout)
    return float(p50), float(p99), int(count)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def raw_bcrypt_rate(rounds: int, seconds: float = 6.0) -> float:
    """Verifications per second of orgauth's hash on one core (core 0), in a subprocess."""
    code = textwrap.dedent(
        f"""
        import time
        from orgauth.security.passwords import hash_password_sync, verify_password_sync
        stored = hash_password_sync("{PASSWORD}", {rounds})
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < {seconds}:
            verify_password_sync("{PASSWORD}", stored)
            count += 1
        print(count / (time.perf_counter() - start))
        """
    )
    out = subprocess.run(
        pinned(0, [sys.executable, "-c", code]), capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


class Server:
    """A server process pinned to core 0; ``stop()`` returns its peak RSS in MiB."""

    def __init__(self, command: list[str], env: dict[str, str], *, cwd: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("w", encoding="utf-8") as output:
            self.proc = subprocess.Popen(
                pinned(0, [arg.replace("{port}", str(self.port)) for arg in command]),
                env={**os.environ, **env},
                cwd=cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.base = f"http://127.0.0.1:{self.port}"

    @classmethod
    def ceiling(cls, app: str, env: dict[str, str], workdir: Path) -> Server:
        """A bare app under uvicorn (the ceilings): no access log."""
        command = [sys.executable, "-m", "uvicorn", app, "--port", "{port}", "--no-access-log"]
        command += ["--log-level", "warning", "--no-server-header", "--app-dir", str(HERE)]
        return cls(command, env, cwd=workdir, log=workdir / "ceiling.log")

    @classmethod
    def orgauth(cls, env: dict[str, str], workdir: Path) -> Server:
        """``orgauth serve`` as a user runs it; its log lines go to ``workdir/server.log``."""
        cli = str(Path(sys.executable).with_name("orgauth"))
        return cls([cli, "serve", "--port", "{port}"], env, cwd=workdir, log=workdir / "server.log")

    def stop(self) -> float:
        rss = peak_rss_mib(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return rss


async def _migrate(url: str) -> None:
    from orgauth import migrate
    from orgauth.db import create_engine
    from orgauth.settings import OrgAuthSettings

    engine = create_engine(OrgAuthSettings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    await migrate.upgrade(engine)
    await engine.dispose()


def prepare_database(kind: str, postgres_url: str, workdir: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        asyncio.run(_migrate(url))
        return url, None
    name = f"orgauth_bench_{secrets.token_hex(4)}"
    subprocess.run(["psql", postgres_url, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_migrate(url))
    return url, name


def production_env(url: str, workdir: Path, rounds: int) -> dict[str, str]:
    """Production, as deployed: the production defaults otherwise (LOG_LEVEL=INFO, JSON
    lines, the access log); only the rate limits are off, or the load would be refused."""
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "BCRYPT_ROUNDS": str(rounds),
        "RATE_LIMIT_ENABLED": "false",
        "EMAIL_BACKEND": "file",
        "EMAIL_FILE_DIR": str(workdir / "mail"),
    }


def drop_database(postgres_url: str, name: str | None) -> None:
    if name:
        subprocess.run(
            ["psql", postgres_url, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
            check=False,
        )


@dataclass
class DatabaseRun:
    results: list[Result]
    rss_mib: float
    bcrypt_rate: float  # raw verifications/s on core 0, next to the login scenario
    access_lines: int  # access-log lines the server wrote


def saturate(
    name: str, url: str, args: argparse.Namespace, *, script: Path | None = None
) -> Result:
    """``args.connections`` connections for ``args.duration`` s, after an unmeasured warm-up."""
    wrk(url, duration=WARMUP_SECONDS, connections=args.connections, script=script)
    rps, p50, p99, err = wrk(
        url, duration=args.duration, connections=args.connections, script=script
    )
    return Result(name, rps, p50, p99, err)


def run_database(kind: str, args: argparse.Namespace) -> DatabaseRun:
    workdir = Path(tempfile.mkdtemp(prefix="orgauth-bench-"))
    url, pg_name = prepare_database(kind, args.postgres_url, workdir)
    env = production_env(url, workdir, args.rounds)
    results: list[Result] = []
    d = args.duration
    server = Server.orgauth(env, workdir)
    try:
        wait_ready(server.base + "/health")
        post_json(server.base + "/api/v1/auth/register", {"email": EMAIL, "password": PASSWORD})
        logins = [
            post_json(server.base + "/api/v1/auth/login", {"email": EMAIL, "password": PASSWORD})
            for _ in range(REFRESH_CONNECTIONS * 2)
        ]
        access = str(logins[0]["access_token"])
        scripts = lua_scripts(workdir, access, [str(x["refresh_token"]) for x in logins])

        results.append(saturate("GET /health", server.base + "/health", args))
        me_url = server.base + "/api/v1/users/me"
        results.append(saturate("GET /users/me", me_url, args, script=scripts["me"]))
        rps, p50, p99, err = wrk(
            server.base + "/api/v1/auth/refresh",
            duration=d,
            connections=REFRESH_CONNECTIONS,
            script=scripts["refresh"],
        )
        results.append(Result("POST /auth/refresh", rps, p50, p99, err))

        # Logins against raw bcrypt on the same core, measured just before and after (the
        # server idle meanwhile), so that both see the same machine.
        before = raw_bcrypt_rate(args.rounds)
        # Logins are slow by design: a longer run keeps the count's rounding error small.
        rps, p50, p99, err = wrk(
            server.base + "/api/v1/auth/login",
            duration=max(d, 30),
            connections=8,
            script=scripts["login"],
        )
        results.append(Result("POST /auth/login (8 concurrent)", rps, p50, p99, err))
        time.sleep(3)  # let the queued logins drain
        bcrypt_rate = (before + raw_bcrypt_rate(args.rounds)) / 2

        # /health latency while a login storm runs: a load balancer's probe, 50 per second.
        storm = subprocess.Popen(
            pinned(
                1,
                [
                    "wrk",
                    "-t1",
                    "-c8",
                    f"-d{max(d, 30) + 2}s",
                    "-s",
                    str(scripts["login"]),
                    server.base + "/api/v1/auth/login",
                ],
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        p50, p99, count = paced_probe(server.port, "/health", seconds=max(d, 30), interval=0.02)
        storm_out, _ = storm.communicate()
        storm_rps, _, _, _ = parse_wrk(storm_out)
        results.append(
            Result(
                "GET /health (50/s probe) during login storm",
                count / max(d, 30),
                p50,
                p99,
                0,
                note=f"logins/s meanwhile: {storm_rps:.2f}",
            )
        )
    finally:
        rss = server.stop()
        drop_database(args.postgres_url, pg_name)
    log = server.log.read_text(encoding="utf-8", errors="replace")
    return DatabaseRun(results, rss, bcrypt_rate, log.count('"logger": "uvicorn.access"'))


def run_ceilings(args: argparse.Namespace) -> list[Result]:
    import jwt

    key = secrets.token_urlsafe(48)
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": "orgauth",
            "aud": "orgauth",
            "sub": "00000000-0000-4000-8000-000000000001",
            "sid": "00000000-0000-4000-8000-000000000002",
            "jti": "x",
            "iat": now,
            "exp": now + 3600,
        },
        key,
        algorithm="HS256",
        headers={"typ": "at+jwt"},
    )
    workdir = Path(tempfile.mkdtemp(prefix="orgauth-bench-"))
    script = workdir / "bare_me.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    server = Server.ceiling("bare_app:app", {"SECRET_KEY": key}, workdir)
    try:
        wait_ready(server.base + "/health")
        return [
            saturate("bare FastAPI /health (ceiling)", server.base + "/health", args),
            saturate("bare JWT-decode /me (ceiling)", server.base + "/me", args, script=script),
        ]
    finally:
        server.stop()


def help_time() -> float:
    """Best of five wall-clock runs of ``orgauth --help``."""
    cli = str(Path(sys.executable).with_name("orgauth"))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([cli, "--help"], capture_output=True, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def render(
    kind: str, run: DatabaseRun, ceilings: list[Result], rounds: int, help_seconds: float
) -> str:
    results, bcrypt_rate, rss = run.results, run.bcrypt_rate, run.rss_mib
    by_name = {r.name: r for r in results + ceilings}
    lines = [
        f"### {kind}",
        "",
        "| scenario | req/s | p50 ms | p99 ms | p99/p50 | non-2xx | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in ceilings + results:
        cells = [r.name, f"{r.rps:.1f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.tail:.1f}"]
        lines.append("| " + " | ".join([*cells, str(r.errors), r.note]) + " |")
    health_r, me_r = by_name["GET /health"], by_name["GET /users/me"]
    me = me_r.rps / by_name["bare JWT-decode /me (ceiling)"].rps
    health = health_r.rps / by_name["bare FastAPI /health (ceiling)"].rps
    login = by_name["POST /auth/login (8 concurrent)"].rps / bcrypt_rate
    storm = by_name["GET /health (50/s probe) during login storm"]
    storm_logins = float(storm.note.rsplit(" ", 1)[-1]) / bcrypt_rate
    budgets = [
        ("GET /users/me vs bare JWT ceiling", f"{me:.2f}x", ">= 0.35x", me >= 0.35),
        ("GET /health vs bare health route", f"{health:.2f}x", ">= 0.30x", health >= 0.30),
        ("GET /health p99 / p50", f"{health_r.tail:.1f}x", "<= 3x", health_r.tail <= 3),
        ("GET /users/me p99 / p50", f"{me_r.tail:.1f}x", "<= 3x", me_r.tail <= 3),
        ("POST /auth/login vs raw bcrypt", f"{login:.2f}x", ">= 0.95x", login >= 0.95),
        (
            "/health p99 during login storm",
            f"{storm.p99_ms:.1f} ms",
            "<= 25 ms",
            storm.p99_ms <= 25,
        ),
        ("logins during storm vs bcrypt", f"{storm_logins:.2f}x", ">= 0.90x", storm_logins >= 0.90),
        ("peak RSS of the worker", f"{rss:.1f} MiB", "<= 110 MiB", rss <= 110),
        ("orgauth --help", f"{help_seconds:.2f} s", "< 0.4 s", help_seconds < 0.4),
    ]
    lines += ["", "| budget | measured | target | met |", "|---|---:|---:|:---:|"]
    for name, measured, target, met in budgets:
        lines.append(f"| {name} | {measured} | {target} | {'yes' if met else 'NO'} |")
    lines += [
        "",
        f"Raw bcrypt verifications/s on core 0 at cost {rounds}, around the login scenario: "
        f"{bcrypt_rate:.2f}. `orgauth serve` (production, JSON logs) wrote "
        f"{run.access_lines} access-log lines.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=12, help="BCRYPT_ROUNDS for the run (production: >= 12)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="scenario set to run (repeatable); default: "
        + ", ".join(sorted(n for n, (_, default) in SCENARIOS.items() if default)),
    )
    args = parser.parse_args()
    if args.rounds < MIN_PRODUCTION_ROUNDS:
        parser.error(f"--rounds must be at least {MIN_PRODUCTION_ROUNDS}: the run is production")
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install wrk")
    only = args.only or [name for name, (_, default) in SCENARIOS.items() if default]
    for name in sorted(set(only), key=list(SCENARIOS).index):
        SCENARIOS[name][0](args)


def run_http(args: argparse.Namespace) -> None:
    """The main scenarios and their budgets, ``bench/results-<database>.md``."""
    ceilings = run_ceilings(args)
    help_seconds = help_time()
    for kind in database_kinds(args):
        run = run_database(kind, args)
        table = render(kind, run, ceilings, args.rounds, help_seconds)
        (HERE / f"results-{kind}.md").write_text(table)
        print(table)


def run_roles(args: argparse.Namespace) -> None:
    """Custom against built-in roles (``bench/roles.py``), ``bench/results-<database>-roles.md``."""
    import roles  # bench/roles.py, next to this file

    roles.run(args)


def run_api_keys(args: argparse.Namespace) -> None:
    """API key against bearer token (``bench/api_keys.py``),
    ``bench/results-<database>-api-keys.md``."""
    import api_keys  # bench/api_keys.py, next to this file

    api_keys.run(args)


def database_kinds(args: argparse.Namespace) -> list[str]:
    return ["sqlite", "postgresql"] if args.database == "both" else [args.database]


#: ``--only`` names: (runner, part of the default run).
SCENARIOS: dict[str, tuple[Callable[[argparse.Namespace], None], bool]] = {
    "http": (run_http, True),
    "roles": (run_roles, False),
    "api-keys": (run_api_keys, False),
}


if __name__ == "__main__":
    main()
