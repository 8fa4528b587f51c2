"""Search on both backends: keyword (FTS5, tsvector), semantic (sqlite-vec, pgvector), hybrid,
the embed job, reindex and recall, through the API and the store.

Most tests embed with ``HashingEmbedder`` (a deterministic bag of hashed words: fast, and
enough to test the plumbing); the paraphrase tests run the real local model, which is what
finds a paraphrase that shares no word with the query.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import TenantKey, make_tenant
from threadline.api.app import create_app
from threadline.cli import app as cli_app
from threadline.jobs.embed import Progress, embed_all, embed_batch
from threadline.search import Filters, fuse, recall, search
from threadline.search.embedders import (
    EmbedderError,
    LocalEmbedder,
    Matrix,
    OpenAIEmbedder,
    from_settings,
    local,
    normalize,
)
from threadline.search.query import highlight, parse
from threadline.settings import Settings
from threadline.store import Database, conversations, migrate, search_schema
from threadline.store import messages as store_messages
from threadline.store import search as store


class HashingEmbedder:
    """Words hashed into 64 buckets: texts that share words are near, others are not."""

    model = "test-hashing-64"
    dims = 64

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> Matrix:
        self.calls += 1
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dims] += 1.0
        return normalize(out)


class Hashing384(HashingEmbedder):
    """The same, at the local model's size: SQLite keeps these in sqlite-vec's vec0 table."""

    model = "test-hashing-384"
    dims = 384


class FailingEmbedder(HashingEmbedder):
    def embed(self, texts: Sequence[str]) -> Matrix:
        raise EmbedderError("the endpoint answered 500")


def _conversation(db: Database, tenant_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    fields.setdefault(
        "contact", {"name": "Ada", "phone": f"+1415555{uuid.uuid4().int % 10000:04d}"}
    )
    return conversations.create(db, tenant_id, fields).id


def _say(
    db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID, *texts: str, **fields: Any
) -> list[dict[str, Any]]:
    items = [{"role": "user", "content": t} | fields for t in texts]
    return store_messages.append(db, tenant_id, conversation_id, items).messages


@pytest.fixture
def seeded(db: Database, tenant: TenantKey) -> dict[str, Any]:
    conv = _conversation(db, tenant.tenant_id)
    msgs = _say(
        db,
        tenant.tenant_id,
        conv,
        "Hello, I ordered a blue sofa last week",
        "When will my refund arrive? The sofa was damaged.",
        "Can you deliver on Tuesday morning?",
    )
    other = make_tenant(db)
    other_conv = _conversation(db, other.tenant_id)
    _say(db, other.tenant_id, other_conv, "Another tenant also wants a refund for a sofa")
    return {"conversation_id": conv, "messages": msgs, "other": other}


# --- keyword ------------------------------------------------------------------------------------


def test_keyword_search_finds_words_marks_them_and_stays_in_the_tenant(
    api: TestClient, seeded: dict[str, Any]
) -> None:
    r = api.get("/v1/search", params={"q": "refund sofa", "mode": "keyword"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "keyword"
    assert [h["message"]["id"] for h in body["data"]] == [str(seeded["messages"][1]["id"])]
    hit = body["data"][0]
    assert hit["conversation_id"] == str(seeded["conversation_id"])
    assert hit["score"] > 0
    assert hit["highlight"] == (
        "When will my <mark>refund</mark> arrive? The <mark>sofa</mark> was damaged."
    )
    # one word: both of this tenant's sofa messages; never the other tenant's
    r = api.get("/v1/search", params={"q": "SOFA", "mode": "keyword"})
    ids = {h["message"]["id"] for h in r.json()["data"]}
    assert ids == {str(seeded["messages"][0]["id"]), str(seeded["messages"][1]["id"])}


def test_keyword_search_phrases_or_and_exclusion(api: TestClient, seeded: dict[str, Any]) -> None:
    def found(q: str) -> set[int]:
        r = api.get("/v1/search", params={"q": q, "mode": "keyword"})
        assert r.status_code == 200, r.text
        by_id = {str(m["id"]): i for i, m in enumerate(seeded["messages"])}
        return {by_id[h["message"]["id"]] for h in r.json()["data"]}

    assert found('"blue sofa"') == {0}
    assert found('"sofa blue"') == set()
    assert found("tuesday OR refund") == {1, 2}
    assert found("sofa -refund") == {0}
    assert found("sofa -") == {0, 1}


NASTY = [
    '"',
    '""',
    "'",
    "*",
    "NEAR(a b)",
    "a AND",
    "OR",
    "OR OR refund",
    "NOT",
    "-",
    "--refund",
    "content:refund",
    "{content}: x",
    "^refund",
    "refund*",
    "(((",
    ")",
    "a:b:c",
    "\\",
    "%_",
    "💥",
    "é",
    "x" * 1000,
    " ".join(["refund"] * 140),
    "a & b | !c <-> d",
    "'; DROP TABLE messages; --",
]


@pytest.mark.parametrize("q", NASTY)
def test_any_query_text_answers_200(api: TestClient, seeded: dict[str, Any], q: str) -> None:
    for mode in ("keyword", "hybrid"):
        r = api.get("/v1/search", params={"q": q, "mode": mode})
        assert r.status_code == 200, (q, r.text)
        assert isinstance(r.json()["data"], list)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=st.text(min_size=1, max_size=60).filter(lambda s: "\x00" not in s))
def test_fts5_never_sees_a_syntax_error(sqlite_db: Database, q: str) -> None:
    parsed = parse(q)
    with sqlite_db.connect() as conn:
        if not parsed.empty:
            conn.execute(
                sa.text("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :q"),
                {"q": parsed.fts5},
            ).scalar()


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path = tmp_path_factory.mktemp("fts") / "fts.db"
    database = Database.from_url(f"sqlite:///{path}")
    migrate.upgrade(database)
    yield database
    database.dispose()


def test_bad_search_requests_answer_422(api: TestClient) -> None:
    for params in (
        {},
        {"q": ""},
        {"q": "x", "mode": "fuzzy"},
        {"q": "x", "role": "robot"},
        {"q": "x", "channel": "pigeon"},
        {"q": "x", "contact_id": "nope"},
        {"q": "x", "limit": 0},
        {"q": "x", "limit": 101},
        {"q": "x", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"q": "x", "since": "2026-01-01T00:00:00"},  # no time zone
        {"q": "x", "colour": "blue"},
        {"q": "x" * 1001},
    ):
        r = api.get("/v1/search", params=params)
        assert r.status_code == 422, (params, r.text)
        assert "error" in r.json()


def test_search_needs_an_api_key(client: TestClient) -> None:
    assert client.get("/v1/search", params={"q": "x"}).status_code == 401


def test_filters(api: TestClient, db: Database, tenant: TenantKey) -> None:
    ada = _conversation(db, tenant.tenant_id, channel="sms")
    bob = _conversation(db, tenant.tenant_id, contact={"name": "Bob", "email": "bob@example.com"})
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    (a1,) = _say(db, tenant.tenant_id, ada, "invoice for March", occurred_at=t0)
    (a2,) = _say(
        db,
        tenant.tenant_id,
        ada,
        "invoice sent",
        role="assistant",
        occurred_at=t0 + timedelta(days=2),
    )
    (b1,) = _say(
        db, tenant.tenant_id, bob, "my invoice is wrong", occurred_at=t0 + timedelta(days=1)
    )
    bob_contact = conversations.get(db, tenant.tenant_id, bob).contact_id

    def ids(**params: Any) -> set[str]:
        r = api.get("/v1/search", params={"q": "invoice", "mode": "keyword"} | params)
        assert r.status_code == 200, r.text
        return {h["message"]["id"] for h in r.json()["data"]}

    a1_, a2_, b1_ = str(a1["id"]), str(a2["id"]), str(b1["id"])
    assert ids() == {a1_, a2_, b1_}
    assert ids(contact_id=str(bob_contact)) == {b1_}
    assert ids(channel="sms") == {a1_, a2_}
    assert ids(role="assistant") == {a2_}
    assert ids(role="user") == {a1_, b1_}
    assert ids(since="2026-03-02T00:00:00Z") == {a2_, b1_}
    assert ids(until="2026-03-02T00:00:00Z") == {a1_}
    assert ids(inbox_id=str(uuid.uuid4())) == set()
    assert ids(contact_id=str(uuid.uuid4())) == set()
    assert ids(limit=1).issubset({a1_, a2_, b1_}) and len(ids(limit=1)) == 1


def test_the_keyword_index_follows_content_changes_and_deletes(
    db: Database, tenant: TenantKey, seeded: dict[str, Any]
) -> None:
    def found(q: str) -> list[uuid.UUID]:
        return [i for i, _ in store.keyword(db, tenant.tenant_id, parse(q), Filters(), 10)]

    m0, m1, _ = (m["id"] for m in seeded["messages"])
    assert found("damaged") == [m1]
    with db.transaction() as conn:  # what an erase does to a body
        conn.execute(
            sa.text("UPDATE messages SET content = :c WHERE id = :id"),
            {"c": "[erased]", "id": m1.hex if db.dialect == "sqlite" else m1},
        )
    assert found("damaged") == []
    assert found("erased") == [m1]
    with db.transaction() as conn:
        conn.execute(
            sa.text("DELETE FROM messages WHERE id = :id"),
            {"id": m0.hex if db.dialect == "sqlite" else m0},
        )
    assert found("blue") == []
    if db.dialect == "sqlite":
        with db.connect() as conn:  # the index agrees with its content table
            conn.exec_driver_sql(
                "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"
            )


# --- semantic and hybrid ----------------------------------------------------------------------


def test_semantic_without_embeddings_is_409_and_hybrid_falls_back_to_keyword(
    api: TestClient, seeded: dict[str, Any]
) -> None:
    r = api.get("/v1/search", params={"q": "refund", "mode": "semantic"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "semantic_search_unavailable"
    r = api.get("/v1/search", params={"q": "refund"})
    assert r.status_code == 200
    assert r.json()["mode"] == "keyword"
    assert len(r.json()["data"]) == 1


def test_embed_job_semantic_search_and_tenancy(
    db: Database, tenant: TenantKey, seeded: dict[str, Any]
) -> None:
    embedder = HashingEmbedder()
    done = embed_all(db, embedder, batch=2)
    assert done.embedded == 4  # both tenants' messages
    assert embed_all(db, embedder).embedded == 0  # nothing left: no second vector
    result = search(
        db,
        tenant.tenant_id,
        "sofa refund",
        mode="semantic",
        embedder=embedder,
    )
    assert result.mode == "semantic"
    ids = [h.message["id"] for h in result.hits]
    assert ids[0] == seeded["messages"][1]["id"]
    assert set(ids) == {m["id"] for m in seeded["messages"]}  # all three, this tenant only
    assert all(-1.0 <= h.score <= 1.0 for h in result.hits)
    assert result.hits[0].score > result.hits[-1].score
    hybrid = search(db, tenant.tenant_id, "sofa refund", mode="hybrid", embedder=embedder)
    assert hybrid.mode == "hybrid"
    assert hybrid.hits[0].message["id"] == seeded["messages"][1]["id"]
    assert "<mark>refund</mark>" in hybrid.hits[0].highlight


def test_vectors_go_with_their_message_and_with_an_erased_contact(
    db: Database, tenant: TenantKey, seeded: dict[str, Any]
) -> None:
    embed_all(db, HashingEmbedder())

    def vectors() -> int:
        with db.connect() as conn:
            count = int(conn.exec_driver_sql("SELECT count(*) FROM embeddings").scalar_one())
            if db.dialect == "sqlite":  # sqlite-vec's copy follows (only 384-d: none here)
                copies = conn.exec_driver_sql("SELECT count(*) FROM embeddings_vec_384")
                assert copies.scalar_one() == 0
        return count

    assert vectors() == 4
    contact_id = conversations.get(db, tenant.tenant_id, seeded["conversation_id"]).contact_id
    assert contact_id is not None
    # another tenant's erase of this contact id removes nothing
    assert (
        db.run_write(lambda c: store.forget_contact(c, seeded["other"].tenant_id, contact_id)) == 0
    )
    assert db.run_write(lambda c: store.forget_contact(c, tenant.tenant_id, contact_id)) == 3
    assert vectors() == 1
    embed_all(db, HashingEmbedder())
    assert vectors() == 4
    with db.transaction() as conn:  # deleting the conversation cascades to the vectors
        conn.execute(
            sa.text("DELETE FROM conversations WHERE id = :id"),
            {
                "id": seeded["conversation_id"].hex
                if db.dialect == "sqlite"
                else seeded["conversation_id"]
            },
        )
    assert vectors() == 1


def test_the_nearest_neighbour_scan_agrees_with_the_exact_one_and_follows_deletes(
    db: Database, tenant: TenantKey, seeded: dict[str, Any]
) -> None:
    embedder = Hashing384()
    embed_all(db, embedder)
    vector = embedder.embed(["sofa refund damaged"])[0]
    fast = store.semantic(db, tenant.tenant_id, vector, embedder.model, Filters(), 10)
    # a filter takes the exact path (every vector of the tenant joined to its message)
    exact = store.semantic(db, tenant.tenant_id, vector, embedder.model, Filters(role="user"), 10)
    assert [i for i, _ in fast] == [i for i, _ in exact]
    assert [s for _, s in fast] == pytest.approx([s for _, s in exact], abs=1e-5)
    assert fast[0][0] == seeded["messages"][1]["id"]

    def copies() -> int:
        if db.dialect != "sqlite":
            return -1
        with db.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM embeddings_vec_384").scalar_one())

    assert copies() in (4, -1)
    cid = seeded["conversation_id"]
    with db.transaction() as conn:
        conn.execute(
            sa.text("DELETE FROM conversations WHERE id = :id"),
            {"id": cid.hex if db.dialect == "sqlite" else cid},
        )
    assert copies() in (1, -1)
    assert store.semantic(db, tenant.tenant_id, vector, embedder.model, Filters(), 10) == []


def test_a_failed_batch_is_logged_and_retried_on_the_next_pass(
    db: Database, tenant: TenantKey, seeded: dict[str, Any]
) -> None:
    progress = Progress()
    assert embed_batch(db, FailingEmbedder(), progress, batch=10) == 4
    assert (progress.failed, progress.embedded) == (4, 0)
    assert embed_batch(db, FailingEmbedder(), progress, batch=10) == 0  # past them now
    assert store.count_pending(db, HashingEmbedder.model) == 4
    again = embed_all(db, HashingEmbedder())  # the next sweep starts from the beginning
    assert again.embedded == 4
    assert store.count_pending(db, HashingEmbedder.model) == 0


def test_messages_without_text_are_not_embedded(db: Database, tenant: TenantKey) -> None:
    conv = _conversation(db, tenant.tenant_id)
    store_messages.append(
        db,
        tenant.tenant_id,
        conv,
        [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "user", "content": ""},
            {"role": "user", "content": "hi"},
        ],
    )
    assert embed_all(db, HashingEmbedder()).embedded == 1


def test_the_embed_loop_embeds_messages_after_they_are_stored(
    db: Database, tenant: TenantKey, seeded: dict[str, Any], settings: Settings
) -> None:
    import anyio

    from threadline.jobs import LOOPS
    from threadline.jobs.embed import embed_forever

    assert embed_forever in LOOPS
    live = settings.model_copy(update={"embeddings": "local"})

    async def run() -> None:
        with anyio.move_on_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(embed_forever, db, live)
                while store.count_pending(db, LocalEmbedder.model):
                    await anyio.sleep(0.1)
                tg.cancel_scope.cancel()

    anyio.run(run)
    assert store.count_pending(db, LocalEmbedder.model) == 0


# --- the real local model ---------------------------------------------------------------------

PARAPHRASES = [
    # (stored message, a query that means the same and shares no word with it)
    ("I would like my money back for the broken chair", "refund request"),
    ("The parcel never showed up at my house", "package not delivered"),
    ("Can we move our meeting to Thursday afternoon?", "reschedule appointment"),
    ("My card was charged twice this month", "duplicate payment"),
]
DISTRACTORS = [
    "What are your opening hours on Sunday?",
    "Do you sell gift vouchers?",
    "Thanks, that was very helpful!",
    "Is parking available near the store?",
    "I love the new colour options",
    "Please send me the user manual",
]


@pytest.fixture
def paraphrases(db: Database, tenant: TenantKey) -> dict[str, uuid.UUID]:
    conv = _conversation(db, tenant.tenant_id)
    stored = _say(db, tenant.tenant_id, conv, *[p for p, _ in PARAPHRASES], *DISTRACTORS)
    embed_all(db, local())
    if db.dialect == "sqlite":  # sqlite-vec's partition holds a copy of every 384-d vector
        with db.connect() as conn:
            copies = conn.exec_driver_sql("SELECT count(*) FROM embeddings_vec_384").scalar_one()
        assert copies == len(stored)
    return {q: stored[i]["id"] for i, (_, q) in enumerate(PARAPHRASES)}


def test_local_model_is_all_minilm_and_makes_unit_vectors() -> None:
    embedder = local()
    vectors = embedder.embed(["refund request", "I would like my money back", "parking"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    model, tokenizer = LocalEmbedder.files()
    assert model.stat().st_size == 22_928_619 and tokenizer.name == "tokenizer.json"


def test_semantic_and_hybrid_find_paraphrases_that_keyword_cannot(
    db: Database, tenant: TenantKey, paraphrases: dict[str, uuid.UUID]
) -> None:
    for query, wanted in paraphrases.items():
        keyword = search(db, tenant.tenant_id, query, mode="keyword", embedder=local())
        assert wanted not in [h.message["id"] for h in keyword.hits]
        for mode in ("semantic", "hybrid"):
            result = search(db, tenant.tenant_id, query, mode=mode, embedder=local(), limit=3)  # type: ignore[arg-type]
            assert wanted in [h.message["id"] for h in result.hits], (mode, query)


def test_semantic_search_over_http_with_the_local_model(
    db: Database, tenant: TenantKey, settings: Settings, paraphrases: dict[str, uuid.UUID]
) -> None:
    app = create_app(settings.model_copy(update={"embeddings": "local"}), db, background=())
    other = make_tenant(db)
    with TestClient(app, headers=other.headers) as c:  # another tenant finds nothing
        assert (
            c.get("/v1/search", params={"q": "refund request", "mode": "semantic"}).json()["data"]
            == []
        )
    with TestClient(app, headers=tenant.headers) as c:
        r = c.get("/v1/search", params={"q": "refund request", "mode": "semantic", "limit": 3})
        assert r.status_code == 200, r.text
        assert r.json()["mode"] == "semantic"
        assert r.json()["data"][0]["message"]["id"] == str(paraphrases["refund request"])


def test_recall_finds_older_messages_by_meaning(db: Database, tenant: TenantKey) -> None:
    conv = _conversation(db, tenant.tenant_id)
    older = _say(
        db,
        tenant.tenant_id,
        conv,
        "My dog is allergic to chicken",
        "We live in a flat on the fourth floor",
        "I prefer to be contacted by email",
    )
    newer = _say(db, tenant.tenant_id, conv, "What food would you recommend for my pet?")
    embed_all(db, local())
    found = recall(
        db,
        tenant.tenant_id,
        conv,
        newer[0]["content"],
        1,
        embedder=local(),
        before_seq=newer[0]["seq"],
    )
    assert [m["id"] for m in found] == [older[0]["id"]]
    # no vectors: the words still find it
    by_words = recall(db, tenant.tenant_id, conv, "is the dog allergic?", 2, before_seq=4)
    assert by_words[0]["id"] == older[0]["id"]
    # only older messages, only this conversation
    other_conv = _conversation(db, tenant.tenant_id)
    _say(db, tenant.tenant_id, other_conv, "My cat eats fish")
    embed_all(db, local())
    everything = recall(db, tenant.tenant_id, conv, "pet food", 10, embedder=local(), before_seq=4)
    assert {m["id"] for m in everything} == {m["id"] for m in older}
    assert recall(db, tenant.tenant_id, conv, "pet", 0, embedder=local()) == []
    # contact-wide: the contact's other conversations too
    contact = conversations.get(db, tenant.tenant_id, conv).contact_id
    third = conversations.create(db, tenant.tenant_id, {"contact_id": contact}).id
    (cat,) = _say(db, tenant.tenant_id, third, "Our kitten only eats salmon")
    embed_all(db, local())
    wide = recall(
        db,
        tenant.tenant_id,
        conv,
        "pet food",
        10,
        embedder=local(),
        before_seq=4,
        contact_wide=True,
    )
    assert cat["id"] in {m["id"] for m in wide}
    assert newer[0]["id"] not in {m["id"] for m in wide}


# --- reindex, migration ------------------------------------------------------------------------


def test_reindex_embeds_what_is_missing_and_force_does_it_again(
    db: Database,
    db_url: str,
    tenant: TenantKey,
    seeded: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    env = {"THREADLINE_DATABASE_URL": db_url, "THREADLINE_EMBEDDINGS": "local"}
    r = runner.invoke(cli_app, ["reindex", "--tenant", tenant.slug], env=env)
    assert r.exit_code == 0, r.output
    assert "embedded 3 messages with all-MiniLM-L6-v2-int8" in r.output
    assert store.count_pending(db, LocalEmbedder.model, tenant_id=tenant.tenant_id) == 0
    assert store.count_pending(db, LocalEmbedder.model) == 1  # the other tenant's
    r = runner.invoke(cli_app, ["reindex"], env=env)
    assert r.exit_code == 0, r.output
    assert "embedded 1 messages" in r.output
    r = runner.invoke(cli_app, ["reindex", "--force"], env=env)
    assert "dropped 4 vectors" in r.output and "embedded 4 messages" in r.output
    r = runner.invoke(cli_app, ["reindex", "--tenant", "nobody"], env=env)
    assert r.exit_code == 1 and "Traceback" not in r.output
    r = runner.invoke(cli_app, ["reindex", "--model", "other"], env=env)
    assert r.exit_code == 1
    r = runner.invoke(cli_app, ["reindex"], env=env | {"THREADLINE_EMBEDDINGS": "none"})
    assert r.exit_code == 0 and "keyword search only" in r.output


def _raw_message(
    db: Database, tenant_id: uuid.UUID, conv: uuid.UUID, seq: int, text: str
) -> uuid.UUID:
    """A message written with plain SQL (the code's append path writes tables of later
    revisions)."""
    message_id = uuid.uuid4()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    row = {
        "id": message_id,
        "tenant_id": tenant_id,
        "conversation_id": conv,
        "seq": seq,
        "role": "user",
        "sender_type": "contact",
        "direction": "inbound",
        "message_type": "text",
        "content": text,
        "occurred_at": now,
        "created_at": now,
    }
    _raw_insert(db, "messages", row)
    return message_id


def _raw_insert(db: Database, table: str, row: dict[str, Any]) -> None:
    def value(v: Any) -> Any:
        if db.dialect == "sqlite" and isinstance(v, uuid.UUID):
            return v.hex
        if db.dialect == "sqlite" and isinstance(v, datetime):
            return v.isoformat(timespec="microseconds")
        return v

    names = ", ".join(row)
    marks = ", ".join(f":{k}" for k in row)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(f"INSERT INTO {table} ({names}) VALUES ({marks})"),
            {k: value(v) for k, v in row.items()},
        )


def test_0004_indexes_existing_messages_and_downgrades(empty_db_url: str) -> None:
    db = Database.from_url(empty_db_url)
    try:
        before = _revision_before_0004()
        migrate.upgrade(db, before)
        now = datetime(2026, 11, 1, tzinfo=UTC)
        tenant_id, conv = uuid.uuid4(), uuid.uuid4()
        _raw_insert(
            db,
            "tenants",
            {"id": tenant_id, "slug": "acme", "name": "Acme", "created_at": now, "updated_at": now},
        )
        _raw_insert(
            db,
            "conversations",
            {
                "id": conv,
                "tenant_id": tenant_id,
                "channel": "api",
                "status": "active",
                "message_count": 2,
                "last_activity_at": now,
                "metadata": "{}",
                "created_at": now,
                "updated_at": now,
            },
        )
        old = _raw_message(db, tenant_id, conv, 1, "stored before search existed")
        migrate.upgrade(db, "head")  # 0004, and 0008's stored tsvector on PostgreSQL
        hits = store.keyword(db, tenant_id, parse("existed"), Filters(), 5)
        assert [i for i, _ in hits] == [old]
        with db.connect() as conn:
            assert search_schema.differences(conn) == []
        migrate.downgrade(db, before)
        names = set(sa.inspect(db.engine).get_table_names())
        assert "embeddings" not in names
        assert not any(search_schema.is_internal_table(n) for n in names)
        later = _raw_message(db, tenant_id, conv, 2, "written without the triggers")
        migrate.upgrade(db, "head")
        hits = store.keyword(db, tenant_id, parse("triggers"), Filters(), 5)
        assert [i for i, _ in hits] == [later]
    finally:
        db.dispose()


def _revision_before_0004() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS))
    down = ScriptDirectory.from_config(cfg).get_revision("0004").down_revision
    assert isinstance(down, str)
    return down


def test_db_check_reports_a_missing_trigger(db: Database) -> None:
    if db.dialect == "sqlite":
        with db.transaction() as conn:
            conn.exec_driver_sql("DROP TRIGGER messages_fts_insert")
        assert "missing trigger messages_fts_insert (search)" in migrate.check(db).differences
    else:
        with db.transaction() as conn:
            conn.exec_driver_sql("DROP INDEX ix_messages_fts")
        assert "missing index ix_messages_fts on messages" in migrate.check(db).differences


# --- pieces -----------------------------------------------------------------------------------


def test_openai_embedder_speaks_the_embeddings_api() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        seen.append({"auth": request.headers["authorization"], "url": str(request.url)} | body)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i + 1), 0.0, 0.0]}
            for i in reversed(range(len(body["input"])))
        ]
        return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"]})

    embedder = OpenAIEmbedder(
        "https://llm.test/v1/",
        "text-embedding-3-small",
        api_key="sk-test",
        transport=httpx.MockTransport(handler),
    )
    vectors = embedder.embed(["a", "b"])
    assert vectors.shape == (2, 3) and embedder.dims == 3
    assert np.allclose(vectors, [[1, 0, 0], [1, 0, 0]])
    assert seen[0]["url"] == "https://llm.test/v1/embeddings"
    assert seen[0]["auth"] == "Bearer sk-test"
    assert (seen[0]["model"], seen[0]["input"]) == ("text-embedding-3-small", ["a", "b"])

    failing = OpenAIEmbedder(
        "https://llm.test/v1", "m", transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    with pytest.raises(EmbedderError):
        failing.embed(["a"])


def test_embedders_from_settings() -> None:
    assert from_settings(Settings(embeddings="none")) is None
    assert from_settings(Settings(embeddings="local")) is local()
    with pytest.raises(EmbedderError):
        from_settings(Settings(embeddings="openai"))
    remote = from_settings(
        Settings(embeddings="openai", embeddings_base_url="http://x/v1", embeddings_model="m")
    )
    assert remote is not None and remote.model == "m"


def test_query_parsing() -> None:
    assert parse("refund sofa").fts5 == '("refund") AND ("sofa")'
    assert parse('"blue sofa" -red').fts5 == '("blue sofa") NOT "red"'
    assert parse("a OR b c").fts5 == '("a" OR "b") AND ("c")'
    assert parse('NEAR(a b) "x').fts5 == '("near a") AND ("b") AND ("x")'
    assert parse("***").empty and parse("OR").empty and parse("-x").empty
    assert parse("a OR b -c").websearch == '"a" or "b" -"c"'
    assert parse("Héllo wörld").terms == ["héllo", "wörld"]


def test_highlight_escapes_html_and_marks_whole_words() -> None:
    text = "<b>Refund</b> for refunds: refund & more"
    assert highlight(text, ["refund"]) == (
        "&lt;b&gt;<mark>Refund</mark>&lt;/b&gt; for refunds: <mark>refund</mark> &amp; more"
    )
    long = "word " * 100 + "target here " + "tail " * 100
    snippet = highlight(long, ["target"])
    assert snippet.startswith("…") and snippet.endswith("…") and "<mark>target</mark>" in snippet
    assert highlight(None, ["x"]) == "" and highlight("plain", []) == "plain"


def test_reciprocal_rank_fusion() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fused = fuse([[(a, 9.0), (b, 1.0)], [(b, 0.9), (c, 0.8)]])
    assert max(fused, key=fused.__getitem__) == b
    assert fused[a] == pytest.approx(1 / 61) and fused[b] == pytest.approx(1 / 62 + 1 / 61)
