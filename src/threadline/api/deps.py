"""Dependencies the routes declare: the database, the settings and the caller's API key."""

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


class Auth:
    """The API key a request carries, and the caller it stands for.

    The dependency checks only that a key is there and shaped like one, so a request
    without one answers 401 before its body or query are looked at. The key itself is
    looked up by ``caller()``, which every route calls first, in the same worker thread as
    the rest of its database work: a request then makes one thread-pool hop, not two (a
    hop costs more than the lookup). A well-formed key that is unknown or revoked answers
    401 there, before anything is read or written.
    """

    __slots__ = ("_caller", "_db", "_token")

    def __init__(self, db: Database, token: str) -> None:
        self._db = db
        self._token = token
        self._caller: tenants.Caller | None = None

    def caller(self) -> tenants.Caller:
        if self._caller is None:
            self._caller = tenants.authenticate(self._db, self._token)
        return self._caller


async def _auth(
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Auth:
    if credentials is None:
        raise Unauthenticated("send your API key as 'Authorization: Bearer <key>'")
    if not tenants.is_well_formed(credentials.credentials):
        raise Unauthenticated("the API key is not valid")
    return Auth(db, credentials.credentials)


AuthDep = Annotated[Auth, Depends(_auth)]


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


MetricsDep = Annotated[Metrics, Depends(_metrics)]
