"""The HTTP fixtures of tests/api, for the data-layer tests that drive the app."""

from tests.api.conftest import make_user  # noqa: F401 - fixture re-exported for this directory
