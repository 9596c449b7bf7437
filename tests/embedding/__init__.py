"""Embedding orgauth in a host FastAPI app (SPEC §6)."""
