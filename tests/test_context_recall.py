"""``GET /v1/conversations/{id}/context?recall=N``: older messages related to the newest
customer message, found by meaning (the local model) or by words (embeddings off), quoted
in a system note inside the budget, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import TenantKey
from threadline.api.app import create_app
from threadline.context.tokens import counter_for_model
from threadline.jobs.embed import embed_all
from threadline.search.embedders import local
from threadline.settings import Settings
from threadline.store import summaries
from threadline.store.database import Database

Json = dict[str, Any]

DOG = "My dog Rex is allergic to chicken, please remember that."
FILLERS = [
    "Can you send me the invoice for March?",
    "Sure, the invoice is attached to your account page.",
    "What time do you open on Saturdays?",
    "We open at nine and close at five on Saturdays.",
    "Please change my delivery address to 12 Elm Street.",
    "Done, the address is updated.",
    "Is parking available near the shop?",
    "Yes, there is a car park behind the building.",
    "Do you accept payment by bank transfer?",
    "We accept transfers, cards and cash.",
    "My last parcel arrived with a torn box.",
    "Sorry about that, we will use stronger boxes.",
    "Could you call me back tomorrow afternoon?",
    "Of course, someone will call you at three.",
    "How long does shipping to Canada take?",
    "About a week to Canada.",
    "Can I change the colour of my order to green?",
    "Yes, it is now green.",
    "Where can I find your returns policy?",
    "It is on the website under Help.",
]
QUESTION = "What food would you recommend for my pet?"
HEADER = "Relevant earlier messages (found by meaning; older than the messages shown):"


def _history(api: TestClient, conversation: Json, question: str = QUESTION) -> list[Json]:
    items = [
        {"role": "user", "content": DOG},
        {"role": "assistant", "content": "Noted, thank you."},
        *(
            {"role": "user" if i % 2 == 0 else "assistant", "content": text}
            for i, text in enumerate(FILLERS)
        ),
        {"role": "user", "content": question},
    ]
    r = api.post(f"/v1/conversations/{conversation['id']}/messages/batch", json={"messages": items})
    assert r.status_code == 201, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def _agent(api: TestClient, conversation: Json) -> None:
    r = api.post(
        "/v1/agents",
        json={"name": "Shop", "model": "gpt-4o", "system_prompt": "You help Ada of the pet shop."},
    )
    assert r.status_code == 201, r.text
    r = api.patch(f"/v1/conversations/{conversation['id']}", json={"assignee_id": r.json()["id"]})
    assert r.status_code == 200, r.text


def _context(api: TestClient, conversation: Json, **params: Any) -> Json:
    r = api.get(f"/v1/conversations/{conversation['id']}/context", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _fits(body: Json, max_tokens: int) -> None:
    assert body["token_count"] <= max_tokens
    assert body["token_count"] == counter_for_model("gpt-4o").count_messages(body["messages"])


@pytest.fixture
def semantic_api(settings: Settings, db: Database, tenant: TenantKey) -> Iterator[TestClient]:
    """The API with the local model (no background loops: the test embeds when it wants)."""
    app = create_app(settings.model_copy(update={"embeddings": "local"}), db, background=())
    with TestClient(app, headers=tenant.headers) as c:
        yield c


def test_recall_quotes_an_old_message_found_by_meaning_outside_the_window(
    semantic_api: TestClient, db: Database
) -> None:
    api = semantic_api
    r = api.post("/v1/conversations", json={"contact": {"name": "Ada", "phone": "+14155550100"}})
    conversation = r.json()
    _agent(api, conversation)
    stored = _history(api, conversation)
    embed_all(db, local())
    dog = stored[0]

    plain = _context(api, conversation, max_tokens=250)
    assert _context(api, conversation, max_tokens=250, recall=0) == plain  # nothing changes
    assert "recall" not in plain
    assert DOG not in str(plain["messages"])  # the dog is far outside the window

    body = _context(api, conversation, max_tokens=250, recall=2)
    _fits(body, 250)
    assert body["recall"]["mode"] == "semantic"
    assert body["recall"]["count"] == len(body["recall"]["message_ids"]) >= 1
    assert dog["id"] in body["recall"]["message_ids"]
    system = body["messages"][0]
    assert system["role"] == "system"
    prompt, note = system["content"].split("\n\n", 1)
    assert prompt == "You help Ada of the pet shop."
    lines = note.splitlines()
    assert lines[0] == HEADER
    assert len(lines) == 1 + body["recall"]["count"]
    assert f"- #1, {dog['created_at'][:10]} " in lines[1]
    assert lines[1].endswith(f" UTC, customer: {DOG}")
    # the window shrank to make room, is still the newest messages, and holds no recalled one
    shown = [m["content"] for m in body["messages"][1:]]
    before = [m["content"] for m in plain["messages"][1:]]
    assert shown and shown[-1] == QUESTION
    assert len(shown) <= len(before) and shown == before[len(before) - len(shown) :]
    assert body["truncated"] is True
    recalled_texts = {m["content"] for m in stored if m["id"] in body["recall"]["message_ids"]}
    assert not recalled_texts & set(shown)

    # the same note in the other formats
    anthropic = _context(api, conversation, max_tokens=250, recall=2, format="anthropic")
    assert HEADER in anthropic["system"] and DOG in anthropic["system"]
    assert DOG not in str(anthropic["messages"])
    langchain = _context(api, conversation, max_tokens=250, recall=2, format="langchain")
    assert langchain["messages"][0]["type"] == "system"
    assert DOG in langchain["messages"][0]["data"]["content"]
    shown_ids = {m["data"]["id"] for m in langchain["messages"][1:]}
    assert not shown_ids & set(langchain["recall"]["message_ids"])


def test_recall_stays_inside_any_budget(semantic_api: TestClient, db: Database) -> None:
    api = semantic_api
    r = api.post("/v1/conversations", json={"contact": {"name": "Ada", "phone": "+14155550100"}})
    conversation = r.json()
    _agent(api, conversation)
    stored = _history(api, conversation)
    embed_all(db, local())
    by_id = {m["id"]: m for m in stored}
    for max_tokens in (20, 35, 60, 100, 250, 400, 4000):
        body = _context(api, conversation, max_tokens=max_tokens, recall=50, format="langchain")
        openai = _context(api, conversation, max_tokens=max_tokens, recall=50)
        _fits(openai, max_tokens)
        assert body["token_count"] == openai["token_count"]
        shown = [m["data"]["id"] for m in body["messages"][1:]]
        recalled = body["recall"]["message_ids"]
        assert not set(shown) & set(recalled), max_tokens
        if shown:  # recalled messages are older than the window, listed in order
            first = by_id[shown[0]]["seq"]
            seqs = [by_id[i]["seq"] for i in recalled]
            assert seqs == sorted(seqs) and all(s < first for s in seqs)
        if max_tokens == 4000:  # everything fits: nothing is older than the window
            assert body["recall"]["count"] == 0 and body["truncated"] is False


def test_recall_by_words_when_embeddings_are_off(
    api: TestClient, conversation: Json, db: Database, tenant: TenantKey
) -> None:
    _history(api, conversation, question="Which treats are safe now that Rex is allergic?")
    body = _context(api, conversation, max_tokens=250, recall=1)
    _fits(body, 250)
    assert body["recall"]["mode"] == "keyword"
    assert body["recall"]["count"] == 1
    note = body["messages"][0]["content"]  # no agent: the note is the only system message
    assert note.splitlines()[0] == HEADER.replace("meaning", "words")
    assert note.endswith(f"customer: {DOG}")
    assert DOG not in str(body["messages"][1:])
    # with a summary, the window still never shows a recalled message
    summaries.add(
        db,
        tenant.tenant_id,
        uuid.UUID(conversation["id"]),
        from_seq=1,
        to_seq=10,
        content="Ada asked about invoices and opening hours.",
        model="m",
        token_count=9,
    )
    body = _context(api, conversation, max_tokens=250, recall=1, format="langchain")
    assert body["summary"] is not None
    shown = {m["data"]["id"] for m in body["messages"] if m["type"] != "system"}
    assert body["recall"]["count"] == 1
    assert not shown & set(body["recall"]["message_ids"])


@pytest.mark.parametrize("recall", ["-1", "51", "many", "1.5"])
def test_a_bad_recall_is_refused(api: TestClient, conversation: Json, recall: str) -> None:
    r = api.get(f"/v1/conversations/{conversation['id']}/context", params={"recall": recall})
    assert r.status_code == 422, r.text


def test_recall_on_a_short_conversation_adds_nothing(api: TestClient, conversation: Json) -> None:
    plain = _context(api, conversation, recall=50)
    assert plain["recall"] == {"mode": "keyword", "count": 0, "message_ids": []}
    assert plain["messages"] == []
