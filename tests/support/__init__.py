"""Helpers shared by the test suite. Tests import them from here, never from conftest
modules; the shared fixtures are in :mod:`tests.support.fixtures`."""
