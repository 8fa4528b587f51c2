"""``threadline serve`` as a real process, for the tests that need a live server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def threadline_env(**settings: str) -> dict[str, str]:
    """The test process's environment without any THREADLINE_ setting, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    return env | {f"THREADLINE_{k.upper()}": v for k, v in settings.items()}


class LiveServer:
    """``threadline serve`` on a free port, run in ``cwd`` with ``settings``.

    Its standard output and error are kept in ``<logs>.out`` and ``<logs>.err`` (appended to
    across restarts). ``start`` waits until ``/healthz`` answers; ``stop`` sends Ctrl-C and
    kills the process if it has not exited within 20 s. As a context manager it starts and
    stops once.
    """

    def __init__(self, cwd: Path, logs: Path | None = None, **settings: str) -> None:
        self.cwd = cwd
        logs = logs or cwd / "server"
        self.out, self.err = logs.with_suffix(".out"), logs.with_suffix(".err")
        self.env = threadline_env(**settings)
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def start(self) -> LiveServer:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "threadline", "serve", "--host", "127.0.0.1"]
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(port)], cwd=self.cwd, env=self.env, stdout=out, stderr=err
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.stdout}\n{self.stderr}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the server did not start:\n{self.stderr}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
