"""Helpers shared by the benchmarks in bench/: timing, statistics, formatting and output.

Nothing here knows about Threadline; each benchmark script builds its own fixtures and
hands a list of ``Row`` objects to ``render`` and ``write_json``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# A wide table even when the output is a pipe or a file, where Rich would assume 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)

VOCABULARY = (
    "hi thanks order delivery tomorrow price quote booking available monday please call "
    "address invoice refund question appointment confirm schedule sorry great sure when "
    "where how much estimate kitchen plumbing leak repair service today window visit time "
    "could would should team next week morning afternoon evening details photo send follow"
)


def message_texts(count: int, seed: int = 42) -> list[str]:
    """``count`` chat-like texts of 8 to 60 words (about 50 to 400 characters)."""
    rng = random.Random(seed)
    words = VOCABULARY.split()
    texts = []
    for _ in range(count):
        picked = rng.choices(words, k=rng.randint(8, 60))
        texts.append(" ".join(picked).capitalize() + rng.choice(".?!"))
    return texts


# --- timing ----------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock durations of single calls, and the process CPU time they used in total."""

    durations: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    def extend(self, other: Timing) -> None:
        self.durations += other.durations
        self.cpu_s += other.cpu_s


def timed_calls(
    fn: Callable[[Any], object],
    args: Iterable[Any],
    *,
    budget_s: float = math.inf,
    min_calls: int = 10,
) -> Timing:
    """Call ``fn(arg)`` for each arg, timing each call.

    Stops early once ``budget_s`` has passed and at least ``min_calls`` calls were made, so
    slow baselines get fewer samples instead of stretching the run.
    """
    timing = Timing()
    started, cpu_started = time.perf_counter(), time.process_time()
    for arg in args:
        t0 = time.perf_counter_ns()
        fn(arg)
        timing.durations.append((time.perf_counter_ns() - t0) / 1e9)
        if len(timing.durations) >= min_calls and time.perf_counter() - started > budget_s:
            break
    timing.cpu_s = time.process_time() - cpu_started
    return timing


def compare(
    systems: dict[str, Callable[[Any], object]],
    args: Sequence[Any],
    *,
    rounds: int = 10,
    budget_s: float = math.inf,
) -> dict[str, Timing]:
    """Time every system on the same arguments, taking turns in ``rounds``.

    Taking turns means a slow spell of the machine (other processes, I/O bursts) falls on
    all systems alike instead of on whichever happened to run then. Each system gets at
    most ``budget_s`` in all, spread over the rounds.
    """
    size = math.ceil(len(args) / rounds)
    timings = {name: Timing() for name in systems}
    for r in range(rounds):
        part = args[r * size : (r + 1) * size]
        for name, fn in systems.items():
            timings[name].extend(timed_calls(fn, part, budget_s=budget_s / rounds, min_calls=2))
    return timings


def quantile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (q in 0..1) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """Percentiles of a latency sample, and the mean CPU time per call, in milliseconds."""

    p50: float
    p95: float
    p99: float
    mean: float
    cpu_mean: float
    n: int

    @classmethod
    def of(cls, timing: Timing) -> Latency:
        ms = [d * 1000 for d in timing.durations]
        return cls(
            p50=quantile(ms, 0.50),
            p95=quantile(ms, 0.95),
            p99=quantile(ms, 0.99),
            mean=sum(ms) / len(ms),
            cpu_mean=timing.cpu_s * 1000 / len(ms),
            n=len(ms),
        )

    def short(self) -> str:
        return f"{fmt_ms(self.p50)} / {fmt_ms(self.p95)} / {fmt_ms(self.p99)}"


def fsync_latency(folder: Path, count: int = 100) -> float:
    """Median milliseconds to write 16 kB and fsync it, in ``folder``: the disk's commit cost."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        timing = []
        for i in range(count):
            os.pwrite(fd, b"x" * 16384, (i % 16) * 16384)
            t0 = time.perf_counter()
            os.fsync(fd)
            timing.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return quantile(timing, 0.5) * 1000


def cpu_reference() -> float:
    """Milliseconds for a fixed pure-Python loop: how fast (and how busy) this machine is."""
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - t0)
    return best * 1000


# --- formatting ------------------------------------------------------------------------


def fmt_ms(ms: float) -> str:
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    if ms < 100:
        return f"{ms:.2f} ms"
    return f"{ms:,.0f} ms"


def fmt_rate(per_s: float) -> str:
    return f"{per_s:,.0f} msg/s"


def fmt_bytes(n: float) -> str:
    if n < 10_000:
        return f"{n:,.0f} B"
    if n < 10_000_000:
        return f"{n / 1000:,.1f} kB"
    return f"{n / 1_000_000:,.1f} MB"


def fmt_count(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def slower(ratio: float) -> str:
    """Threadline time / baseline time, as read by a person."""
    return f"{ratio:.2f}x slower" if ratio >= 1 else f"{1 / ratio:.2f}x faster"


def faster(speedup: float) -> str:
    """Baseline time / Threadline time."""
    return f"{speedup:,.1f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"


# --- results ---------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table, with the numbers behind it for the JSON file."""

    measure: str
    size: str
    threadline: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)


def render(rows: Sequence[Row], title: str, notes: Sequence[str] = ()) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for name, justify in (
        ("measure", "left"),
        ("size", "left"),
        ("Threadline", "right"),
        ("baseline(s)", "left"),
        ("ratio", "right"),
        ("target", "left"),
        ("met?", "center"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous = None
    for row in rows:
        if previous is not None and row.measure.split(":")[0] != previous:
            table.add_section()
        previous = row.measure.split(":")[0]
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: ""}[row.met]
        table.add_row(
            row.measure, row.size, row.threadline, row.baseline, row.ratio, row.target, met
        )
    console.print(table)
    for note in notes:
        console.print(f"[dim]- {note}[/]")


def environment(packages: Sequence[str]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": versions,
    }


def write_json(path: Path, payload: dict[str, Any], rows: Sequence[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = payload | {"rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
