"""Business rules. No FastAPI imports: routes and the CLI call into these."""
