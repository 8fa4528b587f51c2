"""Reading a source: a local file, or a file at an http(s) URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from threadline.domain.errors import InvalidInput


def lines_of(source: str) -> Iterator[tuple[int, str]]:
    """The source's lines, numbered from 1."""
    if source.startswith(("http://", "https://")):
        try:
            with httpx.stream("GET", source, timeout=30, follow_redirects=True) as response:
                response.raise_for_status()
                yield from enumerate(response.iter_lines(), start=1)
        except httpx.HTTPError as exc:
            raise InvalidInput(f"cannot read {source}: {exc}") from None
        return
    path = Path(source)
    if not path.is_file():
        raise InvalidInput(f"no such file: {source}")
    number = 0
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                yield number, line
    except UnicodeDecodeError:
        raise InvalidInput(f"line {number + 1}: not UTF-8 text", line=number + 1) from None
