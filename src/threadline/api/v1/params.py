"""Query parameters shared by list endpoints, and the rule that every other one is an error."""

from typing import Annotated

from fastapi import Query, Request
from fastapi.dependencies.models import Dependant

from threadline.api.deps import AuthDep
from threadline.domain.errors import InvalidInput

Limit = Annotated[int, Query(ge=1, le=200, description="Page size, 1 to 200.")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="The `next_cursor` of the previous page.")
]


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request, _: AuthDep) -> None:
    """Answer 422 for a query parameter the route does not declare.

    A misspelt filter (``?stauts=active``) would otherwise be ignored and silently widen a
    list, as unknown body fields would be without ``extra="forbid"``. It depends on the API key
    (resolved once per request) so that a request without one still answers 401 first.
    It is async because it never blocks: FastAPI would send a sync one through its thread pool.
    """
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        shown = [name[:64] for name in unknown[:10]]
        raise InvalidInput(f"unknown query parameter(s): {', '.join(shown)}", parameters=shown)
