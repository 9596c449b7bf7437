"""``orgauth webhooks deliver`` and the delivery retention of ``orgauth sessions prune``
(docs/DEPLOYMENT.md, "The webhook worker")."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from orgauth.models import Organization, WebhookDelivery, WebhookEndpoint, utcnow
from orgauth.security.encryption import SecretBox
from orgauth.services.webhooks import new_secret
from tests.support.webhooks import Receiver, running_receiver

from .helpers import ORGAUTH, add_rows, fetch_all, invoke

KEY = "cli-webhook-test-key-0123456789abcdefghijkl"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def delivery_env(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SECRET_KEY", KEY)
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE_URLS", "true")
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "60")
    return migrated_url


def _endpoint_with_deliveries(url: str, target: str, count: int) -> str:
    """An organization, an endpoint to ``target`` and ``count`` due deliveries; the
    endpoint's secret."""
    org = Organization(name="Hooked", slug=f"hooked-{uuid.uuid4().hex[:8]}")
    endpoint_id = uuid.uuid4()
    secret = new_secret()
    sealed = SecretBox(KEY, "webhook").seal(secret, owner=str(endpoint_id))
    endpoint = WebhookEndpoint(
        id=endpoint_id, organization_id=org.id, url=target, events=["*"], secret_encrypted=sealed
    )
    now = utcnow()
    rows = [
        WebhookDelivery(
            endpoint_id=endpoint_id,
            organization_id=org.id,
            event_id=uuid.uuid4(),
            event_type="member.added",
            payload=f'{{"n":{i}}}',
            url=target,
            secret_encrypted=sealed,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for i in range(count)
    ]
    add_rows(url, org, endpoint, *rows)
    return secret


def test_once_attempts_every_due_delivery_and_reports(
    runner: CliRunner, delivery_env: str, receiver: Receiver
) -> None:
    secret = _endpoint_with_deliveries(delivery_env, receiver.url, 3)
    receiver.script = [500]

    result = invoke(runner, "webhooks", "deliver", "--once")

    assert result.exit_code == 0, result.output  # a failed delivery is not a command error
    assert result.stdout.strip() == "Attempted 3 deliveries: 2 succeeded, 1 failed."
    for hit in receiver.received:
        Webhook(secret).verify(hit.body, hit.headers)
    rows = fetch_all(delivery_env, WebhookDelivery)
    assert sorted(row.status for row in rows) == ["pending", "succeeded", "succeeded"]
    # Nothing is due any more: the failed one waits for its retry.
    again = invoke(runner, "webhooks", "deliver", "--once")
    assert again.stdout.strip() == "Attempted 0 deliveries: 0 succeeded, 0 failed."


def test_deliver_needs_a_migrated_database(runner: CliRunner, unmigrated_url: str) -> None:
    result = invoke(runner, "webhooks", "deliver", "--once")
    assert result.exit_code == 1
    assert "migrate" in result.stderr


def test_the_foreground_worker_delivers_until_sigterm(
    delivery_env: str, receiver: Receiver, tmp_path: object
) -> None:
    _endpoint_with_deliveries(delivery_env, receiver.url, 2)
    env = dict(os.environ, WEBHOOK_POLL_INTERVAL_SECONDS="0.1")
    process = subprocess.Popen(
        [str(ORGAUTH), "webhooks", "deliver"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        receiver.wait_for(2, timeout=60)
        assert len(receiver.received) == 2
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(row.status == "succeeded" for row in fetch_all(delivery_env, WebhookDelivery)):
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    assert {row.status for row in fetch_all(delivery_env, WebhookDelivery)} == {"succeeded"}


def test_sessions_prune_drops_finished_deliveries_past_retention(
    runner: CliRunner, delivery_env: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _endpoint_with_deliveries(delivery_env, receiver.url, 1)
    old = utcnow() - timedelta(days=40)
    [pending] = fetch_all(delivery_env, WebhookDelivery)
    finished = [
        WebhookDelivery(
            endpoint_id=pending.endpoint_id,
            organization_id=pending.organization_id,
            event_id=uuid.uuid4(),
            event_type="member.added",
            payload="{}",
            url=pending.url,
            secret_encrypted=pending.secret_encrypted,
            status=status,
            attempts=1,
            last_attempt_at=when,
            created_at=when,
        )
        for status, when in (("succeeded", old), ("failed", old), ("succeeded", utcnow()))
    ]
    add_rows(delivery_env, *finished)
    monkeypatch.setenv("WEBHOOK_DELIVERY_RETENTION_DAYS", "30")

    result = invoke(runner, "sessions", "prune")

    assert result.exit_code == 0, result.output
    assert "Pruned 2 webhook deliveries." in result.stdout
    left = fetch_all(delivery_env, WebhookDelivery)
    assert sorted(row.status for row in left) == ["pending", "succeeded"]
