"""The SaaS example's settings, shared by the app and its Alembic environment.

orgauth's settings from the environment or ``.env``; with no database configured, this
example's own SQLite file, so the examples never share a database.
"""

from orgauth import OrgAuthSettings

DEFAULT_DATABASE_URL = "sqlite:///./example-saas.db"


def example_settings() -> OrgAuthSettings:
    settings = OrgAuthSettings()  # DATABASE_URL, SECRET_KEY, ... from the environment or .env
    if settings.database_url is None and settings.postgres_host is None:
        settings = OrgAuthSettings(database_url=DEFAULT_DATABASE_URL)
    return settings
