"""The agent loop: replies, scores and summaries, run from the ``agent_jobs`` queue.

Each round (every ``THREADLINE_AGENT_POLL_SECONDS``) it queues replies for conversations
that wait on an inbox whose AI agent answers by itself (``agent_jobs.discover``), then runs
the due jobs. A job whose model failed (an error, a timeout, an unusable answer) runs again
after ``RETRY_DELAYS``, then is marked ``failed``; one that cannot run (no model configured,
the conversation gone) is marked ``failed`` at once; one with nothing to do is ``skipped``.
Each round also queues a score for conversations archived lately
(``agent_jobs.discover_closed``). After a reply, a summary job is queued when the history
has grown ``THREADLINE_SUMMARY_AFTER_MESSAGES`` past the last summary, and a score job when
it has grown the agent's ``settings.score_every_messages`` past the last score (so a
``escalate_below_sentiment`` rule sees a fresh sentiment).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from threadline.agent import scoring
from threadline.agent.loop import Emit, Reply, ReplyResult, _ignore
from threadline.domain.errors import ModelFailed, ThreadlineError
from threadline.ingest import Ingest
from threadline.jobs.poll import poll_forever
from threadline.logs import get_logger
from threadline.settings import Settings
from threadline.store import agent_jobs, agents, summaries
from threadline.store.database import Database

log = get_logger(__name__)

#: Waits before the second and third try of a job whose model failed.
RETRY_DELAYS = (timedelta(seconds=5), timedelta(seconds=30))
#: Jobs one worker takes per round.
BATCH = 8


def run_job(
    db: Database,
    settings: Settings,
    ingest: Ingest,
    job: dict[str, Any],
    *,
    stream: bool = False,
    emit: Emit = _ignore,
) -> ReplyResult | None:
    """Run one claimed job and record how it ended."""
    try:
        result: ReplyResult | None = None
        if job["kind"] == "reply":
            result = Reply(
                db,
                settings,
                ingest,
                job["tenant_id"],
                job["conversation_id"],
                job_id=job["id"],
                explicit=job.get("agent_id") is None or stream,
                stream=stream,
                emit=emit,
            ).run()
            _maybe_summarise(db, settings, job)
            if result.status in ("sent", "stored", "suggested"):
                _maybe_score(db, job)
        elif job["kind"] == "score":
            scoring.score(db, settings, job["tenant_id"], job["conversation_id"])
        elif job["kind"] == "summary":
            scoring.summarise(db, settings, job["tenant_id"], job["conversation_id"])
    except ModelFailed as failed:
        attempt = int(job.get("attempts") or 1)
        if attempt <= len(RETRY_DELAYS) and not stream:
            agent_jobs.retry(db, job["id"], RETRY_DELAYS[attempt - 1], failed.message)
        else:
            agent_jobs.finish(db, job["id"], "failed", failed.message)
        log.warning("agent_job_model_failed", kind=job["kind"], attempt=attempt)
        emit("error", {"code": failed.code, "message": failed.message})
        return None
    except ThreadlineError as error:
        agent_jobs.finish(db, job["id"], "failed", error.message)
        emit("error", {"code": error.code, "message": error.message})
        return None
    except Exception as error:
        agent_jobs.finish(db, job["id"], "failed", type(error).__name__)
        log.error(
            "agent_job_failed", kind=job["kind"], error_type=type(error).__name__, exc_info=error
        )
        emit("error", {"code": "internal_error", "message": "the reply failed"})
        return None
    skipped = result is not None and result.status == "skipped"
    agent_jobs.finish(
        db, job["id"], "skipped" if skipped else "done", result.reason if result else None
    )
    return result


def _maybe_summarise(db: Database, settings: Settings, job: dict[str, Any]) -> None:
    latest = summaries.latest(db, job["tenant_id"], job["conversation_id"])
    covered = 0 if latest is None else int(latest["to_seq"])
    if job["trigger_seq"] - covered > settings.summary_after_messages:
        agent_jobs.request(
            db, job["tenant_id"], job["conversation_id"], None, "summary", job["trigger_seq"]
        )


def _maybe_score(db: Database, job: dict[str, Any]) -> None:
    setting = agents.setting(db, job["tenant_id"], job["conversation_id"])
    every = ((setting.agent or {}).get("settings") or {}).get("score_every_messages")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        return
    last_seq = int(setting.conversation["last_seq"])
    scored = agent_jobs.latest_trigger(db, job["tenant_id"], job["conversation_id"], "score")
    if last_seq - (scored or 0) >= every:
        agent_jobs.request(db, job["tenant_id"], job["conversation_id"], None, "score", last_seq)


def run_due(
    db: Database,
    settings: Settings,
    ingest: Ingest,
    watch: agent_jobs.ClosedWatch | None = None,
) -> int:
    """One round: discover waiting and lately archived conversations, run the due jobs;
    answers how many ran. ``watch`` keeps a worker's place in the event log between rounds."""
    agent_jobs.discover(db)
    agent_jobs.discover_closed(db, default_model=bool(settings.llm_model), watch=watch)
    ran = 0
    for job in agent_jobs.claim(db, BATCH):
        run_job(db, settings, ingest, job)
        ran += 1
    return ran


async def agent_forever(db: Database, settings: Settings) -> None:
    """Run rounds until cancelled: at once again after a round that ran jobs, every
    ``agent_poll_seconds`` when idle."""
    ingest = Ingest(db, settings)
    watch = agent_jobs.ClosedWatch()
    await poll_forever(
        lambda: run_due(db, settings, ingest, watch),
        idle=settings.agent_poll_seconds,
        failed="agent_round_failed",
    )
