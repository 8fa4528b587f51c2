"""The shape every background loop shares: a round in a worker thread, again at once while
there is work, a pause when there is none, and a failed round logged rather than fatal."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import anyio

from threadline.logs import get_logger

log = get_logger(__name__)


async def poll_forever(run_once: Callable[[], int], *, idle: float, failed: str) -> NoReturn:
    """Run ``run_once`` (it answers how much it did) until cancelled: at once again after a
    round that did something, after ``idle`` seconds otherwise. A round that raises is logged
    as the event ``failed`` with its error type only (an error's text can quote a message
    body) and counts as idle; the next round tries again while the API keeps serving."""
    while True:
        try:
            done = await anyio.to_thread.run_sync(run_once)
        except Exception as exc:
            log.warning(failed, error_type=type(exc).__name__)
            done = 0
        await anyio.sleep(0 if done else idle)
