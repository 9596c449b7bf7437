"""The data layer: the statements orgauth sends and how they run.

Services call it for persistence that is more than a plain ORM query (prebuilt statements
on the per-request path, shared predicates, row counts); it talks to SQLAlchemy, and
SQLAlchemy to the driver. Nothing here knows about HTTP.
"""
