"""The dashboard in headless Chromium (Debian's, driven by Playwright) against a live
``threadline serve``: sign in, demo data, live updates without a reload (also for signed
Twilio webhooks, and for a change made before the page's stream connects), drafts (one
approved on a Twilio inbox, sent by the server's delivery loop to Twilio's API played on
loopback, its ticks following the provider), script shown as text, accessibility.
Screenshots of the main pages go to tests/web/artifacts/."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from channels.fakes import ProviderAPI, Reply
from channels.helpers import twilio_signed
from live import LiveServer
from threadline.domain.enums import UserRole
from threadline.store import Database, suggestions, tenants

from .conftest import PASSWORD, call_api

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
AXE = Path(__file__).parents[2] / "src/threadline/web/node_modules/axe-core/axe.min.js"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EMAIL = "admin@example.com"
ACCOUNT = "AC" + "7" * 32
TWILIO_TOKEN = "twilio-auth-token"
TWILIO_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
NUMBERS = (f"+1415555{n:04d}" for n in itertools.count(150))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


class Site:
    def __init__(self, server: LiveServer, db: Database, key: str) -> None:
        self.server = server
        self.base = server.base
        self.db = db
        self.key = key
        self.tenant_id = tenants.get_tenant(db, "default").id

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return call_api(self.base, self.key, method, path, body)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'threadline.db'}"
    server = LiveServer(
        folder, database_url=url, embeddings="none", log_level="warning", environment="test"
    )
    with server:
        match = re.search(r"^\s+(tl_[A-Za-z0-9_-]{43})$", server.stdout, re.M)
        assert match, server.stdout
        db = Database.from_url(url)
        tenant = tenants.get_tenant(db, "default")
        tenants.create_user(db, tenant.id, EMAIL, PASSWORD, UserRole.ADMIN, "Alex Admin")
        yield Site(server, db, match.group(1))
        db.dispose()


class SmsLine:
    """A Twilio SMS inbox on the live server, its API played by ``ProviderAPI`` on loopback.

    The server's own delivery loop sends through it (``threadline serve`` runs the worker);
    the test plays Twilio's side: signed inbound webhooks and status callbacks.
    """

    def __init__(self, site: Site, twilio: ProviderAPI) -> None:
        self.site, self.twilio = site, twilio
        self.number = next(NUMBERS)
        self.inbox = site.api(
            "POST",
            "/v1/inboxes",
            {
                "provider": "twilio",
                "name": f"SMS {self.number}",
                "address": self.number,
                "credentials": {"account_sid": ACCOUNT, "auth_token": TWILIO_TOKEN},
                "config": {"api_base_url": twilio.url},
            },
        )

    def webhook(self, name: str, params: dict[str, str]) -> None:
        """POST a webhook signed over the URL Twilio is told to call (the server's public
        URL), to the live server itself."""
        url = self.inbox["webhooks"][name]
        body, headers = twilio_signed(url, params, TWILIO_TOKEN)
        r = httpx.post(self.site.base + urlsplit(url).path, content=body, headers=headers)
        assert r.status_code == 200, r.text

    def texts(self, customer: str, body: str) -> None:
        """The customer sends an SMS: Twilio's inbound webhook, as Twilio posts it."""
        sid = "SM" + uuid.uuid4().hex
        self.webhook(
            "inbound",
            {
                "MessageSid": sid,
                "SmsSid": sid,
                "AccountSid": ACCOUNT,
                "From": customer,
                "To": self.number,
                "Body": body,
                "NumMedia": "0",
                "NumSegments": "1",
                "SmsStatus": "received",
                "ApiVersion": "2010-04-01",
            },
        )

    def status(self, sid: str, status: str, customer: str) -> None:
        self.webhook("status", {"MessageSid": sid, "MessageStatus": status, "To": customer})

    def sent(self) -> list[dict[str, list[str]]]:
        """What Twilio's Messages API was asked to send."""
        return [
            r.form()
            for r in self.twilio.requests
            if r.method == "POST" and r.path.split("?")[0] == TWILIO_PATH
        ]

    def conversation_id(self) -> str:
        listed = self.site.api("GET", f"/v1/conversations?inbox_id={self.inbox['id']}")
        [conv] = listed["data"]
        return str(conv["id"])


@pytest.fixture
def sms(site: Site) -> Iterator[SmsLine]:
    with ProviderAPI() as twilio:
        yield SmsLine(site, twilio)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(chromium: Any, site: Site) -> Iterator[Any]:
    """One signed-in page for the module (the tests run in order, as a tour)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(site.base + "/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "signin.png"))
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox")
    yield page
    context.close()
    assert not errors, errors


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_wrong_password_shows_one_message(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    p = context.new_page()
    p.goto(site.base + "/")
    p.fill("input[name=email]", EMAIL)
    p.fill("input[name=password]", "not it")
    p.click("button[type=submit]")
    assert (
        p.locator("[role=alert]").inner_text() == "That email and password do not match an account."
    )
    context.close()


def test_load_demo_data_from_the_empty_inbox(page: Any) -> None:
    page.wait_for_selector("#load-demo")
    _shot(page, "inbox-empty")
    page.click("#load-demo")
    page.wait_for_selector("#inbox-list .row")
    assert page.locator("#inbox-list .row").count() >= 8
    page.wait_for_selector("#live-dot.on")
    _shot(page, "inbox")


def test_a_new_message_appears_in_the_open_inbox_without_a_reload(page: Any, site: Site) -> None:
    page.goto(site.base + "/inbox")
    page.wait_for_selector("#live-dot.on")
    page.evaluate("window.__sameDocument = true")
    conv = site.api("POST", "/v1/conversations", {"contact": {"name": "Live Larry"}})
    word = f"live-{uuid.uuid4().hex[:8]}"
    site.api("POST", f"/v1/conversations/{conv['id']}/messages", {"role": "user", "content": word})
    page.wait_for_selector(f"#inbox-list .row:has-text('{word}')", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    # and its thread updates live too
    page.goto(f"{site.base}/c/{conv['id']}")
    page.wait_for_selector("#live-dot.on")
    page.evaluate("window.__sameDocument = true")
    second = f"again-{uuid.uuid4().hex[:8]}"
    site.api(
        "POST", f"/v1/conversations/{conv['id']}/messages", {"role": "user", "content": second}
    )
    page.wait_for_selector(f"#thread :text('{second}')", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True


def test_an_sms_webhook_appears_in_the_open_inbox_without_a_reload(
    page: Any, site: Site, sms: SmsLine
) -> None:
    page.goto(site.base + "/inbox")
    page.wait_for_selector("#live-dot.on")
    page.evaluate("window.__sameDocument = true")
    word = f"sms-{uuid.uuid4().hex[:8]}"
    sms.texts("+14155550123", f"Hi, {word} here")
    row = page.wait_for_selector(f"#inbox-list .row:has-text('{word}')", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert row.get_attribute("href") == f"/c/{sms.conversation_id()}"
    # the next text shows in the open conversation, live too
    row.click()
    page.wait_for_selector("#live-dot.on")
    page.evaluate("window.__sameDocument = true")
    again = f"sms-again-{uuid.uuid4().hex[:8]}"
    sms.texts("+14155550123", again)
    page.wait_for_selector(f"#thread .msg.inbound :text('{again}')", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True


def test_a_change_made_before_the_live_stream_connects_is_not_missed(page: Any, site: Site) -> None:
    conv = site.api("POST", "/v1/conversations", {"contact": {"name": "Early Eve"}})
    site.api("POST", f"/v1/conversations/{conv['id']}/messages", {"role": "user", "content": "hi"})
    held: list[Any] = []
    # the page's stream waits until the change is made
    page.route("**/live*", lambda route: held.append(route))
    try:
        with page.expect_request("**/live*"):
            page.goto(f"{site.base}/c/{conv['id']}")
        word = f"early-{uuid.uuid4().hex[:8]}"
        site.api(
            "POST", f"/v1/conversations/{conv['id']}/messages", {"role": "user", "content": word}
        )
        assert word not in page.locator("#thread").inner_text()  # drawn before it was stored
        page.evaluate("window.__sameDocument = true")
        [route] = held
        route.continue_()
        page.wait_for_selector(f"#thread :text('{word}')", timeout=15_000)
        assert page.evaluate("window.__sameDocument") is True
    finally:
        page.unroute("**/live*")


def test_keyboard_moves_through_the_inbox(page: Any, site: Site) -> None:
    page.goto(site.base + "/inbox")
    page.keyboard.press("j")
    page.keyboard.press("j")
    selected = page.locator("#inbox-list .row.selected")
    assert selected.count() == 1
    href = selected.get_attribute("href")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{href}")


def _open(page: Any, site: Site, name: str) -> None:
    page.goto(site.base + "/inbox")
    page.click(f"#inbox-list .row:has-text('{name}')")
    page.wait_for_selector("#thread")


def test_approve_a_draft_and_see_it_sent(page: Any, site: Site) -> None:
    _open(page, site, "Website visitor")
    draft = page.locator("#draft-text").input_value()
    assert "Gutter cleaning" in draft
    _shot(page, "conversation-draft")
    page.click("#approve")
    page.wait_for_selector("#draft", state="detached")
    assert page.locator("#thread .msg.outbound").last.inner_text().startswith("Hi! Gutter")


def test_approve_a_draft_on_an_sms_inbox_and_see_it_delivered(
    page: Any, site: Site, sms: SmsLine
) -> None:
    customer = "+14155550199"
    sms.texts(customer, "Can you come on Friday?")
    cid = sms.conversation_id()
    [inbound] = site.api("GET", f"/v1/conversations/{cid}/messages")["data"]
    text = f"Yes, Friday at 9am works. ({uuid.uuid4().hex[:6]})"
    suggestions.create_pending(
        site.db,
        site.tenant_id,
        {
            "conversation_id": uuid.UUID(cid),
            "in_reply_to_message_id": uuid.UUID(inbound["id"]),
            "content": text,
        },
    )
    sid = "SM" + uuid.uuid4().hex
    sms.twilio.reply("POST", TWILIO_PATH, Reply(201, {"sid": sid, "status": "queued"}))
    page.goto(f"{site.base}/c/{cid}")
    assert page.locator("#draft-text").input_value() == text
    page.click("#approve")
    page.wait_for_selector("#draft", state="detached")
    page.wait_for_selector("#live-dot.on")
    page.evaluate("window.__sameDocument = true")
    # the server's delivery loop sends it through Twilio's API; the tick turns to sent live
    page.wait_for_selector("#thread .msg.outbound .tick-sent", timeout=20_000)
    [form] = sms.sent()
    assert form["Body"] == [text]
    assert (form["To"], form["From"]) == ([customer], [sms.number])
    assert form["StatusCallback"] == [sms.inbox["webhooks"]["status"]]
    # Twilio calls back: delivered, and the tick updates without a reload
    sms.status(sid, "delivered", customer)
    page.wait_for_selector("#thread .msg.outbound .tick-delivered", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True
    bubble = page.locator("#thread .msg.outbound").last
    assert text in bubble.inner_text()
    [row] = suggestions.list_for(site.db, site.tenant_id, conversation_id=uuid.UUID(cid))
    assert row.status == "approved"
    reply = site.api("GET", f"/v1/conversations/{cid}/messages")["data"][-1]
    assert reply["id"] == str(row.sent_message_id)
    assert reply["delivery_status"] == "delivered"
    told = site.api("GET", f"/v1/messages/{reply['id']}/events")["data"]
    assert sorted((e["status"], e["external_message_id"]) for e in told) == [
        ("delivered", sid),
        ("sent", sid),
    ]
    _shot(page, "conversation-sms-delivered")


def _new_draft(site: Site, text: str) -> str:
    conv = site.api("POST", "/v1/conversations", {"contact": {"name": f"Drafty {text}"}})
    [msg] = [
        site.api(
            "POST",
            f"/v1/conversations/{conv['id']}/messages",
            {"role": "user", "content": "question?"},
        )
    ]
    suggestions.create_pending(
        site.db,
        site.tenant_id,
        {
            "conversation_id": uuid.UUID(conv["id"]),
            "in_reply_to_message_id": uuid.UUID(msg["id"]),
            "content": text,
        },
    )
    return str(conv["id"])


def test_edit_a_draft_before_sending(page: Any, site: Site) -> None:
    cid = _new_draft(site, "as drafted")
    page.goto(f"{site.base}/c/{cid}")
    page.fill("#draft-text", "as edited by a person")
    page.click("#approve")
    page.wait_for_selector("#draft", state="detached")
    assert "as edited by a person" in page.locator("#thread").inner_text()
    [row] = suggestions.list_for(site.db, site.tenant_id, conversation_id=uuid.UUID(cid))
    assert row.status == "edited" and row.edited_content == "as edited by a person"


def test_reject_a_draft_with_feedback(page: Any, site: Site) -> None:
    cid = _new_draft(site, "a bad idea")
    page.goto(f"{site.base}/c/{cid}")
    page.fill("#feedback", "wrong price")
    page.click("#reject")
    page.wait_for_selector("#draft", state="detached")
    assert "a bad idea" not in page.locator("#thread").inner_text()
    [row] = suggestions.list_for(site.db, site.tenant_id, conversation_id=uuid.UUID(cid))
    assert row.status == "rejected" and row.feedback == "wrong price"


def test_script_in_message_content_is_shown_as_text(page: Any, site: Site) -> None:
    evil = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    conv = site.api("POST", "/v1/conversations", {"contact": {"name": "Mallory"}, "title": evil})
    site.api(
        "POST",
        f"/v1/conversations/{conv['id']}/messages",
        {"role": "user", "content": evil, "content_html": f"<p>hello</p>{evil}"},
    )
    site.api("POST", f"/v1/conversations/{conv['id']}/messages", {"role": "user", "content": evil})
    page.goto(f"{site.base}/c/{conv['id']}")
    assert page.evaluate("window.pwned") is None
    assert evil in page.locator("#thread").inner_text()
    page.goto(site.base + "/inbox")
    assert page.evaluate("window.pwned") is None
    assert page.locator(f"#inbox-list .row:has-text('{evil[:20]}')").count() >= 1


def test_screenshots_of_the_main_pages(page: Any, site: Site, chromium: Any) -> None:
    for name, title in (
        ("conversation-email", "Priya"),
        ("conversation-voice", "Linda"),
        ("conversation-whatsapp", "Kenji"),
    ):
        _open(page, site, title)
        _shot(page, name)
    page.click("text=Whole history")
    page.wait_for_selector(".thread")
    _shot(page, "contact")
    page.goto(site.base + "/analytics")
    page.wait_for_function("window.Chart && Chart.getChart('volume')")
    _shot(page, "analytics")
    # a phone, in dark mode
    phone = chromium.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="dark", device_scale_factor=2
    )
    phone.add_cookies(page.context.cookies())
    p = phone.new_page()
    p.goto(site.base + "/inbox")
    p.wait_for_selector("#inbox-list .row")
    width = p.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the inbox scrolls sideways on a phone"
    p.screenshot(path=str(ARTIFACTS / "inbox-phone-dark.png"), full_page=True)
    _open(p, site, "Kenji")
    p.screenshot(path=str(ARTIFACTS / "conversation-phone-dark.png"), full_page=True)
    phone.close()
    assert sorted(x.name for x in ARTIFACTS.glob("*.png"))


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make installs it)")
def test_main_pages_have_no_serious_accessibility_violations(page: Any, site: Site) -> None:
    urls = ["/inbox"]
    _open(page, site, "Priya")
    urls.append(page.url.replace(site.base, ""))
    page.click("text=Whole history")
    urls.append(page.url.replace(site.base, ""))
    page.goto(site.base + "/settings")
    urls.append(page.locator("#agents a").first.get_attribute("href"))
    urls += [
        "/settings",
        "/settings/inboxes/new?provider=twilio",
        "/settings/inboxes/new?provider=widget",
        "/search",
        "/search?q=invoice",
    ]
    problems = {}
    for url in urls:
        page.goto(site.base + url)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        bad = [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:3]]}
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if bad:
            problems[url] = bad
    assert not problems, json.dumps(problems, indent=1)


def test_erase_a_demo_contact_and_their_words_are_gone(page: Any, site: Site) -> None:
    _open(page, site, "Grace Liu")
    page.click("text=Whole history")
    page.wait_for_selector("#privacy")
    said = page.locator(".thread .msg .text").first.inner_text()
    assert said and said in page.locator(".thread").inner_text()
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["contact"]["name"] == "Grace Liu"
    page.click("#erase summary")
    assert page.locator("#erase-submit").is_disabled()
    page.fill("#erase-confirm", "Grace")
    assert page.locator("#erase-submit").is_disabled()
    page.fill("#erase-confirm", "grace liu")
    _shot(page, "contact-erase")
    page.click("#erase-submit")
    page.wait_for_selector("#erased")
    text = page.locator("main").inner_text()
    assert said not in text and "Grace Liu" not in text
    assert "Erased the text of" in text


def test_add_an_inbox_with_the_providers_form(page: Any, site: Site) -> None:
    page.goto(site.base + "/settings")
    page.click("#new-inbox")
    page.wait_for_url("**/settings/inboxes/new")
    page.evaluate("window.__sameDocument = true")
    page.select_option("#provider", "postmark")
    page.wait_for_selector("#cred-server_token")
    assert page.evaluate("window.__sameDocument") is True  # swapped in, no reload
    assert page.get_attribute("#cred-server_token", "type") == "password"
    page.select_option("#provider", "twilio")
    page.wait_for_selector("#cred-account_sid")
    assert page.url.endswith("provider=twilio")
    _shot(page, "settings-inbox-new")
    page.select_option("#provider", "postmark")
    page.wait_for_selector("#cred-server_token")
    page.fill("#f-name", "Billing email")
    page.fill("#f-address", "billing@brighthome.example")
    page.fill("#cred-server_token", "pm-server-token")
    page.click("#create-inbox")
    page.wait_for_selector("#inbox-created")
    inbound = page.input_value("#copy-inbound")
    assert "/webhooks/postmark/" in inbound and "@127.0.0.1" in inbound
    assert page.input_value("#secret-webhook_password") in inbound
    assert "pm-server-token" not in page.content()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base)
    page.click("button[data-copy=copy-inbound]")
    page.wait_for_selector("button[data-copy=copy-inbound]:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == inbound
    _shot(page, "settings-inbox-created")


def test_prompt_editor_previews_as_you_type(page: Any, site: Site) -> None:
    page.goto(site.base + "/settings")
    page.click("#agents a:text('Ava')")
    page.wait_for_selector("#prompt")
    maria = page.locator("#preview-conversation option", has_text="Maria Lopez").first
    page.select_option("#preview-conversation", maria.get_attribute("value"))
    page.wait_for_selector("#rendered:has-text('Maria Lopez')")
    page.evaluate("window.__sameDocument = true")
    page.evaluate(
        "window.__previews = 0; document.body.addEventListener('htmx:afterRequest',"
        " () => window.__previews++)"
    )
    page.click("#prompt")
    page.keyboard.press("Control+End")
    page.keyboard.type(" Plan: {{ contact.plan }}. Hello {{ contact_first_name }}!", delay=5)
    page.wait_for_selector("#rendered:has-text('Hello Maria!')")
    page.wait_for_selector("#missing code:text('contact.plan')")
    assert page.evaluate("window.__previews") <= 3  # debounced, not one per key
    assert page.evaluate("window.__sameDocument") is True
    _shot(page, "settings-agent-prompt")
    page.keyboard.type(" {{ broken")
    page.wait_for_selector("#template-error")
    for _ in range(len(" {{ broken")):
        page.keyboard.press("Backspace")
    page.wait_for_selector("#rendered:has-text('Hello Maria!')")
    page.click("#save-prompt")
    page.wait_for_selector("#saved")
    assert "{{ contact.plan }}" in page.input_value("#prompt")


def test_search_finds_a_demo_message(page: Any, site: Site) -> None:
    page.goto(site.base + "/inbox")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "top-search"
    page.keyboard.type("invoice")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=invoice")
    hit = page.locator("#hits .hit").first
    assert hit.locator("mark").first.inner_text().lower() == "invoice"
    assert "Priya Natarajan" in hit.inner_text()
    _shot(page, "search")
    hit.click()
    page.wait_for_selector("#thread")
    assert "#m" in page.url and "invoice" in page.locator("#thread").inner_text().lower()
