"""``threadline tenant|key|user``: who may use this server."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from threadline.cli._common import database, out
from threadline.domain.enums import UserRole
from threadline.store import tenants

tenant_app = typer.Typer(help="Tenants: isolated workspaces.", no_args_is_help=True)
key_app = typer.Typer(help="API keys: shown once, stored as hashes.", no_args_is_help=True)
user_app = typer.Typer(help="Operators who sign in to the dashboard.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant slug.")]
_WHEN = "%Y-%m-%d %H:%M"


def _table(*columns: str) -> Table:
    """A compact table whose ids are never wrapped or cut, so they can be copied whole."""
    table = Table(box=box.SIMPLE_HEAD)
    for name in columns:
        if name == "id":
            table.add_column(name, no_wrap=True, min_width=36)
        else:
            table.add_column(name, no_wrap=name in ("slug", "prefix"))
    return table


def _print(table: Table) -> None:
    """Print at the table's natural width: a narrow or piped terminal must not cut ids."""
    natural = Measurement.get(out, out.options.update_width(1_000), table).maximum
    Console(width=max(out.width, natural)).print(table)


@tenant_app.command("create")
def tenant_create(
    slug: Annotated[str, typer.Argument(help="Short unique name, e.g. acme.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Create a tenant."""
    with database() as db:
        tenant = tenants.create_tenant(db, slug, name)
    out.print(f"created tenant {tenant.slug} ({tenant.id})")


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants."""
    with database() as db:
        rows = tenants.list_tenants(db)
    table = _table("slug", "name", "id", "created")
    for t in rows:
        table.add_row(t.slug, Text(t.name), str(t.id), t.created_at.strftime(_WHEN))
    _print(table)


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Option("--name", "-n", help="What the key is for.")],
    tenant: TenantOpt = "default",
) -> None:
    """Create an API key. The key is printed once, as the last line."""
    with database() as db:
        t = tenants.get_tenant(db, tenant)
        key, token = tenants.create_api_key(db, t.id, name)
    out.print(f"created key {key.id} for tenant {t.slug}; store it now, it is not shown again:")
    print(token)


@key_app.command("list")
def key_list(tenant: TenantOpt = "default") -> None:
    """List a tenant's keys (prefixes only)."""
    with database() as db:
        t = tenants.get_tenant(db, tenant)
        rows = tenants.list_api_keys(db, t.id)
    table = _table("id", "name", "prefix", "created", "revoked")
    for k in rows:
        revoked = k.revoked_at.strftime(_WHEN) if k.revoked_at else ""
        table.add_row(
            str(k.id), Text(k.name), k.prefix + "…", k.created_at.strftime(_WHEN), revoked
        )
    _print(table)


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[uuid.UUID, typer.Argument(help="The key's id (see 'key list').")],
    tenant: TenantOpt = "default",
) -> None:
    """Revoke a key; requests with it answer 401 from now on."""
    with database() as db:
        t = tenants.get_tenant(db, tenant)
        tenants.revoke_api_key(db, t.id, key_id)
    out.print(f"revoked key {key_id}")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="Sign-in email.")],
    role: Annotated[UserRole, typer.Option(help="admin, agent or viewer.")] = UserRole.AGENT,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    tenant: TenantOpt = "default",
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)
    ] = "",
) -> None:
    """Create an operator account (asks for the password)."""
    with database() as db:
        t = tenants.get_tenant(db, tenant)
        user = tenants.create_user(db, t.id, email, password, role, name)
    out.print(f"created {user.role.value} {user.email} ({user.id})")
