"""Attachment files: the bytes an inbound email carried, kept on local disk.

Email webhooks (Postmark's base64 ``Attachments``, SendGrid's multipart files) and the
SMTP receiver hand over attachments with their bytes; other channels only name a URL or a
provider's media id, which is kept as it is. ``Files.keep`` writes each one's bytes to
``THREADLINE_ATTACHMENTS_DIR`` (by default ``attachments/`` beside the SQLite database, in
the working folder for PostgreSQL) and answers the metadata the message's ``attachments``
JSON carries::

    {"filename": "invoice.pdf", "content_type": "application/pdf", "size": 48213,
     "sha256": "9f86d0...", "stored": true, "path": "9f/9f86d0..."}

- one file per distinct content, named by its SHA-256 (``<first two hex>/<hash>``), so the
  same attachment sent twice (or replayed) is one file; ``path`` is relative to the folder.
  The sender's filename is metadata only: it never becomes part of a path;
- a file over ``THREADLINE_MAX_ATTACHMENT_BYTES`` is not written: its metadata is kept with
  ``"stored": false`` and the ``reason``, and the message is stored all the same (a request
  body over ``THREADLINE_MAX_BODY_BYTES`` is refused with 413 before any of this);
- a file is removed (``Files.forget``) when erasing a contact or deleting idle
  conversations by retention leaves no message referring to it
  (``store.privacy.erase_contact``, ``store.privacy.apply_retention``);
- files are written before the message's transaction (a write transaction may run twice;
  a file must not be written inside it) and atomically (a temporary file renamed into
  place), so a reader never sees half a file. A file whose message was then refused is
  left behind, harmless: it is what a replay would write again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from threadline.channels.base import Attachment
from threadline.settings import Settings

DEFAULT_FOLDER = "attachments"


def folder_for(settings: Settings) -> Path:
    """``attachments_dir``, else ``attachments/`` beside the SQLite file or in the working
    folder."""
    if settings.attachments_dir:
        return Path(settings.attachments_dir).expanduser().resolve()
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent / DEFAULT_FOLDER
    return Path.cwd() / DEFAULT_FOLDER


@dataclass(frozen=True)
class Files:
    """Where attachment bytes go, and the largest kept."""

    folder: Path
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Files:
        return cls(folder_for(settings), settings.max_attachment_bytes)

    def path_of(self, sha256: str) -> Path:
        """The file of the content with this hash (``path`` in the metadata, made whole)."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.folder / sha256[:2] / sha256

    def keep(self, attachment: Attachment) -> dict[str, Any]:
        """Write ``attachment``'s bytes (if it has any) and answer its metadata."""
        if attachment.content is None:
            return attachment.to_dict()
        content = attachment.content
        digest = hashlib.sha256(content).hexdigest()
        meta: dict[str, Any] = {
            "filename": attachment.filename,
            "content_type": attachment.content_type,
            "size": len(content),
            "sha256": digest,
        }
        if attachment.provider_id is not None:
            meta["provider_id"] = attachment.provider_id  # an email's Content-ID
        if len(content) > self.max_bytes:
            return meta | {
                "stored": False,
                "reason": f"over the {self.max_bytes}-byte attachment limit",
            }
        self._write(self.path_of(digest), content)
        return meta | {"stored": True, "path": f"{digest[:2]}/{digest}"}

    def keep_all(self, attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
        return [self.keep(a) for a in attachments]

    def forget(self, sha256: str) -> bool:
        """Remove the file of this content; answers whether there was one. The caller
        checks that no message still refers to it. The folder ``<first two hex>/`` stays:
        a concurrent ``keep`` may be about to write into it."""
        path = self.path_of(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    @staticmethod
    def _write(path: Path, content: bytes) -> None:
        if path.exists():  # named by its content: already there is the same bytes
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
