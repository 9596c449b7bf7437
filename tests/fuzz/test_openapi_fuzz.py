"""Schemathesis against the app's own OpenAPI: no 5xx, no response outside its schema.

Every operation is fuzzed as a signed-in user and as a superuser. The number of examples
per operation is bounded (ORGAUTH_FUZZ_EXAMPLES, default 10) so CI stays fast.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.fuzz.conftest import LiveServer

EXAMPLES = int(os.environ.get("ORGAUTH_FUZZ_EXAMPLES", "10"))
CHECKS = [
    schemathesis.checks.not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
]
pytestmark = pytest.mark.slow


def _operations(live_server: LiveServer) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{live_server.base_url}/api/v1/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation: Any, base_url: str, token: str) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


def _fuzz_all(live_server: LiveServer, token: str) -> None:
    failures: list[str] = []
    operations = _operations(live_server)
    assert len(operations) > 30  # every route is in the schema
    for operation in operations:
        try:
            _fuzz(operation, live_server.base_url, token)
        except Exception as exc:  # collect every failing operation, then report them all
            failures.append(f"{operation.label}: {exc}"[:2000])
    assert failures == []


def test_every_operation_as_a_user(live_server: LiveServer) -> None:
    _fuzz_all(live_server, live_server.user_token)


def test_every_operation_as_a_superuser(live_server: LiveServer) -> None:
    _fuzz_all(live_server, live_server.superuser_token)
