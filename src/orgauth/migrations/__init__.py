"""orgauth's bundled Alembic migrations (``script_location = orgauth:migrations``)."""

#: The newest bundled revision. A running server compares the database with it without
#: importing Alembic (about 11 MiB per process); a test keeps it equal to the scripts' head.
HEAD_REVISION = "0008"
