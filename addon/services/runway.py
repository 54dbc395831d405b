"""Runway: Gen-4.5, Gen-4 Turbo, Veo on Runway, Aleph 2 and Act-Two over the public API (service-apis.md §1).

One POST to the endpoint the model and the shot's inputs call for, then GET /v1/tasks/{id} until
SUCCEEDED; DELETE cancels. Stills go as JPEG data URIs (at most 5 MB), videos through an ephemeral
upload (a runway:// URI). Output links expire in 24-48 h: a link that fails is replaced by the
fresh ones a new GET of the task gives. Runway has no list of tasks, so a create whose reply was
lost stays uncertain (SubmissionUncertain) for the director to decide.
"""

from __future__ import annotations

import logging
import math
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import inputs
from .base import Capabilities, JobControl, Request, Result, ServiceError, Status
from .cloud import CloudService
from .http import ApiError

log = logging.getLogger("shotline.runway")

USD_PER_CREDIT = 0.01
DATA_URI_MAX = 5_000_000  # Runway's limit for an image data URI, counted on the encoded text
UPLOAD_MAX = 200_000_000  # an ephemeral upload

I2V, T2V, V2V, CHARACTER = "image_to_video", "text_to_video", "video_to_video", "character_performance"
_GEN4_RATIOS = ("1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672")
_VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")


@dataclass(frozen=True)
class Model:
    label: str
    endpoints: tuple[str, ...]
    durations: tuple[int, ...] = ()  # empty: the output follows the source video
    ratios: tuple[str, ...] = ()
    text_ratios: tuple[str, ...] = ()  # text to video, where it accepts fewer
    last_frame: bool = False
    seed: bool = True
    negative_prompt: bool = False
    needs_prompt: bool = False
    prompt_limit: int = 0  # UTF-16 units; 0 = not documented
    audio_switch: bool = False  # sends audio=false: takes are silent, and it is cheaper
    credits_per_second: float = 0.0  # 0 = not published

    def capabilities(self) -> Capabilities:
        return Capabilities(
            text_to_video=T2V in self.endpoints,
            first_frame=I2V in self.endpoints or CHARACTER in self.endpoints,
            last_frame=self.last_frame,
            video_to_video=V2V in self.endpoints or CHARACTER in self.endpoints,
            durations=tuple(float(d) for d in self.durations),
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            aspect_ratios=tuple(dict.fromkeys(self.ratios + self.text_ratios)),
            can_cancel=True,
            price_per_second=self.credits_per_second * USD_PER_CREDIT,
        )


# Per-second prices in credits from service-apis.md §1.8 (Veo prices with audio off). The first is the default.
MODELS: dict[str, Model] = {
    "gen4.5": Model("Gen-4.5", (I2V, T2V), tuple(range(2, 11)), _GEN4_RATIOS, ("1280:720", "720:1280"),
                    needs_prompt=True, prompt_limit=1000, credits_per_second=12),
    "gen4_turbo": Model("Gen-4 Turbo (from a first frame)", (I2V,), tuple(range(2, 11)), _GEN4_RATIOS,
                        prompt_limit=1000, credits_per_second=5),
    "veo3.1": Model("Veo 3.1", (I2V, T2V), (4, 6, 8), _VEO_RATIOS, last_frame=True, seed=False,
                    negative_prompt=True, audio_switch=True, credits_per_second=20),
    "veo3.1_fast": Model("Veo 3.1 Fast", (I2V, T2V), (4, 6, 8), _VEO_RATIOS, last_frame=True, seed=False,
                         negative_prompt=True, audio_switch=True, credits_per_second=10),
    "veo3": Model("Veo 3", (I2V, T2V), (8,), _VEO_RATIOS, seed=False, negative_prompt=True, credits_per_second=40),
    "aleph2": Model("Aleph 2 (edit a video)", (V2V,)),
    "act_two": Model("Act-Two (performance onto a character still)", (CHARACTER,), ratios=_GEN4_RATIOS,
                     credits_per_second=5),
}
DEFAULT = next(iter(MODELS))


class RunwayService(CloudService):
    id = "runway"
    label = "Runway"
    catalogue = MODELS
    key_env = "RUNWAYML_API_SECRET"
    default_url = "https://api.dev.runwayml.com"
    headers = {"X-Runway-Version": "2024-11-06"}
    poll_interval = 6.0  # Runway: "do not expect updates more often than every five seconds"
    max_concurrency = 2

    def __init__(self) -> None:
        self._tasks: dict[str, dict] = {}  # remote id -> its last reply (links, cost)

    # -- what it can do ---------------------------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        super().check(request)
        model_id, model = _model(request)
        name = f"Runway {model_id}"
        inputs.options(request)
        _endpoint(model_id, model, request)
        if model.needs_prompt and not request.prompt.strip():
            raise ServiceError(f"{name} needs a prompt.")
        if model.prompt_limit and len(request.prompt.encode("utf-16-le")) // 2 > model.prompt_limit:
            raise ServiceError(f"{name} takes at most {model.prompt_limit} characters of prompt.")
        if request.last_frame_image and not request.reference_image:
            raise ServiceError(f"{name} cannot end on a last frame without a first frame.")
        if model.durations:
            _duration(model_id, model, request)
        for path in (request.reference_image, request.last_frame_image, request.source_video):
            if path and not Path(path).is_file():
                raise ServiceError(f"Cannot read {Path(path).name} for {name}: {path} is not there.")

    def estimate_cost(self, request: Request) -> float | None:
        model_id, model = _model(request)
        if not model.credits_per_second:
            return None
        seconds = _duration(model_id, model, request) if model.durations else float(request.duration)
        return seconds * model.credits_per_second * USD_PER_CREDIT

    def test_connection(self) -> str:
        org = self.api().get("v1/organization") or {}
        return f"Runway: connected ({org.get('creditBalance', '?')} credits left)."

    # -- a job --------------------------------------------------------------------------------------------------------

    def submit(self, request: Request, ctl: JobControl) -> str:
        self.check(request)
        model_id, model = _model(request)
        endpoint = _endpoint(model_id, model, request)
        body = self._body(model_id, model, endpoint, request, ctl)
        try:
            reply = self.api().create(f"v1/{endpoint}", ctl, json=body)
        except ApiError as e:
            raise _refusal(e) from None
        if not isinstance(reply, dict) or not reply.get("id"):
            raise ServiceError("Runway accepted the request but gave no task id.")
        return str(reply["id"])

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        task = self._task(remote_id, ctl)
        status = task.get("status")
        if status == "SUCCEEDED":
            return Status(done=True, progress=1.0, message="Finished")
        if status in ("FAILED", "CANCELLED"):
            self._forget(remote_id)
            raise _failure(task)
        if status == "RUNNING":
            progress = task.get("progress")
            return Status(progress=min(1.0, max(0.0, float(progress))) if progress is not None else None,
                          message="Generating on Runway")
        if status == "THROTTLED":
            return Status(message="Waiting for a free Runway slot (your plan's limit of jobs at once)")
        if status != "PENDING":
            log.warning("Runway: task %s has an unknown status %r; still waiting", remote_id, status)
        return Status(message="Queued at Runway")

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        api = self.api()
        task = self._tasks.get(remote_id) or self._task(remote_id, ctl)
        url = _output(task)
        progress = lambda f: ctl.report("downloading", f, "Downloading")  # noqa: E731
        try:
            info = api.download(url, dest, ctl, on_progress=progress)
        except ServiceError as e:
            if e.retryable:
                raise
            task = self._task(remote_id, ctl)  # output links expire: a new GET gives fresh ones
            fresh = _output(task)
            if fresh == url:
                raise
            log.info("Runway: the clip's link failed (%s); trying a fresh one", e)
            info = api.download(fresh, dest, ctl, on_progress=progress)
        self._forget(remote_id)
        return Result(path=dest, fps=info.fps, frames=info.frames, width=info.width, height=info.height,
                      cost=_cost_usd(task))

    def cancel(self, remote_id: str) -> None:
        self._forget(remote_id)
        try:
            self.api().read("DELETE", f"v1/tasks/{remote_id}")
        except ServiceError as e:
            log.warning("Runway: could not cancel task %s: %s", remote_id, e)

    # -- helpers ----------------------------------------------------------------------------------------------------

    def _task(self, remote_id: str, ctl: JobControl) -> dict:
        task = self.api().get(f"v1/tasks/{remote_id}", ctl)
        if not isinstance(task, dict):
            raise ServiceError("Runway answered a status request with something that is not a task.", retryable=True)
        self._tasks[remote_id] = task
        return task

    def _forget(self, remote_id: str) -> None:
        self._tasks.pop(remote_id, None)

    def _body(self, model_id: str, model: Model, endpoint: str, request: Request, ctl: JobControl) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model_id}
        if request.prompt.strip():
            body["promptText"] = request.prompt.strip()
        if endpoint in (I2V, T2V):
            ratios = model.text_ratios if endpoint == T2V and model.text_ratios else model.ratios
            body["ratio"] = _ratio(request, ratios)
            body["duration"] = _duration(model_id, model, request)
        if endpoint == I2V:
            first = _image(request.reference_image)
            body["promptImage"] = first if not request.last_frame_image else [
                {"uri": first, "position": "first"},
                {"uri": _image(request.last_frame_image), "position": "last"}]
        elif endpoint == V2V:
            body["videoUri"] = self._upload(request.source_video, ctl)
        elif endpoint == CHARACTER:
            body.pop("promptText", None)
            body["character"] = {"type": "image", "uri": _image(request.reference_image)}
            body["reference"] = {"type": "video", "uri": self._upload(request.source_video, ctl)}
            body["ratio"] = _ratio(request, model.ratios)
        if model.seed:
            body["seed"] = request.seed % 2**32
        if model.negative_prompt and request.negative_prompt.strip():
            body["negativePrompt"] = request.negative_prompt.strip()
        if model.audio_switch:
            body["audio"] = False
        body.update(inputs.options(request))
        return body

    def _upload(self, path: str, ctl: JobControl) -> str:
        """An ephemeral upload (§1.6): ask for a slot, then post the file to its presigned URL,
        which is another host, so it never gets the key. Returns the runway:// URI (valid 24 h)."""
        file = Path(path)
        try:
            data = file.read_bytes() if file.stat().st_size <= UPLOAD_MAX else None
        except OSError as e:
            raise ServiceError(f"Cannot read {file.name}: {e.strerror or e}") from None
        if data is None:
            raise ServiceError(f"{file.name} is larger than Runway's 200 MB upload limit.")
        api = self.api()
        slot = api.read("POST", "v1/uploads", ctl, json={"filename": file.name, "type": "ephemeral"})
        if not isinstance(slot, dict) or not all(slot.get(k) for k in ("runwayUri", "uploadUrl")):
            raise ServiceError("Runway gave no upload address for the source video.", retryable=True)
        mime = mimetypes.guess_type(file.name)[0] or "video/mp4"
        api.read("POST", slot["uploadUrl"], ctl, data=slot.get("fields") or {}, files={"file": (file.name, data, mime)})
        return str(slot["runwayUri"])


def _model(request: Request) -> tuple[str, Model]:
    model_id = request.model if request.model in MODELS else DEFAULT
    return model_id, MODELS[model_id]


def _endpoint(model_id: str, model: Model, request: Request) -> str:
    name = f"Runway {model_id}"
    if CHARACTER in model.endpoints:
        if not (request.reference_image and request.source_video):
            raise ServiceError(f"{name} needs a character still (the first frame) and a performance video "
                               f"(the source video).")
        return CHARACTER
    if V2V in model.endpoints:
        if not request.source_video:
            raise ServiceError(f"{name} needs a source video.")
        return V2V
    if request.reference_image and I2V in model.endpoints:
        return I2V
    if T2V in model.endpoints:
        return T2V
    raise ServiceError(f"{name} needs a first-frame image (it makes video from an image only).")


def _duration(model_id: str, model: Model, request: Request) -> int:
    """The shortest accepted length covering the shot (the take is trimmed to the cut)."""
    seconds = float(request.duration)
    for d in model.durations:
        if d >= seconds - 1e-3:
            return d
    raise ServiceError(f"Runway {model_id} makes at most {model.durations[-1]} s; this shot is {seconds:.2f} s. "
                       f"Split the shot or choose another model.")


def _ratio(request: Request, ratios: tuple[str, ...]) -> str:
    """The pixel pair nearest the shot's shape; of equal shapes the smallest covering the shot, else the largest."""
    def key(ratio: str) -> tuple[float, bool, int]:
        w, h = (int(x) for x in ratio.split(":"))
        shape = round(abs(math.log((w / h) / (request.width / request.height))), 6)
        covers = w >= request.width and h >= request.height
        return shape, not covers, w * h if covers else -w * h
    return min(ratios, key=key)


def _image(path: str) -> str:
    return inputs.image_data_uri(path, DATA_URI_MAX)


def _output(task: dict) -> str:
    output = task.get("output") or []
    if not output or not isinstance(output[0], str):
        raise ServiceError("Runway finished the task but gave no clip.")
    return output[0]


def _cost_usd(task: dict) -> float | None:
    """The task's cost in credits (a number, or {"credits": n}) in USD; None when it does not say."""
    cost = task.get("cost")
    if isinstance(cost, dict):
        cost = cost.get("credits")
    return float(cost) * USD_PER_CREDIT if isinstance(cost, (int, float)) else None


def _failure(task: dict) -> ServiceError:
    """A finished task's failure as a director reads it. Never retryable: the same task cannot succeed."""
    if task.get("status") == "CANCELLED":
        return ServiceError("The Runway task was cancelled on Runway's side (its dashboard or another app).")
    code = str(task.get("failureCode") or "")
    reason = " ".join(str(task.get("failure") or "no reason given").split())[:200]
    if code.startswith("SAFETY.INPUT"):
        return ServiceError(f"Runway refused the shot under its content policy ({code}: {reason}). Change the "
                            f"prompt or image: the same request will be refused again.")
    if code.startswith("SAFETY"):
        return ServiceError(f"Runway's content policy stopped the result ({code}: {reason}). Generate again or "
                            f"change the prompt.")
    if code.startswith("ASSET"):
        return ServiceError(f"Runway could not use an input file ({code}: {reason}).")
    return ServiceError(f"Runway failed ({code or 'no code'}: {reason}). Generate again to retry.")


def _refusal(e: ApiError) -> ServiceError:
    """A 400 lists what is wrong field by field ("issues"); say it rather than only "Validation failed"."""
    issues = e.body.get("issues") if isinstance(e.body, dict) else None
    if e.status in (400, 422) and isinstance(issues, list) and issues:
        parts = [f"{'.'.join(str(p) for p in i.get('path', [])) or 'request'}: {i.get('message', '')}"
                 for i in issues[:4] if isinstance(i, dict)]
        return ServiceError(f"Runway refused the request ({e.status}): {'; '.join(parts)}.")
    return e
