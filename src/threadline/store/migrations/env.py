"""Alembic environment: runs on the connection that ``threadline.store.migrate`` hands over."""

from alembic import context

from threadline.store import search_schema
from threadline.store.models import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=search_schema.include_object,
)
with context.begin_transaction():
    context.run_migrations()
