"""Persistence: tables, queries and the two backends (SQLite, PostgreSQL)."""

from threadline.store.database import Database

__all__ = ["Database"]
