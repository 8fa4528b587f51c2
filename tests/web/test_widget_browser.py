"""The web-chat widget in headless Chromium: a page served from another origin embeds it with
one script tag; a visitor chats and gets the AI agent's reply (the model played by
tests/fakes_llm.py), the conversation is in the dashboard inbox, and a person's reply from the
dashboard reaches the widget live. Screenshots go to tests/web/artifacts/."""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes_llm import FakeLLM, Turn
from live import LiveServer
from threadline.domain.enums import UserRole
from threadline.store import Database, tenants

from .conftest import PASSWORD, call_api
from .test_web_browser import ARGS, ARTIFACTS, AXE, CHROMIUM

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

EMAIL = "support@example.com"
REPLY = "Yes! We ship to Norway in 3 to 5 days."


class Site:
    """A shop's website on its own origin: one page that embeds the widget."""

    def __init__(self) -> None:
        self.html = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class World:
    def __init__(self, server: LiveServer, key: str, inbox_id: str, site: Site) -> None:
        self.base = server.base
        self.key = key
        self.inbox_id = inbox_id
        self.site = site

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return call_api(self.base, self.key, method, path, body)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fake = FakeLLM()
    fake.default = Turn(REPLY)
    fake.thread.start()
    folder = tmp_path_factory.mktemp("widget")
    url = f"sqlite:///{folder / 'threadline.db'}"
    server = LiveServer(
        folder,
        database_url=url,
        embeddings="none",
        log_level="warning",
        environment="test",
        llm_base_url=fake.url,
        llm_model="gpt-4o-mini",
        agent_poll_seconds="0.2",
        delivery_poll_seconds="0.2",
    )
    with server:
        match = re.search(r"^\s+(tl_[A-Za-z0-9_-]{43})$", server.stdout, re.M)
        assert match, server.stdout
        key = match.group(1)
        db = Database.from_url(url)
        tenant = tenants.get_tenant(db, "default")
        tenants.create_user(db, tenant.id, EMAIL, PASSWORD, UserRole.AGENT, "Sam Support")
        db.dispose()
        headers = {"Authorization": f"Bearer {key}"}
        agent = httpx.post(
            server.base + "/v1/agents",
            json={"name": "Shop assistant", "system_prompt": "You help visitors of our shop."},
            headers=headers,
        ).json()
        site = Site()
        inbox = httpx.post(
            server.base + "/v1/inboxes",
            json={
                "name": "Website chat",
                "channel": "webchat",
                "provider": "widget",
                "address": "shop.example",
                "agent_id": agent["id"],
                "mode": "auto",
                "config": {"allowed_origins": [site.origin], "title": "Shop help"},
            },
            headers=headers,
        )
        assert inbox.status_code == 201, inbox.text
        inbox_id = inbox.json()["id"]
        site.html = _page(server.base, inbox_id)
        yield World(server, key, inbox_id, site)
        site.close()
    fake.server.shutdown()
    fake.server.server_close()


def _page(base: str, inbox_id: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nordic Parcels</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Nordic Parcels</h1><p>We ship everywhere in Scandinavia.</p></main>
<script src="{html.escape(base)}/widget.js" data-inbox="{html.escape(inbox_id)}" async></script>
</body></html>"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def visitor(chromium: Any, world: World) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(world.site.origin + "/")
    yield page
    context.close()
    assert not errors, errors


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_a_visitor_chats_on_another_site_and_the_agent_answers(visitor: Any) -> None:
    launcher = visitor.get_by_role("button", name="Open chat")
    launcher.wait_for()
    launcher.click()
    box = visitor.get_by_role("textbox", name="Your message")
    assert box.evaluate("el => el === el.getRootNode().activeElement")  # focus moved in
    visitor.get_by_role("dialog", name="Shop help").wait_for()
    box.fill("Do you ship to Norway?")
    box.press("Enter")
    visitor.locator(".msg.visitor", has_text="Do you ship to Norway?").wait_for()
    visitor.locator(".msg.agent", has_text=REPLY).wait_for(timeout=20_000)
    _shot(visitor, "widget-chat")


def test_the_conversation_is_in_the_dashboard_and_a_person_replies_live(
    chromium: Any, world: World, visitor: Any
) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    desk = context.new_page()
    desk.goto(world.base + "/")
    desk.fill("input[name=email]", EMAIL)
    desk.fill("input[name=password]", PASSWORD)
    desk.click("button[type=submit]")
    desk.wait_for_url("**/inbox")
    row = desk.locator("#inbox-list .row", has_text=REPLY[:20])
    row.wait_for()
    assert "Web chat" in row.inner_text() or "Website visitor" in row.inner_text()
    row.click()
    desk.wait_for_selector("#thread")
    assert "Do you ship to Norway?" in desk.locator("#thread").inner_text()
    desk.fill("textarea[name=content]", "Sam here: your parcel number is NP-7731.")
    desk.locator("textarea[name=content]").press("Control+Enter")
    visitor.locator(".msg.staff", has_text="NP-7731").wait_for(timeout=15_000)
    context.close()


def test_message_text_is_shown_as_text(visitor: Any) -> None:
    evil = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    box = visitor.get_by_role("textbox", name="Your message")
    box.fill(evil)
    box.press("Enter")
    bubble = visitor.locator(".msg.visitor", has_text="<img src=x")
    bubble.wait_for()
    assert evil in bubble.inner_text()
    assert visitor.evaluate("window.pwned") is None


def test_the_history_survives_a_reload_and_the_keyboard_works(visitor: Any) -> None:
    visitor.reload()
    launcher = visitor.get_by_role("button", name=re.compile("Open chat"))
    launcher.focus()
    visitor.keyboard.press("Enter")
    visitor.locator(".msg.agent", has_text=REPLY).wait_for()
    assert visitor.locator(".msg.visitor").count() >= 2
    visitor.keyboard.press("Escape")
    visitor.get_by_role("dialog").wait_for(state="hidden")
    assert visitor.evaluate(
        "document.activeElement && document.activeElement.hasAttribute('data-threadline-widget')"
    )


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make installs it)")
def test_the_open_widget_has_no_serious_accessibility_violations(visitor: Any) -> None:
    visitor.get_by_role("button", name=re.compile("Open chat")).click()
    visitor.get_by_role("dialog").wait_for()
    visitor.add_script_tag(path=str(AXE))
    result = visitor.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"][:3]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, json.dumps(bad, indent=1)


def test_the_widget_fits_a_phone(chromium: Any, world: World) -> None:
    phone = chromium.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = phone.new_page()
    page.goto(world.site.origin + "/")
    page.get_by_role("button", name="Open chat").tap()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    box = dialog.bounding_box()
    assert box["width"] == pytest.approx(390, abs=1) and box["height"] == pytest.approx(844, abs=1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_role("button", name="Close chat").tap()
    dialog.wait_for(state="hidden")
    _shot(page, "widget-phone")
    phone.close()


def test_a_page_on_another_origin_cannot_open_a_session(world: World) -> None:
    r = httpx.post(
        f"{world.base}/widget/{world.inbox_id}/sessions",
        json={},
        headers={"Origin": "https://not-the-shop.example"},
    )
    assert r.status_code == 403
    assert Path(ARTIFACTS / "widget-chat.png").exists()
