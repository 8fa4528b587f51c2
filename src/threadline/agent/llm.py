"""Chat completions against any OpenAI-compatible endpoint, through the official ``openai`` SDK.

The model comes from the agent (``model``, and ``settings.llm_base_url`` for an endpoint
of its own) or else from ``THREADLINE_LLM_MODEL`` / ``THREADLINE_LLM_BASE_URL`` /
``THREADLINE_LLM_API_KEY``. With no model anywhere, ``resolve`` raises
``ModelNotConfigured`` (409) naming the setting; nothing else needs a model.

Every call answers a ``Completion`` with what the bookkeeping needs (tokens, cost, time);
failures (HTTP errors, timeouts, connection errors, answers that are not chat completions)
raise ``ModelFailed`` carrying the same figures, so a failed call is on record too.

Costs come from ``PRICES`` (US dollars per million prompt and completion tokens, matched
by the longest model-name prefix), extended or overridden per agent with
``settings.price_per_million = {"prompt": 0.15, "completion": 0.6}``; an unknown model
costs None, never a guess.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from threadline.domain.errors import ModelFailed, ModelNotConfigured

if TYPE_CHECKING:
    pass
from threadline.settings import Settings

#: US dollars per million (prompt, completion) tokens, by model-name prefix.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


def price(
    model: str | None, options: Mapping[str, Any] | None = None
) -> tuple[float, float] | None:
    override = (options or {}).get("price_per_million")
    if isinstance(override, Mapping):
        try:
            return float(override["prompt"]), float(override["completion"])
        except (KeyError, TypeError, ValueError):
            pass
    if not model:
        return None
    matches = [prefix for prefix in PRICES if model.startswith(prefix)]
    return PRICES[max(matches, key=len)] if matches else None


def cost(
    model: str | None, usage: Mapping[str, Any] | None, options: Mapping[str, Any] | None = None
) -> float | None:
    rates = price(model, options)
    if rates is None or not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return round((prompt * rates[0] + completion * rates[1]) / 1_000_000, 8)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    model: str
    base_url: str | None
    api_key: str | None
    timeout: float
    options: Mapping[str, Any] = field(default_factory=dict)


def resolve(settings: Settings, agent: Mapping[str, Any] | None = None) -> ModelConfig:
    """The model to call for ``agent`` (its own, else the server's)."""
    agent = agent or {}
    options = agent.get("settings") or {}
    model = agent.get("model") or settings.llm_model
    if not model:
        raise ModelNotConfigured(
            "no model is configured: set THREADLINE_LLM_MODEL (and THREADLINE_LLM_BASE_URL / "
            "THREADLINE_LLM_API_KEY for your endpoint) or give the agent a model",
            setting="THREADLINE_LLM_MODEL",
        )
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return ModelConfig(
        model=model,
        base_url=options.get("llm_base_url") or settings.llm_base_url,
        api_key=key,
        timeout=float(options.get("timeout_seconds") or settings.llm_timeout_seconds),
        options=options,
    )


@dataclass(slots=True)
class Completion:
    """One model call's answer and its bookkeeping."""

    model: str
    content: str | None
    tool_calls: list[dict[str, Any]]
    usage: dict[str, int] | None
    response_time_ms: int
    cost_usd: float | None
    finish_reason: str | None = None

    def message(self) -> dict[str, Any]:
        """The answer as an OpenAI assistant message."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        return out


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a streamed answer: text, or a tool call once its arguments are complete."""

    text: str | None = None
    tool_call: dict[str, Any] | None = None


def _usage(raw: Any) -> dict[str, int] | None:
    if raw is None:
        return None
    return {
        "prompt_tokens": int(getattr(raw, "prompt_tokens", 0) or 0),
        "completion_tokens": int(getattr(raw, "completion_tokens", 0) or 0),
        "total_tokens": int(getattr(raw, "total_tokens", 0) or 0),
    }


def _call_dict(call: Any) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments or ""},
    }


class LLM:
    """A client for one ``ModelConfig``."""

    def __init__(self, config: ModelConfig) -> None:
        import openai  # loaded on first use: importing it takes a second

        self.config = config
        self._client = openai.OpenAI(
            base_url=config.base_url,
            # The SDK insists on a key; local endpoints take any.
            api_key=config.api_key or "unused",
            timeout=config.timeout,
            max_retries=1,
        )

    def _params(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        response_format: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.config.model, "messages": list(messages)}
        if tools:
            params["tools"] = list(tools)
        if response_format is not None:
            params["response_format"] = dict(response_format)
        for name in ("temperature", "max_tokens", "top_p"):
            if self.config.options.get(name) is not None:
                params[name] = self.config.options[name]
        return params

    def _failed(self, error: Exception, started: float) -> ModelFailed:
        import openai  # loaded on first use: importing it takes a second

        elapsed = int((time.perf_counter() - started) * 1000)
        if isinstance(error, openai.APITimeoutError):
            text = f"the model timed out after {self.config.timeout:g} s"
        elif isinstance(error, openai.APIStatusError):
            text = f"the model endpoint answered {error.status_code}"
        elif isinstance(error, openai.APIConnectionError):
            text = "the model endpoint could not be reached"
        else:
            text = f"the model's answer could not be read ({type(error).__name__})"
        return ModelFailed(text, model=self.config.model, response_time_ms=elapsed)

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> Completion:
        import openai  # loaded on first use: importing it takes a second

        started = time.perf_counter()
        try:
            raw = self._client.chat.completions.create(
                **self._params(messages, tools, response_format)
            )
            choice = raw.choices[0]
            calls = [_call_dict(c) for c in (choice.message.tool_calls or [])]
            content = choice.message.content
            finish = choice.finish_reason
        except (openai.OpenAIError, IndexError, AttributeError, TypeError, ValueError) as error:
            raise self._failed(error, started) from error
        usage = _usage(raw.usage)
        return Completion(
            model=raw.model or self.config.model,
            content=content,
            tool_calls=calls,
            usage=usage,
            response_time_ms=int((time.perf_counter() - started) * 1000),
            cost_usd=cost(self.config.model, usage, self.config.options),
            finish_reason=finish,
        )

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Iterator[Delta | Completion]:
        """Text deltas as they come, each tool call once complete, then the ``Completion``."""
        import openai  # loaded on first use: importing it takes a second

        started = time.perf_counter()
        params = self._params(messages, tools, None)
        params |= {"stream": True, "stream_options": {"include_usage": True}}
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage: dict[str, int] | None = None
        model = self.config.model
        finish: str | None = None
        try:
            for chunk in self._client.chat.completions.create(**params):
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    delta = choice.delta
                    finish = choice.finish_reason or finish
                    if delta.content:
                        text.append(delta.content)
                        yield Delta(text=delta.content)
                    for part in delta.tool_calls or []:
                        call = calls.setdefault(
                            part.index,
                            {
                                "id": None,
                                "type": "function",
                                "function": {"name": "", "arguments": ""},
                            },
                        )
                        if part.id:
                            call["id"] = part.id
                        if part.function is not None:
                            call["function"]["name"] += part.function.name or ""
                            call["function"]["arguments"] += part.function.arguments or ""
        except (openai.OpenAIError, AttributeError, TypeError, ValueError) as error:
            raise self._failed(error, started) from error
        done = [calls[i] for i in sorted(calls)]
        for call in done:
            yield Delta(tool_call=call)
        yield Completion(
            model=model,
            content="".join(text) if text else None,
            tool_calls=done,
            usage=usage,
            response_time_ms=int((time.perf_counter() - started) * 1000),
            cost_usd=cost(self.config.model, usage, self.config.options),
            finish_reason=finish,
        )


def parse_json_object(text: str | None) -> dict[str, Any] | None:
    """A model's JSON answer as an object (a fenced ```json block too), else None."""
    if not text:
        return None
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`")
        body = body.removeprefix("json").strip()
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
