"""An agent's system prompt for one conversation."""

from __future__ import annotations

from datetime import datetime

from threadline.context.templates import RenderedPrompt, prompt_variables, render_prompt
from threadline.store.agents import Setting


def variables(setting: Setting, now: datetime | None = None) -> dict[str, object]:
    """The template variables of a conversation; ``business_name`` and ``time_zone`` come
    from the agent's settings (the business name defaults to the tenant's name)."""
    agent = setting.agent or {}
    options = agent.get("settings") or {}
    return prompt_variables(
        contact=setting.contact,
        conversation=setting.conversation,
        inbox=setting.inbox,
        agent=setting.agent,
        business_name=options.get("business_name") or setting.tenant_name,
        time_zone=options.get("time_zone") or "UTC",
        now=now,
    )


def system_prompt(setting: Setting, now: datetime | None = None) -> RenderedPrompt | None:
    """The agent's rendered system prompt, or None when the conversation has no agent or
    the agent has no prompt."""
    template = (setting.agent or {}).get("system_prompt")
    if not template:
        return None
    return render_prompt(template, variables(setting, now))
