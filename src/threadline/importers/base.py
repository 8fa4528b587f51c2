"""What every importer shares: legacy records, validation first, then batch appends.

An importer reads its source and yields one ``Legacy`` conversation at a time (or a ``Bad``
record, naming where it is: ``line 12``, ``row 7``, ``thread abc``). ``run`` then:

1. reads and checks everything first (roles, tool calls, phone numbers, sizes): at the
   first bad record it stops with its place and nothing is written; with ``skip_bad`` each
   bad record is reported and left out;
2. keeps the records ``ids`` names (legacy conversation ids), up to ``limit``;
3. unless ``dry_run``, stores each conversation: found again by its
   ``external_conversation_id`` (``FORMAT:LEGACY_ID``) or created, with the contact found by
   phone or email (or by the legacy key in its attributes) or created, and its messages
   appended, each with ``external_message_id`` ``FORMAT:LEGACY_MESSAGE_ID``: running the
   same import again stores nothing twice.

The writes go a chunk at a time: conversations whose messages add up to
``max_batch_messages`` (a longer conversation is split over several chunks) are looked up
in one query, the missing ones created with their contacts in one transaction, and their
messages appended in another (``messages.append_many``); so a source of short
conversations costs two commits per chunk, not three per conversation. Interrupted, an
import leaves whole chunks behind: running it again finishes the job.

Legacy ids are also kept in metadata (``{"legacy": {"format", "id"}}``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from threadline.domain.enums import Channel, Direction, MessageType, Role, SenderType
from threadline.domain.errors import InvalidInput, ThreadlineError
from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import contacts, conversations, messages
from threadline.store.database import Database
from threadline.store.models import Contact, Conversation


class ImportFailed(InvalidInput):
    """A bad record stopped the import before anything was written."""

    code = "import_failed"


@dataclass
class Legacy:
    """One conversation of the source, in Threadline's terms."""

    legacy_id: str
    where: str
    messages: list[dict[str, Any]]
    channel: Channel = Channel.API
    title: str | None = None
    #: name, phone, email, attributes (any may be missing).
    contact: dict[str, Any] = field(default_factory=dict)
    #: Finds the same legacy person again when they have no phone or email.
    contact_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Bad:
    where: str
    reason: str


class Importer(Protocol):
    """A legacy source. ``read`` yields records in the source's order and never writes."""

    name: str

    def read(self, source: str) -> Iterator[Legacy | Bad]: ...


@dataclass
class Summary:
    conversations_created: int = 0
    conversations_found: int = 0
    messages_imported: int = 0
    messages_already_there: int = 0
    skipped: list[Bad] = field(default_factory=list)
    dry_run: bool = False
    conversations_read: int = 0
    messages_read: int = 0


class BadValue(Exception):
    """Raised by the helpers below while an importer builds a record; becomes a ``Bad``."""


_ROLES = {
    "user": Role.USER,
    "human": Role.USER,
    "assistant": Role.ASSISTANT,
    "ai": Role.ASSISTANT,
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "tool": Role.TOOL,
    "function": Role.TOOL,
}


def role(value: Any) -> Role:
    if not isinstance(value, str) or value.lower() not in _ROLES:
        raise BadValue(f"unknown role {value!r}")
    return _ROLES[value.lower()]


def text(value: Any, what: str = "content") -> tuple[str | None, list[dict[str, Any]]]:
    """Content as text plus attachments: a string, null, or a list of OpenAI/LangChain
    content parts (text parts joined by newlines; images and files as attachments)."""
    if value is None or isinstance(value, str):
        return value, []
    if not isinstance(value, list):
        raise BadValue(f"{what} must be text or a list of parts")
    texts: list[str] = []
    attachments: list[dict[str, Any]] = []
    for part in value:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif isinstance(part, dict) and part.get("type") in ("image_url", "image", "file"):
            url = part.get("image_url") or part.get("url") or part.get("file")
            if isinstance(url, dict):
                url = url.get("url") or url.get("file_id")
            attachments.append({"type": "image" if "image" in part["type"] else "file", "url": url})
        else:
            raise BadValue(f"{what} has a part of unknown type")
    return "\n".join(texts), attachments


def tool_calls_openai(value: Any) -> list[dict[str, Any]] | None:
    """OpenAI tool calls, checked: each with an id and a function name; arguments as text."""
    if value in (None, []):
        return None
    if not isinstance(value, list):
        raise BadValue("tool_calls must be a list")
    out = []
    for call in value:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadValue("a tool call needs function.name")
        if not isinstance(call.get("id"), str):
            raise BadValue("a tool call needs an id")
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            import json

            arguments = json.dumps(arguments)
        out.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    return out


def timestamp(value: Any) -> datetime | None:
    """A legacy timestamp (datetime, ISO 8601 text or Unix seconds); naive means UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadValue(f"not a timestamp: {value!r}") from None
    if not isinstance(value, datetime):
        raise BadValue(f"not a timestamp: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def message(
    fmt: str,
    legacy_id: str,
    role_: Role,
    content: str | None,
    **fields: Any,
) -> dict[str, Any]:
    """An item for ``Ingest.append`` carrying its legacy id."""
    metadata = dict(fields.pop("metadata", None) or {})
    metadata["legacy"] = {"format": fmt, "id": legacy_id}
    item: dict[str, Any] = {
        "role": role_,
        "content": content,
        "external_message_id": f"{fmt}:{legacy_id}"[:255],
        "metadata": metadata,
    }
    item.update({k: v for k, v in fields.items() if v is not None and v != []})
    if role_ == Role.TOOL and not item.get("tool_call_id"):
        raise BadValue("a tool message needs tool_call_id")
    for name, enum in (
        ("direction", Direction),
        ("sender_type", SenderType),
        ("message_type", MessageType),
    ):
        if name in item:
            item[name] = enum(item[name])
    return item


def _check(ingest: Ingest, record: Legacy) -> None:
    """What would fail on writing, found before anything is written."""
    if not record.messages:
        raise BadValue("no messages")
    if len(record.messages) > 100_000:
        raise BadValue("more than 100000 messages in one conversation")
    phone, email = record.contact.get("phone"), record.contact.get("email")
    try:
        if phone:
            record.contact["phone"] = contacts.normalize_phone(phone)
        if email:
            record.contact["email"] = contacts.normalize_email(email)
        ingest.check_sizes(record.messages)
    except ThreadlineError as exc:
        raise BadValue(exc.message) from None
    seen: set[str] = set()
    for item in record.messages:
        ext = item["external_message_id"]
        if ext in seen:
            raise BadValue(f"the legacy message id {ext!r} appears twice")
        seen.add(ext)


def collect(
    importer: Importer,
    source: str,
    ingest: Ingest,
    *,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    skip_bad: bool = False,
    summary: Summary,
) -> list[Legacy]:
    """Read and check the records (step 1 and 2 of ``run``)."""
    wanted = set(ids) if ids else None
    records: list[Legacy] = []
    for item in importer.read(source):
        if isinstance(item, Legacy):
            try:
                _check(ingest, item)
            except BadValue as exc:
                item = Bad(item.where, str(exc))
        if isinstance(item, Bad):
            if not skip_bad:
                raise ImportFailed(
                    f"{item.where}: {item.reason}; nothing was imported "
                    "(--skip-bad leaves bad records out)",
                    where=item.where,
                )
            summary.skipped.append(item)
            continue
        if wanted is not None and item.legacy_id not in wanted:
            continue
        records.append(item)
        if limit is not None and len(records) >= limit:
            break
    return records


def run(
    db: Database,
    settings: Settings,
    importer: Importer,
    source: str,
    tenant_id: uuid.UUID,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    skip_bad: bool = False,
    on_read: Callable[[list[Legacy]], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Summary:
    """Import ``source`` into the tenant (see the module docstring)."""
    ingest = Ingest(db, settings)
    summary = Summary(dry_run=dry_run)
    records = collect(
        importer, source, ingest, ids=ids, limit=limit, skip_bad=skip_bad, summary=summary
    )
    summary.conversations_read = len(records)
    summary.messages_read = sum(len(r.messages) for r in records)
    if on_read is not None:
        on_read(records)
    if dry_run:
        return summary
    known = _legacy_contacts(db, tenant_id, importer.name)
    made: dict[str, uuid.UUID] = {}
    for chunk in _chunks(records, settings.max_batch_messages):
        pending = [r for r, _ in chunk if r.legacy_id not in made]
        if pending:
            made.update(_conversations(db, importer.name, tenant_id, pending, known, summary))
        appended = messages.append_many(
            db, tenant_id, [(made[r.legacy_id], items) for r, items in chunk]
        )
        count = sum(len(items) for _, items in chunk)
        stored = sum(a.stored for a in appended)
        summary.messages_imported += stored
        summary.messages_already_there += count - stored
        if on_progress is not None:
            on_progress(count)
    return summary


Piece = tuple[Legacy, list[dict[str, Any]]]


def _chunks(records: Sequence[Legacy], size: int) -> Iterator[list[Piece]]:
    """The records' messages in chunks of at most ``size``, each chunk a list of (record,
    its messages in the chunk); a record longer than ``size`` spans several chunks."""
    chunk: list[Piece] = []
    room = size
    for record in records:
        for start in range(0, len(record.messages), size):
            items = record.messages[start : start + size]
            if len(items) > room:
                yield chunk
                chunk, room = [], size
            chunk.append((record, items))
            room -= len(items)
    if chunk:
        yield chunk


def external_id(fmt: str, legacy_id: str) -> str:
    return f"{fmt}:{legacy_id}"[:255]


def _legacy_contacts(db: Database, tenant_id: uuid.UUID, fmt: str) -> dict[str, uuid.UUID]:
    """The tenant's contacts an earlier import made without a phone or email, by key."""
    key = Contact.attributes["legacy_contact"].as_string()
    query = sa.select(Contact.id, key).where(Contact.tenant_id == tenant_id, key.is_not(None))
    with db.read() as s:
        return {k: cid for cid, k in s.execute(query)}


def _conversations(
    db: Database,
    fmt: str,
    tenant_id: uuid.UUID,
    records: Sequence[Legacy],
    known: dict[str, uuid.UUID],
    summary: Summary,
) -> dict[str, uuid.UUID]:
    """The records' conversations by legacy id: those an earlier import made, found in one
    query, and the others created with their contacts in one transaction."""
    wanted = {external_id(fmt, r.legacy_id): r for r in records}
    with db.read() as s:
        found = s.execute(
            sa.select(Conversation.external_conversation_id, Conversation.id).where(
                Conversation.tenant_id == tenant_id,
                Conversation.inbox_id.is_(None),
                Conversation.external_conversation_id.in_(list(wanted)),
            )
        ).all()
    ids = {wanted[str(ext)].legacy_id: cid for ext, cid in found}
    summary.conversations_found += len(ids)
    missing = [(ext, r) for ext, r in wanted.items() if r.legacy_id not in ids]
    if not missing:
        return ids
    with db.write() as s:
        for ext, record in missing:
            metadata = dict(record.metadata)
            metadata["legacy"] = {"format": fmt, "id": record.legacy_id}
            conv = conversations.create_in(
                s,
                tenant_id,
                {
                    "contact_id": _contact(s, tenant_id, record, known),
                    "channel": record.channel,
                    "title": record.title,
                    "external_conversation_id": ext,
                    "metadata": metadata,
                },
            )
            ids[record.legacy_id] = conv.id
    summary.conversations_created += len(missing)
    return ids


def _contact(
    s: Session, tenant_id: uuid.UUID, record: Legacy, known: dict[str, uuid.UUID]
) -> uuid.UUID | None:
    fields = record.contact
    phone, email = fields.get("phone"), fields.get("email")
    if not (phone or email or record.contact_key):
        return None
    if not (phone or email) and record.contact_key in known:
        return known[record.contact_key]  # type: ignore[index]
    found = contacts.find_in(s, tenant_id, phone, email) if (phone or email) else None
    if found is not None:
        return found.id
    attributes = dict(fields.get("attributes") or {})
    if record.contact_key:
        attributes["legacy_contact"] = record.contact_key
    contact = contacts.create_in(
        s,
        tenant_id,
        {"name": fields.get("name"), "phone": phone, "email": email, "attributes": attributes},
    )
    if record.contact_key:
        known[record.contact_key] = contact.id
    return contact.id


def rows_of(engine: sa.Engine, table: str, order_by: str) -> Iterable[dict[str, Any]]:
    """Every row of a legacy table as a dict, in ``order_by`` order."""
    meta = sa.MetaData()
    try:
        reflected = sa.Table(table, meta, autoload_with=engine)
    except sa.exc.NoSuchTableError:
        raise InvalidInput(f"the source has no table {table!r}") from None
    query = sa.select(reflected).order_by(reflected.c[order_by])
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=1000).execute(query).mappings():
            yield dict(row)


def engine_for(source: str) -> sa.Engine:
    """A SQLAlchemy engine for a legacy database: a URL, or a path to a SQLite file."""
    from pathlib import Path

    if "://" not in source:
        path = Path(source)
        if not path.exists():
            raise InvalidInput(f"no such file: {source}")
        return sa.create_engine(f"sqlite:///{path}")
    try:
        url = sa.make_url(source)
    except sa.exc.ArgumentError:
        raise InvalidInput(f"not a database URL: {source}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise InvalidInput(f"cannot open {source}: {exc}") from None
