"""Schema 0003 on SQLite and PostgreSQL: inboxes get their provider from their channel and
their new mode, unknown-message status callbacks fit, and the downgrade gives it all back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from threadline.store import Database, migrate

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()


@pytest.fixture
def empty_db(empty_db_url: str) -> Iterator[Database]:
    database = Database.from_url(empty_db_url)
    yield database
    database.dispose()


def _exec(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def _rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def _ts(db: Database) -> object:
    return AT if db.dialect == "sqlite" else datetime.fromisoformat(AT)


def _fill(db: Database) -> dict[str, str]:
    """A tenant, one inbox per channel (two modes), a message with a status event."""
    ids = {name: str(uuid.uuid4()) for name in ("tenant", "conv", "msg", "event")}
    ts = _ts(db)
    _exec(
        db,
        "INSERT INTO tenants (id, slug, name, created_at, updated_at) "
        "VALUES (:id, 'acme', 'Acme', :ts, :ts)",
        id=ids["tenant"],
        ts=ts,
    )
    for i, channel in enumerate(["sms", "whatsapp", "email", "yelp", "voice", "webchat", "api"]):
        ids[channel] = str(uuid.uuid4())
        _exec(
            db,
            "INSERT INTO inboxes (id, tenant_id, channel, name, address, mode, settings, "
            "is_active, created_at, updated_at) VALUES (:id, :t, :ch, :ch, :addr, :mode, '{}', "
            ":active, :ts, :ts)",
            id=ids[channel],
            t=ids["tenant"],
            ch=channel,
            addr=f"addr-{i}",
            mode="auto_send" if i % 2 == 0 else "approval",
            active=True,
            ts=ts,
        )
    _exec(
        db,
        "INSERT INTO conversations (id, tenant_id, inbox_id, channel, status, message_count, "
        "last_seq, last_activity_at, metadata, created_at, updated_at) "
        "VALUES (:id, :t, :i, 'sms', 'active', 1, 1, :ts, '{}', :ts, :ts)",
        id=ids["conv"],
        t=ids["tenant"],
        i=ids["sms"],
        ts=ts,
    )
    _exec(
        db,
        "INSERT INTO messages (id, tenant_id, conversation_id, inbox_id, seq, role, sender_type, "
        "direction, message_type, content, occurred_at, created_at) VALUES "
        "(:id, :t, :c, :i, 1, 'assistant', 'agent', 'outbound', 'text', 'hi', :ts, :ts)",
        id=ids["msg"],
        t=ids["tenant"],
        c=ids["conv"],
        i=ids["sms"],
        ts=ts,
    )
    _exec(
        db,
        "INSERT INTO message_status_events (id, tenant_id, message_id, status, occurred_at, "
        "created_at) VALUES (:id, :t, :m, 'delivered', :ts, :ts)",
        id=ids["event"],
        t=ids["tenant"],
        m=ids["msg"],
        ts=ts,
    )
    return ids


def test_0003_carries_inboxes_over_and_back(empty_db: Database) -> None:
    db = empty_db
    migrate.upgrade(db, "0005")
    ids = _fill(db)
    before = _rows(db, "SELECT id, channel, mode FROM inboxes ORDER BY channel")

    migrate.upgrade(db, "0003")

    got = {
        channel: (provider, mode)
        for channel, provider, mode in _rows(db, "SELECT channel, provider, mode FROM inboxes")
    }
    assert got == {
        "sms": ("twilio", "auto"),
        "whatsapp": ("meta", "approval"),
        "email": ("smtp", "auto"),
        "yelp": ("zapier", "approval"),
        "voice": ("vapi", "auto"),
        "webchat": ("widget", "approval"),
        "api": ("api", "auto"),
    }
    assert _rows(db, "SELECT id, message_id, status FROM message_status_events") == [
        (_uuid(db, ids["event"]), _uuid(db, ids["msg"]), "delivered")
    ]
    # the new mode is checked, the old one refused; a callback for no message fits
    _exec(db, "UPDATE inboxes SET mode = 'off' WHERE channel = 'api'")
    with pytest.raises((IntegrityError, sa.exc.DataError)):  # PostgreSQL: too long for it
        _exec(db, "UPDATE inboxes SET mode = 'auto_send' WHERE channel = 'api'")
    with pytest.raises(IntegrityError):
        _exec(db, "UPDATE inboxes SET mode = 'manual' WHERE channel = 'api'")
    _exec(
        db,
        "INSERT INTO message_status_events (id, tenant_id, inbox_id, external_message_id, "
        "provider_status, occurred_at, created_at) VALUES (:id, :t, :i, 'SMx', 'delivered', "
        ":ts, :ts)",
        id=str(uuid.uuid4()),
        t=ids["tenant"],
        i=ids["sms"],
        ts=_ts(db),
    )
    with pytest.raises(IntegrityError):  # the provider is required
        _exec(db, "UPDATE inboxes SET provider = NULL WHERE channel = 'api'")
    if db.dialect == "sqlite":
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1

    migrate.downgrade(db, "0005")

    after = _rows(db, "SELECT id, channel, mode FROM inboxes ORDER BY channel")
    # 'off' has no old counterpart: it goes back as approval, which sends nothing by itself
    expected = [(i, ch, "approval" if ch == "api" else mode) for i, ch, mode in before]
    assert after == expected
    assert _rows(db, "SELECT id FROM message_status_events") == [(_uuid(db, ids["event"]),)]

    migrate.upgrade(db)
    assert migrate.check(db).differences == []


def _uuid(db: Database, value: str) -> object:
    return value if db.dialect == "sqlite" else uuid.UUID(value)  # as the raw SQL stored it
