"""Addresses as Threadline keeps them: phones in E.164, emails case-folded."""

from __future__ import annotations

from email.utils import getaddresses, parseaddr

import phonenumbers


def e164(raw: str | None, default_region: str | None = None) -> str | None:
    """The E.164 form of a phone number, or ``None`` when it is not one.

    A number without ``+`` is read in ``default_region``; without a region, digits that
    already start with a country code (WhatsApp's ``16505551234``) are tried as such.
    """
    if not raw:
        return None
    text = raw.strip()
    for prefix in ("whatsapp:", "tel:", "sms:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    candidates = [(text, default_region)]
    if not text.startswith("+"):
        digits = "".join(ch for ch in text if ch.isdigit())
        if digits and default_region is None:
            candidates = [("+" + digits, None)]
        elif digits:
            candidates.append(("+" + digits, None))
    for number, region in candidates:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def email_address(raw: str | None) -> str | None:
    """The bare address of ``"Ann <Ann@Example.com>"``, case-folded; ``None`` if there is none."""
    if not raw:
        return None
    _, address = parseaddr(raw)
    address = address.strip()
    if "@" not in address:
        return None
    return address.casefold()


def display_name(raw: str | None) -> str | None:
    if not raw:
        return None
    name, _ = parseaddr(raw)
    return name.strip() or None


def email_addresses(raw: str | None) -> list[str]:
    """Every address in a header such as ``To`` or ``Cc``, case-folded."""
    if not raw:
        return []
    return [addr.casefold() for _, addr in getaddresses([raw]) if "@" in addr]
