"""Demo data: realistic conversations on every channel, so a newcomer sees the product at work.

``load`` creates two agents, one inbox per channel (with made-up credentials: nothing is ever
sent to a real provider) and a handful of conversations: an SMS lead, a WhatsApp order
question with a tool call, an email with HTML and quoted history and an attachment, a Yelp
lead, a voice call transcript, a web chat waiting on a drafted reply, an escalated complaint
and a delivery failure. Loading twice changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from threadline.domain.enums import AgentKind, ConversationStatus, InboxMode
from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import agent_log, agents, conversations, inboxes, suggestions
from threadline.store.database import Database
from threadline.store.models import Inbox, ModelCall
from threadline.store.types import utcnow

DEMO_MARK = "demo"
MODEL = "gpt-4o-mini"

SYSTEM_PROMPT = """You are Ava, the friendly assistant of Bright Home Services.
Answer briefly, in the customer's language. Today is {{ today }}.
Customer: {{ contact.name }} ({{ contact.phone }}). Offer a visit when they ask for a quote."""


@dataclass
class Script:
    """One conversation: who, where, and its messages (minutes before now, fields)."""

    inbox: str
    contact: dict[str, Any]
    title: str | None
    messages: list[tuple[float, dict[str, Any]]]
    status: ConversationStatus | None = None
    draft: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)


def _inbound(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, "direction": "inbound"} | extra


def _agent(text: str, status: str = "delivered", **extra: Any) -> dict[str, Any]:
    tokens = {"prompt_tokens": 420 + len(text), "completion_tokens": len(text) // 4}
    return {
        "role": "assistant",
        "content": text,
        "direction": "outbound",
        "sender_type": "agent",
        "delivery_status": status,
        "model_used": MODEL,
        "token_usage": tokens,
        "cost_usd": round(tokens["prompt_tokens"] * 15e-8 + tokens["completion_tokens"] * 6e-7, 6),
        "response_time_ms": 900 + len(text) * 7,
    } | extra


EMAIL_HTML = """<div><p>Hi team,</p>
<p>I was charged <strong>$240</strong> on invoice #1043 but the quote said $180.
Could you check? The invoice is attached.</p><p>Thanks,<br>Priya</p></div>
<div class="gmail_quote"><div>On Mon, Nov 23, 2026 at 9:12 AM Bright Home Services
&lt;billing@brighthome.example&gt; wrote:</div>
<blockquote>Hello Priya, please find your invoice #1043 attached.
<br>Kind regards, Billing</blockquote></div>"""

SCRIPTS = [
    Script(
        inbox="sms",
        contact={"name": "Maria Lopez", "phone": "+14155550142"},
        title="Kitchen remodel quote",
        messages=[
            (95, _inbound("Hi! Do you do kitchen remodels? Looking for a quote for next month")),
            (
                94,
                _agent(
                    "Hi Maria! Yes, we do. Could you tell me roughly the size of your "
                    "kitchen and what you'd like changed?",
                    "read",
                ),
            ),
            (60, _inbound("About 12x14. New cabinets and countertops, maybe the floor too")),
            (
                59,
                _agent(
                    "Great, thanks! A site visit is free. Would Tuesday 10am or "
                    "Thursday 3pm work for you?",
                    "delivered",
                ),
            ),
            (3, _inbound("Thursday works. What's the address you need from me?")),
        ],
        draft=None,
        scores={"sentiment": 0.7, "satisfaction_score": 8, "outcome": "visit_booked"},
    ),
    Script(
        inbox="whatsapp",
        contact={"name": "Kenji Watanabe", "phone": "+819012345678"},
        title=None,
        messages=[
            (240, _inbound("Hello, where is my order BH-2291? It was supposed to arrive today")),
            (
                239,
                _agent(
                    "",
                    "read",
                    content=None,
                    tool_calls=[
                        {
                            "id": "call_lookup_1",
                            "type": "function",
                            "function": {
                                "name": "lookup_order",
                                "arguments": '{"order_id": "BH-2291"}',
                            },
                        }
                    ],
                ),
            ),
            (
                239,
                {
                    "role": "tool",
                    "tool_call_id": "call_lookup_1",
                    "name": "lookup_order",
                    "content": '{"status": "out_for_delivery", "eta": "17:00-19:00"}',
                },
            ),
            (
                238,
                _agent(
                    "Your order BH-2291 is out for delivery and should arrive between "
                    "5 and 7pm today 🚚",
                    "read",
                ),
            ),
            (230, _inbound("Perfect, thank you!")),
            (229, _agent("You're welcome, Kenji! Anything else, just write here.", "read")),
        ],
        status=ConversationStatus.WAITING,
        scores={"sentiment": 0.9, "satisfaction_score": 9, "outcome": "resolved"},
    ),
    Script(
        inbox="email",
        contact={"name": "Priya Natarajan", "email": "priya.n@example.org"},
        title="Question about invoice #1043",
        messages=[
            (
                48,
                _inbound(
                    "Hi team,\n\nI was charged $240 on invoice #1043 but the quote said $180. "
                    "Could you check? The invoice is attached.\n\nThanks,\nPriya\n\n"
                    "On Mon, Nov 23, 2026 at 9:12 AM Bright Home Services wrote:\n"
                    "> Hello Priya, please find your invoice #1043 attached.",
                    content_html=EMAIL_HTML,
                    attachments=[
                        {
                            "filename": "invoice-1043.pdf",
                            "content_type": "application/pdf",
                            "size": 48213,
                            "url": None,
                        }
                    ],
                    channel_data={
                        "message_id": "<demo-1043@example.org>",
                        "to": ["support@brighthome.example"],
                    },
                ),
            ),
        ],
        status=ConversationStatus.ESCALATED,
        actions=[
            {
                "action_name": "escalate",
                "action_type": "escalation",
                "parameters": {"reason": "billing dispute"},
                "result": {"ok": True},
            }
        ],
    ),
    Script(
        inbox="yelp",
        contact={"name": "Derek H.", "phone": "+14155550177"},
        title="Yelp lead: water heater installation",
        messages=[
            (
                12,
                _inbound(
                    "Looking for: Water heater installation/replacement\n"
                    "ZIP: 94110 · Timing: As soon as possible\n"
                    "Our 40 gal gas water heater is leaking. Can someone come this week?",
                    channel_data={"lead_id": "demo-lead-8812", "zap_event": "lead_created"},
                ),
            ),
            (
                11,
                _agent(
                    "Hi Derek, sorry to hear about the leak! We can come tomorrow "
                    "between 8 and 10am. Does that work?",
                    "sent",
                ),
            ),
        ],
    ),
    Script(
        inbox="voice",
        contact={"name": "Linda Park", "phone": "+14155550199"},
        title="Call: reschedule appointment",
        messages=[
            (
                180,
                {
                    "role": "user",
                    "direction": "inbound",
                    "message_type": "transcript",
                    "content": "Agent: Bright Home Services, this is Ava.\nCaller: Hi, I need "
                    "to move my Friday appointment.\nAgent: Sure, Monday at 9 works?\nCaller: "
                    "Monday is perfect.",
                    "channel_data": {
                        "call_id": "demo-call-1",
                        "duration_seconds": 94.0,
                        "ended_reason": "customer-ended-call",
                        "segments": [
                            {
                                "speaker": "agent",
                                "text": "Bright Home Services, this is Ava. How can I help?",
                                "start": 0.4,
                                "end": 3.1,
                            },
                            {
                                "speaker": "user",
                                "text": "Hi, I need to move my Friday appointment.",
                                "start": 3.8,
                                "end": 6.5,
                            },
                            {
                                "speaker": "agent",
                                "text": "Of course. Would Monday at 9am work?",
                                "start": 7.0,
                                "end": 9.2,
                            },
                            {
                                "speaker": "user",
                                "text": "Monday is perfect, thanks.",
                                "start": 10.1,
                                "end": 11.6,
                            },
                        ],
                    },
                },
            ),
        ],
        status=ConversationStatus.ACTIVE,
        actions=[
            {
                "action_name": "reschedule_appointment",
                "action_type": "function_call",
                "parameters": {"from": "Friday 14:00", "to": "Monday 09:00"},
                "result": {"confirmed": True},
                "duration_ms": 182,
            }
        ],
    ),
    Script(
        inbox="webchat",
        contact={"name": "Website visitor", "email": "sam.k@example.net"},
        title="Pricing for gutter cleaning",
        messages=[
            (6, _inbound("Hi, how much is gutter cleaning for a two-storey house?")),
        ],
        draft="Hi! Gutter cleaning for a two-storey house is usually $180-$240 depending on "
        "the length. Would you like us to send someone for an exact quote?",
    ),
    Script(
        inbox="sms",
        contact={"name": "Tom Becker", "phone": "+14155550166"},
        title="Complaint: missed appointment",
        messages=[
            (35, _inbound("Nobody showed up today. I took the day off for this!!")),
            (34, _agent("I'm very sorry, Tom. Let me check what happened.", "delivered")),
            (20, _inbound("I want to talk to a manager.")),
        ],
        status=ConversationStatus.ESCALATED,
        scores={"sentiment": -0.8, "satisfaction_score": 2, "outcome": "complaint"},
    ),
    Script(
        inbox="sms",
        contact={"name": "Grace Liu", "phone": "+14155550188"},
        title=None,
        messages=[
            (400, _inbound("Can you send me the estimate again?")),
            (
                399,
                _agent(
                    "Of course! Here it is: https://brighthome.example/e/5521",
                    "failed",
                    delivery_error="30003: Unreachable destination handset",
                ),
            ),
        ],
    ),
]

INBOXES: dict[str, dict[str, Any]] = {
    "sms": {
        "name": "Sales line",
        "provider": "twilio",
        "address": "+14155550123",
        "credentials": {"account_sid": "ACdemo000000000000000000000000000", "auth_token": "demo"},
    },
    "whatsapp": {
        "name": "WhatsApp orders",
        "provider": "meta",
        "address": "109876543210",
        "credentials": {"access_token": "demo", "app_secret": "demo", "verify_token": "demo"},
    },
    "email": {
        "name": "Support email",
        "provider": "postmark",
        "address": "support@brighthome.example",
        "credentials": {"server_token": "demo"},
    },
    "yelp": {"name": "Yelp leads", "provider": "zapier", "address": "bright-home-services-sf"},
    "voice": {"name": "Front desk line", "provider": "vapi", "address": "+14155550100"},
    "webchat": {
        "name": "Website chat",
        "provider": "widget",
        "address": "brighthome.example",
        "config": {"allowed_origins": ["https://brighthome.example"]},
    },
}


def is_loaded(db: Database, tenant_id: uuid.UUID) -> bool:
    with db.connect() as conn:
        q = sa.select(Inbox.id).where(Inbox.tenant_id == tenant_id, Inbox.name == "Sales line")
        return conn.execute(q.limit(1)).first() is not None


def load(db: Database, settings: Settings, tenant_id: uuid.UUID) -> int:
    """Create the demo data in the tenant; returns how many conversations (0 when it was
    already there)."""
    if is_loaded(db, tenant_id):
        return 0
    ingest = Ingest(db, settings)
    ava = agents.create(
        db,
        tenant_id,
        {
            "name": "Ava",
            "kind": AgentKind.AI,
            "model": MODEL,
            "system_prompt": SYSTEM_PROMPT,
            "settings": {"demo": True},
        },
    )
    agents.create(db, tenant_id, {"name": "Sam Rivera", "kind": AgentKind.HUMAN})
    inbox_ids = {}
    for key, fields in INBOXES.items():
        view = inboxes.create(
            db, settings, tenant_id, fields | {"mode": InboxMode.APPROVAL, "agent_id": ava.id}
        )
        inbox_ids[key] = view.id
    now = utcnow()
    for script in SCRIPTS:
        _play(db, ingest, tenant_id, script, inbox_ids[script.inbox], ava.id, now)
    with db.write() as s:  # the demo's model calls were Ava's
        s.execute(
            sa.update(ModelCall)
            .where(ModelCall.tenant_id == tenant_id, ModelCall.agent_id.is_(None))
            .values(agent_id=ava.id)
        )
    return len(SCRIPTS)


def _play(
    db: Database,
    ingest: Ingest,
    tenant_id: uuid.UUID,
    script: Script,
    inbox_id: uuid.UUID,
    agent_id: uuid.UUID,
    now: datetime,
) -> None:
    conv = conversations.create(
        db,
        tenant_id,
        {
            "contact": script.contact,
            "inbox_id": inbox_id,
            "title": script.title,
            "assignee_id": agent_id,
            "metadata": {DEMO_MARK: True},
        },
    )
    items = [
        {k: v for k, v in fields.items() if v is not None}
        | {"occurred_at": now - timedelta(minutes=minutes)}
        for minutes, fields in script.messages
    ]
    stored = ingest.append(tenant_id, conv.id, items).messages
    if script.status is not None:
        conversations.update(db, tenant_id, conv.id, {"status": script.status})
    if script.draft:
        suggestions.create_pending(
            db,
            tenant_id,
            {
                "conversation_id": conv.id,
                "in_reply_to_message_id": stored[-1]["id"],
                "content": script.draft,
                "confidence": 0.82,
                "model": MODEL,
                "context_used": {"agent_id": str(agent_id)},
                "token_usage": {"prompt_tokens": 612, "completion_tokens": 41},
                "cost_usd": 0.000116,
            },
        )
    if script.actions:
        agent_log.record_actions(
            db,
            [
                agent_log.action_row(
                    tenant_id=tenant_id,
                    conversation_id=conv.id,
                    agent_id=agent_id,
                    message_id=None,
                    **a,
                )
                for a in script.actions
            ],
        )
    if script.scores:
        from threadline.store.models import Conversation

        with db.write() as s:
            s.execute(
                sa.update(Conversation)
                .where(Conversation.tenant_id == tenant_id, Conversation.id == conv.id)
                .values(**script.scores)
            )
