"""Analytics: charts of the tenant's last 30 days."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from threadline.web import analytics, auth
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)


@router.get("/analytics", response_class=HTMLResponse)
def analytics_page(request: Request, user: auth.Reader) -> Response:
    data = analytics.figures(request.app.state.db, user.tenant_id)
    context = {"user": user, "data": data, "page": "analytics"}
    return templates.TemplateResponse(request, "analytics.html", context)
