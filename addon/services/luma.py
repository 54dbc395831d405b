"""Luma: Ray 3.2 on the Agents API and Ray 2 on the Dream Machine API (service-apis.md §2).

Each model knows its API: its host, path prefix and schema. A base URL set for tests or a proxy
(preferences, SHOTLINE_LUMA_URL) replaces both hosts; the prefixes stay, so one server can stand in
for both. The remote id carries the API ("agents:<id>", "dm:<id>") so a job can be polled after a
restart.

Luma cannot cancel on either API: a started job runs, and bills, to the end (can_cancel False).
The Dream Machine API takes images only as web links, which a desktop has none of, so its models
take no first or last frame. After a create whose reply was lost, the Dream Machine's list of
generations tells whether the job was made; the Agents API has no list, so the create stays
uncertain for the director.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import config, http, inputs
from .base import Capabilities, JobControl, Request, Result, ServiceError, Status, SubmissionUncertain
from .cloud import CloudService

log = logging.getLogger("shotline.luma")

IMAGE_MAX = 10_000_000  # inline stills, as base64 text (Luma takes up to 50 MB; smaller uploads faster)
_CLOCK_SKEW = 120.0  # seconds a generation's created_at may precede our clock's send time
_NOT_CANCELLABLE = "Luma cannot stop a started job: it runs and bills to the end"


@dataclass(frozen=True)
class Surface:
    key: str  # the remote id's prefix
    name: str
    host: str
    prefix: str
    key_env: str = ""  # a key of its own (Luma gives each API its own keys); "" or unset: the service's key


AGENTS = Surface("agents", "Agents API", "https://agents.lumalabs.ai", "/v1", "LUMA_AGENTS_API_KEY")
DREAM_MACHINE = Surface("dm", "Dream Machine API", "https://api.lumalabs.ai", "/dream-machine/v1")
SURFACES = {s.key: s for s in (AGENTS, DREAM_MACHINE)}


@dataclass(frozen=True)
class Model:
    label: str
    surface: Surface
    durations: tuple[int, ...]
    ratios: tuple[str, ...]
    resolutions: tuple[str, ...]
    frames: bool = False  # takes first and last frame stills
    text_only_durations: tuple[int, ...] = ()  # lengths it makes only from text

    def capabilities(self) -> Capabilities:
        return Capabilities(first_frame=self.frames, last_frame=self.frames,
                            durations=tuple(float(d) for d in self.durations), negative_prompt=False, seed=False,
                            aspect_ratios=self.ratios, can_cancel=False)  # no price: Luma's API table is not published


MODELS: dict[str, Model] = {
    "ray-3.2": Model("Ray 3.2", AGENTS, (5, 10), ("9:16", "3:4", "1:1", "4:3", "16:9", "21:9"),
                     ("540p", "720p", "1080p"), frames=True, text_only_durations=(10,)),
    "ray-2": Model("Ray 2", DREAM_MACHINE, (5, 9), ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"),
                   ("540p", "720p", "1080p", "4k")),
    "ray-flash-2": Model("Ray Flash 2", DREAM_MACHINE, (5, 9), ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"),
                         ("540p", "720p", "1080p", "4k")),
}
DEFAULT = next(iter(MODELS))


class LumaService(CloudService):
    id = "luma"
    label = "Luma"
    catalogue = MODELS
    key_env = "LUMAAI_API_KEY"
    extra_keys = (("luma-agents", "Agents API Key", "LUMA_AGENTS_API_KEY"),)  # else the Luma key is used
    default_url = DREAM_MACHINE.host
    poll_interval = 5.0
    max_concurrency = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[tuple[str, str], http.Api]] = {}
        self._last: dict[str, dict] = {}  # remote id -> its last reply (links)
        self._claimed: set[str] = set()  # generation ids this session has taken as its own

    def api(self, surface: Surface = AGENTS) -> http.Api:
        """The client for one of Luma's APIs: its own key if set, else the service's; its host, or
        the configured base URL, plus its path prefix."""
        own = config.key(f"{self.id}-{surface.key}", surface.key_env) if surface.key_env else ""
        key = own or config.key(self.id, self.key_env)
        if not key:
            raise ServiceError(f"No {self.label} key: set it in {self.key_hint}.")
        url = config.base_url(self.id, surface.host).rstrip("/") + surface.prefix
        with self._lock:
            cached = self._clients.get(surface.key)
            if cached is None or cached[0] != (key, url):
                cached = (key, url), http.Api(f"Luma ({surface.name})", url, self.auth_headers(key),
                                              key_hint=self.key_hint)
                self._clients[surface.key] = cached
            return cached[1]

    # -- what it can do ---------------------------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        model_id, model = _model(request)
        if not model.frames and (request.reference_image or request.last_frame_image):
            raise ServiceError(f"Luma {model_id} takes stills only as web links, which Shotline cannot give: use "
                               f"ray-3.2 for a first or last frame.")
        super().check(request)
        inputs.options(request)
        if not request.prompt.strip():
            raise ServiceError(f"Luma {model_id} needs a prompt.")
        seconds = _duration(model_id, model, request)
        if seconds in model.text_only_durations and (request.reference_image or request.last_frame_image):
            raise ServiceError(f"Luma {model_id} makes {seconds} s clips from text only; with a first or last frame "
                               f"a shot may be at most {model.durations[0]} s (this one is "
                               f"{float(request.duration):.2f} s).")
        for path in (request.reference_image, request.last_frame_image):
            if path and not Path(path).is_file():
                raise ServiceError(f"Cannot read {Path(path).name} for Luma: {path} is not there.")

    def test_connection(self) -> str:
        """Each API with its key: the Dream Machine's credit balance, and an Agents API read of a
        generation that does not exist (404 = the key was accepted; it has no cheaper call)."""
        answers = []
        try:
            self.api(AGENTS).get("generations/00000000-0000-0000-0000-000000000000")
        except http.ApiError as e:
            if e.status != 404:
                raise
        answers.append("Agents API: connected")
        try:
            credits = (self.api(DREAM_MACHINE).get("credits") or {}).get("credit_balance")
            answers.append(f"Dream Machine API: connected ({credits} credits)")
        except ServiceError as e:
            answers.append(f"Dream Machine API: {e}")
        return "Luma: " + "; ".join(answers) + "."

    # -- a job --------------------------------------------------------------------------------------------------------

    def submit(self, request: Request, ctl: JobControl) -> str:
        self.check(request)
        model_id, model = _model(request)
        surface = model.surface
        api = self.api(surface)
        if surface is AGENTS:
            body, path = _agents_body(model_id, model, request), "generations"
        else:
            body, path = _dream_machine_body(model_id, model, request), "generations/video"
        body.update(inputs.options(request))
        sent = time.time()
        try:
            reply = api.create(path, ctl, json=body)
        except SubmissionUncertain as uncertain:
            if surface is not DREAM_MACHINE:
                raise
            reply = self._reconcile(api, body, sent, ctl, uncertain)
        if not isinstance(reply, dict) or not reply.get("id"):
            raise ServiceError("Luma accepted the request but gave no generation id.")
        with self._lock:
            self._claimed.add(str(reply["id"]))
        return f"{surface.key}:{reply['id']}"

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        generation = self._get(remote_id, ctl)
        state = generation.get("state")
        if state == "completed":
            return Status(done=True, progress=1.0, message="Finished")
        if state == "failed":
            self._forget(remote_id)
            raise _failure(generation)
        if state == "queued":
            return Status(message=f"Queued at Luma ({_NOT_CANCELLABLE})")
        if state not in ("dreaming", "processing"):
            log.warning("Luma: generation %s has an unknown state %r; still waiting", remote_id, state)
        return Status(message=f"Generating on Luma ({_NOT_CANCELLABLE})")

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        api = self.api(_surface(remote_id))
        generation = self._last.get(remote_id) or self._get(remote_id, ctl)
        url = _video_url(generation)
        progress = lambda f: ctl.report("downloading", f, "Downloading")  # noqa: E731
        try:
            info = api.download(url, dest, ctl, on_progress=progress)
        except ServiceError as e:
            if e.retryable:
                raise
            fresh = _video_url(self._get(remote_id, ctl))  # Agents links are presigned for an hour
            if fresh == url:
                raise
            log.info("Luma: the clip's link failed (%s); trying a fresh one", e)
            info = api.download(fresh, dest, ctl, on_progress=progress)
        self._forget(remote_id)
        return Result(path=dest, fps=info.fps, frames=info.frames, width=info.width, height=info.height)

    def cancel(self, remote_id: str) -> None:
        """Luma has no cancel (§0.7): the job goes on and is billed. Shotline only stops waiting for it."""
        self._forget(remote_id)
        log.warning("Luma: stopped waiting for %s, but %s.", remote_id, _NOT_CANCELLABLE)

    # -- helpers ----------------------------------------------------------------------------------------------------

    def _get(self, remote_id: str, ctl: JobControl) -> dict:
        generation = self.api(_surface(remote_id)).get(f"generations/{remote_id.split(':', 1)[1]}", ctl)
        if not isinstance(generation, dict):
            raise ServiceError("Luma answered a status request with something that is not a generation.",
                               retryable=True)
        self._last[remote_id] = generation
        return generation

    def _forget(self, remote_id: str) -> None:
        self._last.pop(remote_id, None)

    def _reconcile(self, api: http.Api, body: dict, sent: float, ctl: JobControl,
                   uncertain: SubmissionUncertain) -> dict:
        """Find the generation a lost create made: the newest one echoing this very request, made
        since we sent it, that no job of this session has taken. None found: still uncertain."""
        try:
            listing = api.get("generations", ctl, params={"limit": 20, "offset": 0})
        except ServiceError:
            raise uncertain from None
        generations = listing.get("generations") if isinstance(listing, dict) else None
        with self._lock:
            for generation in generations or []:
                echo = generation.get("request") or {}
                if (generation.get("id") not in self._claimed and _created(generation) >= sent - _CLOCK_SKEW
                        and all(echo.get(k) == v for k, v in body.items())):
                    log.info("Luma: the create's reply was lost; found its generation %s", generation["id"])
                    return generation
        raise uncertain


def _model(request: Request) -> tuple[str, Model]:
    model_id = request.model if request.model in MODELS else DEFAULT
    return model_id, MODELS[model_id]


def _surface(remote_id: str) -> Surface:
    try:
        return SURFACES[remote_id.split(":", 1)[0]]
    except KeyError:
        raise ServiceError(f"{remote_id!r} is not a Luma job id.") from None


def _duration(model_id: str, model: Model, request: Request) -> int:
    """The shortest accepted length covering the shot (the take is trimmed to the cut)."""
    seconds = float(request.duration)
    for d in model.durations:
        if d >= seconds - 1e-3:
            return d
    raise ServiceError(f"Luma {model_id} makes at most {model.durations[-1]} s; this shot is {seconds:.2f} s. "
                       f"Split the shot or choose another model.")


def _image_ref(path: str) -> dict[str, str]:
    """A still inline (Agents API ImageRef): base64 and its media type."""
    uri = inputs.image_data_uri(path, IMAGE_MAX)
    head, data = uri.split(",", 1)
    return {"data": data, "media_type": head[len("data:"):].split(";")[0]}


def _agents_body(model_id: str, model: Model, request: Request) -> dict[str, Any]:
    video: dict[str, Any] = {"duration": f"{_duration(model_id, model, request)}s",
                             "resolution": inputs.pick_resolution(request.width, request.height, model.resolutions)}
    if request.reference_image:
        video["start_frame"] = _image_ref(request.reference_image)
    if request.last_frame_image:
        video["end_frame"] = _image_ref(request.last_frame_image)
    return {"type": "video", "model": model_id, "prompt": request.prompt.strip(),
            "aspect_ratio": inputs.nearest_ratio(request.width, request.height, model.ratios), "video": video}


def _dream_machine_body(model_id: str, model: Model, request: Request) -> dict[str, Any]:
    return {"model": model_id, "prompt": request.prompt.strip(),
            "aspect_ratio": inputs.nearest_ratio(request.width, request.height, model.ratios),
            "duration": f"{_duration(model_id, model, request)}s",
            "resolution": inputs.pick_resolution(request.width, request.height, model.resolutions)}


def _created(generation: dict) -> float:
    try:
        return datetime.fromisoformat(str(generation.get("created_at"))).timestamp()
    except ValueError:
        return 0.0


def _video_url(generation: dict) -> str:
    outputs = generation.get("output")
    if isinstance(outputs, list):  # Agents API
        url = next((o.get("url") for o in outputs if isinstance(o, dict) and o.get("type") == "video"), None)
    else:  # Dream Machine API
        url = (generation.get("assets") or {}).get("video")
    if not url:
        raise ServiceError("Luma finished the generation but gave no clip.")
    return str(url)


_INPUT_CODES = ("image_too_large", "unsupported_format", "corrupt_input", "invalid_request")


def _failure(generation: dict) -> ServiceError:
    """A failed generation as a director reads it. Never retryable: the same generation cannot succeed."""
    code = str(generation.get("failure_code") or "")
    reason = " ".join(str(generation.get("failure_reason") or "no reason given").split())[:200]
    if code == "content_moderated" or (not code and "moderation" in reason.lower()):
        return ServiceError(f"Luma refused the shot under its content policy ({reason}). Change the prompt or "
                            f"image: the same request will be refused again.")
    if code in _INPUT_CODES:
        return ServiceError(f"Luma could not use the request ({code}: {reason}).")
    if code == "budget_exhausted":
        return ServiceError(f"Luma: the account's budget is used up ({reason}).")
    return ServiceError(f"Luma failed ({code + ': ' if code else ''}{reason}). Generate again to retry.")
