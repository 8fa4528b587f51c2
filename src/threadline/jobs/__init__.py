"""Background work: loops that run beside the API in ``threadline serve`` (and alone in
``threadline worker``).

Each queue is a table of its own (deliveries, embeddings to compute, webhooks to send ...),
written in the same transaction as the work it describes, so nothing committed is ever
without its job. A loop is an async callable ``loop(db, settings)`` that runs until it is
cancelled, catches the errors of each round itself and logs them (never bodies or secrets).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from threadline.jobs.deliver import deliver_forever
from threadline.jobs.embed import embed_forever
from threadline.jobs.prune import prune_forever
from threadline.jobs.reply import agent_forever
from threadline.jobs.retention import retention_forever
from threadline.jobs.webhooks_out import webhooks_forever
from threadline.settings import Settings
from threadline.store.database import Database

Loop = Callable[[Database, Settings], Awaitable[None]]

#: The loops every server and worker runs.
LOOPS: tuple[Loop, ...] = (
    prune_forever,
    embed_forever,
    deliver_forever,
    agent_forever,
    webhooks_forever,
    retention_forever,
)
