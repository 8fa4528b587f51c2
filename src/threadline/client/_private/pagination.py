"""Iterators over cursor-paged lists: they fetch the next page (``next_cursor``) as you go."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from threadline.client._private.models import Page

T = TypeVar("T")


class Pager(Generic[T]):
    """Every item of a list, page by page: ``for item in pager``.

    Nothing is fetched until you iterate; ``first_page()`` fetches one page only and
    ``pages()`` yields the pages themselves. Iterating again starts from the first page.
    """

    def __init__(self, fetch: Callable[[str | None], Page[T]]) -> None:
        self._fetch = fetch

    def first_page(self) -> Page[T]:
        return self._fetch(None)

    def pages(self) -> Iterator[Page[T]]:
        cursor: str | None = None
        while True:
            page = self._fetch(cursor)
            yield page
            if not page.next_cursor or not page.data:
                return
            cursor = page.next_cursor

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.data

    def to_list(self) -> list[T]:
        return list(self)


class AsyncPager(Generic[T]):
    """Every item of a list, page by page: ``async for item in pager``.

    Nothing is fetched until you iterate; ``await first_page()`` fetches one page only and
    ``pages()`` yields the pages themselves.
    """

    def __init__(self, fetch: Callable[[str | None], Awaitable[Page[T]]]) -> None:
        self._fetch = fetch

    async def first_page(self) -> Page[T]:
        return await self._fetch(None)

    async def pages(self) -> AsyncIterator[Page[T]]:
        cursor: str | None = None
        while True:
            page = await self._fetch(cursor)
            yield page
            if not page.next_cursor or not page.data:
                return
            cursor = page.next_cursor

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.data:
                yield item

    async def to_list(self) -> list[T]:
        return [item async for item in self]
