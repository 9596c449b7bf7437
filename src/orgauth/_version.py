"""The single source of orgauth's version."""

__version__ = "0.1.0"
