"""Search modes and recall, over ``store/search.py``.

- ``keyword``: full-text match (FTS5 on SQLite, ``tsvector`` on PostgreSQL), BM25-style rank.
- ``semantic``: the query embedded with the configured embedder, nearest messages by cosine.
  Without an embedder (``THREADLINE_EMBEDDINGS=none``) or vector support in the database, a
  semantic search raises ``SemanticUnavailable`` (the API answers 409).
- ``hybrid``: both lists fused by reciprocal rank (``score = sum 1 / (60 + rank)``): a message
  that ranks well in either list ranks well. Without semantic support it is keyword search,
  and the answer says so (``mode``).

Only messages the embed job has reached are found by meaning: it runs seconds after they are
stored (``jobs/embed.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import sqlalchemy as sa

from threadline.domain.errors import Conflict
from threadline.search.embedders import Embedder, EmbedderError
from threadline.search.query import Parsed, highlight, parse
from threadline.store import search as store
from threadline.store.database import Database
from threadline.store.models import Conversation

Mode = Literal["keyword", "semantic", "hybrid"]
#: The constant of reciprocal rank fusion (Cormack et al. 2009).
RRF_K = 60


class SemanticUnavailable(Conflict):
    """A semantic search where no embedder is configured or the database cannot hold vectors."""

    code = "semantic_search_unavailable"


@dataclass(frozen=True)
class Hit:
    message: dict[str, Any]
    score: float
    highlight: str

    @property
    def conversation_id(self) -> uuid.UUID:
        return self.message["conversation_id"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Result:
    hits: list[Hit]
    #: The mode that ran: ``keyword`` when a hybrid search had no semantic side.
    mode: Mode


_VECTORS: dict[str, bool] = {}


def _semantic_ready(db: Database, embedder: Embedder | None) -> bool:
    if embedder is None:
        return False
    key = db.engine.url.render_as_string(hide_password=True)
    if key not in _VECTORS:
        _VECTORS[key] = store.vectors_available(db)
    return _VECTORS[key]


def fuse(
    lists: Sequence[Sequence[tuple[uuid.UUID, float]]], k: int = RRF_K
) -> dict[uuid.UUID, float]:
    """Reciprocal rank fusion of ranked lists (best first)."""
    scores: dict[uuid.UUID, float] = {}
    for ranked in lists:
        for rank, (message_id, _) in enumerate(ranked, start=1):
            scores[message_id] = scores.get(message_id, 0.0) + 1.0 / (k + rank)
    return scores


def _embed_query(embedder: Embedder, text: str) -> Any:
    try:
        return embedder.embed([text])[0]
    except EmbedderError as exc:
        raise SemanticUnavailable(f"the query could not be embedded: {exc.message}") from exc


def search(
    db: Database,
    tenant_id: uuid.UUID,
    text: str,
    *,
    mode: Mode = "hybrid",
    filters: store.Filters | None = None,
    limit: int = 20,
    embedder: Embedder | None = None,
) -> Result:
    """The tenant's messages that best match ``text``, best first."""
    filters = filters or store.Filters()
    parsed = parse(text)
    semantic_ready = _semantic_ready(db, embedder)
    if mode == "semantic" and not semantic_ready:
        raise SemanticUnavailable(
            "semantic search needs embeddings: set THREADLINE_EMBEDDINGS to local or openai "
            "(and pgvector on PostgreSQL); keyword search works without them"
        )
    if mode == "hybrid" and not semantic_ready:
        mode = "keyword"

    if mode == "keyword":
        ranked = store.keyword(db, tenant_id, parsed, filters, limit)
    else:
        assert embedder is not None
        vector = _embed_query(embedder, text)
        nearest = store.semantic(db, tenant_id, vector, embedder.model, filters, limit * 2)
        if mode == "semantic":
            ranked = nearest[:limit]
        else:
            words = store.keyword(db, tenant_id, parsed, filters, limit * 2)
            fused = fuse([words, nearest])
            ranked = sorted(fused.items(), key=lambda kv: -kv[1])[:limit]
    return Result(_hits(db, tenant_id, ranked, parsed), mode)


def _hits(
    db: Database, tenant_id: uuid.UUID, ranked: list[tuple[uuid.UUID, float]], parsed: Parsed
) -> list[Hit]:
    found = store.fetch(db, tenant_id, [i for i, _ in ranked])
    terms = parsed.terms
    return [
        Hit(found[i], score, highlight(found[i]["content"], terms))
        for i, score in ranked
        if i in found  # deleted between the two reads
    ]


def recall(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    query_text: str,
    n: int,
    *,
    embedder: Embedder | None = None,
    before_seq: int | None = None,
    exclude_id: uuid.UUID | None = None,
    contact_wide: bool = False,
) -> list[dict[str, Any]]:
    """The ``n`` messages most relevant to ``query_text`` among the conversation's older
    ones (``seq < before_seq``, for example the first seq of the context window), most
    relevant first, as message dicts.

    By meaning when ``embedder`` is given and the database holds vectors; by words otherwise
    (any of the query's terms). ``contact_wide`` looks through every conversation of the
    conversation's contact instead (``before_seq`` then applies to this conversation only).
    """
    if n <= 0 or not query_text.strip():
        return []
    filters = store.Filters(conversation_id=conversation_id, before_seq=before_seq)
    if contact_wide:
        contact_id = _contact_of(db, tenant_id, conversation_id)
        if contact_id is not None:
            filters = store.Filters(contact_id=contact_id)
    filters = replace(filters, exclude_id=exclude_id)
    ranked: list[tuple[uuid.UUID, float]] | None = None
    if _semantic_ready(db, embedder):
        assert embedder is not None
        try:
            vector = embedder.embed([query_text])[0]
        except EmbedderError:
            vector = None  # the words still find something
        if vector is not None:
            ranked = store.semantic(db, tenant_id, vector, embedder.model, filters, n * 3)
    if ranked is None:
        ranked = store.keyword(db, tenant_id, parse(query_text).any_term, filters, n * 3)
    found = store.fetch(db, tenant_id, [i for i, _ in ranked])
    out = []
    for message_id, _ in ranked:
        message = found.get(message_id)
        if message is None:
            continue
        if (  # contact-wide: this conversation's window is not "older"
            before_seq is not None
            and message["conversation_id"] == conversation_id
            and message["seq"] >= before_seq
        ):
            continue
        out.append(message)
    return out[:n]


def _contact_of(db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> uuid.UUID | None:
    with db.read() as session:
        return session.scalar(
            sa.select(Conversation.contact_id).where(
                Conversation.tenant_id == tenant_id, Conversation.id == conversation_id
            )
        )
