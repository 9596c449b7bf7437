"""orgauth's bundled Alembic migrations (``script_location = orgauth:migrations``)."""
