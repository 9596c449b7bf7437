"""Embedding orgauth in a host FastAPI app (docs/EMBEDDING.md)."""
