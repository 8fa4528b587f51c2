"""The Jinja2 environment of the dashboard: autoescaped templates and the filters they use.

Message content is always escaped; the only HTML that reaches a page unescaped is email
HTML after nh3 has sanitised it (``email_html``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import nh3
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CHANNEL_LABELS = {
    "sms": "SMS",
    "whatsapp": "WhatsApp",
    "email": "Email",
    "webchat": "Web chat",
    "voice": "Voice",
    "yelp": "Yelp",
    "api": "API",
}
STATUS_LABELS = {
    "active": "Active",
    "needs_reply": "Needs reply",
    "waiting": "Waiting",
    "escalated": "Escalated",
    "archived": "Archived",
}
#: Delivery ticks, as messaging apps draw them.
TICKS = {
    "pending": ("○", "pending"),
    "queued": ("○", "queued"),
    "sent": ("✓", "sent"),
    "delivered": ("✓✓", "delivered"),
    "read": ("✓✓", "read"),
    "failed": ("!", "failed"),
}

_EMAIL_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
_EMAIL_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "div": {"class"},
    "blockquote": {"class"},
}
_QUOTE_START = re.compile(
    r'<div class="[^"]*(?:gmail_quote|yahoo_quoted|moz-cite-prefix)[^"]*"|<blockquote', re.I
)
_WROTE = re.compile(r"^(On .{4,200} wrote:|-{2,} ?Original Message ?-{2,}|From: .+)$", re.M)


def now() -> datetime:
    return datetime.now(UTC)


def ago(when: datetime | None, reference: datetime | None = None) -> str:
    """A short age: ``now``, ``5m``, ``3h``, ``2d``, then the date."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = ((reference or now()) - when).total_seconds()
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)}d"
    return when.strftime("%b %d")


def wait_level(when: datetime | None) -> str:
    """How urgent a wait is: ``ok`` under 5 minutes, ``warn`` under an hour, else ``late``."""
    if when is None:
        return "ok"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (now() - when).total_seconds()
    return "ok" if seconds < 300 else "warn" if seconds < 3600 else "late"


def clock(when: datetime | None) -> str:
    if when is None:
        return ""
    return when.strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | int | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def email_html(html: str | None) -> Markup:
    """Email HTML made safe (nh3: no script, style, event handlers or foreign schemes), with
    the quoted history folded away under "Show quoted text"."""
    if not html:
        return Markup("")
    clean = nh3.clean(
        html,
        tags=_EMAIL_TAGS,
        attributes=_EMAIL_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
    )
    match = _QUOTE_START.search(clean)
    if match is None or match.start() == 0:
        return Markup(clean)
    head, quoted = clean[: match.start()], clean[match.start() :]
    return Markup(
        f'{head}<details class="quoted"><summary>Show quoted text</summary>{quoted}</details>'
    )


def split_quoted_text(text: str | None) -> tuple[str, str]:
    """Plain email text split into the new part and the quoted history (``>`` lines and the
    "On ... wrote:" line before them)."""
    if not text:
        return "", ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(">") or _WROTE.match(line):
            return "\n".join(lines[:i]).rstrip(), "\n".join(lines[i:])
    return text, ""


def pretty_json(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def compact_json(value: Any, limit: int = 160) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def initials(name: str | None) -> str:
    words = [w for w in re.split(r"[\s@._-]+", name or "") if w]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def nl2br(text: str | None) -> Markup:
    return Markup("<br>").join(escape(text or "").split("\n"))


@cache
def asset_version() -> str:
    """Changes with the dashboard's own static files, for cache busting."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def build() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.trim_blocks = True
    env.lstrip_blocks = True
    env.filters.update(
        ago=ago,
        clock=clock,
        duration=duration,
        wait_level=wait_level,
        email_html=email_html,
        pretty_json=pretty_json,
        compact_json=compact_json,
        initials=initials,
        nl2br=nl2br,
    )
    env.globals.update(
        CHANNEL_LABELS=CHANNEL_LABELS,
        STATUS_LABELS=STATUS_LABELS,
        TICKS=TICKS,
        asset_version=asset_version,
        split_quoted_text=split_quoted_text,
        now_ms=lambda: int(time.time() * 1000),
    )
    return templates


templates = build()
