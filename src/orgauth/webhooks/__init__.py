"""Signed webhooks: endpoints, outbox and delivery (docs/ARCHITECTURE.md, "Webhooks")."""
