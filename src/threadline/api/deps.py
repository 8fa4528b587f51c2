"""Dependencies the routes declare: the database, the settings and the calling tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from threadline.domain.errors import Unauthenticated
from threadline.metrics import Metrics
from threadline.settings import Settings
from threadline.store import Database, tenants

_bearer = HTTPBearer(auto_error=False, description="An API key: `threadline key create`.")


# The accessors are async only because they never block: FastAPI runs sync dependencies in
# its thread pool, and a hop there costs more than reading app.state.


async def _db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


DatabaseDep = Annotated[Database, Depends(_db)]
SettingsDep = Annotated[Settings, Depends(_settings)]


def _caller(
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> tenants.Caller:
    if credentials is None:
        raise Unauthenticated("send your API key as 'Authorization: Bearer <key>'")
    return tenants.authenticate(db, credentials.credentials)


CallerDep = Annotated[tenants.Caller, Depends(_caller)]


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


MetricsDep = Annotated[Metrics, Depends(_metrics)]
