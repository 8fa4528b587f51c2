"""System prompt templates: the three placeholder spellings, defaults, missing variables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from threadline.context.templates import (
    VARIABLES,
    prompt_variables,
    render_prompt,
    validate_template,
)
from threadline.domain.errors import InvalidInput


@pytest.fixture
def variables() -> dict[str, Any]:
    return prompt_variables(
        contact={
            "name": "Jane van Dijk",
            "phone": "+15551234567",
            "email": None,
            "attributes": {"company": "Acme", "items": "3 chairs"},
        },
        conversation={"id": 7, "channel": "sms", "title": None, "status": "active"},
        inbox={"name": "Main line", "channel": "sms"},
        agent={"name": "Rosa"},
        business_name="Bella Pizza",
        time_zone="America/New_York",
        now=datetime(2026, 11, 25, 3, 30, tzinfo=UTC),
    )


def test_every_documented_variable_is_provided(variables: dict[str, Any]) -> None:
    assert set(VARIABLES) <= set(variables)
    assert variables["contact_first_name"] == "Jane"
    assert variables["channel"] == "sms"


def test_today_is_in_the_tenants_time_zone(variables: dict[str, Any]) -> None:
    # 03:30 UTC on the 25th is still the evening of the 24th in New York.
    rendered = render_prompt("{{ today }} {{ weekday }} {{ now }}", variables)
    assert rendered.prompt == "2026-11-24 Tuesday 2026-11-24T22:30-05:00"
    assert rendered.missing == []


def test_the_three_placeholder_spellings(variables: dict[str, Any]) -> None:
    template = (
        "{{contact_first_name}}, <contact_first_name/>, <contact_first_name> at <business_name>"
    )
    assert render_prompt(template, variables).prompt == "Jane, Jane, Jane at Bella Pizza"


def test_other_tags_stay_text(variables: dict[str, Any]) -> None:
    template = "<instructions>Greet <agent_name/> style</instructions><example/>"
    rendered = render_prompt(template, variables)
    assert rendered.prompt == "<instructions>Greet Rosa style</instructions><example/>"
    assert rendered.missing == []


def test_contact_attributes_by_dots_any_key_name(variables: dict[str, Any]) -> None:
    rendered = render_prompt(
        "{{ contact.company }} / <contact.items/> / {{ contact['company'] }}", variables
    )
    assert rendered.prompt == "Acme / 3 chairs / Acme"


def test_missing_variables_render_default_or_nothing_and_are_reported(
    variables: dict[str, Any],
) -> None:
    template = (
        '[{{ contact_email }}] [<contact_email default="no email"/>] '
        "[{{ contact.vip.level }}] [{{ conversation.title | default('untitled') }}] "
        "[{{ unknown_thing }}] [{{ contact_email }}] [{{ contact.loyalty() }}]"
    )
    rendered = render_prompt(template, variables)
    assert rendered.prompt == "[] [no email] [] [untitled] [] [] []"
    assert rendered.missing == [
        "contact_email",
        "contact.vip",
        "conversation.title",
        "unknown_thing",
        "contact.loyalty",
    ]


def test_nothing_given_still_renders() -> None:
    rendered = render_prompt("Hello {{ contact_first_name }}!", prompt_variables())
    assert rendered.prompt == "Hello !"
    assert rendered.missing == ["contact_first_name"]


@pytest.mark.parametrize("template", ["{% for %}", "{{ contact_name ", "{% if x %}no end"])
def test_a_broken_template_is_invalid_input_with_its_line(template: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_template(template)
    assert raised.value.details["line"] == 1


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ contact.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_the_sandbox_reveals_nothing(template: str, variables: dict[str, Any]) -> None:
    try:
        rendered = render_prompt(template, variables)
    except InvalidInput:
        return
    assert "class" not in rendered.prompt and "module" not in rendered.prompt


def test_unknown_time_zone_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        prompt_variables(time_zone="Mars/Olympus")
