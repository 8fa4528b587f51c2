"""Credentials at rest: sealed with a key derived from ``THREADLINE_SECRET_KEY``.

An inbox's credentials (auth tokens, API keys, webhook secrets) are written once and read
only by the server itself: they are stored as one Fernet token (AES-128-CBC with an
HMAC-SHA256, from ``cryptography``) whose key is derived from the server's secret with
HKDF-SHA256, so the secret itself never encrypts anything and other uses of it (sessions,
signatures) cannot be confused with this one.

Without ``THREADLINE_SECRET_KEY`` (the development default), the first start generates a
key and keeps it in ``threadline.secret`` next to the SQLite file (in the working folder for
PostgreSQL), readable by its owner only, and uses it from then on; the log says so.
Production refuses to start without a key of its own (``settings.py``). Tests
(``THREADLINE_ENVIRONMENT=test``) use the built-in key and write no file.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import make_url

from threadline.domain.errors import Unavailable
from threadline.logs import get_logger
from threadline.settings import DEV_SECRET, Settings

log = get_logger(__name__)

SECRET_FILE = "threadline.secret"
_INFO = b"threadline/credentials/v1"


class CredentialsUnreadable(Unavailable):
    """Stored credentials that the current secret key cannot open (the key was changed)."""

    code = "credentials_unreadable"
    retry_after = 60


class SecretBox:
    """Seals and opens credential maps with a key derived from one secret."""

    __slots__ = ("_fernet",)

    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def __repr__(self) -> str:
        return "SecretBox(...)"

    def seal(self, values: Mapping[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(dict(values), sort_keys=True).encode()).decode()

    def open(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise CredentialsUnreadable(
                "stored credentials cannot be read with the current THREADLINE_SECRET_KEY "
                "(was it changed?)"
            ) from None
        return data if isinstance(data, dict) else {}


def secret_file(settings: Settings) -> Path:
    """Where a generated key lives: beside the SQLite file, else in the working folder."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent / SECRET_FILE
    return Path.cwd() / SECRET_FILE


def _read_or_create(path: Path) -> tuple[str, bool]:
    """The key kept at ``path``, made (owner-only) if there is none; True if made now."""
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, True


def secret_key(settings: Settings) -> str:
    """The secret credentials are sealed with (see the module docstring)."""
    configured = settings.secret_key.get_secret_value()
    if configured != DEV_SECRET or settings.environment == "test":
        return configured
    path = secret_file(settings)
    key, made = _read_or_create(path)
    if not key:
        raise CredentialsUnreadable(f"{path} is empty: delete it or set THREADLINE_SECRET_KEY")
    if made:
        log.warning("secret_key_generated", path=str(path), hint="set THREADLINE_SECRET_KEY")
    return key


_boxes: dict[tuple[str, str, str], SecretBox] = {}
_lock = threading.Lock()


def box_for(settings: Settings) -> SecretBox:
    """The box for these settings (made once per database and secret; the first call for a
    development server may generate its key file)."""
    cache_key = (
        settings.database_url,
        settings.environment,
        settings.secret_key.get_secret_value(),
    )
    with _lock:
        box = _boxes.get(cache_key)
        if box is None:
            configured = settings.secret_key.get_secret_value()
            if configured == DEV_SECRET and settings.environment == "development":
                log.info("secret_key_file", path=str(secret_file(settings)))
            box = _boxes[cache_key] = SecretBox(secret_key(settings))
    return box


def generate(nbytes: int = 24) -> str:
    """A new random credential (a URL secret, a shared webhook token)."""
    return secrets.token_urlsafe(nbytes)
