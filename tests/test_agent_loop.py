"""The reply loop, suggestions, scores, sessions and analytics against a local model."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from fakes_llm import FakeLLM, Turn, call
from threadline.agent import scoring
from threadline.agent.loop import SEND_THROUGH_CHANNEL
from threadline.api.app import create_app
from threadline.domain.enums import InboxMode
from threadline.ingest import Ingest
from threadline.jobs.reply import run_due
from threadline.settings import Settings
from threadline.store import agent_jobs
from threadline.store.database import Database
from threadline.store.models import Inbox, ModelCall

Json = dict[str, Any]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def ai_settings(db_url: str, fake: FakeLLM) -> Settings:
    return Settings(
        database_url=db_url,
        environment="test",
        log_level="warning",
        llm_base_url=fake.url,
        llm_model="gpt-4o-mini",
        llm_timeout_seconds=2,
        agent_poll_seconds=0.05,
    )


@pytest.fixture
def ai(ai_settings: Settings, db: Database, tenant: Any) -> Iterator[TestClient]:
    """The API with a model and no background loops: tests run the loop's rounds."""
    app = create_app(ai_settings, db, background=())
    with TestClient(app, headers=tenant.headers, raise_server_exceptions=False) as c:
        yield c


def rounds(db: Database, settings: Settings, n: int = 1) -> None:
    for _ in range(n):
        run_due(db, settings, Ingest(db, settings))


def start(ai: TestClient, text: str = "Hi, can you quote a kitchen?", **conv: Any) -> Json:
    body = {"contact": {"name": "Ada Lovelace", "phone": "+14155550100"}} | conv
    r = ai.post("/v1/conversations", json=body)
    assert r.status_code == 201, r.text
    c = r.json()
    r = ai.post(f"/v1/conversations/{c['id']}/messages", json={"role": "user", "content": text})
    assert r.status_code == 201, r.text
    return c  # type: ignore[no-any-return]


def history(ai: TestClient, conv: Json) -> list[Json]:
    return ai.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]  # type: ignore[no-any-return]


def agent(ai: TestClient, **fields: Any) -> Json:
    body = {
        "name": f"agent-{uuid.uuid4().hex[:6]}",
        "system_prompt": "You help {{ contact_first_name }}.",
    }
    r = ai.post("/v1/agents", json=body | fields)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def inbox(db: Database, tenant: Any, agent_id: str, mode: str) -> uuid.UUID:
    extra = {"provider": "twilio"} if hasattr(Inbox, "provider") else {}
    modes = [m for m in InboxMode if m.value.startswith(mode)]
    with db.write() as s:
        row = Inbox(
            tenant_id=tenant.tenant_id,
            channel="sms",
            name="Main line",
            address=f"+1415555{uuid.uuid4().int % 10000:04d}",
            mode=modes[0],
            agent_id=uuid.UUID(agent_id),
            settings={},
            is_active=True,
            **extra,
        )
        s.add(row)
        s.flush()
        return row.id


def calls(db: Database) -> list[ModelCall]:
    with db.read() as s:
        return list(s.scalars(sa.select(ModelCall).order_by(ModelCall.created_at)))


def test_no_model_answers_409_and_the_rest_works(api: TestClient, conversation: Json) -> None:
    r = api.post(f"/v1/conversations/{conversation['id']}/reply")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "model_not_configured"
    assert "THREADLINE_LLM_MODEL" in r.json()["error"]["message"]
    assert api.post(f"/v1/conversations/{conversation['id']}/score").status_code == 409
    assert api.get(f"/v1/conversations/{conversation['id']}/context").status_code == 200


def test_a_reply_on_demand_is_stored_with_its_model_call(
    ai: TestClient, ai_settings: Settings, db: Database, fake: FakeLLM
) -> None:
    a = agent(ai)
    conv = start(ai)
    ai.patch(f"/v1/conversations/{conv['id']}", json={"assignee_id": a["id"]})
    fake.script(Turn("Happy to help, Ada!", prompt_tokens=1000, completion_tokens=10))
    r = ai.post(f"/v1/conversations/{conv['id']}/reply")
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    rounds(db, ai_settings)
    assert agent_jobs.get(db, uuid.UUID(job_id))["status"] == "done"  # type: ignore[index]
    last = history(ai, conv)[-1]
    assert last["role"] == "assistant" and last["content"] == "Happy to help, Ada!"
    assert last["sender_type"] == "agent" and last["model_used"] == "gpt-4o-mini"
    assert fake.requests[0]["messages"][0] == {"role": "system", "content": "You help Ada."}
    [row] = calls(db)
    assert str(row.message_id) == last["id"] and str(row.agent_id) == a["id"]
    assert (
        row.token_usage["total_tokens"] == 1010
        and row.cost_usd
        and row.response_time_ms is not None
    )
    assert ai.get(f"/v1/conversations/{conv['id']}").json()["status"] == "waiting"


def test_tools_run_and_are_logged(
    ai: TestClient, ai_settings: Settings, db: Database, fake: FakeLLM
) -> None:
    conv = start(ai)
    fake.script(
        Turn(
            None,
            [
                call("set_outcome", {"outcome": "quoted"}, "c1"),
                call("update_contact", {"attributes": {"budget": 9000}}, "c2"),
                call("teleport", {}, "c3"),
                call("set_outcome", "{not json", "c4"),
            ],
        ),
        Turn("Your quote is on its way."),
    )
    ai.post(f"/v1/conversations/{conv['id']}/reply")
    rounds(db, ai_settings)
    msgs = history(ai, conv)
    assert [m["role"] for m in msgs] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "tool",
        "tool",
        "assistant",
    ]
    assert [c["id"] for c in msgs[1]["tool_calls"]] == ["c1", "c2", "c3", "c4"]
    assert json.loads(msgs[4]["content"]) == {"error": "there is no tool named 'teleport'"}
    assert "error" in json.loads(msgs[5]["content"])
    second = fake.requests[1]["messages"]
    assert second[-5]["tool_calls"] == msgs[1]["tool_calls"]
    assert [m["tool_call_id"] for m in second[-4:]] == ["c1", "c2", "c3", "c4"]
    actions = ai.get(f"/v1/conversations/{conv['id']}/actions").json()["data"]
    assert [(a["action_name"], a["action_type"], a["error"] is None) for a in actions] == [
        ("set_outcome", "builtin", True),
        ("update_contact", "builtin", True),
        ("teleport", "unknown", False),
        ("set_outcome", "builtin", False),
    ]
    assert all(a["message_id"] == msgs[1]["id"] for a in actions)
    assert ai.get(f"/v1/conversations/{conv['id']}").json()["outcome"] == "quoted"
    contact_id = ai.get(f"/v1/conversations/{conv['id']}").json()["contact_id"]
    contact = ai.get(f"/v1/contacts/{contact_id}")
    assert contact.json()["attributes"] == {"budget": 9000}
    assert len(calls(db)) == 2
    # The context read back keeps the calls with their results.
    ctx = ai.get(f"/v1/conversations/{conv['id']}/context").json()
    assert ctx["messages"][-6]["tool_calls"] == msgs[1]["tool_calls"]


def test_escalation_by_tool_stops_the_agent(
    ai: TestClient, ai_settings: Settings, db: Database, fake: FakeLLM
) -> None:
    conv = start(ai, "I want a human NOW")
    fake.script(
        Turn(None, [call("escalate", {"reason": "asked for a person"})]),
        Turn("A person will call you."),
    )
    ai.post(f"/v1/conversations/{conv['id']}/reply")
    rounds(db, ai_settings)
    after = ai.get(f"/v1/conversations/{conv['id']}").json()
    assert after["status"] == "escalated"
    events = ai.get(f"/v1/conversations/{conv['id']}/events").json()["data"]
    assert "escalation_requested" in [e["type"] for e in events]
    r = ai.post(f"/v1/conversations/{conv['id']}/reply")
    assert r.status_code == 409


def test_escalation_by_keyword_needs_no_model(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    a = agent(ai, settings={"escalate_keywords": ["lawyer"]})
    box = inbox(db, tenant, a["id"], "auto")
    conv = start(ai, "My lawyer will hear about this", inbox_id=str(box))
    rounds(db, ai_settings)
    assert ai.get(f"/v1/conversations/{conv['id']}").json()["status"] == "escalated"
    assert fake.requests == []


def test_inbound_on_an_approval_inbox_becomes_a_suggestion_then_is_approved(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    a = agent(ai)
    box = inbox(db, tenant, a["id"], "approval")
    conv = start(ai, inbox_id=str(box))
    fake.script(Turn("Draft one"))
    rounds(db, ai_settings, 2)
    assert len(fake.requests) == 1  # found once, however many rounds
    [draft] = ai.get("/v1/suggestions", params={"status": "pending"}).json()["data"]
    assert draft["content"] == "Draft one"
    assert draft["in_reply_to_message_id"] == history(ai, conv)[0]["id"]
    assert len(history(ai, conv)) == 1  # nothing sent yet
    r = ai.post(f"/v1/suggestions/{draft['id']}/approve")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    sent = history(ai, conv)[-1]
    assert sent["content"] == "Draft one" and r.json()["sent_message_id"] == sent["id"]
    if SEND_THROUGH_CHANNEL:
        assert sent["delivery_status"] is not None
    assert ai.post(f"/v1/suggestions/{draft['id']}/approve").status_code == 409
    assert ai.post(f"/v1/suggestions/{draft['id']}/reject", json={}).status_code == 409
    assert len(history(ai, conv)) == 2
    assert ai.get(f"/v1/conversations/{conv['id']}").json()["status"] == "waiting"


def test_edit_reject_and_supersede(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    a = agent(ai)
    box = inbox(db, tenant, a["id"], "approval")
    conv = start(ai, inbox_id=str(box))
    fake.script(Turn("First draft"), Turn("Second draft"), Turn("Third draft"))
    rounds(db, ai_settings)
    ai.post(f"/v1/conversations/{conv['id']}/messages", json={"role": "user", "content": "hello?"})
    rounds(db, ai_settings)
    listed = ai.get("/v1/suggestions", params={"conversation_id": conv["id"]}).json()["data"]
    assert [(s["content"], s["status"]) for s in listed] == [
        ("Second draft", "pending"),
        ("First draft", "rejected"),
    ]
    r = ai.post(f"/v1/suggestions/{listed[0]['id']}/approve", json={"content": "Edited!"})
    assert r.json()["status"] == "edited"
    assert r.json()["content"] == "Second draft" and r.json()["edited_content"] == "Edited!"
    assert history(ai, conv)[-1]["content"] == "Edited!"
    ai.post(f"/v1/conversations/{conv['id']}/messages", json={"role": "user", "content": "and?"})
    rounds(db, ai_settings)
    pending = ai.get("/v1/suggestions", params={"status": "pending"}).json()["data"]
    r = ai.post(f"/v1/suggestions/{pending[0]['id']}/reject", json={"feedback": "too short"})
    assert r.json()["status"] == "rejected" and r.json()["feedback"] == "too short"
    figures = ai.get("/v1/analytics/agents").json()["data"]
    [mine] = [f for f in figures if f["agent_id"] == a["id"]]
    assert (mine["edited"], mine["rejected"], mine["approved"]) == (1, 1, 0)
    assert mine["edit_rate"] == 0.5 and mine["model_calls"] == 3
    assert mine["total_tokens"] == 75 and mine["cost_usd"] > 0
    assert mine["first_response_ms_p50"] is not None


def test_off_mode_does_nothing(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    if "off" not in {m.value for m in InboxMode}:
        pytest.skip("inbox modes without off")
    a = agent(ai)
    box = inbox(db, tenant, a["id"], "off")
    start(ai, inbox_id=str(box))
    rounds(db, ai_settings)
    assert fake.requests == []


def test_a_failing_model_is_on_record_and_stores_nothing(
    ai: TestClient, ai_settings: Settings, db: Database, fake: FakeLLM
) -> None:
    conv = start(ai)
    fake.script(Turn(status=500), Turn(status=500))
    job_id = ai.post(f"/v1/conversations/{conv['id']}/reply").json()["job_id"]
    rounds(db, ai_settings)
    job = agent_jobs.get(db, uuid.UUID(job_id))
    assert job is not None and job["status"] == "queued" and job["error"]
    [row] = calls(db)
    assert row.error and row.message_id is None
    assert len(history(ai, conv)) == 1


def test_a_timed_out_call_never_sends_twice(
    ai: TestClient, ai_settings: Settings, db: Database, fake: FakeLLM
) -> None:
    conv = start(ai)
    fake.script(Turn("late", delay=2.5), Turn("late", delay=2.5))
    job_id = uuid.UUID(ai.post(f"/v1/conversations/{conv['id']}/reply").json()["job_id"])
    rounds(db, ai_settings)
    assert [m["role"] for m in history(ai, conv)] == ["user"]
    fake.script(Turn("On time"))
    with db.transaction() as conn:  # the retry is due now
        conn.execute(agent_jobs.jobs.update().values(run_after=datetime.now(UTC)))
    rounds(db, ai_settings)
    assert [m["content"] for m in history(ai, conv)][1:] == ["On time"]
    assert agent_jobs.get(db, job_id)["status"] == "done"  # type: ignore[index]


def test_streaming_reply(ai: TestClient, db: Database, fake: FakeLLM) -> None:
    conv = start(ai)
    fake.script(
        Turn(None, [call("set_outcome", {"outcome": "booked"})]), Turn("Booked for Tuesday.")
    )
    headers = {"Accept": "text/event-stream"}
    with ai.stream("POST", f"/v1/conversations/{conv['id']}/reply", headers=headers) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ", 1)[1]))
        for block in body.replace("\r\n", "\n").strip().split("\n\n")
        if block.startswith("event:")
    ]
    kinds = [k for k, _ in events]
    assert kinds[0] == "tool_call" and "tool_result" in kinds and kinds[-1] == "message"
    text = "".join(d["text"] for k, d in events if k == "delta")
    assert text == "Booked for Tuesday."
    assert events[-1][1]["content"] == "Booked for Tuesday."
    assert history(ai, conv)[-1]["content"] == "Booked for Tuesday."


def test_a_client_gone_mid_stream_still_gets_the_reply_stored(
    ai: TestClient, db: Database, fake: FakeLLM
) -> None:
    conv = start(ai)
    fake.script(Turn("A long answer " * 50))
    headers = {"Accept": "text/event-stream"}
    with ai.stream("POST", f"/v1/conversations/{conv['id']}/reply", headers=headers) as r:
        for _ in r.iter_lines():
            break  # go away after the first line
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(history(ai, conv)) < 2:
        time.sleep(0.05)
    assert history(ai, conv)[-1]["content"] == ("A long answer " * 50).strip()


def test_score_appears_on_the_conversation(
    ai: TestClient, ai_settings: Settings, db: Database, fake: FakeLLM
) -> None:
    conv = start(ai)
    good = {
        "sentiment": 0.6,
        "satisfaction_score": 8,
        "outcome": "quoted",
        "summary": "Ada wants a quote.",
    }
    fake.script(Turn("not json at all"), Turn(json.dumps(good)))
    assert ai.post(f"/v1/conversations/{conv['id']}/score").status_code == 202
    rounds(db, ai_settings)
    after = ai.get(f"/v1/conversations/{conv['id']}").json()
    assert (
        after["sentiment"],
        after["satisfaction_score"],
        after["outcome"],
        after["summary"],
    ) == (0.6, 8, "quoted", "Ada wants a quote.")
    assert fake.requests[0]["response_format"]["type"] == "json_schema"
    assert [c.purpose for c in calls(db)] == ["score", "score"]
    assert calls(db)[0].error is not None


def test_rolling_summaries_feed_the_context(
    ai: TestClient, ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    conv = start(ai)
    items = [{"role": "user" if i % 2 else "assistant", "content": f"turn {i}"} for i in range(40)]
    ai.post(f"/v1/conversations/{conv['id']}/messages/batch", json={"messages": items})
    fake.script(Turn("Ada wants a kitchen quote."))
    made = scoring.summarise(db, ai_settings, tenant.tenant_id, uuid.UUID(conv["id"]))
    assert made is not None and (made["from_seq"], made["to_seq"]) == (1, 21)
    assert "turn 0" in fake.requests[0]["messages"][1]["content"]
    ctx = ai.get(f"/v1/conversations/{conv['id']}/context").json()
    assert ctx["summary"] == "Ada wants a kitchen quote."
    assert ctx["messages"][1]["content"] == "turn 20"  # seq 22, right after the summary


def test_sessions_split_on_idle_gaps(ai: TestClient) -> None:
    r = ai.post("/v1/conversations", json={"contact": {"name": "Bo"}})
    conv = r.json()
    t0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
    items = [
        {"role": "user", "content": "a", "occurred_at": t0.isoformat()},
        {"role": "assistant", "content": "b", "occurred_at": (t0 + timedelta(hours=1)).isoformat()},
        {"role": "user", "content": "c", "occurred_at": (t0 + timedelta(days=3)).isoformat()},
    ]
    ai.post(f"/v1/conversations/{conv['id']}/messages/batch", json={"messages": items})
    found = ai.get(f"/v1/conversations/{conv['id']}/sessions").json()["data"]
    assert [(s["first_seq"], s["last_seq"], s["message_count"], s["status"]) for s in found] == [
        (1, 2, 2, "ended"),
        (3, 3, 1, "ended"),
    ]


def test_the_background_loop_answers_inbound_messages(
    ai_settings: Settings, db: Database, tenant: Any, fake: FakeLLM
) -> None:
    app = create_app(ai_settings, db)
    fake.script(Turn("Hello from the loop"))
    with TestClient(app, headers=tenant.headers) as c:
        a = agent(c)
        box = inbox(db, tenant, a["id"], "auto")
        conv = start(c, inbox_id=str(box))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(history(c, conv)) < 2:
            time.sleep(0.05)
        assert history(c, conv)[-1]["content"] == "Hello from the loop"
