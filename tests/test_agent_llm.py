"""agent.llm against a local OpenAI-compatible server: answers, tool calls, streams,
errors, timeouts and costs."""

from __future__ import annotations

import pytest

from fakes_llm import FakeLLM, Turn, call
from threadline.agent import llm
from threadline.domain.errors import ModelFailed, ModelNotConfigured
from threadline.settings import Settings


@pytest.fixture
def fake() -> FakeLLM:  # type: ignore[misc]
    with FakeLLM() as server:
        yield server


def _client(fake: FakeLLM, timeout: float = 5, **agent: object) -> llm.LLM:
    settings = Settings(llm_base_url=fake.url, llm_model="gpt-4o-mini", llm_timeout_seconds=timeout)
    return llm.LLM(llm.resolve(settings, agent))


def test_no_model_names_the_setting() -> None:
    with pytest.raises(ModelNotConfigured) as raised:
        llm.resolve(Settings())
    assert "THREADLINE_LLM_MODEL" in raised.value.message
    assert llm.resolve(Settings(), {"model": "mine"}).model == "mine"


def test_a_completion_with_usage_and_cost(fake: FakeLLM) -> None:
    fake.script(Turn("Hello there", prompt_tokens=1000, completion_tokens=100))
    done = _client(fake).complete([{"role": "user", "content": "hi"}])
    assert done.content == "Hello there" and done.tool_calls == []
    assert done.usage == {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    assert done.cost_usd == pytest.approx((1000 * 0.15 + 100 * 0.6) / 1e6)
    assert fake.requests[-1]["model"] == "gpt-4o-mini"


def test_tool_calls_round_trip(fake: FakeLLM) -> None:
    tool = {"type": "function", "function": {"name": "escalate", "parameters": {}}}
    fake.script(Turn(None, [call("escalate", {"reason": "angry"})]))
    done = _client(fake).complete([{"role": "user", "content": "hi"}], tools=[tool])
    assert done.tool_calls == [call("escalate", {"reason": "angry"})]
    assert fake.requests[-1]["tools"] == [tool]


def test_a_stream_gives_deltas_calls_then_the_completion(fake: FakeLLM) -> None:
    fake.script(Turn("Streaming works", [call("set_outcome", {"outcome": "won"})]))
    parts = list(_client(fake).stream([{"role": "user", "content": "hi"}]))
    text = "".join(p.text for p in parts if isinstance(p, llm.Delta) and p.text)
    assert text == "Streaming works"
    calls = [p.tool_call for p in parts if isinstance(p, llm.Delta) and p.tool_call]
    assert calls == [call("set_outcome", {"outcome": "won"})]
    done = parts[-1]
    assert isinstance(done, llm.Completion)
    assert done.content == "Streaming works" and done.usage and done.usage["total_tokens"] == 25


@pytest.mark.parametrize(
    "turn", [Turn(status=500), Turn(status=400), Turn(raw="not json"), Turn(raw='{"choices": []}')]
)
def test_failures_raise_model_failed(fake: FakeLLM, turn: Turn) -> None:
    fake.script(turn, turn)
    with pytest.raises(ModelFailed) as raised:
        _client(fake).complete([{"role": "user", "content": "hi"}])
    assert raised.value.details["model"] == "gpt-4o-mini"


def test_a_timeout_raises_model_failed(fake: FakeLLM) -> None:
    fake.script(Turn(delay=1.5), Turn(delay=1.5))
    with pytest.raises(ModelFailed) as raised:
        _client(fake, timeout=0.3).complete([{"role": "user", "content": "hi"}])
    assert "timed out" in raised.value.message


def test_prices_by_prefix_and_per_agent() -> None:
    assert llm.price("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert llm.price("gpt-4o-2024-08-06") == (2.50, 10.00)
    assert llm.price("llama-3") is None
    options = {"price_per_million": {"prompt": 1, "completion": 2}}
    assert llm.cost("llama-3", {"prompt_tokens": 10**6, "completion_tokens": 10**6}, options) == 3


def test_json_answers() -> None:
    assert llm.parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert llm.parse_json_object("[1]") is None
    assert llm.parse_json_object("nope") is None
