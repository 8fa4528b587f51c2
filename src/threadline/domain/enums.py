"""The closed vocabularies of the data model.

Each enum is stored as its string value and guarded by a CHECK constraint in the schema.
"""

from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class SenderType(StrEnum):
    CONTACT = "contact"
    AGENT = "agent"
    HUMAN = "human"
    SYSTEM = "system"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageType(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    FILE = "file"
    TEMPLATE = "template"
    TRANSCRIPT = "transcript"
    EVENT = "event"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class ConversationStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REPLY = "needs_reply"
    WAITING = "waiting"
    ESCALATED = "escalated"
    ARCHIVED = "archived"


class Channel(StrEnum):
    API = "api"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    WEBCHAT = "webchat"
    VOICE = "voice"
    YELP = "yelp"


class InboxMode(StrEnum):
    """What the agent does with a reply it drafts: send it, hold it for approval, or nothing."""

    AUTO = "auto"
    APPROVAL = "approval"
    OFF = "off"


class AgentKind(StrEnum):
    AI = "ai"
    HUMAN = "human"


class UserRole(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    VIEWER = "viewer"


class SuggestionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"


class EventType(StrEnum):
    CREATED = "created"
    STATUS_CHANGED = "status_changed"
    ASSIGNED = "assigned"
    INTENT_DETECTED = "intent_detected"
    FUNCTION_CALLED = "function_called"
    ESCALATION_REQUESTED = "escalation_requested"
    ERROR = "error"
