"""All configuration, from the environment (prefix ``THREADLINE_``) or a ``.env`` file.

Built once at start-up (``Settings()``) and passed down; nothing else reads the environment.
"""

from __future__ import annotations

from typing import Literal

from limits import parse_many
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-key-change-me"


class RetentionRule(BaseModel):
    """One tenant's retention: conversations idle for ``days`` are archived or deleted."""

    days: float | None = Field(None, gt=0)
    action: Literal["archive", "delete"] = "archive"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THREADLINE_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///threadline.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:pass@host/db.",
    )
    environment: Literal["development", "production", "test"] = Field(
        "development", description="production refuses the built-in development secret key."
    )
    secret_key: SecretStr = Field(
        SecretStr(DEV_SECRET),
        description="The server's secret; must be set when THREADLINE_ENVIRONMENT=production.",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="The URL providers and people use to reach this server.",
    )
    host: str = Field("127.0.0.1", description="Address `threadline serve` listens on.")
    port: int = Field(8000, description="Port `threadline serve` listens on.")
    auto_migrate: bool = Field(
        True, description="`threadline serve` upgrades the database schema to head on start."
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="console: readable lines; json: one JSON object per line."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    opentelemetry: bool = Field(
        False,
        description="FastAPI's OpenTelemetry spans and metrics, for a configured OTel provider.",
    )
    max_content_chars: int = Field(
        32_000, ge=1, description="Longest message content accepted; longer answers 413."
    )
    max_body_bytes: int = Field(
        5_000_000, ge=1024, description="Largest request body accepted; larger answers 413."
    )
    body_timeout_seconds: float = Field(
        30,
        gt=0,
        description="Longest wait for a request body to arrive; slower answers 408 and closes.",
    )
    max_batch_messages: int = Field(
        1_000, ge=1, description="Most messages accepted in one batch append."
    )
    max_message_bytes: int = Field(
        256_000,
        ge=1024,
        description="Largest message accepted, all fields together as JSON; larger answers 413.",
    )
    attachments_dir: str | None = Field(
        None,
        description="Folder for inbound email attachment files (one per content hash); "
        "default attachments/ beside the SQLite database, else in the working folder.",
    )
    max_attachment_bytes: int = Field(
        5_000_000,
        ge=0,
        description="Largest attachment file kept; a larger one keeps only its metadata "
        '("stored": false) and the message is still stored.',
    )
    idempotency_ttl_hours: float = Field(
        24, gt=0, description="How long an Idempotency-Key is remembered."
    )
    event_retention_days: float = Field(
        30, gt=0, description="How long the tenant event log (GET /v1/events) keeps events."
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        description="Archive or delete (retention_action) conversations with no activity for "
        "this many days; unset keeps them forever.",
    )
    retention_action: Literal["archive", "delete"] = Field(
        "archive", description="What retention does to an idle conversation."
    )
    retention_tenants: dict[str, RetentionRule] = Field(
        default_factory=dict,
        description='Per-tenant retention by slug, as JSON: {"acme": {"days": 30, "action": '
        '"delete"}}; {"days": null} keeps a tenant\'s conversations forever.',
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="FULL makes every acknowledged write survive power loss; NORMAL only a crash.",
    )
    sqlite_busy_timeout_ms: int = Field(
        5_000,
        ge=0,
        description="How long a SQLite write waits for another process's lock; then 503.",
    )
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connections per process.")
    embeddings: Literal["local", "openai", "none"] = Field(
        "local",
        description="Vectors for semantic search: local (a model shipped with Threadline, "
        "offline), openai (any OpenAI-compatible embeddings endpoint) or none (keyword only).",
    )
    embeddings_base_url: str | None = Field(
        None, description="Base URL of the OpenAI-compatible embeddings API (openai)."
    )
    embeddings_api_key: SecretStr | None = Field(
        None, description="API key for THREADLINE_EMBEDDINGS_BASE_URL."
    )
    embeddings_model: str | None = Field(
        None, description="Embedding model name for openai (e.g. text-embedding-3-small)."
    )
    default_phone_region: str = Field(
        "US",
        min_length=2,
        max_length=2,
        description="Region of phone numbers that arrive without a country code (ISO 3166).",
    )
    conversation_idle_hours: float = Field(
        24,
        gt=0,
        description="An SMS or WhatsApp message after this long a silence starts a new "
        "conversation.",
    )
    smtp_host: str = Field("127.0.0.1", description="Address `threadline smtp` listens on.")
    smtp_port: int = Field(2525, ge=1, le=65535, description="Port `threadline smtp` listens on.")
    llm_base_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API (e.g. https://api.openai.com/v1); "
        "unset with an API key set means OpenAI's own.",
    )
    llm_api_key: SecretStr | None = Field(None, description="API key for THREADLINE_LLM_BASE_URL.")
    llm_model: str | None = Field(
        None,
        description="The model agents use unless they name their own; unset, AI calls answer "
        "409 model_not_configured.",
    )
    llm_timeout_seconds: float = Field(
        60, gt=0, description="Longest wait for one model call before it counts as failed."
    )
    context_max_tokens: int = Field(
        8_000, ge=1, description="Token budget of a context window unless the caller sets one."
    )
    agent_poll_seconds: float = Field(
        1.0, gt=0, description="How often the agent loop looks for work (inbound messages, jobs)."
    )
    agent_max_tool_rounds: int = Field(
        5, ge=1, description="Most model calls with tool results before an agent must answer."
    )
    session_gap_hours: float = Field(
        24,
        gt=0,
        description="Idle time that ends one session of a conversation and starts another.",
    )
    summary_after_messages: int = Field(
        200,
        ge=2,
        description="Messages past the last summary after which the agent loop writes a new one.",
    )
    worker_in_serve: bool = Field(
        True,
        description="`threadline serve` runs the background loops (delivery ...) in-process; "
        "false leaves them to `threadline worker`.",
    )
    delivery_concurrency: int = Field(
        8, ge=1, le=256, description="Messages one worker sends at the same time."
    )
    delivery_timeout_seconds: float = Field(
        15, gt=0, description="Longest wait for a provider's API to answer one send."
    )
    delivery_lease_seconds: float = Field(
        120,
        gt=0,
        description="How long a claimed delivery stays with its worker; after that (a crashed "
        "worker) another checks with the provider and finishes it.",
    )
    delivery_max_attempts: int = Field(
        8, ge=1, description="Tries per message before it is marked failed."
    )
    delivery_backoff_seconds: float = Field(
        5, gt=0, description="Wait before the first retry; doubled each time, with jitter."
    )
    delivery_poll_seconds: float = Field(
        1, gt=0, description="How often an idle worker looks for messages to send."
    )
    webhook_timeout_seconds: float = Field(
        10, gt=0, description="Longest wait for a webhook endpoint to answer one event."
    )
    webhook_max_attempts: int = Field(
        6, ge=1, description="Tries per event and webhook endpoint before it is marked failed."
    )
    webhook_backoff_seconds: float = Field(
        10,
        gt=0,
        description="Wait before a webhook's first retry; doubled each time, with jitter.",
    )
    rate_limit: str = Field(
        "6000/minute",
        description="Requests per API key on /v1 (e.g. 600/minute, 10/second; several "
        "separated by ';'); 0 or empty turns it off. Counted per process.",
    )
    rate_limit_webhooks: str = Field(
        "6000/minute",
        description="Provider webhook requests per inbox on /webhooks; 0 or empty turns it "
        "off. Counted per process.",
    )

    @field_validator("rate_limit", "rate_limit_webhooks")
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "0"):
            return ""
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit such as '600/minute': {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production(self) -> Settings:
        if self.environment == "production" and self.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError(
                "THREADLINE_SECRET_KEY must be set in production "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return self

    def retention_for(self, slug: str) -> RetentionRule:
        """The retention of tenant ``slug``: its own rule, else the defaults."""
        return self.retention_tenants.get(slug) or RetentionRule(
            days=self.retention_days, action=self.retention_action
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
