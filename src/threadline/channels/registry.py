"""Provider name -> provider. Built-in providers register exactly as a third party would.

A package adds a provider by declaring an entry point in the ``threadline.channels``
group whose object is a provider instance (or a class taking no arguments)::

    [project.entry-points."threadline.channels"]
    acme = "acme_threadline:AcmeSMS"

Modules load on first lookup, never at import time; ``register`` (for tests, or code that
builds a provider with arguments) takes precedence over both.
"""

from __future__ import annotations

import threading
from importlib import import_module
from importlib.metadata import entry_points

from threadline.channels.base import Provider
from threadline.domain.errors import UnknownProvider

GROUP = "threadline.channels"

#: The built-in providers: name -> "module:attribute", loaded on first use.
BUILTIN: dict[str, str] = {
    "twilio": "threadline.channels.twilio_sms:TwilioSMS",
    "meta": "threadline.channels.whatsapp:WhatsAppCloud",
    "postmark": "threadline.channels.email_postmark:Postmark",
    "sendgrid": "threadline.channels.email_sendgrid:SendGrid",
    "smtp": "threadline.channels.email_smtp:SMTP",
    "zapier": "threadline.channels.zapier_yelp:ZapierYelp",
    "vapi": "threadline.channels.voice_vapi:Vapi",
    "retell": "threadline.channels.voice_retell:Retell",
    "voice": "threadline.channels.voice_generic:GenericVoice",
    "widget": "threadline.channels.webchat:Widget",
}

_providers: dict[str, Provider] = {}
_plugin_targets: dict[str, str] | None = None
_lock = threading.Lock()


def register(provider: Provider | type[Provider], *, replace: bool = False) -> Provider:
    """Add a provider (an instance, or a class taking no arguments) under its ``name``."""
    instance = _instance(provider)
    with _lock:
        if instance.name in _providers and not replace:
            raise ValueError(f"a provider named {instance.name!r} is already registered")
        _providers[instance.name] = instance
    return instance


def _load(target: str) -> Provider:
    module, _, attr = target.partition(":")
    obj = getattr(import_module(module), attr)
    return _instance(obj)


def _instance(obj: Provider | type[Provider]) -> Provider:
    instance = obj() if isinstance(obj, type) else obj
    if not isinstance(instance, Provider):
        raise TypeError(f"{instance!r} does not implement the channels Provider protocol")
    return instance


def _plugins() -> dict[str, str]:
    """Third-party providers declared as entry points: name -> "module:attribute"."""
    global _plugin_targets
    if _plugin_targets is None:
        _plugin_targets = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    return _plugin_targets


def get(name: str) -> Provider:
    """The provider called ``name``; ``UnknownProvider`` naming the known ones otherwise."""
    found = _providers.get(name)
    if found is not None:
        return found
    target = BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        known = names()
        raise UnknownProvider(
            f"unknown provider {name!r}; known providers: {', '.join(known)}",
            provider=name,
            known=known,
        )
    instance = _load(target)
    if instance.name != name:
        raise TypeError(f"provider {name!r} ({target}) calls itself {instance.name!r}")
    with _lock:
        return _providers.setdefault(name, instance)


def names() -> list[str]:
    """Every provider name: registered, built in, or declared by an installed package."""
    return sorted({*_providers, *BUILTIN, *_plugins()})


def all_providers() -> list[Provider]:
    return [get(n) for n in names()]
