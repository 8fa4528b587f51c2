"""System prompt templates: placeholders filled from a conversation, missing ones reported.

Placeholders
------------
Three spellings, since prompts written for the systems Threadline replaces use all three:

- ``{{ contact_first_name }}``, ``{{ contact.company }}`` - Jinja2 expressions, run in
  Jinja2's sandbox (no attribute tricks, no imports); filters work, and
  ``{{ contact.company | default("your company") }}`` declares a default;
- ``<contact_first_name/>`` and ``<contact_first_name>``, optionally with a default:
  ``<contact_first_name default="there"/>``. Only documented variable names (and
  ``contact.<attribute>``) are placeholders in this spelling; any other tag, such as
  ``<instructions>``, is left as text.

A variable that is missing (not given, or None) renders as its declared default or as
nothing, and its name is reported in ``RenderedPrompt.missing`` (dotted, in order of first
use, each once). A missing variable never raises; a template that is not valid Jinja2, or
that the sandbox refuses, raises ``InvalidInput``.

Variables (``prompt_variables``)
--------------------------------
``contact_name``, ``contact_first_name``, ``contact_phone``, ``contact_email``,
``contact.<attribute>`` (the contact's attributes, plus ``contact.name``, ``.first_name``,
``.phone``, ``.email``), ``business_name``, ``inbox_name``, ``agent_name``, ``channel``,
``conversation_title``, ``conversation.<field>`` (``id``, ``channel``, ``title``,
``status``), ``today`` (ISO date in the tenant's time zone), ``weekday`` (its English name)
and ``now`` (ISO date-time with offset, to the minute).
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from threadline.domain.errors import InvalidInput

__all__ = ["VARIABLES", "RenderedPrompt", "prompt_variables", "render_prompt", "validate_template"]

VARIABLES: Final = (
    "contact_name",
    "contact_first_name",
    "contact_phone",
    "contact_email",
    "business_name",
    "inbox_name",
    "agent_name",
    "channel",
    "conversation_title",
    "today",
    "weekday",
    "now",
)
"""The flat variable names; ``contact.<attribute>`` and ``conversation.<field>`` come too."""


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    prompt: str
    missing: list[str]


class _Namespace:
    """A mapping variable for templates: its keys read as attributes (``contact.company``)
    or items, and nothing else does (no dict methods), so any key is safe to use; it knows
    its own name, so a missing key is reported dotted."""

    __slots__ = ("_tl_path", "_tl_values")

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        self._tl_path = path
        self._tl_values = {key: value for key, value in values.items() if value is not None}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._tl_values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._tl_values[name]


_missing: contextvars.ContextVar[list[str]] = contextvars.ContextVar("missing_prompt_variables")


class _Missing(jinja2.ChainableUndefined):
    """Renders as nothing, chains (``a.b.c`` is missing as ``a``), records its name."""

    __slots__ = ()

    def __init__(self, hint: str | None = None, obj: Any = jinja2.utils.missing, **kw: Any):
        super().__init__(hint, obj, **kw)
        name = self._undefined_name
        if name is None:
            return
        if isinstance(obj, _Namespace):
            name = f"{obj._tl_path}.{name}"
        found = _missing.get(None)
        if found is not None and name not in found:
            found.append(name)

    def __call__(self, *args: Any, **kwargs: Any) -> _Missing:  # type: ignore[override]  # base raises
        """``{{ contact.greet() }}`` on a missing value is missing too, not an error."""
        return self


@functools.cache
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=_Missing,
        autoescape=False,
        keep_trailing_newline=True,
    )


_NAME = r"(?:contact|conversation)\.[A-Za-z_][A-Za-z0-9_]*|" + "|".join(VARIABLES)
_TAG = re.compile(rf"""<({_NAME})(?:\s+default\s*=\s*"([^"]*)")?\s*/?>""")


def _from_tags(template: str) -> str:
    """Turn ``<var/>``, ``<var>`` and ``<var default="x"/>`` into Jinja2 expressions."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if default is None:
            return "{{ " + name + " }}"
        return "{{ " + name + " | default(" + repr(default) + ") }}"

    return _TAG.sub(replace, template)


@functools.lru_cache(maxsize=256)
def _compile(template: str) -> jinja2.Template:
    try:
        return _environment().from_string(_from_tags(template))
    except jinja2.TemplateSyntaxError as error:
        raise InvalidInput(
            f"the prompt template is not valid: {error.message} (line {error.lineno})",
            line=error.lineno,
        ) from None


def validate_template(template: str) -> None:
    """Raise ``InvalidInput`` (with the line) if ``template`` cannot be compiled."""
    _compile(template)


def render_prompt(template: str, variables: Mapping[str, Any]) -> RenderedPrompt:
    """Fill ``template`` from ``variables`` (usually ``prompt_variables(...)``).

    Mappings among the variables are reachable with dots (``contact.company``); a None value
    counts as missing. See the module docstring for the placeholder rules.
    """
    compiled = _compile(template)
    context = {
        key: (_Namespace(key, value) if isinstance(value, Mapping) else value)
        for key, value in variables.items()
        if value is not None
    }
    found: list[str] = []
    token = _missing.set(found)
    try:
        prompt = compiled.render(context)
    except jinja2.exceptions.SecurityError as error:
        raise InvalidInput(f"the prompt template is not allowed: {error}") from None
    except jinja2.TemplateError as error:
        raise InvalidInput(f"the prompt template failed: {error}") from None
    finally:
        _missing.reset(token)
    return RenderedPrompt(prompt=prompt, missing=found)


def _first_name(name: str | None) -> str | None:
    parts = (name or "").split()
    return parts[0] if parts else None


def prompt_variables(
    *,
    contact: Mapping[str, Any] | None = None,
    conversation: Mapping[str, Any] | None = None,
    inbox: Mapping[str, Any] | None = None,
    agent: Mapping[str, Any] | None = None,
    business_name: str | None = None,
    time_zone: str = "UTC",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The documented variables, from rows as the store returns them (all optional).

    ``today``, ``weekday`` and ``now`` are taken in ``time_zone`` (an IANA name; an unknown
    one raises ``InvalidInput``) at ``now`` (default: the current time).
    """
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {time_zone!r}", time_zone=time_zone) from None
    local = (now or datetime.now(UTC)).astimezone(zone)
    contact = contact or {}
    conversation = conversation or {}
    name = contact.get("name")
    attributes = contact.get("attributes") or {}
    contact_vars = {
        **(attributes if isinstance(attributes, Mapping) else {}),
        "name": name,
        "first_name": _first_name(name),
        "phone": contact.get("phone"),
        "email": contact.get("email"),
    }
    return {
        "contact": contact_vars,
        "contact_name": name,
        "contact_first_name": contact_vars["first_name"],
        "contact_phone": contact_vars["phone"],
        "contact_email": contact_vars["email"],
        "conversation": {
            "id": None if conversation.get("id") is None else str(conversation["id"]),
            "channel": conversation.get("channel"),
            "title": conversation.get("title"),
            "status": conversation.get("status"),
        },
        "business_name": business_name,
        "inbox_name": (inbox or {}).get("name"),
        "agent_name": (agent or {}).get("name"),
        "channel": conversation.get("channel") or (inbox or {}).get("channel"),
        "conversation_title": conversation.get("title"),
        "today": local.date().isoformat(),
        "weekday": local.strftime("%A"),
        "now": local.isoformat(timespec="minutes"),
    }
