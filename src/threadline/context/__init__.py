"""LLM-ready context: token counts, context windows, output formats and prompt templates.

Pure functions over messages as the store returns them (no database, no HTTP):

- ``tokens``: tiktoken's real encodings offline, and OpenAI's message-count rule;
- ``window``: ``build_window`` - the system prompt, a summary and the newest messages that
  fit a token budget, tool calls kept with their results;
- ``formats``: ``render`` - a window as OpenAI, Anthropic or LangChain messages;
- ``templates``: ``render_prompt`` - system prompt templates and the variables they lack.
"""

from threadline.context.formats import Format, render
from threadline.context.templates import RenderedPrompt, prompt_variables, render_prompt
from threadline.context.tokens import TokenCounter, counter_for_model
from threadline.context.window import Window, build_window

__all__ = [
    "Format",
    "RenderedPrompt",
    "TokenCounter",
    "Window",
    "build_window",
    "counter_for_model",
    "prompt_variables",
    "render",
    "render_prompt",
]
