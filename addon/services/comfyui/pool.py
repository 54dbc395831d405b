"""Several ComfyUI servers as one: which answer, which is least loaded, where a prompt is, and
where a job goes when its server went down (service-apis.md §7.6).

A server that does not answer is skipped and rejoins as soon as it answers again. A job whose
server has been down longer than `move_after` seconds, or whose server came back without it (a
restarted ComfyUI keeps neither queue nor history), is queued again on the least-loaded server
that is up, under a NEW prompt id derived from the first (`Placement.moved`): the old id can never
give a result we could fetch, and a derived one can be found again after Blender restarts.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from .. import http
from ..base import ServiceError

MAX_MOVES = 3  # a job moved this often is failing for a reason of its own
_MOVED = uuid.UUID("5d1c5e0e-6f2e-4f7c-9a55-0c0f1e5b7a11")  # namespace of derived prompt ids


def normalise(url: str) -> str:
    """'host:8188' -> 'http://host:8188'; no trailing slash. Raises ServiceError for other schemes."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(f"Not a ComfyUI server address: {url!r} (expected http://host:port).")
    return url


@dataclass(frozen=True)
class Placement:
    """Where a job runs: a server, the prompt id we chose, and the websocket client id events go to.
    Its JSON text is the job's remote id."""

    server: str
    prompt_id: str
    client_id: str
    origin: str = ""  # the first prompt id, for a moved job ("" = this is the first)
    moves: int = 0

    def to_text(self) -> str:
        data = {"server": self.server, "prompt_id": self.prompt_id, "client_id": self.client_id}
        if self.moves:
            data.update(origin=self.origin, moves=self.moves)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> Placement:
        try:
            data = json.loads(text)
            return cls(str(data["server"]), str(data["prompt_id"]), str(data["client_id"]),
                       str(data.get("origin", "")), int(data.get("moves", 0)))
        except (ValueError, TypeError, KeyError):
            raise ServiceError(f"Not a ComfyUI job id: {text[:80]!r}.") from None

    @classmethod
    def new(cls, server: str) -> Placement:
        return cls(server, str(uuid.uuid4()), uuid.uuid4().hex)

    def moved(self, server: str, moves: int | None = None) -> Placement:
        """The placement of this job's next move (or of move number `moves`) on `server`."""
        origin = self.origin or self.prompt_id
        n = self.moves + 1 if moves is None else moves
        return Placement(server, str(uuid.uuid5(_MOVED, f"{origin}#{n}")), uuid.uuid5(_MOVED, f"{origin}#{n}/ws").hex,
                         origin, n)


@dataclass
class Where:
    """A prompt's state on its server: 'pending' (with its place in the line), 'running',
    'finished' (with its history entry), 'gone' (the server does not know it) or 'down'."""

    state: str
    ahead: int = 0
    entry: dict | None = None


class Server:
    """One ComfyUI: a patient client for uploads, prompts and downloads, a quick one for status."""

    def __init__(self, url: str):
        self.url = url
        self.name = urlsplit(url).netloc
        label = f"ComfyUI at {self.name}"
        self.api = http.Api(label, url)
        self.quick = http.Api(label, url, max_attempts=1, timeout=(3.0, 10.0))
        self.down_since: float | None = None
        self.reserved = 0  # prompts being queued here right now (not in its /queue yet)


class Pool:
    def __init__(self, urls: list[str], move_after: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.servers = [Server(u) for u in dict.fromkeys(normalise(u) for u in urls)]
        self.move_after = move_after
        self._clock = clock
        self._lock = threading.Lock()
        self._others: dict[str, Server] = {}  # servers a resumed job names that are no longer configured

    def server(self, url: str) -> Server:
        url = normalise(url)
        with self._lock:
            for s in self.servers:
                if s.url == url:
                    return s
            return self._others.setdefault(url, Server(url))

    # -- asking a server ----------------------------------------------------------------------------------------

    def ask(self, server: Server, path: str) -> Any:
        """GET `path` once; None when the server does not answer (it is marked down)."""
        try:
            body = server.quick.get(path)
        except http.ApiError:
            self._mark(server, up=True)  # it answered, with an error: up, and the caller hears why
            raise
        except ServiceError:
            self._mark(server, up=False)
            return None
        self._mark(server, up=True)
        return body

    def _mark(self, server: Server, up: bool) -> None:
        with self._lock:
            if up:
                server.down_since = None
            elif server.down_since is None:
                server.down_since = self._clock()

    def down_for(self, server: Server) -> float:
        with self._lock:
            return 0.0 if server.down_since is None else self._clock() - server.down_since

    def queued(self, server: Server) -> int | None:
        """Prompts running and waiting there; None when it does not answer."""
        queue = self.ask(server, "queue")
        if not isinstance(queue, dict):
            return None
        return len(queue.get("queue_running") or []) + len(queue.get("queue_pending") or [])

    def choose(self, exclude: tuple[str, ...] = ()) -> Server:
        """The least-loaded server that answers (the first listed among equals), reserved for one
        prompt until `release`. Raises ServiceError (retryable) when none answers."""
        loads = []
        for server in self.servers:
            if server.url in exclude:
                continue
            try:
                load = self.queued(server)
            except http.ApiError:
                continue  # up but not answering /queue properly: not a place for a job
            if load is not None:
                loads.append((load, server))
        with self._lock:
            if not loads:
                names = ", ".join(s.name for s in self.servers if s.url not in exclude) or "none other"
                raise ServiceError(f"No ComfyUI server is answering ({names}).", retryable=True)
            server = min(loads, key=lambda pair: pair[0] + pair[1].reserved)[1]
            server.reserved += 1
            return server

    def release(self, server: Server) -> None:
        with self._lock:
            server.reserved = max(0, server.reserved - 1)

    def locate(self, placement: Placement) -> Where:
        """Where the prompt is now: history first (a finished prompt has left the queue)."""
        server = self.server(placement.server)
        history = self.ask(server, f"history/{placement.prompt_id}")
        if history is None:
            return Where("down")
        if isinstance(history, dict) and isinstance(history.get(placement.prompt_id), dict):
            return Where("finished", entry=history[placement.prompt_id])
        queue = self.ask(server, "queue")
        if not isinstance(queue, dict):
            return Where("down")
        if any(_prompt_id(item) == placement.prompt_id for item in queue.get("queue_running") or []):
            return Where("running")
        pending = sorted((item for item in queue.get("queue_pending") or [] if _prompt_id(item)),
                         key=lambda item: _number(item))
        for ahead, item in enumerate(pending):
            if _prompt_id(item) == placement.prompt_id:
                return Where("pending", ahead=ahead)
        # Between our two reads it may have finished: history has it then.
        history = self.ask(server, f"history/{placement.prompt_id}")
        if isinstance(history, dict) and isinstance(history.get(placement.prompt_id), dict):
            return Where("finished", entry=history[placement.prompt_id])
        return Where("down") if history is None else Where("gone")

    # -- moving a job -------------------------------------------------------------------------------------------

    def should_move(self, placement: Placement, where: Where) -> bool:
        """Its server lost it (came back without it), or has been down past `move_after`."""
        if placement.moves >= MAX_MOVES:
            return False
        if where.state == "gone":
            return True
        return where.state == "down" and self.down_for(self.server(placement.server)) >= self.move_after

    def move(self, placement: Placement, queue: Callable[[Server, Placement], None]) -> Placement:
        """Queue the job again, on the least-loaded server that is up (its own server too, when it
        came back empty), under the next derived prompt id; `queue(server, new)` does the queuing.
        Raises ServiceError (retryable) when no server can take it."""
        old = self.server(placement.server)
        exclude = (old.url,) if old.down_since is not None else ()
        server = self.choose(exclude)
        try:
            new = placement.moved(server.url)
            queue(server, new)
            return new
        finally:
            self.release(server)

    def find_moved(self, placement: Placement) -> tuple[Placement, Where] | None:
        """A moved copy of this job on any server that answers (after Blender restarted, only the
        first placement is known): the latest move found, or None."""
        for n in range(MAX_MOVES, placement.moves, -1):
            for server in self.servers:
                candidate = placement.moved(server.url, n)
                where = self.locate(candidate)
                if where.state in ("pending", "running", "finished"):
                    return candidate, where
        return None


def _prompt_id(item: Any) -> str:
    return str(item[1]) if isinstance(item, (list, tuple)) and len(item) > 1 else ""


def _number(item: Any) -> float:
    try:
        return float(item[0])
    except (TypeError, ValueError, IndexError):
        return 0.0
