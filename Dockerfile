# syntax=docker/dockerfile:1
# The orgauth server: PostgreSQL (asyncpg) and Redis (rate limits) ready, runs as a non-root
# user. See docs/DEPLOYMENT.md and docker-compose.yml.
#
#   docker build -t orgauth .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=... -e SECRET_KEY=... -e ENVIRONMENT=production ... orgauth

# --- builder: turn the source tree into a wheel ------------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /dist .

# --- runtime: only the installed wheel, no source, no build tools ------------------------------
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 orgauth \
    && useradd --system --uid 10001 --gid orgauth --home-dir /var/lib/orgauth --create-home \
       --shell /usr/sbin/nologin orgauth

COPY --from=builder /dist/ /tmp/dist/
RUN pip install "$(ls /tmp/dist/orgauth-*.whl)[redis]" \
    && rm -rf /tmp/dist

# The working directory is orgauth's home: a development SQLite database, its key file and
# file-backend emails land here (mount a volume on it to keep them).
WORKDIR /var/lib/orgauth
USER orgauth:orgauth

EXPOSE 8000

# Checks the settings and the database (reachable, at the latest migration); exit 0 or 1.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["orgauth", "health"]

CMD ["orgauth", "serve", "--host", "0.0.0.0", "--port", "8000"]
