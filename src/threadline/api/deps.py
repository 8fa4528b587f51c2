"""Dependencies the routes declare.

Every ``/v1`` route takes one ``Ctx``: the database, settings and metrics, and the caller
behind the request's API key. One dependency rather than one per part, and async because it
never blocks: FastAPI sends a sync dependency through its thread pool, and both that hop and
the resolution of each dependency cost more than the work they would do here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from threadline.domain.errors import Unauthenticated
from threadline.ingest import Ingest
from threadline.metrics import Metrics
from threadline.settings import Settings
from threadline.store import Database, tenants

_bearer = HTTPBearer(auto_error=False, description="An API key: `threadline key create`.")


class RequestContext:
    """What a ``/v1`` route works with: the app's database, settings and metrics, and the
    caller behind the API key.

    Resolving it checks that an API key is there and shaped like one (else 401, before the
    body or query are looked at; each route's query model then refuses unknown parameters
    with 422, so a misspelt filter cannot silently widen a list). The key
    itself is looked up by ``caller()``, which every route calls first, in the same worker
    thread as the rest of its database work: a request makes one thread-pool hop, not two. A
    well-formed key that is unknown or revoked answers 401 there, before anything is read or
    written.
    """

    __slots__ = ("_caller", "_token", "db", "ingest", "metrics", "settings")

    def __init__(self, request: Request, token: str) -> None:
        state = request.app.state
        self.db: Database = state.db
        self.settings: Settings = state.settings
        self.metrics: Metrics = state.metrics
        self.ingest: Ingest = state.ingest
        self._token = token
        self._caller: tenants.Caller | None = None

    def caller(self) -> tenants.Caller:
        if self._caller is None:
            self._caller = tenants.authenticate(self.db, self._token)
        return self._caller


async def _context(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> RequestContext:
    if credentials is None:
        raise Unauthenticated("send your API key as 'Authorization: Bearer <key>'")
    if not tenants.is_well_formed(credentials.credentials):
        raise Unauthenticated("the API key is not valid")
    return RequestContext(request, credentials.credentials)


Ctx = Annotated[RequestContext, Depends(_context)]


# The operational routes take the parts they need.


async def _db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


DatabaseDep = Annotated[Database, Depends(_db)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
