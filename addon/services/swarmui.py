"""SwarmUI: one address in front of many GPU backends (mcmonkeyprojects/SwarmUI, docs/API.md).

SwarmUI's plain POST /API/GenerateText2Image answers only when the clip is made, and no route can
find a running generation again, which does not fit submit -> poll. So a job runs over the
websocket route /API/GenerateText2ImageWS, in its own session:

- submit: POST /API/GetNewSession, open the websocket, send the request once, and wait for
  SwarmUI's first message (its queue status, sent once the generation is claimed). It returns a
  handle to that open connection as the remote id, which the queue journals. A session that
  vanished (error_id invalid_session_id: SwarmUI restarted) refused the request before anything
  ran, so a new session is asked for and the request sent again. A connection that breaks after
  the request went out, before that first message, raises SubmissionUncertain: never resent.
- poll: reads what arrived on the socket (status, gen_progress, the output path, an error);
  SwarmUI sends a keep_alive at least every 30 s, so a longer silence is a lost connection.
- fetch: downloads the output path (View/...) from the same server; a path leaving View/ is refused.
- cancel: POST /API/InterruptAll with other_sessions false on the job's own session: the one
  generation stops, the director's other jobs and browser tabs go on.

The open socket lives in this process only: a job journaled before Blender closed cannot be
followed again (SwarmUI keeps the clip in its history; the message says so) and is never re-run.
SwarmUI needs no key; where it requires accounts, the token from its User tab goes as the
swarm_token cookie. Shots must name a SwarmUI model: text to video sends it as `model`; from a
first frame it is the `videomodel`, with the still as `initimage` at creativity 0 (SwarmUI then
skips the image model, but still wants one named: the same name, unless the shot's options set
"model").
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import config, http, inputs
from .websocket import Closed, WebSocket, WebSocketError
from .base import Cancelled, Capabilities, JobControl, Request, Result, Service, ServiceError, Status, \
    SubmissionUncertain

log = logging.getLogger("shotline.swarmui")

DEFAULT_URL = "http://127.0.0.1:7801"
TOKEN_ENV = "SHOTLINE_SWARMUI_TOKEN"
VIDEO_FORMAT = "h264-mp4"  # of SwarmUI's video formats, the one every player (and Blender) reads
IMAGE_MAX = 20_000_000  # a still as a data URL, well under SwarmUI's default receive limit
FIRST_REPLY = 60.0  # seconds for SwarmUI to take a request it has received
SILENCE = 120.0  # no message for this long (SwarmUI keeps alive every 30 s): the connection is gone
READ_WAIT = 0.5  # seconds one poll listens
_KEY_HINT = f"Preferences > Add-ons > Shotline > SwarmUI (or {TOKEN_ENV})"


@dataclass
class _Generation:
    """One running generation: its session, its socket and what SwarmUI has said so far."""

    session: str
    socket: WebSocket
    heard: float = field(default_factory=time.monotonic)
    outputs: list[str] = field(default_factory=list)
    progress: float | None = None
    message: str = "Queued at SwarmUI"
    error: str = ""
    closing: bool = False  # SwarmUI said socket_intention close: nothing more comes

    def take(self, message: dict) -> None:
        self.heard = time.monotonic()
        if message.get("error"):
            self.error = str(message["error"])
        if isinstance(message.get("image"), str):
            self.outputs.append(message["image"])
        if message.get("socket_intention") == "close":
            self.closing = True
        progress = message.get("gen_progress")
        if isinstance(progress, dict):
            overall, current = progress.get("overall_percent"), progress.get("current_percent")
            if isinstance(overall, (int, float)):
                self.progress = min(1.0, max(0.0, float(overall)))
            step = f" ({float(current):.0%} of this step)" if isinstance(current, (int, float)) else ""
            self.message = f"Generating on SwarmUI{step}"
        status = message.get("status")
        if isinstance(status, dict) and self.progress is None:
            if status.get("loading_models"):
                self.message = "SwarmUI is loading the model"
            elif status.get("waiting_backends"):
                self.message = "Waiting for a free SwarmUI backend"


class SwarmUIService(Service):
    id = "swarmui"
    label = "SwarmUI"
    key_env, key_label, default_url = TOKEN_ENV, "Token", DEFAULT_URL
    capabilities = Capabilities(text_to_video=True, first_frame=True, last_frame=True, max_frames=1000,
                                can_cancel=True)
    max_concurrency = 4  # SwarmUI queues and spreads them over its backends
    poll_interval = 0.25  # a poll itself listens READ_WAIT seconds
    needs_network = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: tuple[tuple[str, str], http.Api] | None = None
        self._running: dict[str, _Generation] = {}  # remote id -> generation
        self._models: list[str] = []

    def api(self) -> http.Api:
        """The client for the current address and token (one session while they stay the same)."""
        token = config.key(self.id, TOKEN_ENV)
        url = config.base_url(self.id, DEFAULT_URL)
        with self._lock:
            if self._client is None or self._client[0] != (token, url):
                auth = {"Cookie": f"swarm_token={token}"} if token else {}
                self._client = (token, url), http.Api(self.label, url, auth, key_hint=_KEY_HINT)
            return self._client[1]

    # -- what it can do ---------------------------------------------------------------------------------------------

    def models(self) -> list[str]:
        """The models SwarmUI listed at the last Test Connection (never asked from here: the UI
        draws from this); empty until then, and any name is taken."""
        return list(self._models)

    def check(self, request: Request) -> None:
        super().check(request)
        inputs.options(request)
        if not request.model:
            raise ServiceError("Choose a SwarmUI model for the shot (Test Connection lists them).")
        if request.last_frame_image and not request.reference_image:
            raise ServiceError("SwarmUI ends on a last frame only when it starts from a first frame.")
        for path in (request.reference_image, request.last_frame_image):
            if path and not Path(path).is_file():
                raise ServiceError(f"Cannot read {Path(path).name} for SwarmUI: {path} is not there.")

    def test_connection(self) -> str:
        session = self._new_session(None)
        listing = self._call("API/ListModels", None, {"session_id": session["session_id"], "path": "",
                                                      "depth": 8, "subtype": "Stable-Diffusion"})
        names = [str(f["name"]) for f in listing.get("files") or [] if isinstance(f, dict) and f.get("name")]
        self._models = sorted(names)
        version = session.get("version") or "?"
        return f"SwarmUI {version}: connected ({len(names)} model{'s' * (len(names) != 1)})."

    # -- a job --------------------------------------------------------------------------------------------------------

    def submit(self, request: Request, ctl: JobControl) -> str:
        self.check(request)
        params = _params(request)
        for _ in range(3):
            session = self._new_session(ctl)["session_id"]
            socket = self._open(ctl)
            try:
                socket.send_text(json.dumps({**params, "session_id": session}))
            except Closed as e:  # not all of it left: SwarmUI cannot have read a request
                raise ServiceError(f"The connection to SwarmUI broke while sending ({e}).", retryable=True) from None
            first = self._first_reply(socket, session, ctl)
            if first.get("error_id") == "invalid_session_id":
                socket.close()
                log.info("SwarmUI: session gone before it was used (SwarmUI restarted?); asking for a new one")
                continue
            if first.get("error"):
                socket.close()
                raise ServiceError(f"SwarmUI refused the request: {_text(first['error'])}")
            generation = _Generation(session, socket)
            generation.take(first)
            remote_id = f"swarmui-{uuid.uuid4().hex}"
            with self._lock:
                self._running[remote_id] = generation
            return remote_id
        raise ServiceError("SwarmUI dropped every new session at once; check the SwarmUI server.", retryable=True)

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        generation = self._generation(remote_id)
        wait = READ_WAIT
        try:
            while not generation.socket.closed:
                text = generation.socket.recv(wait)
                if text is None:
                    break
                wait = 0.0  # then only what is here already: each change is reported as it comes
                message = _json(text)
                if message is not None:
                    generation.take(message)
        except Closed:
            pass  # SwarmUI closes after the result; what came before it decides below
        except WebSocketError as e:
            self._forget(remote_id)
            raise ServiceError(f"SwarmUI broke the websocket protocol ({e}).") from None
        if generation.error:
            self._forget(remote_id)
            raise ServiceError(f"SwarmUI failed: {_text(generation.error)}")
        if generation.outputs and (generation.closing or generation.socket.closed):
            return Status(done=True, progress=1.0, message="Finished")
        if generation.closing:
            self._forget(remote_id)
            raise ServiceError("SwarmUI ended the generation without a clip (interrupted there?). Generate again.")
        if generation.socket.closed:  # gone without SwarmUI's goodbye
            self._forget(remote_id)
            raise ServiceError("The connection to SwarmUI broke during the generation. Its clip may still appear in "
                               "SwarmUI's image history; Generate again starts a new one.")
        if time.monotonic() - generation.heard > SILENCE:
            self.cancel(remote_id)
            raise ServiceError(f"SwarmUI went silent for {SILENCE:.0f} s: the connection is lost. Its clip may "
                               "still appear in SwarmUI's image history; Generate again starts a new one.")
        return Status(progress=generation.progress, message=generation.message)

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        generation = self._generation(remote_id)
        api = self.api()
        try:
            url = api.url(quote(_output(generation.outputs), safe="/"))
            info = api.download(url, dest, ctl, on_progress=lambda f: ctl.report("downloading", f, "Downloading"))
        except ServiceError as e:
            if not e.retryable:  # a retry polls again and needs what SwarmUI said
                self._forget(remote_id)
            raise
        self._forget(remote_id)
        return Result(path=dest, fps=info.fps, frames=info.frames, width=info.width, height=info.height)

    def cancel(self, remote_id: str) -> None:
        generation = self._forget(remote_id)
        if generation is not None:
            self._interrupt(generation.session)

    # -- helpers ----------------------------------------------------------------------------------------------------

    def _call(self, route: str, ctl: JobControl | None, body: dict[str, Any]) -> dict:
        """A POST route; SwarmUI reports a refusal in the answer as {"error": ...}."""
        reply = self.api().read("POST", route, ctl, json=body)
        if not isinstance(reply, dict):
            raise ServiceError(f"SwarmUI answered {route} with something that is not JSON (the wrong address?).")
        if reply.get("error"):
            raise ServiceError(f"SwarmUI: {_text(reply['error'])}")
        return reply

    def _new_session(self, ctl: JobControl | None) -> dict:
        reply = self._call("API/GetNewSession", ctl, {})
        if not reply.get("session_id"):
            raise ServiceError("SwarmUI gave no session id.", retryable=True)
        return reply

    def _open(self, ctl: JobControl) -> WebSocket:
        """The websocket to generate on (nothing is sent yet, so a failure here made nothing)."""
        api = self.api()
        ctl.check()
        try:
            return WebSocket.connect(api.url("API/GenerateText2ImageWS"), timeout=api.timeout[0],
                                     headers={"User-Agent": "Shotline (Blender add-on)", **api.auth})
        except WebSocketError as e:
            refused = "refused the websocket" in str(e)
            why = "(a proxy in front of it must pass websockets)" if refused else "(is it running?)"
            raise ServiceError(f"Cannot open a websocket to SwarmUI at {api.redact(api.base_url)}: "
                               f"{api.redact(str(e))} {why}", retryable=not refused) from None

    def _first_reply(self, socket: WebSocket, session: str, ctl: JobControl) -> dict:
        """SwarmUI's first message once the request is out. Cancelled meanwhile: the session is
        interrupted, since a generation may have begun."""
        deadline = time.monotonic() + FIRST_REPLY
        try:
            while time.monotonic() < deadline:
                if ctl.cancelled:
                    socket.close()
                    self._interrupt(session)
                    raise Cancelled()
                text = socket.recv(min(READ_WAIT, max(0.0, deadline - time.monotonic())))
                message = _json(text) if text is not None else None
                if message is not None:
                    return message
            why = f"no answer in {FIRST_REPLY:.0f} s"
        except WebSocketError as e:
            why = str(e)
        socket.close()
        raise SubmissionUncertain(f"Submission uncertain: the request reached SwarmUI but {why}. It may be "
                                  "generating: look in SwarmUI's queue and image history; Generate again starts "
                                  "a new generation.")

    def _interrupt(self, session: str) -> None:
        """Stop the generations of this session only (best effort)."""
        try:
            self._call("API/InterruptAll", None, {"session_id": session, "other_sessions": False})
        except ServiceError as e:
            log.warning("SwarmUI: could not interrupt the generation: %s", e)

    def _generation(self, remote_id: str) -> _Generation:
        with self._lock:
            generation = self._running.get(remote_id)
        if generation is None:
            raise ServiceError("This SwarmUI generation was started before Blender last closed and cannot be "
                               "followed again; its clip may be in SwarmUI's image history. Generate again to "
                               "make a new one.")
        return generation

    def _forget(self, remote_id: str) -> _Generation | None:
        with self._lock:
            generation = self._running.pop(remote_id, None)
        if generation is not None:
            generation.socket.close()
        return generation


def _params(request: Request) -> dict[str, Any]:
    """The request's SwarmUI parameters. SwarmUI keeps only the letters of a parameter id, so
    text2videoframes is its Text2Video Frames."""
    params: dict[str, Any] = {
        "images": 1,
        "prompt": request.prompt.strip(),
        "negativeprompt": request.negative_prompt.strip(),
        "seed": request.seed,
        "width": _size(request.width),
        "height": _size(request.height),
        "model": request.model,
        "videofps": max(1, round(request.fps)),  # an integer there; the file's real rate is read back
        "videoformat": VIDEO_FORMAT,
    }
    if request.reference_image:
        params.update(initimage=inputs.image_data_uri(request.reference_image, IMAGE_MAX), initimagecreativity=0,
                      videomodel=request.model, videoframes=request.frames)
        if request.last_frame_image:
            params["videoendimage"] = inputs.image_data_uri(request.last_frame_image, IMAGE_MAX)
    else:
        params["text2videoframes"] = request.frames
    params.update(inputs.options(request))
    return params


def _size(pixels: int) -> int:
    """Video models work in blocks of 16 pixels."""
    return max(64, round(pixels / 16) * 16)


def _json(text: str | bytes) -> dict | None:
    try:
        message = json.loads(text)
    except ValueError:
        log.warning("SwarmUI: a websocket message that is not JSON: %.80r", text)
        return None
    return message if isinstance(message, dict) else None


def _text(value: Any) -> str:
    return " ".join(str(value).split())[:300]


def _output(outputs: list[str]) -> str:
    """The clip's server path: the last output that is a video. Only View/... relative to the
    server: no other host, no absolute path, no way up out of it."""
    if not outputs:
        raise ServiceError("SwarmUI finished but gave no clip.")
    videos = [p for p in outputs if Path(p.split("?")[0]).suffix.lower() in (".mp4", ".webm", ".mov", ".gif")]
    path = (videos or outputs)[-1]
    parts = path.split("/")
    if (not path.startswith("View/") or "\\" in path or any(p in ("", ".", "..") for p in parts)
            or any(ord(c) < 32 for c in path)):
        raise ServiceError(f"SwarmUI gave an output path Shotline refuses to fetch: {_text(path)[:120]}")
    return path
