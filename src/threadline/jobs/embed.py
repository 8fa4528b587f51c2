"""Embedding: vectors for stored messages, computed after commit, never in the request path.

The queue is the messages themselves: those with content and no vector for the current
model (``store.search.pending``, an anti-join on ``embeddings``' unique index). The loop
walks them in id order (ids are time-ordered UUIDv7) from where it left off, a batch at a
time, and starts again from the beginning every ``SWEEP`` seconds, which picks up messages
whose batch failed (the embedder was down, the model endpoint answered 500) and messages
another process committed late. A failed batch is logged (ids and error type, never text)
and left for the next sweep; the API keeps serving.

``threadline reindex`` runs the same work in the foreground, with a progress bar.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from threadline.jobs.poll import poll_forever
from threadline.logs import get_logger
from threadline.search.embedders import Embedder, EmbedderError, from_settings
from threadline.settings import Settings
from threadline.store import search as store
from threadline.store.database import Database

log = get_logger(__name__)

#: Messages embedded per batch (one model call, one write).
BATCH = 32
#: Seconds between two looks for new messages when there was nothing to do.
IDLE = 2.0
#: Seconds between two sweeps from the first message (retries and late commits).
SWEEP = 300.0
#: Longest text embedded per message (characters); the local model reads 256 tokens anyway.
MAX_CHARS = 8_000


@dataclass
class Progress:
    embedded: int = 0
    failed: int = 0
    #: The last message id looked at; the next batch starts after it.
    after: uuid.UUID | None = None


def embed_batch(
    db: Database,
    embedder: Embedder,
    progress: Progress,
    *,
    tenant_id: uuid.UUID | None = None,
    batch: int = BATCH,
) -> int:
    """Embed the next batch after ``progress.after``; answers how many messages it looked at
    (0: nothing left). A failed batch is counted and skipped, not raised."""
    items = store.pending(
        db, embedder.model, after=progress.after, tenant_id=tenant_id, limit=batch
    )
    if not items:
        return 0
    progress.after = items[-1].id
    try:
        vectors = embedder.embed([p.content[:MAX_CHARS] for p in items])
    except EmbedderError as exc:
        progress.failed += len(items)
        log.warning(
            "embedding_failed",
            model=embedder.model,
            messages=len(items),
            first_message_id=str(items[0].id),
            error=exc.message,
        )
        return len(items)
    progress.embedded += store.store_vectors(
        db, embedder.model, list(zip(items, vectors, strict=True))
    )
    return len(items)


def embed_all(
    db: Database,
    embedder: Embedder,
    *,
    tenant_id: uuid.UUID | None = None,
    batch: int = BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> Progress:
    """Embed every message that has no vector yet (one pass); ``on_batch(n)`` after each."""
    progress = Progress()
    while True:
        seen = embed_batch(db, embedder, progress, tenant_id=tenant_id, batch=batch)
        if not seen:
            return progress
        if on_batch is not None:
            on_batch(seen)


async def embed_forever(db: Database, settings: Settings) -> None:
    """The background loop (``jobs.LOOPS``): embed new messages as they arrive."""
    try:
        embedder = from_settings(settings)
    except EmbedderError as exc:
        log.warning("embeddings_disabled", reason=exc.message)
        return
    if embedder is None:
        return  # THREADLINE_EMBEDDINGS=none: keyword search only
    if not await anyio.to_thread.run_sync(store.vectors_available, db):
        log.warning(
            "embeddings_disabled",
            reason="the database cannot hold vectors (PostgreSQL without pgvector); "
            "keyword search works",
        )
        return
    progress = Progress()
    swept_at = time.monotonic()

    def embed_next() -> int:
        nonlocal swept_at
        seen = embed_batch(db, embedder, progress)
        if progress.embedded:
            log.debug("messages_embedded", count=progress.embedded, model=embedder.model)
            progress.embedded = 0
        if not seen and time.monotonic() - swept_at > SWEEP:
            progress.after, swept_at = None, time.monotonic()
            return 1  # a sweep from the first message starts at once
        return seen

    await poll_forever(embed_next, idle=IDLE, failed="embed_round_failed")
