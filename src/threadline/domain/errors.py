"""Every error Threadline raises on purpose.

The tree::

    ThreadlineError
    ├── NotFound                 an id that does not exist for the caller's tenant
    ├── Conflict                 the request clashes with the current state
    │   ├── InvalidTransition    a status change the state machine forbids
    │   ├── AlreadyExists        a unique value (slug, email, phone) is taken
    │   └── WindowClosed         a free-form WhatsApp message outside the 24-hour window
    ├── InvalidInput             well-formed JSON that breaks a rule of the model
    │   ├── InvalidCursor        a pagination cursor we did not issue
    │   └── IdempotencyMismatch  an Idempotency-Key reused with a different body
    ├── PayloadTooLarge          content over the configured limit
    ├── Unauthenticated          missing, unknown or revoked API key
    ├── ModelNotConfigured       an AI call with no model set (a Conflict: 409)
    ├── MigrationRequired        the database schema is not at the code's head
    └── Unavailable              the database cannot serve the request now (retry later)
        ├── DatabaseBusy         another writer holds the lock; a lock or statement timed out
        ├── DatabaseUnavailable  the database is unreachable, or its schema is missing
        ├── DatabaseReadOnly     the database only accepts reads (a read-only file, a standby)
        └── ModelFailed          the model endpoint failed, timed out or answered nonsense

Services raise these; only the edges translate them (HTTP status in ``api/errors.py``,
exit codes in the CLI).
"""

from __future__ import annotations

from typing import Any


class ThreadlineError(Exception):
    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(ThreadlineError):
    code = "not_found"


class Conflict(ThreadlineError):
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class AlreadyExists(Conflict):
    code = "already_exists"


class WindowClosed(Conflict):
    """The channel only takes a template now (WhatsApp, 24 hours after the contact wrote)."""

    code = "window_closed"


class ModelNotConfigured(Conflict):
    """An AI call (reply, score, summary) with no model: set ``THREADLINE_LLM_MODEL`` or the
    agent's ``model``."""

    code = "model_not_configured"


class InvalidInput(ThreadlineError):
    code = "invalid_input"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


class IdempotencyMismatch(InvalidInput):
    code = "idempotency_key_reused"


class PayloadTooLarge(ThreadlineError):
    code = "payload_too_large"


class Unauthenticated(ThreadlineError):
    code = "unauthenticated"


class MigrationRequired(ThreadlineError):
    code = "migration_required"


# Channels: what a provider's webhook or API answer can go wrong with.
#
#     ThreadlineError
#     └── ChannelError
#         ├── SignatureInvalid   a webhook whose signature or secret does not check out (403)
#         ├── MalformedPayload   a webhook body that is not what the provider sends (400)
#         └── ProviderError      a provider's API refused or failed a send; ``retryable`` says
#                                whether the same call may succeed later
#
# and ``UnknownProvider(InvalidInput)``: a provider name that no channel module registered.


class ChannelError(ThreadlineError):
    code = "channel_error"


class SignatureInvalid(ChannelError):
    code = "signature_invalid"


class MalformedPayload(ChannelError):
    code = "malformed_payload"


class UnknownProvider(InvalidInput):
    """A provider name no channel module registered (an inbox naming it is invalid input)."""

    code = "unknown_provider"


class ProviderError(ChannelError):
    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        provider_code: str | None = None,
        status_code: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(
            message,
            retryable=retryable,
            provider_code=provider_code,
            status_code=status_code,
            **details,
        )
        self.retryable = retryable
        self.provider_code = provider_code
        self.status_code = status_code


class Unavailable(ThreadlineError):
    """Not the caller's fault, and not a bug: the same request may succeed later.

    ``retry_after`` is the number of seconds a client should wait before retrying.
    """

    code = "unavailable"
    retry_after = 5


class DatabaseBusy(Unavailable):
    code = "database_busy"
    retry_after = 1


class DatabaseUnavailable(Unavailable):
    code = "database_unavailable"


class DatabaseReadOnly(Unavailable):
    code = "database_read_only"
    retry_after = 30


class ModelFailed(Unavailable):
    """The model endpoint failed, timed out, or answered what cannot be used."""

    code = "model_failed"
