"""``orgauth audit prune`` and the retention of the periodic prune (docs/CONFIGURATION.md,
``AUDIT_RETENTION_DAYS``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from orgauth.models import AuditEvent, utcnow

from .helpers import add_rows, error_line, fetch_all, invoke

DAY = timedelta(days=1)


def _seed(url: str) -> None:
    now = utcnow()
    add_rows(
        url,
        *(
            AuditEvent(action="test.old", actor_type="system", occurred_at=now - days * DAY)
            for days in (400, 40, 10)
        ),
        AuditEvent(action="test.new", actor_type="system", occurred_at=now),
    )


def test_prune_deletes_events_older_than_the_option_and_records_it(
    runner: CliRunner, migrated_url: str
) -> None:
    _seed(migrated_url)

    result = invoke(runner, "audit", "prune", "--older-than", "30")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Pruned 2 audit events."
    kept = fetch_all(migrated_url, AuditEvent)
    assert sorted(e.action for e in kept) == ["audit.pruned", "test.new", "test.old"]
    [pruned] = [e for e in kept if e.action == "audit.pruned"]
    assert (pruned.actor_type, pruned.actor_id) == ("system", None)
    assert pruned.event_metadata == {"deleted": 2, "older_than_days": 30}


def test_prune_defaults_to_the_retention_setting_and_records_nothing_when_idle(
    runner: CliRunner, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(migrated_url)
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "365")

    first = invoke(runner, "audit", "prune")
    second = invoke(runner, "audit", "prune")

    assert first.stdout.strip() == "Pruned 1 audit events."
    assert second.stdout.strip() == "Pruned 0 audit events."
    assert [e.action for e in fetch_all(migrated_url, AuditEvent)].count("audit.pruned") == 1


def test_prune_with_retention_off_and_no_option_is_a_one_line_error(
    runner: CliRunner, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "0")

    result = invoke(runner, "audit", "prune")

    assert result.exit_code == 1
    assert "--older-than" in error_line(result)


@pytest.mark.parametrize("days", ["0", "-1", "soon"])
def test_prune_refuses_a_bad_day_count(runner: CliRunner, migrated_url: str, days: str) -> None:
    result = invoke(runner, "audit", "prune", "--older-than", days)

    assert result.exit_code != 0


def test_prune_refuses_an_unmigrated_database(runner: CliRunner, unmigrated_url: str) -> None:
    assert "orgauth migrate apply" in error_line(
        invoke(runner, "audit", "prune", "--older-than", "1")
    )
