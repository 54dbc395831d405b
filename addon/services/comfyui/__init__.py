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
The clip is the first video file in the history outputs, read through GET /view. A workflow that
saves an animated GIF/WebP or a sequence of PNG/JPEG frames instead has them read the same way and
encoded into an MP4 by Blender's own FFmpeg (encode.frames_to_clip), at the workflow's rate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from PIL import Image, ImageSequence, UnidentifiedImageError

from ... import encode, probe, timing
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
ANIMATION_EXTS = (".gif", ".webp")  # made into an MP4 (the VSE places movie files)
FRAME_EXTS = (".png", ".jpg", ".jpeg")  # one output node's images: the frames of an MP4
MAX_IMAGE = 256 * 1024**2  # bytes of one frame or animated file
_COUNTER = re.compile(r"_(\d+)_?\.[^.]+$")  # SaveImage's "prefix_00001_.png": the frame's number
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
            kind, items = pick_output(entry.get("outputs") or {}, watch.spec.mapping.outputs if watch.spec else ())
            if kind == "video":
                info = server.api.download(server.api.url(f"view?{_view_query(items[0])}"), dest, ctl,
                                           on_progress=lambda f: ctl.report("downloading", f, "Downloading"))
            else:
                info = _assemble(server, kind, items, _asked_fps(watch, entry), dest, ctl)
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


def pick_output(outputs: dict, prefer: tuple[str, ...] = ()) -> tuple[str, list[dict]]:
    """What the workflow saved, from its output nodes first: ("video", [file]), else ("animation",
    [animated GIF/WebP]), else ("frames", [one node's images in ComfyUI's order]). Videos come under
    'images' (SaveVideo), 'gifs' (VideoHelperSuite) or 'videos'; every name is checked first."""
    order = [n for n in prefer if n in outputs] + [n for n in outputs if n not in prefer]
    nodes: list[list[dict]] = []
    for node_id in order:
        ui = outputs.get(node_id)
        if not isinstance(ui, dict):
            continue
        items = [item for key in ("videos", "gifs", "images", "video") for item in ui.get(key) or []
                 if isinstance(item, dict) and item.get("filename")]
        for item in items:
            safe_name(item["filename"], "file")
            safe_name(item.get("subfolder") or "", "folder")
            if item.get("type", "output") not in ("output", "temp", "input"):
                raise ServiceError(f"ComfyUI listed its output in an unknown place ({item.get('type')!r}).")
        nodes.append(items)
    for kind, exts in (("video", VIDEO_EXTS), ("animation", ANIMATION_EXTS)):
        for items in nodes:
            for item in items:
                if str(item["filename"]).lower().endswith(exts):
                    return kind, [item]
    for items in nodes:
        frames = [item for item in items if str(item["filename"]).lower().endswith(FRAME_EXTS)]
        if frames:
            return "frames", sorted(frames, key=_frame_number)
    raise ServiceError("The ComfyUI workflow finished without saving a video, an animation or frames. End it "
                       "with SaveVideo, VHS Video Combine, SaveAnimatedWEBP or SaveImage.")


def _frame_number(item: dict) -> int:
    """The counter in a SaveImage name, compared as a number (it outgrows its five digits); -1 if none."""
    match = _COUNTER.search(str(item["filename"]))
    return int(match.group(1)) if match else -1


def _assemble(server: Server, kind: str, items: list[dict], fps: Fraction | None, dest: Path,
              ctl: JobControl) -> probe.ClipInfo:
    """An animated file's frames, or a sequence of frames, encoded into an MP4 at `dest`. The
    frames are decoded and saved here, in Pillow's C code (which lets go of the GIL, unlike
    drawing); the encode runs in the child process, as the animatic's does."""
    # A scratch folder like the child's: one a killed Blender left is removed the same way.
    folder = Path(tempfile.mkdtemp(prefix=encode.SCRATCH_PREFIX))
    try:
        frames = _Frames(folder)
        if kind == "animation":
            fps = _unpack(_view_bytes(server, items[0], ctl), items[0]["filename"], fps, frames, ctl)
        else:
            for number, item in enumerate(items, 1):
                data = _view_bytes(server, item, ctl)
                frames.add(_image(data, item["filename"]), data)
                ctl.report("downloading", number / len(items), "Downloading frames")
        if fps is None:  # a job of an earlier session whose workflow states no rate
            raise ServiceError("ComfyUI saved frames but Shotline cannot tell their frame rate (the shot was "
                               "queued in an earlier session). Generate again.")
        width, height = frames.even_size
        encode.frames_to_clip(folder, frames.count, fps, width, height, dest, ctl,
                              lambda _phase, done: ctl.report("downloading", done, "Encoding"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    try:
        return probe.read_clip(dest)
    except probe.ClipError as e:
        raise ServiceError(f"The clip encoded from ComfyUI's frames is not whole: {e}.") from None


def _view_query(item: dict) -> str:
    return urlencode({"filename": item["filename"], "subfolder": item.get("subfolder") or "",
                      "type": item.get("type") or "output"})


def _view_bytes(server: Server, item: dict, ctl: JobControl) -> bytes:
    """One image output through GET /view. http.Api.download takes only videos, so it is read here;
    a failure worth retrying is left to the job queue, whose retry polls and fetches again."""
    ctl.check()
    name = item["filename"]
    try:
        with server.api.session.get(server.api.url(f"view?{_view_query(item)}"), stream=True,
                                    timeout=server.api.timeout) as response:
            if not response.ok:
                raise ServiceError(f"ComfyUI at {server.name} answered {response.status_code} for {name}.",
                                   retryable=response.status_code >= 500)
            data = bytearray()
            for chunk in response.iter_content(http.CHUNK):
                ctl.check()
                data += chunk
                if len(data) > MAX_IMAGE:
                    raise ServiceError(f"ComfyUI's {name} is larger than {MAX_IMAGE} bytes.")
    except requests.RequestException as e:
        raise ServiceError(f"Reading {name} from ComfyUI at {server.name} failed ({e}).", retryable=True) from None
    return bytes(data)


def _image(data: bytes, name: str) -> Image.Image:
    """The PNG or JPEG in `data`, checked whole; refused if it is anything else."""
    try:
        with Image.open(BytesIO(data)) as probe_image:
            probe_image.verify()  # a PNG cut short or damaged fails here, not in Blender
        image = Image.open(BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ServiceError(f"ComfyUI's frame {name} is not a readable image ({e}).") from None
    if image.format not in ("PNG", "JPEG"):
        raise ServiceError(f"ComfyUI's frame {name} is a {image.format} image, not a PNG or JPEG.")
    return image


def _unpack(data: bytes, name: str, asked: Fraction | None, frames: _Frames, ctl: JobControl) -> Fraction | None:
    """Every frame of the animated GIF/WebP in `data` into `frames`; returns the rate it plays at.
    A frame lasting several steps is written that many times: encoders merge repeated frames."""
    try:
        with Image.open(BytesIO(data)) as animation:
            if animation.format not in ("GIF", "WEBP"):
                raise ServiceError(f"ComfyUI's {name} is a {animation.format} image, not an animated GIF or WebP.")
            quantum = 10 if animation.format == "GIF" else 1  # GIF durations are hundredths of a second
            durations = [_duration(frame) for frame in ImageSequence.Iterator(animation)]
            fps = _animation_fps(durations, quantum, asked)
            for number, (frame, duration) in enumerate(zip(ImageSequence.Iterator(animation), durations), 1):
                ctl.check()
                frames.add(frame.convert("RGB"), repeat=max(1, _steps(duration, fps)) if fps else 1)
                ctl.report("downloading", number / len(durations), "Reading frames")
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError) as e:
        raise ServiceError(f"ComfyUI's {name} is not a readable animation ({e}).") from None
    return fps


def _duration(frame: Image.Image) -> int:
    frame.load()  # Pillow sets a WebP frame's duration when it decodes it
    return frame.info.get("duration") or 0


def _animation_fps(durations: list[int], quantum: int, asked: Fraction | None) -> Fraction | None:
    """The rate of an animated file with these frame durations (ms; `quantum`: their precision).
    The file's durations win over the rate the workflow was given: they are what its save node was
    really told (a workflow may set its own rate where Shotline had no place to write the shot's),
    and the clip must play at the speed it was made for. A rate only names that speed: durations are
    whole ms (GIF: hundredths of a second; ComfyUI writes int(1000 / fps)), which cannot hold 24 or
    23.976, and encoders merge repeated frames into longer ones, so the asked rate, or else the
    whole rate of the shortest frame, is taken when every duration is a whole number of its frames."""
    if not durations or min(durations) <= 0:
        return asked  # no durations stated
    shortest = min(durations)
    for candidate in (asked, Fraction(round(1000 / shortest))):
        if candidate and all(_steps(d, candidate) and abs(d - _steps(d, candidate) * 1000 / candidate)
                             < quantum * _steps(d, candidate) for d in set(durations)):
            return candidate
    return timing.rate(1000 / shortest)


def _steps(duration: int, fps: Fraction) -> int:
    """How many frames at `fps` a frame lasting `duration` ms stands for."""
    return round(duration * fps / 1000)


class _Frames:
    """A folder of numbered frames of one size, made even (H.264 needs it)."""

    def __init__(self, folder: Path):
        self.folder, self.count, self.size = folder, 0, None

    def add(self, image: Image.Image, source: bytes | None = None, repeat: int = 1) -> None:
        """`image`, `repeat` times; `source`: the PNG or JPEG file it was read from, kept as it is when
        its size will do."""
        if self.size is None:
            self.size = image.size
        elif image.size != self.size:
            raise ServiceError(f"ComfyUI's frames differ in size ({self.size[0]}x{self.size[1]}, then "
                               f"{image.size[0]}x{image.size[1]}).")
        even = self.even_size
        if source is not None and even == image.size:  # as ComfyUI saved it: no second compression
            path = self.folder / f"{self.count:06d}{'.png' if image.format == 'PNG' else '.jpg'}"
            path.write_bytes(source)
        else:
            # An odd width or height loses its last column or row: a black edge, or a resampling
            # blur over the whole picture, would show more than one pixel line.
            path = self.folder / f"{self.count:06d}.png"
            image.crop((0, 0, *even)).save(path, compress_level=1)
        self.count += 1
        for _ in range(repeat - 1):
            shutil.copyfile(path, self.folder / f"{self.count:06d}{path.suffix}")
            self.count += 1

    @property
    def even_size(self) -> tuple[int, int]:
        width, height = self.size
        return width - width % 2, height - height % 2


def _asked_fps(watch: _Watch, entry: dict) -> Fraction | None:
    """The rate the service filled into the workflow: the shot's. For a job of an earlier session
    (its request is gone), the rate the history's copy of the filled workflow holds, if it has one."""
    if watch.request is not None:
        return watch.request.fps
    queued = entry.get("prompt")
    try:
        graph = queued[2]
        slot = workflow.analyse(graph).slots["fps"]
        value = graph[slot.node_id]["inputs"][slot.input_name]
        return timing.rate(float(value)) if isinstance(value, (int, float)) and value > 0 else None
    except (ServiceError, LookupError, TypeError):
        return None


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
