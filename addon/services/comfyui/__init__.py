"""ComfyUI: any video workflow, on one ComfyUI server or several (service-apis.md §7).

Servers: the preferences' ComfyUI address (several, comma-separated; pushed through `config`), else
the environment variable SHOTLINE_COMFYUI_URLS (comma-separated), else http://127.0.0.1:8188. No key:
ComfyUI has none.

The workflow: each shot names one in `Request.options`, as JSON text:

    {"workflow": "/abs/path/wan_i2v_api.json", "pins": {"seed": "3.noise_seed"}}

`workflow` is an API-format export ("Export (API)" in ComfyUI). `workflow.analyse` finds where the
shot's prompt, negative prompt, seed, size, frames, fps, first/last frame, source video and audio
go; `pins` ("NODE_ID.INPUT_NAME" per field) settle what it cannot guess. `check` refuses a shot
whose workflow has no place for something the shot uses, before anything is sent.

A job: the least-loaded server that answers is chosen (pool.py); the shot's stills, video and audio
are uploaded to it (POST /upload/image, never overwriting: identical bytes keep their name); the
filled workflow is queued under a prompt id chosen here, so a lost reply is settled by asking that
server's /queue and /history (ComfyUI does not refuse a repeated prompt id: it would run it twice,
so it is sent again only when the server has it nowhere). The remote id is JSON text:
{"server": URL, "prompt_id": ..., "client_id": ...}. Progress comes over the websocket
(/ws?clientId=, opened before queueing so no event is missed), with /history and /queue as the
fallback and the periodic check. A job whose server went down is moved to another (pool.py).
The clip is the first video file in the history outputs, read through GET /view.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .. import config, http, inputs
from ..base import (Capabilities, JobControl, Request, Result, Service, ServiceError, Status,
                    SubmissionUncertain)
from . import workflow
from .pool import Placement, Pool, Server, Where, normalise
from ..websocket import WebSocket, WebSocketError

log = logging.getLogger("shotline.comfyui")

ENV_URLS = "SHOTLINE_COMFYUI_URLS"
DEFAULT_URL = "http://127.0.0.1:8188"
VIDEO_EXTS = (".mp4", ".webm", ".mov", ".mkv")
ANIMATION_EXTS = (".gif", ".webp")  # Shotline places movie files: an animated still is refused, with the fix
FRAME_EXTS = (".png", ".jpg", ".jpeg")
UPLOAD_FOLDER = "shotline"  # inputs go to ComfyUI's input/shotline/

def server_urls() -> list[str]:
    """The servers: the preferences' addresses (comma-separated), else SHOTLINE_COMFYUI_URLS, else the default."""
    text = config.base_url("comfyui", os.environ.get(ENV_URLS, ""))
    return [normalise(u) for u in text.split(",") if u.strip()] or [DEFAULT_URL]


@dataclass
class _Spec:
    """A shot's workflow as read and analysed."""

    graph: dict
    mapping: workflow.Mapping


@dataclass
class _Watch:
    """What is known of one queued prompt: its websocket and the last events."""

    placement: Placement
    request: Request | None = None  # known in the session that queued it: enough to queue it again
    spec: _Spec | None = None
    ws: WebSocket | None = None
    ws_failed: bool = False
    checked: float = field(default_factory=time.monotonic)  # last /history look
    progress: float | None = None
    node: str = ""
    started: bool = False
    done: bool = False
    error: ServiceError | None = None


class ComfyUIService(Service):
    id = "comfyui"
    label = "ComfyUI"
    default_url = DEFAULT_URL  # the preferences' address field: several servers, comma-separated
    uses_workflow = True
    needs_network = True
    poll_interval = 0.5
    max_wait = 0.0  # a local render may take hours
    capabilities = Capabilities(text_to_video=True, first_frame=True, last_frame=True, video_to_video=True,
                                lip_sync=True, negative_prompt=True, seed=True, can_cancel=True)
    ws_wait = 1.0  # seconds one poll listens to the websocket
    check_every = 15.0  # seconds between /history looks while the websocket is quiet
    settle = 1.0  # seconds a lost /prompt reply is given to land before the server is asked again

    def __init__(self, urls: list[str] | None = None, move_after: float = 30.0):
        self._fixed = [normalise(u) for u in urls] if urls else None
        self._move_after = move_after
        self._pool: Pool | None = None
        self._lock = threading.Lock()
        self._watches: dict[str, _Watch] = {}  # remote id -> its prompt (moved or not)

    # -- set-up -------------------------------------------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        """The servers now configured; one Pool while the list stays the same (it remembers which are down)."""
        urls = self._fixed or server_urls()
        with self._lock:
            if self._pool is None or [s.url for s in self._pool.servers] != urls:
                self._pool = Pool(urls, self._move_after)
            return self._pool

    @property
    def max_concurrency(self) -> int:  # two prompts per server: one running, one waiting its turn there
        return 2 * len(self.pool.servers)

    def estimate_cost(self, request: Request) -> float | None:
        return 0.0  # your own GPUs

    def test_connection(self) -> str:
        answers = []
        for server in self.pool.servers:
            try:
                stats = self.pool.ask(server, "system_stats")
            except http.ApiError as e:
                stats = None
                log.info("ComfyUI: %s: %s", server.name, e)
            version = (stats or {}).get("system", {}).get("comfyui_version") if isinstance(stats, dict) else None
            answers.append(f"{server.name} " + (f"up (ComfyUI {version})" if version else
                                                "up" if stats is not None else "not answering"))
        up = sum(1 for a in answers if "not answering" not in a)
        if not up:
            raise ServiceError(f"No ComfyUI server is answering: {'; '.join(answers)}.")
        return f"ComfyUI: {up} of {len(answers)} up: {'; '.join(answers)}."

    # -- what a shot may ask ------------------------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        super().check(request)
        self._spec(request)
        for path in (request.reference_image, request.last_frame_image, request.source_video, request.audio):
            if path and not Path(path).is_file():
                raise ServiceError(f"Cannot read {Path(path).name} for ComfyUI: {path} is not there.")

    def _spec(self, request: Request) -> _Spec:
        options = inputs.options(request)
        path = options.get("workflow")
        if not isinstance(path, str) or not path.strip():
            raise ServiceError('ComfyUI needs a workflow: set the shot\'s options to '
                               '{"workflow": "/path/to/workflow_api.json"}.')
        pins = options.get("pins") or {}
        if not isinstance(pins, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pins.items()):
            raise ServiceError('ComfyUI "pins" must map a field to "NODE.INPUT", like {"seed": "3.noise_seed"}.')
        graph = workflow.load(path)
        mapping = workflow.analyse(graph, pins)
        mapping.require(_fields_used(request))
        return _Spec(graph, mapping)

    # -- a job --------------------------------------------------------------------------------------------------------

    def submit(self, request: Request, ctl: JobControl) -> str:
        spec = self._spec(request)
        server = self.pool.choose()
        try:
            placement = Placement.new(server.url)
            watch = _Watch(placement, request, spec)
            self._queue(server, watch, ctl)
        finally:
            self.pool.release(server)
        remote_id = placement.to_text()
        with self._lock:
            self._watches[remote_id] = watch
        return remote_id

    def _queue(self, server: Server, watch: _Watch, ctl: JobControl) -> None:
        """Upload the inputs to `server`, fill the workflow and queue it under the watch's prompt id."""
        request, spec, placement = watch.request, watch.spec, watch.placement
        values = self._values(request, spec.mapping, server, ctl)
        graph = workflow.fill(spec.graph, spec.mapping, values)
        watch.ws = self._listen(server, placement.client_id)
        watch.ws_failed = watch.ws is None
        body = {"prompt": graph, "client_id": placement.client_id, "prompt_id": placement.prompt_id}
        try:
            reply = self._post(server, placement, body, ctl)
        except BaseException:
            self._close(watch)
            raise
        errors = (reply or {}).get("node_errors") if isinstance(reply, dict) else None
        if errors and _blocks(errors, spec.mapping.outputs):
            # Queued, but without the branch that makes our clip (service-apis.md §7.7): take it back.
            self._delete(server, placement.prompt_id)
            self._close(watch)
            raise ServiceError(_refusal(errors, {}))
        if errors:
            log.warning("ComfyUI: %s queued prompt %s with errors in other branches: %s", server.name,
                        placement.prompt_id, _refusal(errors, {}))

    def _post(self, server: Server, placement: Placement, body: dict, ctl: JobControl) -> Any:
        """POST /prompt; a lost reply is settled by asking the server where the prompt is."""
        for attempt in (1, 2):
            try:
                return server.api.create("prompt", ctl, json=body)
            except http.ApiError as e:
                if e.status == 400 and isinstance(e.body, dict):
                    raise ServiceError(_refusal(e.body.get("node_errors") or {}, e.body.get("error"))) from None
                raise
            except SubmissionUncertain as e:
                log.info("ComfyUI: %s: the reply to prompt %s was lost (%s); asking the server",
                         server.name, placement.prompt_id, e)
                ctl.sleep(self.settle)  # give a slow server's queueing time to land
                where = self.pool.locate(placement)
                if where.state != "gone":
                    return None  # queued (or running, or done), or its server is down: poll follows it
                if attempt == 2:
                    raise SubmissionUncertain(
                        f"ComfyUI at {server.name} did not confirm the prompt twice and does not have it. "
                        f"Generate again to retry.") from None
                log.info("ComfyUI: %s does not have prompt %s; sending it again", server.name, placement.prompt_id)
        raise AssertionError("unreachable")

    def _values(self, request: Request, mapping: workflow.Mapping, server: Server, ctl: JobControl) -> dict:
        values: dict[str, Any] = {
            "prompt": request.prompt, "negative_prompt": request.negative_prompt,
            "seed": request.seed % 2**64, "width": request.width, "height": request.height,
            "frames": request.frames, "fps": float(request.fps)}
        for name, path in (("first_frame", request.reference_image), ("last_frame", request.last_frame_image),
                           ("source_video", request.source_video), ("audio", request.audio)):
            if path:
                values[name] = self._upload(server, path, ctl)
        return {k: v for k, v in values.items() if k in mapping.slots}

    def _upload(self, server: Server, path: str, ctl: JobControl) -> str:
        """The file in the server's input folder, named by its content (the same file is stored
        once); returns the name a Load node takes."""
        file = Path(path)
        try:
            data = file.read_bytes()
        except OSError as e:
            raise ServiceError(f"Cannot read {file.name}: {e.strerror or e}") from None
        name = hashlib.sha256(data).hexdigest()[:20] + file.suffix.lower()
        mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        # Identical bytes keep their name on the server: sending again is harmless, so retries are fine.
        reply = server.api.read("POST", "upload/image", ctl, files={"image": (name, data, mime)},
                                data={"type": "input", "subfolder": UPLOAD_FOLDER, "overwrite": "false"})
        if not isinstance(reply, dict) or not reply.get("name"):
            raise ServiceError(f"ComfyUI at {server.name} did not take the upload of {file.name}.", retryable=True)
        subfolder = str(reply.get("subfolder") or "")
        return f"{subfolder}/{reply['name']}" if subfolder else str(reply["name"])

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        watch = self._watch(remote_id)
        if watch.ws is None and not watch.ws_failed:
            self._reconnect(watch)
        if watch.ws is not None:
            self._listen_for(watch, ctl)
        if watch.error:
            error, watch.error = watch.error, None
            self._forget(remote_id)
            raise error
        if watch.done:
            return Status(done=True, progress=1.0, message="Finished")
        if watch.ws is not None and time.monotonic() - watch.checked < self.check_every:
            return self._status(watch)
        return self._look(remote_id, watch, ctl)

    def _look(self, remote_id: str, watch: _Watch, ctl: JobControl) -> Status:
        """Ask the server over HTTP where the prompt is; move it when its server lost it."""
        watch.checked = time.monotonic()
        placement = watch.placement
        server = self.pool.server(placement.server)
        where = self.pool.locate(placement)
        if where.state in ("down", "gone") and watch.request is None and not placement.moves:
            found = self.pool.find_moved(placement)  # moved in an earlier session
            if found:
                watch.placement, where = found
                server = self.pool.server(watch.placement.server)
        if where.state == "finished":
            failure = _history_failure(where.entry or {})
            if failure:
                self._forget(remote_id)
                raise failure
            watch.done = True
            return Status(done=True, progress=1.0, message="Finished")
        if where.state == "running":
            watch.started = True
            return self._status(watch)
        if where.state == "pending":
            ahead = f" ({where.ahead} ahead)" if where.ahead else ""
            return Status(message=f"Queued on ComfyUI at {server.name}{ahead}")
        return self._lost(remote_id, watch, where, ctl)

    def _lost(self, remote_id: str, watch: _Watch, where: Where, ctl: JobControl) -> Status:
        """Its server is down or no longer has the prompt: wait, move it, or fail."""
        placement, pool = watch.placement, self.pool
        server = pool.server(placement.server)
        self._close(watch)
        if watch.request is not None and pool.should_move(placement, where):
            return self._move(watch, where, ctl)
        if where.state == "down":
            if pool.down_for(server) < pool.move_after:
                return Status(message=f"ComfyUI at {server.name} is not answering; waiting for it")
            # Kept: the queue's retry polls again, and the job moves once another server answers.
            raise ServiceError(f"ComfyUI at {server.name} stopped answering while it had this shot.",
                               retryable=True)
        self._forget(remote_id)
        raise ServiceError(f"ComfyUI at {server.name} no longer has this shot's prompt (deleted from its queue, "
                           f"or the server restarted). Generate again to retry.")

    def _move(self, watch: _Watch, where: Where, ctl: JobControl) -> Status:
        placement, pool = watch.placement, self.pool
        old = pool.server(placement.server).name
        why = "lost the prompt" if where.state == "gone" else "is down"

        def queue(target: Server, new: Placement) -> None:
            watch.placement = new
            watch.started, watch.progress, watch.done, watch.node = False, None, False, ""
            self._queue(target, watch, ctl)

        try:
            new = pool.move(placement, queue)
        except ServiceError as e:
            watch.placement = placement
            raise ServiceError(f"ComfyUI at {old} {why} and no other server can take the shot: {e}",
                               retryable=e.retryable) from None
        name = pool.server(new.server).name
        log.info("ComfyUI: %s %s; prompt %s moved to %s as %s", old, why, placement.prompt_id, name, new.prompt_id)
        return Status(message=f"ComfyUI at {old} {why}; moved to {name}")

    def _status(self, watch: _Watch) -> Status:
        name = self.pool.server(watch.placement.server).name
        if not watch.started:
            return Status(message=f"Queued on ComfyUI at {name}")
        node = f" (node {watch.node})" if watch.node else ""
        return Status(progress=watch.progress, message=f"Generating on ComfyUI at {name}{node}")

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        watch = self._watch(remote_id)
        server = self.pool.server(watch.placement.server)
        try:
            history = server.api.get(f"history/{watch.placement.prompt_id}", ctl)
            entry = history.get(watch.placement.prompt_id) if isinstance(history, dict) else None
            if not isinstance(entry, dict):
                raise ServiceError(f"ComfyUI at {server.name} has no finished prompt {watch.placement.prompt_id}.",
                                   retryable=True)
            failure = _history_failure(entry)
            if failure:
                raise failure
            item = pick_output(entry.get("outputs") or {}, watch.spec.mapping.outputs if watch.spec else ())
            query = urlencode({"filename": item["filename"], "subfolder": item.get("subfolder") or "",
                               "type": item.get("type") or "output"})
            info = server.api.download(server.api.url(f"view?{query}"), dest, ctl,
                                       on_progress=lambda f: ctl.report("downloading", f, "Downloading"))
        except ServiceError as e:
            if e.retryable:  # the retry polls again: a server that died with the clip gets the shot moved
                watch.done, watch.checked = False, 0.0
            raise
        self._forget(remote_id)
        return Result(path=dest, fps=info.fps, frames=info.frames, width=info.width, height=info.height, cost=0.0)

    def cancel(self, remote_id: str) -> None:
        try:
            watch = self._watch(remote_id)
            self._forget(remote_id)
            placement = watch.placement
            server = self.pool.server(placement.server)
            if self.pool.locate(placement).state == "pending":
                self._delete(server, placement.prompt_id)
            # Deleted, or started meanwhile: interrupt only stops this prompt if it is the one running.
            if self.pool.locate(placement).state == "running":
                server.quick.read("POST", "interrupt", json={"prompt_id": placement.prompt_id})
        except ServiceError as e:
            log.warning("ComfyUI: could not cancel %s: %s", remote_id, e)

    # -- helpers ------------------------------------------------------------------------------------------------------

    def _watch(self, remote_id: str) -> _Watch:
        with self._lock:
            watch = self._watches.get(remote_id)
            if watch is None:  # a job from an earlier session: known only by its remote id
                watch = self._watches[remote_id] = _Watch(Placement.from_text(remote_id), checked=0.0)
            return watch

    def _forget(self, remote_id: str) -> None:
        with self._lock:
            watch = self._watches.pop(remote_id, None)
        if watch:
            self._close(watch)

    @staticmethod
    def _close(watch: _Watch) -> None:
        if watch.ws is not None:
            watch.ws.close()
            watch.ws = None

    @staticmethod
    def _delete(server: Server, prompt_id: str) -> None:
        try:
            server.quick.read("POST", "queue", json={"delete": [prompt_id]})
        except ServiceError as e:
            log.warning("ComfyUI: could not take prompt %s off %s's queue: %s", prompt_id, server.name, e)

    def _listen(self, server: Server, client_id: str) -> WebSocket | None:
        url = server.url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
        try:
            return WebSocket.connect(url, timeout=3.0)
        except WebSocketError as e:
            log.info("ComfyUI: no websocket at %s (%s); following progress over HTTP", server.name, e)
            return None

    def _reconnect(self, watch: _Watch) -> None:
        """Listen again with the same client id (events go to it); what passed meanwhile, /history tells."""
        watch.ws = self._listen(self.pool.server(watch.placement.server), watch.placement.client_id)
        watch.ws_failed = watch.ws is None
        watch.checked = 0.0

    def _listen_for(self, watch: _Watch, ctl: JobControl) -> None:
        """Read the websocket for up to `ws_wait` seconds (less once the prompt is over)."""
        deadline = time.monotonic() + self.ws_wait
        while not (watch.done or watch.error) and time.monotonic() < deadline:
            ctl.check()
            try:
                message = watch.ws.recv(min(0.25, max(0.0, deadline - time.monotonic())))
            except WebSocketError as e:
                log.info("ComfyUI: the websocket to %s closed (%s)", watch.placement.server, e)
                self._close(watch)
                watch.checked = 0.0  # look over HTTP now: the server may be gone
                return
            if isinstance(message, str) and self._event(watch, message) and not (watch.done or watch.error):
                status = self._status(watch)  # each step as it comes, not only once per poll
                ctl.progress(status.progress, status.message)

    def _event(self, watch: _Watch, text: str) -> bool:
        """Apply one websocket message; whether it was about this prompt."""
        try:
            message = json.loads(text)
            kind, data = message["type"], message.get("data") or {}
        except (ValueError, TypeError, KeyError, AttributeError):
            return False
        if not isinstance(data, dict) or data.get("prompt_id") != watch.placement.prompt_id:
            return False  # status updates, other prompts
        if kind == "execution_start":
            watch.started = True
        elif kind == "executing":
            watch.started = True
            if data.get("node") is None:
                watch.done = True  # the terminator; whether it succeeded, /history says in fetch
            else:
                watch.node = str(data["node"])
        elif kind == "progress":
            try:
                watch.progress = min(1.0, max(0.0, float(data["value"]) / float(data["max"])))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                pass
        elif kind == "execution_error":
            watch.error = ServiceError(_execution_error(data))
        elif kind == "execution_interrupted":
            node = f" at node {data.get('node_id')} ({data.get('node_type')})" if data.get("node_id") else ""
            watch.error = ServiceError(f"ComfyUI stopped the prompt{node}: it was interrupted on the server.")
        return True


# -- reading ComfyUI's answers -----------------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_name(value: Any, what: str) -> str:
    """A file or folder name from the server, refused if it could point outside ComfyUI's folders."""
    text = str(value)
    if (".." in text.replace("\\", "/").split("/") or text.startswith(("/", "~")) or "\\" in text
            or _DRIVE.match(text) or "\0" in text):
        raise ServiceError(f"ComfyUI named its output {what} {text[:80]!r}, which points outside its folders: "
                           f"refused.")
    return text


def pick_output(outputs: dict, prefer: tuple[str, ...] = ()) -> dict:
    """The video file among the history outputs, from the workflow's output nodes first.
    Videos come under 'images' (SaveVideo), 'gifs' (VideoHelperSuite) or 'videos'."""
    order = [n for n in prefer if n in outputs] + [n for n in outputs if n not in prefer]
    found: list[dict] = []
    for node_id in order:
        ui = outputs.get(node_id)
        if not isinstance(ui, dict):
            continue
        for key in ("videos", "gifs", "images", "video"):
            found += [item for item in ui.get(key) or [] if isinstance(item, dict) and item.get("filename")]
    for item in found:
        name = safe_name(item["filename"], "file")
        safe_name(item.get("subfolder") or "", "folder")
        if item.get("type", "output") not in ("output", "temp", "input"):
            raise ServiceError(f"ComfyUI listed its output in an unknown place ({item.get('type')!r}).")
        if name.lower().endswith(VIDEO_EXTS):
            return item
    names = [str(item["filename"]).lower() for item in found]
    if any(n.endswith(ANIMATION_EXTS) for n in names):
        raise ServiceError("The ComfyUI workflow saves an animated GIF or WebP; Shotline places video files. Save "
                           "with SaveVideo (mp4) or VHS Video Combine (video/h264-mp4) instead.")
    if sum(n.endswith(FRAME_EXTS) for n in names) > 1:
        raise ServiceError(f"The ComfyUI workflow saves {len(names)} separate frames, not a video: Shotline does "
                           f"not assemble image sequences. End the workflow with SaveVideo or VHS Video Combine.")
    raise ServiceError("The ComfyUI workflow finished without saving a video. End it with SaveVideo or "
                       "VHS Video Combine.")


def _fields_used(request: Request) -> list[str]:
    used = ["prompt"]
    for present, name in ((request.negative_prompt.strip(), "negative_prompt"),
                          (request.reference_image, "first_frame"), (request.last_frame_image, "last_frame"),
                          (request.source_video, "source_video"), (request.audio, "audio")):
        if present:
            used.append(name)
    return used


def _refusal(node_errors: dict, error: Any) -> str:
    """ComfyUI's 400 (service-apis.md §7.1): each failing node by id and class, with its message."""
    parts = []
    for node_id, item in node_errors.items():
        if not isinstance(item, dict):
            continue
        for err in item.get("errors") or [{}]:
            text = ": ".join(str(x) for x in (err.get("message"), err.get("details")) if x)
            what = (err.get("extra_info") or {}).get("input_name")
            parts.append(f"node {node_id} ({item.get('class_type') or '?'}){' input ' + what if what else ''}: "
                         f"{text or 'invalid'}")
    if not parts and isinstance(error, dict):
        parts.append(": ".join(str(x) for x in (error.get("message"), error.get("details")) if x))
    text = "; ".join(p for p in parts if p) or "no reason given"
    return f"ComfyUI refused the workflow: {text}"[:600]


def _blocks(node_errors: dict, outputs: tuple[str, ...]) -> bool:
    """Whether the branches that failed validation include our output nodes (all, when unknown)."""
    failed = {str(o) for item in node_errors.values() if isinstance(item, dict)
              for o in item.get("dependent_outputs") or []}
    return not outputs or bool(failed & set(outputs)) or not failed


def _execution_error(data: dict) -> str:
    message = " ".join(str(data.get("exception_message") or data.get("exception_type") or "failed").split())
    return (f"ComfyUI failed at node {data.get('node_id', '?')} ({data.get('node_type', '?')}): "
            f"{message}")[:600]


def _history_failure(entry: dict) -> ServiceError | None:
    """The error a finished prompt's history records, or None when it succeeded."""
    status = entry.get("status") or {}
    if not isinstance(status, dict) or status.get("status_str") != "error":
        return None
    for kind, data in status.get("messages") or []:
        if kind == "execution_error" and isinstance(data, dict):
            return ServiceError(_execution_error(data))
        if kind == "execution_interrupted":
            return ServiceError("ComfyUI stopped the prompt: it was interrupted on the server.")
    return ServiceError("ComfyUI finished the prompt with an error (no detail in its history).")
