"""Identifiers: UUIDv7 (time-ordered, so primary-key indexes stay append-only)."""

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    """A new time-ordered UUIDv7 as a stdlib ``uuid.UUID``."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)
