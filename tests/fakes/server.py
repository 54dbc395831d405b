"""What every fake service shares: a real HTTP server on 127.0.0.1, a record of every request
(headers too, so tests can prove a key never reached a file host), injected faults, and a
separate file host ("CDN") whose links expire.

A fake subclasses FakeServer and registers routes: `self.route("POST", r"/v1/tasks", handler)`;
a handler gets a Call and returns Reply(status, body, headers) (a dict/list body is sent as JSON).
Faults are queued per route name and consumed one by one:

    fake.fault("create", Fault.lost_reply())   # the job is made, the reply never arrives
    fake.fault("status", Fault.status(429, retry_after=1), times=2)
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    match: re.Match | None = None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """One injected misbehaviour. `kind`: 'status' (answer `status` with `body`, before the handler
    runs: nothing is made), 'after' (run the handler, then answer `status` instead: the job exists),
    'lost_reply' (run the handler, then close the connection without answering), 'hang' (wait
    `seconds` before answering normally), 'reset' (close at once: nothing is made)."""

    kind: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def status_(cls, status: int, body: Any = None, retry_after: float | None = None, **headers) -> Fault:
        hdrs = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        hdrs.update(headers)
        return cls("status", status, body, hdrs)

    @classmethod
    def after(cls, status: int = 502, body: Any = None) -> Fault:
        return cls("after", status, body)

    @classmethod
    def lost_reply(cls) -> Fault:
        return cls("lost_reply")

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        return cls("hang", seconds=seconds)

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 with routes, a request log and fault queues."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._routes: list[tuple[str, str, re.Pattern, Callable[[Call], Reply]]] = []
        self._faults: dict[str, list[Fault]] = {}
        self.lock = threading.RLock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:
                pass

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-" + type(self).__name__, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # -- set-up ------------------------------------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Callable[[Call], Reply], name: str = "") -> None:
        """`name` is what faults are queued under (default: the handler's name)."""
        self._routes.append((method, name or handler.__name__.lstrip("_"), re.compile(pattern + r"\Z"), handler))

    def fault(self, route_name: str, fault: Fault, times: int = 1) -> None:
        with self.lock:
            self._faults.setdefault(route_name, []).extend([fault] * times)

    def calls_to(self, route_name_or_pattern: str, method: str | None = None) -> list[Call]:
        pattern = re.compile(route_name_or_pattern)
        return [c for c in self.calls if pattern.search(c.path) and (method is None or c.method == method)]

    # -- serving -----------------------------------------------------------------------------------------------------

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        call = Call(h.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in h.headers.items()}, body)
        with self.lock:
            self.calls.append(call)
        for method, name, pattern, handler in self._routes:
            match = pattern.match(parts.path)
            if method == h.command and match:
                call.match = match
                break
        else:
            return _send(h, Reply(404, {"detail": "Not Found"}))
        with self.lock:
            queued = self._faults.get(name) or []
            fault = queued.pop(0) if queued else None
        if fault is not None and fault.kind == "reset":
            h.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            return _send(h, Reply(fault.status, fault.body, fault.headers))
        if fault is not None and fault.kind == "hang":
            time.sleep(fault.seconds)
        try:
            reply = handler(call)
        except Exception as e:  # a bug in a fake is an internal server error, as on a real server
            reply = Reply(500, {"detail": f"fake failed: {e!r}"})
        if fault is not None and fault.kind == "lost_reply":
            h.close_connection = True
            return
        if fault is not None and fault.kind == "after":
            reply = Reply(fault.status, fault.body, fault.headers)
        _send(h, reply)


def _send(h: BaseHTTPRequestHandler, reply: Reply) -> None:
    body = reply.body
    headers = dict(reply.headers)
    if isinstance(body, _Cut):  # a short body under the full length, then the connection closes
        h.send_response(reply.status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(body.full))
        h.end_headers()
        h.wfile.write(bytes(body))
        h.wfile.flush()
        h.close_connection = True
        return
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.encode()
        headers.setdefault("Content-Type", "text/html; charset=utf-8")
    else:
        data = body or b""
    h.send_response(reply.status)
    for k, v in headers.items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)


class Cdn(FakeServer):
    """The file host the services' output links point to: another origin, no key wanted (a key
    that arrives is recorded, and the test fails on it), links that expire, and download faults:
    'reset' (half the file under the full Content-Length, then the connection drops), 'truncate' (the first half of the clip as a whole,
    well-formed reply: only the file's structure shows it is cut), 'html' (a login page)."""

    def __init__(self, ttl: float = 3600.0) -> None:
        super().__init__()
        self.ttl = ttl
        self._files: dict[str, tuple[bytes, float, str]] = {}
        self._file_faults: list[str] = []
        self.route("GET", r"/files/(?P<token>[0-9a-f]+)/(?P<name>[^/]+)", self._file, name="file")

    def publish(self, data: bytes, name: str = "output.mp4", mime: str = "video/mp4") -> str:
        token = uuid.uuid4().hex
        with self.lock:
            self._files[token] = (data, time.monotonic() + self.ttl, mime)
        return f"{self.url}/files/{token}/{name}"

    def expire_all(self) -> None:
        with self.lock:
            self._files = {t: (d, 0.0, m) for t, (d, _e, m) in self._files.items()}

    def download_fault(self, kind: str, times: int = 1) -> None:
        with self.lock:
            self._file_faults.extend([kind] * times)

    def keys_seen(self) -> list[str]:
        """Authorization-like headers that reached the file host (must stay empty)."""
        wanted = ("authorization", "x-goog-api-key", "x-api-key", "x-key")
        return [f"{k}: {v}" for c in self.calls for k, v in c.headers.items() if k in wanted]

    def _file(self, call: Call) -> Reply:
        with self.lock:
            entry = self._files.get(call.match["token"])
            fault = self._file_faults.pop(0) if self._file_faults else None
        if entry is None:
            return Reply(404, "<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"})
        data, expires, mime = entry
        if time.monotonic() > expires:
            return Reply(403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                         {"Content-Type": "application/xml"})
        if fault == "html":
            return Reply(200, "<!DOCTYPE html><html><body>Sign in</body></html>")
        if fault == "reset":
            return Reply(200, _Cut(data[: len(data) // 2], len(data)), {"Content-Type": mime})
        if fault == "truncate":
            return Reply(200, data[: len(data) // 2], {"Content-Type": mime})
        return Reply(200, data, {"Content-Type": mime})


class _Cut(bytes):
    """A body sent short of the `full` length its reply announces."""

    def __new__(cls, data: bytes, full: int):
        obj = super().__new__(cls, data)
        obj.full = full
        return obj
