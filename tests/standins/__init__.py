"""Loopback stand-ins for SMTP, the Slack Web API and the LINE Messaging API.

Each runs in-process (see ``tests.standins.fixtures``) or as its own process
(``python -m tests.standins.slack_api --port N --log FILE``) for tests whose workers live outside the
test process. Every stand-in counts what it accepted per recipient so tests can assert "exactly once".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (aiosmtpd cannot bind port 0 itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = HOST, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records a stand-in appended to its ``--log`` file (missing file: none yet)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def spawn(module: str, port: int, log: str | Path, *extra: str) -> subprocess.Popen[bytes]:
    """Start ``python -m tests.standins.<module>`` and return once it listens; the caller terminates it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", f"tests.standins.{module}", "--port", str(port), "--log", str(log), *extra],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        raise
    return proc


def control(base_url: str, action: str, **params: Any) -> dict[str, Any]:
    """Drive an HTTP stand-in in another process: ``control(url, "rate_limit", n=2)``, ``"state"``."""
    body = json.dumps(params).encode()
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/_control/{action}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


Reply = tuple[int, dict[str, str], dict[str, Any]]
DROP = 0  # a handler's status: close the connection without answering (the request was acted upon)


class HttpStandIn:
    """A ThreadingHTTPServer on loopback with recording, per-recipient counts and /_control endpoints."""

    def __init__(self, port: int | None = None, log_path: str | Path | None = None, host: str = HOST) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else None
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.requests = 0  # every API call seen, accepted or not
        self.fail_next_n = 0
        self.fail_status = 500
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                standin._dispatch(self)

            def do_GET(self) -> None:
                standin._dispatch(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour knobs ------------------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 500) -> None:
        with self.lock:
            self.fail_next_n, self.fail_status = n, status

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.counts.clear()
            self.requests = 0
            self.fail_next_n = 0

    def count_for(self, recipient: str) -> int:
        with self.lock:
            return self.counts[recipient]

    def record(self, recipient: str, item: dict[str, Any]) -> None:
        """Remember one accepted message (call with ``self.lock`` held)."""
        item = {"recipient": recipient, "received_at": time.time(), **item}
        self.records.append(item)
        self.counts[recipient] += 1
        if self.log_path is not None:
            with self.log_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"records": list(self.records), "counts": dict(self.counts), "requests": self.requests}

    # -- subclass API ---------------------------------------------------------------------------------
    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        raise NotImplementedError

    def control(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action == "fail":
            self.fail_next(int(params.get("n", 1)), int(params.get("status", 500)))
        elif action == "reset":
            self.reset()
        elif action != "state":
            raise KeyError(action)
        return self.state()

    # -- plumbing -------------------------------------------------------------------------------------
    def _dispatch(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in request.headers.items()}
        path, _, query = request.path.partition("?")
        status: int
        extra: dict[str, str] = {}
        payload: dict[str, Any]
        try:
            body = _parse_body(headers.get("content-type", ""), raw, query)
        except ValueError:
            status, payload = 400, {"ok": False, "message": "malformed body"}
        else:
            if path.startswith("/_control/"):
                try:
                    status, payload = 200, self.control(path.removeprefix("/_control/"), body)
                except KeyError:
                    status, payload = 404, {"message": "unknown control action"}
            else:
                status, extra, payload = self.handle(path, headers, body)
        if status == DROP:  # accepted, but the line drops before the answer: the client is in doubt
            request.close_connection = True
            with contextlib.suppress(OSError):
                request.connection.shutdown(socket.SHUT_RDWR)
            return
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)


def _parse_body(content_type: str, raw: bytes, query: str) -> dict[str, Any]:
    fields: dict[str, Any] = dict(parse_qsl(query))
    if "json" in content_type and raw:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("JSON body must be an object")
        fields.update(parsed)
    elif "x-www-form-urlencoded" in content_type:
        fields.update(parse_qsl(raw.decode("utf-8")))
    elif raw:
        raise ValueError(f"unsupported content type {content_type!r}")
    return fields


def serve_until_signalled(start: Callable[[], object], stop: Callable[[], object], banner: str) -> None:
    """CLI main loop: start, say where we listen, stop cleanly on SIGTERM/SIGINT."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    start()
    print(banner, flush=True)
    done.wait()
    stop()


def add_common_args(parser: Any) -> None:
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    parser.add_argument("--log", default=None, help="append each accepted message to this JSONL file")
