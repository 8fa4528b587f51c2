"""The agent through a real channel: signed Twilio webhooks in, the reply loop, people deciding
drafts, the delivery worker sending through Twilio's API (played on loopback by
``ProviderAPI``) and status callbacks coming back. The loops run round by round."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from channels.fakes import ProviderAPI, Reply
from fakes_llm import FakeLLM, Turn
from threadline.api.app import create_app
from threadline.ingest import Ingest
from threadline.jobs.deliver import Deliverer, client_for
from threadline.jobs.reply import run_due
from threadline.settings import Settings
from threadline.store import Database

Json = dict[str, Any]
PUBLIC = "https://tl.example.com"
ACCOUNT = "AC" + "0" * 32
TOKEN = "twilio-auth-token"
TWILIO_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
NUMBER = "+14155550100"  # the inbox
CUSTOMER = "+14155550123"


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def twilio_api() -> Iterator[ProviderAPI]:
    with ProviderAPI() as server:
        yield server


@pytest.fixture
def settings(db_url: str, fake: FakeLLM) -> Settings:
    return Settings(
        database_url=db_url,
        environment="test",
        log_level="warning",
        embeddings="none",
        public_url=PUBLIC,
        llm_base_url=fake.url,
        llm_model="gpt-4o-mini",
        llm_timeout_seconds=2,
        delivery_backoff_seconds=0.01,
        delivery_timeout_seconds=1,
    )


@pytest.fixture
def app(settings: Settings, db: Database) -> Any:
    """No background loops: the test runs the agent's and the delivery worker's rounds."""
    return create_app(settings, db, background=())


@pytest.fixture
def hooks(app: Any) -> Iterator[TestClient]:
    """Twilio's side: no API key."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def worker(db: Database, settings: Settings) -> Iterator[Deliverer]:
    client = client_for(settings)
    deliverer = Deliverer(db, settings, client)
    yield deliverer
    deliverer.close()
    client.close()


class Line:
    """One Twilio number with an AI agent, and the customer texting it."""

    def __init__(
        self,
        api: TestClient,
        hooks: TestClient,
        db: Database,
        settings: Settings,
        twilio_api: ProviderAPI,
        worker: Deliverer,
        mode: str,
    ) -> None:
        self.api, self.hooks, self.db, self.settings = api, hooks, db, settings
        self.twilio_api, self.worker = twilio_api, worker
        r = api.post(
            "/v1/agents",
            json={"name": "Front desk", "system_prompt": "You answer for Chez Ada."},
        )
        assert r.status_code == 201, r.text
        self.agent = r.json()
        r = api.post(
            "/v1/inboxes",
            json={
                "provider": "twilio",
                "address": NUMBER,
                "credentials": {"account_sid": ACCOUNT, "auth_token": TOKEN},
                "config": {"api_base_url": twilio_api.url},
                "agent_id": self.agent["id"],
                "mode": mode,
            },
        )
        assert r.status_code == 201, r.text
        self.inbox = r.json()
        self.sids = 0

    def _signed(self, name: str, params: dict[str, str]) -> Any:
        url = self.inbox["webhooks"][name]
        signature = RequestValidator(TOKEN).compute_signature(url, params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        return self.hooks.post(url.removeprefix(PUBLIC), content=urlencode(params), headers=headers)

    def texts(self, body: str) -> None:
        """The customer sends an SMS: Twilio's signed inbound webhook."""
        self.sids += 1
        sid = f"SMin{self.sids:030d}"
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": ACCOUNT,
            "From": CUSTOMER,
            "To": NUMBER,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        r = self._signed("inbound", params)
        assert r.status_code == 200, r.text

    def status(self, sid: str, status: str) -> None:
        r = self._signed("status", {"MessageSid": sid, "MessageStatus": status, "To": CUSTOMER})
        assert r.status_code == 200, r.text

    def agent_round(self) -> None:
        run_due(self.db, self.settings, Ingest(self.db, self.settings))

    def delivery_round(self, sid: str | None = None) -> int:
        if sid is not None:
            body = {"sid": sid, "status": "queued", "num_segments": "1"}
            self.twilio_api.reply("POST", TWILIO_PATH, Reply(201, body))
        return self.worker.run_once()

    def sent(self) -> list[dict[str, list[str]]]:
        """What Twilio's API was asked to send."""
        return [
            r.form()
            for r in self.twilio_api.requests
            if r.method == "POST" and r.path.split("?")[0] == TWILIO_PATH
        ]

    def conversation(self) -> Json:
        listed = self.api.get("/v1/conversations", params={"inbox_id": self.inbox["id"]})
        [conv] = listed.json()["data"]
        return conv  # type: ignore[no-any-return]

    def messages(self) -> list[Json]:
        conv = self.conversation()
        return self.api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]  # type: ignore[no-any-return]

    def pending(self) -> list[Json]:
        r = self.api.get("/v1/suggestions", params={"status": "pending"})
        return r.json()["data"]  # type: ignore[no-any-return]


@pytest.fixture
def line_factory(
    api: TestClient,
    hooks: TestClient,
    db: Database,
    settings: Settings,
    twilio_api: ProviderAPI,
    worker: Deliverer,
) -> Any:
    def make(mode: str) -> Line:
        return Line(api, hooks, db, settings, twilio_api, worker, mode)

    return make


def test_approval_inbound_draft_approve_send_delivered(line_factory: Any, fake: FakeLLM) -> None:
    line: Line = line_factory("approval")
    line.texts("Table for 4 tonight?")
    fake.script(Turn("Yes, we have a table at 7pm."))
    line.agent_round()
    line.agent_round()  # found once however many rounds

    assert len(fake.requests) == 1
    assert fake.requests[0]["messages"][0] == {
        "role": "system",
        "content": "You answer for Chez Ada.",
    }
    assert fake.requests[0]["messages"][-1]["content"] == "Table for 4 tonight?"
    [draft] = line.pending()
    assert draft["content"] == "Yes, we have a table at 7pm."
    inbound = line.messages()[0]
    assert draft["in_reply_to_message_id"] == inbound["id"]
    assert line.delivery_round() == 0 and line.sent() == []  # nothing goes out undecided

    r = line.api.post(f"/v1/suggestions/{draft['id']}/approve")
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    assert line.delivery_round("SM" + "a" * 32) == 1
    assert line.delivery_round() == 0
    [form] = line.sent()
    assert form["Body"] == ["Yes, we have a table at 7pm."]
    assert (form["To"], form["From"]) == ([CUSTOMER], [NUMBER])

    line.status("SM" + "a" * 32, "delivered")
    reply = line.messages()[-1]
    assert reply["id"] == r.json()["sent_message_id"]
    assert (reply["role"], reply["sender_type"], reply["direction"]) == (
        "assistant",
        "agent",
        "outbound",
    )
    assert reply["delivery_status"] == "delivered" and reply["delivered_at"] is not None
    events = line.api.get(f"/v1/messages/{reply['id']}/events").json()["data"]
    assert sorted((e["status"], e["external_message_id"]) for e in events) == [
        ("delivered", "SM" + "a" * 32),
        ("sent", "SM" + "a" * 32),
    ]
    assert line.conversation()["status"] == "waiting"
    # deciding it again changes nothing and sends nothing
    assert line.api.post(f"/v1/suggestions/{draft['id']}/approve").status_code == 409
    assert line.delivery_round() == 0 and len(line.sent()) == 1


def test_approval_edit_sends_the_edited_text_and_reject_sends_nothing(
    line_factory: Any, fake: FakeLLM
) -> None:
    line: Line = line_factory("approval")
    line.texts("Do you have parking?")
    fake.script(Turn("Yes."), Turn("We close at 10."))
    line.agent_round()
    [draft] = line.pending()
    r = line.api.post(
        f"/v1/suggestions/{draft['id']}/approve",
        json={"content": "Yes: free parking behind the restaurant."},
    )
    assert r.status_code == 200, r.text
    decided = r.json()
    assert (decided["status"], decided["content"], decided["edited_content"]) == (
        "edited",
        "Yes.",
        "Yes: free parking behind the restaurant.",
    )
    assert line.delivery_round("SM" + "b" * 32) == 1
    [form] = line.sent()
    assert form["Body"] == ["Yes: free parking behind the restaurant."]
    line.status("SM" + "b" * 32, "delivered")
    assert line.messages()[-1]["delivery_status"] == "delivered"

    line.texts("And when do you close?")
    line.agent_round()
    [draft] = line.pending()
    assert draft["content"] == "We close at 10."
    r = line.api.post(f"/v1/suggestions/{draft['id']}/reject", json={"feedback": "We close at 11"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["feedback"]) == ("rejected", "We close at 11")
    listed = line.api.get("/v1/suggestions", params={"status": "rejected"}).json()["data"]
    assert [s["feedback"] for s in listed] == ["We close at 11"]
    assert line.delivery_round() == 0
    assert len(line.sent()) == 1  # still only the edited reply
    assert [m["content"] for m in line.messages() if m["direction"] == "outbound"] == [
        "Yes: free parking behind the restaurant."
    ]
    line.agent_round()  # a rejected draft is not drafted again for the same message
    assert line.pending() == [] and len(fake.requests) == 2


def test_a_newer_inbound_message_supersedes_the_pending_draft(
    line_factory: Any, fake: FakeLLM
) -> None:
    line: Line = line_factory("approval")
    line.texts("Table for 2?")
    fake.script(Turn("For when?"), Turn("Yes, 2 at 8pm tonight."))
    line.agent_round()
    [first] = line.pending()
    line.texts("Tonight at 8")
    line.agent_round()
    [second] = line.pending()
    assert second["content"] == "Yes, 2 at 8pm tonight."
    assert second["in_reply_to_message_id"] == line.messages()[-1]["id"]
    old = line.api.get("/v1/suggestions", params={"conversation_id": first["conversation_id"]})
    statuses = {s["id"]: s["status"] for s in old.json()["data"]}
    assert statuses[first["id"]] == "rejected"
    # the superseded draft can no longer be sent
    assert line.api.post(f"/v1/suggestions/{first['id']}/approve").status_code == 409
    assert line.delivery_round() == 0 and line.sent() == []
    assert line.api.post(f"/v1/suggestions/{second['id']}/approve").status_code == 200
    assert line.delivery_round("SM" + "c" * 32) == 1
    assert [f["Body"] for f in line.sent()] == [["Yes, 2 at 8pm tonight."]]


def test_auto_mode_sends_the_reply_through_the_channel(line_factory: Any, fake: FakeLLM) -> None:
    line: Line = line_factory("auto")
    line.texts("Are you open on Sunday?")
    fake.script(Turn("Yes, from noon to 10pm."))
    line.agent_round()
    assert line.pending() == []
    reply = line.messages()[-1]
    assert (reply["content"], reply["delivery_status"]) == ("Yes, from noon to 10pm.", "queued")
    assert line.delivery_round("SM" + "d" * 32) == 1
    [form] = line.sent()
    assert (form["Body"], form["To"]) == (["Yes, from noon to 10pm."], [CUSTOMER])
    line.status("SM" + "d" * 32, "delivered")
    assert line.messages()[-1]["delivery_status"] == "delivered"
    line.agent_round()  # the same message is never answered twice
    assert len(fake.requests) == 1 and line.delivery_round() == 0 and len(line.sent()) == 1
    calls = line.api.get("/v1/analytics/agents").json()["data"]
    [mine] = [f for f in calls if f["agent_id"] == line.agent["id"]]
    assert (mine["replies"], mine["model_calls"]) == (1, 1)
