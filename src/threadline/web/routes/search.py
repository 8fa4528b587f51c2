"""Search: the tenant's messages that match what a person types (keyword, or hybrid where
embeddings are on), each hit with its highlighted snippet and a link to the message in its
conversation. The same ``threadline.search.search`` as ``GET /v1/search``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from threadline.domain.enums import Channel
from threadline.search import Filters, Mode, SemanticUnavailable, search
from threadline.search.embedders import Embedder, EmbedderError, from_settings
from threadline.settings import Settings
from threadline.web import auth, queries
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)

LIMIT = 50
MODES = (("hybrid", "Words and meaning"), ("keyword", "Exact words"))


def _embedder(settings: Settings) -> Embedder | None:
    try:
        return from_settings(settings)
    except EmbedderError:
        return None


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    user: auth.Reader,
    q: Annotated[str, Query(max_length=500)] = "",
    mode: Annotated[str, Query(max_length=16)] = "hybrid",
    channel: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    db, settings = request.app.state.db, request.app.state.settings
    wanted: Mode = "keyword" if mode == "keyword" else "hybrid"
    chosen = channel if channel in Channel._value2member_map_ else None
    hits: list[dict[str, Any]] = []
    ran, note = wanted, None
    if q.strip():
        filters = Filters(channel=chosen)
        try:
            result = search(
                db,
                user.tenant_id,
                q,
                mode=wanted,
                filters=filters,
                limit=LIMIT,
                embedder=_embedder(settings),
            )
        except SemanticUnavailable as exc:  # the embedder failed: the words still work
            note = exc.message
            result = search(db, user.tenant_id, q, mode="keyword", filters=filters, limit=LIMIT)
        ran = result.mode
        if wanted == "hybrid" and ran == "keyword" and note is None:
            note = "Matching exact words: meaning needs embeddings (THREADLINE_EMBEDDINGS)."
        briefs = queries.conversation_briefs(
            db, user.tenant_id, [h.conversation_id for h in result.hits]
        )
        for hit in result.hits:
            message = hit.message
            hits.append(
                {
                    "message": message,
                    "conversation": briefs.get(hit.conversation_id),
                    # store-made: the message's text HTML-escaped, the matched terms in <mark>
                    "snippet": Markup(hit.highlight),
                    "url": f"/c/{hit.conversation_id}#m{message['seq']}",
                }
            )
    context = {
        "user": user,
        "page": "search",
        "q": q,
        "mode": wanted,
        "ran": ran,
        "note": note,
        "modes": MODES,
        "channel": chosen or "",
        "channels": list(Channel),
        "hits": hits,
    }
    return templates.TemplateResponse(request, "search.html", context)
