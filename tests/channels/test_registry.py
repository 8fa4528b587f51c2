from __future__ import annotations

import pytest

from threadline.channels import registry
from threadline.channels.base import Provider
from threadline.domain.errors import UnknownProvider

DESIGN_TABLE = {
    "twilio": ("sms", ("inbound", "status")),
    "meta": ("whatsapp", ("inbound",)),
    "postmark": ("email", ("inbound", "events")),
    "sendgrid": ("email", ("inbound", "events")),
    "smtp": ("email", ()),
    "zapier": ("yelp", ("inbound", "outbox")),
    "vapi": ("voice", ("inbound",)),
    "retell": ("voice", ("inbound",)),
}


@pytest.mark.parametrize(("name", "expected"), DESIGN_TABLE.items())
def test_builtin_providers_match_the_design_table(
    name: str, expected: tuple[str, tuple[str, ...]]
) -> None:
    provider = registry.get(name)
    assert isinstance(provider, Provider)
    assert (provider.channel.value, provider.webhook_names) == expected


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(UnknownProvider) as err:
        registry.get("pigeon")
    assert "twilio" in err.value.message and "retell" in err.value.message
    assert set(DESIGN_TABLE) <= set(registry.names())
