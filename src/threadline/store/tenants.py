"""Tenants, their API keys and their operators (users).

API keys are random tokens (``tl_`` + 43 URL-safe characters); only their SHA-256 is stored,
so a key is shown once, at creation. Users' passwords are hashed with pwdlib (Argon2).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.exc import IntegrityError

from threadline.domain.enums import UserRole
from threadline.domain.errors import AlreadyExists, InvalidInput, NotFound, Unauthenticated
from threadline.store.database import Database
from threadline.store.models import ApiKey, Tenant, User
from threadline.store.types import utcnow

KEY_PREFIX = "tl_"
_KEY_SHAPE = re.compile(r"tl_[A-Za-z0-9_-]{43}")
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_passwords = PasswordHash.recommended()


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant every query is filtered by, and the key used."""

    tenant_id: uuid.UUID
    api_key_id: uuid.UUID


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_tenant(db: Database, slug: str, name: str | None = None) -> Tenant:
    """Create a tenant; ``slug`` is 1-64 lower-case letters, digits and inner hyphens."""
    if not SLUG.fullmatch(slug):
        raise InvalidInput(
            f"invalid slug {slug!r}: use 1-64 lower-case letters, digits and hyphens "
            "(not at either end), e.g. acme or acme-eu",
            slug=slug,
        )
    tenant = Tenant(slug=slug, name=name or slug)
    try:
        with db.write() as s:
            s.add(tenant)
    except IntegrityError as exc:
        raise AlreadyExists(f"a tenant with slug {slug!r} already exists", slug=slug) from exc
    return tenant


def get_tenant(db: Database, slug: str) -> Tenant:
    with db.read() as s:
        tenant = s.scalar(sa.select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(f"no tenant with slug {slug!r}", slug=slug)
    return tenant


def list_tenants(db: Database) -> list[Tenant]:
    with db.read() as s:
        return list(s.scalars(sa.select(Tenant).order_by(Tenant.created_at)))


def create_api_key(db: Database, tenant_id: uuid.UUID, name: str) -> tuple[ApiKey, str]:
    """Create a key and return it with its token; the token is never retrievable again."""
    key, token = _new_key(tenant_id, name)
    with db.write() as s:
        s.add(key)
    return key, token


def _new_key(tenant_id: uuid.UUID, name: str) -> tuple[ApiKey, str]:
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(tenant_id=tenant_id, name=name, prefix=token[:10], key_hash=hash_key(token))
    return key, token


def list_api_keys(db: Database, tenant_id: uuid.UUID) -> list[ApiKey]:
    with db.read() as s:
        q = sa.select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
        return list(s.scalars(q))


def revoke_api_key(db: Database, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    with db.write() as s:
        key = s.scalar(sa.select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id))
        if key is None:
            raise NotFound("no such API key", api_key_id=key_id)
        key.revoked_at = key.revoked_at or utcnow()
    return key


_AUTH = sa.select(ApiKey.id, ApiKey.tenant_id).where(
    ApiKey.key_hash == sa.bindparam("h"), ApiKey.revoked_at.is_(None)
)


def is_well_formed(token: str) -> bool:
    """Whether ``token`` has the shape of a key this server issues (not whether it is one)."""
    return _KEY_SHAPE.fullmatch(token) is not None


def authenticate(db: Database, token: str) -> Caller:
    """The caller behind a bearer token; ``Unauthenticated`` if it is unknown or revoked."""
    if not is_well_formed(token):
        raise Unauthenticated("the API key is not valid")
    with db.connect() as conn:
        row = conn.execute(_AUTH, {"h": hash_key(token)}).first()
    if row is None:
        raise Unauthenticated("the API key is not valid or has been revoked")
    return Caller(tenant_id=row.tenant_id, api_key_id=row.id)


def create_user(
    db: Database,
    tenant_id: uuid.UUID,
    email: str,
    password: str,
    role: UserRole = UserRole.AGENT,
    name: str | None = None,
) -> User:
    if not password:
        raise InvalidInput("the password must not be empty")
    user = User(
        tenant_id=tenant_id,
        email=email.strip().lower(),
        name=name,
        password_hash=_passwords.hash(password),
        role=role,
    )
    try:
        with db.write() as s:
            s.add(user)
    except IntegrityError as exc:
        raise AlreadyExists(f"a user with email {email!r} already exists", email=email) from exc
    return user


def verify_user(db: Database, tenant_id: uuid.UUID, email: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    with db.read() as s:
        user = s.scalar(
            sa.select(User).where(
                User.tenant_id == tenant_id, User.email == email.strip().lower(), User.is_active
            )
        )
    if user is None or not _passwords.verify(password, user.password_hash):
        return None
    return user


def bootstrap(db: Database) -> str | None:
    """On an empty database, create the ``default`` tenant and an admin key.

    Returns the new key's token (to be shown once), or None when tenants already exist.
    The tenant and its key are created in one transaction: a start interrupted half-way
    leaves no keyless tenant behind, so the next start still prints a key.
    """
    with db.read() as s:
        if s.scalar(sa.select(sa.func.count()).select_from(Tenant)):
            return None
    try:
        with db.write() as s:
            if s.scalar(sa.select(sa.func.count()).select_from(Tenant)):
                return None  # another process got here first (SQLite serialises writers)
            tenant = Tenant(slug="default", name="Default")
            s.add(tenant)
            s.flush()
            key, token = _new_key(tenant.id, "admin (created on first start)")
            s.add(key)
    except IntegrityError:  # another process won the race (PostgreSQL)
        return None
    return token
