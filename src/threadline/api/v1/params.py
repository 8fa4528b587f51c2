"""Query parameters shared by list endpoints."""

from typing import Annotated

from fastapi import Query

from threadline.schemas.common import NoQuery

Limit = Annotated[int, Query(ge=1, le=200, description="Page size, 1 to 200.")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="The `next_cursor` of the previous page.")
]

#: For a route that takes no query parameters: any it is sent answers 422.
NoQueryParams = Annotated[NoQuery, Query()]
