"""Scores and what follows from them: escalation by sentiment, scoring on close across the
contact's channels, sessions, and context with the contact's other channels."""

# ruff: noqa: F811 - pytest fixtures imported from test_agent_loop are named as parameters
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from fakes_llm import FakeLLM, Turn
from test_agent_loop import (  # noqa: F401 - ai, ai_settings and fake are fixtures
    agent,
    ai,
    ai_settings,
    calls,
    fake,
    history,
    inbox,
    rounds,
    start,
)
from threadline.context.tokens import counter_for_model
from threadline.settings import Settings
from threadline.store import Database, summaries

Json = dict[str, Any]


def score_turn(sentiment: float, satisfaction: int = 5, outcome: str = "open") -> Turn:
    figures = {
        "sentiment": sentiment,
        "satisfaction_score": satisfaction,
        "outcome": outcome,
        "summary": "The customer's order went wrong.",
    }
    return Turn(json.dumps(figures), prompt_tokens=300, completion_tokens=40)


def say(ai: TestClient, conv: Json, text: str) -> None:
    r = ai.post(f"/v1/conversations/{conv['id']}/messages", json={"role": "user", "content": text})
    assert r.status_code == 201, r.text


def status(ai: TestClient, conv: Json) -> str:
    return ai.get(f"/v1/conversations/{conv['id']}").json()["status"]  # type: ignore[no-any-return]


def escalations(ai: TestClient, conv: Json) -> list[Json]:
    events = ai.get(f"/v1/conversations/{conv['id']}/events").json()["data"]
    return [e["data"] for e in events if e["type"] == "escalation_requested"]


def test_a_score_below_the_threshold_escalates_until_a_person_hands_back(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    a = agent(ai, settings={"escalate_below_sentiment": -0.3})
    box = inbox(db, tenant, a["id"], "auto")
    conv = start(ai, "My order is wrong again.", inbox_id=str(box))
    fake.script(Turn("Sorry, let me fix that."))
    rounds(db, ai_settings)
    assert status(ai, conv) == "waiting"

    fake.script(score_turn(-0.1))  # unhappy, not enough
    ai.post(f"/v1/conversations/{conv['id']}/score")
    rounds(db, ai_settings)
    assert status(ai, conv) == "waiting" and escalations(ai, conv) == []

    say(ai, conv, "Still wrong, and nobody answers the phone.")
    fake.script(score_turn(-0.8))
    ai.post(f"/v1/conversations/{conv['id']}/score")  # runs before the reply in the round
    rounds(db, ai_settings)
    assert status(ai, conv) == "escalated"
    assert [m["role"] for m in history(ai, conv)][-2:] == ["assistant", "user"]  # no reply
    [event] = escalations(ai, conv)
    assert event["by"] == "rule" and event["rule"] == "escalate_below_sentiment"
    assert "-0.80" in event["reason"]
    changes = ai.get(f"/v1/conversations/{conv['id']}/events").json()["data"]
    assert {"from": "needs_reply", "to": "escalated", "reason": "rule_escalated"} in [
        e["data"] for e in changes if e["type"] == "status_changed"
    ]

    # the AI stays quiet while a person has it
    asked = len(fake.requests)
    say(ai, conv, "Hello??")
    rounds(db, ai_settings)
    assert len(fake.requests) == asked and history(ai, conv)[-1]["content"] == "Hello??"
    assert ai.post(f"/v1/conversations/{conv['id']}/reply").status_code == 409

    # a person hands it back: the old score does not escalate it again
    r = ai.patch(f"/v1/conversations/{conv['id']}", json={"status": "needs_reply"})
    assert r.status_code == 200, r.text
    fake.script(Turn("A new order is on its way."))
    rounds(db, ai_settings)
    assert history(ai, conv)[-1]["content"] == "A new order is on its way."
    assert status(ai, conv) == "waiting" and len(escalations(ai, conv)) == 1

    # a newer score below the line does
    fake.script(score_turn(-0.9))
    ai.post(f"/v1/conversations/{conv['id']}/score")
    rounds(db, ai_settings)
    assert status(ai, conv) == "escalated" and len(escalations(ai, conv)) == 2


def test_the_reply_loop_checks_the_stored_sentiment_before_calling_the_model(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    """A score stored before the rule existed: the next reply escalates instead."""
    a = agent(ai)
    box = inbox(db, tenant, a["id"], "approval")
    conv = start(ai, "This is useless.", inbox_id=str(box))
    fake.script(score_turn(-0.7), Turn("A draft"))
    ai.post(f"/v1/conversations/{conv['id']}/score")
    rounds(db, ai_settings)
    assert status(ai, conv) == "needs_reply"  # no rule yet, and approval drafts wait
    ai.patch(f"/v1/agents/{a['id']}", json={"settings": {"escalate_below_sentiment": -0.5}})
    say(ai, conv, "Anyone there?")
    asked = len(fake.requests)
    rounds(db, ai_settings)
    assert len(fake.requests) == asked  # escalated by rule, no model call
    assert status(ai, conv) == "escalated"
    drafts = ai.get("/v1/suggestions", params={"conversation_id": conv["id"]}).json()["data"]
    assert [d["content"] for d in drafts] == ["A draft"]  # none for the newest message


def test_score_every_messages_keeps_the_sentiment_fresh(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    a = agent(ai, settings={"escalate_below_sentiment": 0, "score_every_messages": 4})
    box = inbox(db, tenant, a["id"], "auto")
    conv = start(ai, "Hi, I need help with a refund.", inbox_id=str(box))
    fake.script(Turn("Sure, what's the order number?"))
    rounds(db, ai_settings)
    assert [c.purpose for c in calls(db)] == ["reply"]  # 2 messages: no score yet
    say(ai, conv, "I told you twice already. This is ridiculous.")
    fake.script(Turn("Sorry! Found it."), score_turn(-0.6))
    rounds(db, ai_settings, 2)
    assert [c.purpose for c in calls(db)] == ["reply", "reply", "score"]
    assert status(ai, conv) == "escalated"
    after = ai.get(f"/v1/conversations/{conv['id']}").json()
    assert after["sentiment"] == -0.6


def test_archiving_scores_the_conversation_across_the_contacts_channels(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    a = agent(ai)
    box = inbox(db, tenant, a["id"], "approval")
    conv = start(ai, "Can you deliver on Friday?", inbox_id=str(box))
    contact_id = conv["contact_id"]
    email = ai.post("/v1/conversations", json={"contact_id": contact_id, "channel": "email"}).json()
    ai.post(
        f"/v1/conversations/{email['id']}/messages/batch",
        json={
            "messages": [
                {"role": "user", "content": "I ordered a blue sofa last week."},
                {"role": "assistant", "content": "It ships on Thursday."},
            ]
        },
    )
    fake.script(Turn("Yes, Friday works."), score_turn(0.7, 9, "delivered"))
    assert ai.post(f"/v1/conversations/{conv['id']}/reply").status_code == 202
    rounds(db, ai_settings)
    asked = len(fake.requests)
    r = ai.patch(f"/v1/conversations/{conv['id']}", json={"status": "archived"})
    assert r.status_code == 200, r.text
    rounds(db, ai_settings)

    assert len(fake.requests) == asked + 1
    sent = fake.requests[-1]
    assert sent["response_format"]["type"] == "json_schema"
    note = sent["messages"][1]
    assert note["role"] == "system" and "Earlier by email" in note["content"]
    assert "customer: I ordered a blue sofa last week." in note["content"]
    assert "us: It ships on Thursday." in note["content"]
    assert sent["messages"][2:] == [{"role": "user", "content": "Can you deliver on Friday?"}]
    after = ai.get(f"/v1/conversations/{conv['id']}").json()
    assert (after["sentiment"], after["satisfaction_score"], after["outcome"]) == (
        0.7,
        9,
        "delivered",
    )
    assert after["summary"] == "The customer's order went wrong."
    assert after["status"] == "archived"  # a score never reopens or escalates a closed one
    score = [c for c in calls(db) if c.purpose == "score"]
    assert len(score) == 1
    assert str(score[0].conversation_id) == conv["id"] and str(score[0].agent_id) == a["id"]
    assert score[0].model == "gpt-4o-mini" and score[0].token_usage["total_tokens"] == 340
    rounds(db, ai_settings, 2)
    assert len(fake.requests) == asked + 1  # scored once


def test_archiving_scores_only_what_an_ai_agent_handled(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    plain = start(ai, "No agent here")
    opted_out = agent(ai, settings={"score_on_close": False})
    box = inbox(db, tenant, opted_out["id"], "off")
    quiet = start(ai, "Agent that does not score", inbox_id=str(box))
    for conv in (plain, quiet):
        r = ai.patch(f"/v1/conversations/{conv['id']}", json={"status": "archived"})
        assert r.status_code == 200, r.text
    rounds(db, ai_settings)
    assert fake.requests == [] and calls(db) == []


def test_sessions_carry_times_counts_summary_and_status(
    ai: TestClient, db: Database, tenant: Any
) -> None:
    conv = ai.post("/v1/conversations", json={"contact": {"name": "Bo"}}).json()
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=3)
    later = old + timedelta(hours=2)
    items = [
        {"role": "user", "content": "a", "occurred_at": old.isoformat()},
        {"role": "assistant", "content": "b", "occurred_at": later.isoformat()},
        {"role": "user", "content": "c", "occurred_at": (now - timedelta(minutes=5)).isoformat()},
        {"role": "assistant", "content": "d", "occurred_at": now.isoformat()},
    ]
    ai.post(f"/v1/conversations/{conv['id']}/messages/batch", json={"messages": items})
    summaries.add(
        db,
        tenant.tenant_id,
        uuid.UUID(conv["id"]),
        from_seq=1,
        to_seq=2,
        content="Bo asked about a.",
        model="gpt-4o-mini",
        token_count=6,
    )
    found = ai.get(f"/v1/conversations/{conv['id']}/sessions").json()["data"]
    assert [(s["index"], s["message_count"], s["status"], s["summary"]) for s in found] == [
        (1, 2, "ended", None),
        (2, 2, "active", "Bo asked about a."),
    ]

    def at(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    assert at(found[0]["started_at"]) == old
    assert at(found[0]["last_message_at"]) == later
    assert at(found[1]["started_at"]) == now - timedelta(minutes=5)
    assert at(found[1]["last_message_at"]) == now
    ai.patch(f"/v1/conversations/{conv['id']}", json={"status": "escalated"})
    found = ai.get(f"/v1/conversations/{conv['id']}/sessions").json()["data"]
    assert [s["status"] for s in found] == ["ended", "escalated"]
    ai.patch(f"/v1/conversations/{conv['id']}", json={"status": "archived"})
    found = ai.get(f"/v1/conversations/{conv['id']}/sessions").json()["data"]
    assert [s["status"] for s in found] == ["ended", "ended"]
    assert ai.get(f"/v1/conversations/{uuid.uuid4()}/sessions").status_code == 404


def test_context_with_the_contacts_other_channels(ai: TestClient) -> None:
    conv = start(ai, "Is my sofa coming Friday?")
    contact_id = conv["contact_id"]
    t0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
    for channel, lines, day in (
        ("email", ["I ordered a blue sofa.", "It ships Thursday."], 0),
        ("whatsapp", ["Can I change the colour?", "Yes, to green."], 2),
    ):
        other = ai.post(
            "/v1/conversations", json={"contact_id": contact_id, "channel": channel}
        ).json()
        batch = [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": text,
                "occurred_at": (t0 + timedelta(days=day, minutes=i)).isoformat(),
            }
            for i, text in enumerate(lines)
        ]
        r = ai.post(f"/v1/conversations/{other['id']}/messages/batch", json={"messages": batch})
        assert r.status_code == 201, r.text
    url = f"/v1/conversations/{conv['id']}/context"
    plain = ai.get(url).json()
    assert all("Earlier by" not in (m["content"] or "") for m in plain["messages"])

    ctx = ai.get(url, params={"other_channels": "true", "max_tokens": 2000})
    assert ctx.status_code == 200, ctx.text
    body = ctx.json()
    note = body["messages"][0]
    assert note["role"] == "system"
    text = note["content"]
    assert text.index("Earlier by WhatsApp") < text.index("Earlier by email")  # newest first
    assert "customer: Can I change the colour?\nus: Yes, to green." in text
    assert "Earlier by WhatsApp (last message 2026-01-07 10:01 UTC):" in text
    assert body["messages"][-1]["content"] == "Is my sofa coming Friday?"
    counter = counter_for_model("gpt-4o-mini")
    assert body["token_count"] == counter.count_messages(body["messages"]) <= 2000

    # a small budget keeps the note short (or leaves it out), never over the budget
    for budget in (40, 60, 90):
        small = ai.get(url, params={"other_channels": "true", "max_tokens": budget}).json()
        assert small["token_count"] <= budget
        assert small["messages"][-1]["content"] == "Is my sofa coming Friday?"
    assert ai.get(url, params={"other_channels": "maybe"}).status_code == 422


def test_an_agent_can_reply_knowing_the_contacts_other_channels(
    ai: TestClient, ai_settings: Settings, db: Database, fake: FakeLLM
) -> None:
    a = agent(ai, settings={"other_channels": True})
    conv = start(ai, "Any news?")
    ai.patch(f"/v1/conversations/{conv['id']}", json={"assignee_id": a["id"]})
    email = ai.post(
        "/v1/conversations", json={"contact_id": conv["contact_id"], "channel": "email"}
    ).json()
    say(ai, email, "Please send the invoice to accounts@example.com.")
    fake.script(Turn("The invoice went to accounts@example.com."))
    ai.post(f"/v1/conversations/{conv['id']}/reply")
    rounds(db, ai_settings)
    system = fake.requests[0]["messages"][0]["content"]
    assert system.startswith("You help Ada.\n\nEarlier by email")
    assert "customer: Please send the invoice to accounts@example.com." in system
    assert history(ai, conv)[-1]["content"] == "The invoice went to accounts@example.com."
