"""The vector column of ``embeddings``, on both backends.

PostgreSQL keeps a pgvector ``vector`` (no fixed size, so one table holds the vectors of
models of any size; the HNSW index is a partial expression index per size, see migration
0004). SQLite keeps little-endian float32 blobs, the format sqlite-vec's functions read.
Python sees a ``numpy`` float32 array either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

Vector = np.ndarray[Any, np.dtype[np.float32]]


def to_blob(vector: Sequence[float] | Vector) -> bytes:
    """A vector as sqlite-vec reads it: float32, little-endian."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> Vector:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def to_pg_text(vector: Sequence[float] | Vector) -> str:
    """A vector as pgvector's text input: ``[0.1,0.2,...]``."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


class VectorType(TypeDecorator[Vector]):
    """A float32 vector: pgvector ``vector`` on PostgreSQL, a float32 blob on SQLite."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(VECTOR())
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return np.asarray(value, dtype=np.float32)
        return to_blob(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Vector | None:
        if value is None:
            return None
        if isinstance(value, bytes | bytearray | memoryview):
            return from_blob(bytes(value))
        return np.asarray(value, dtype=np.float32)
