"""Standard Webhooks signatures, made by the maintained ``standardwebhooks`` package
(docs/API.md, "Verifying webhooks")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def signature_header(secrets: Sequence[str], *, msg_id: str, timestamp: datetime, body: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` per secret, space-separated, the newest secret first."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)


def headers(
    secrets: Sequence[str], *, msg_id: str, timestamp: datetime, body: str
) -> list[tuple[str, str]]:
    """Every header of one attempt."""
    return [
        ("Content-Type", "application/json"),
        ("User-Agent", "orgauth-webhooks"),
        ("webhook-id", msg_id),
        ("webhook-timestamp", str(int(timestamp.timestamp()))),
        (
            "webhook-signature",
            signature_header(secrets, msg_id=msg_id, timestamp=timestamp, body=body),
        ),
    ]
