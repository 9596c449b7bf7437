"""Docs and deployment files checked against the code."""
