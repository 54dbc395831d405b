"""Google Veo through the Gemini API with an API key (service-apis.md §3).

POST models/{model}:predictLongRunning starts a long-running operation; GET {operation name}
until done: then either an error, generated samples (a file URI, downloaded with the key, whose
redirect to Google's file host must not carry it: http.Api drops it), or no samples and the
safety filter's reasons. Stills go inline as base64. The Gemini API has no seed, no audio switch
(Veo 3 clips come with sound, which Shotline leaves unmixed) and no cancel: a started job runs,
and bills, to the end. No list of operations either, so a lost create stays uncertain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import inputs
from .base import Capabilities, JobControl, Request, Result, ServiceError, Status
from .cloud import CloudService
from .http import ApiError

log = logging.getLogger("shotline.veo")

IMAGE_MAX = 8_000_000  # inline stills, as base64 text: well under the request size limit
_NOT_CANCELLABLE = "Veo cannot stop a started job: it runs and bills to the end"
_TRANSIENT = {4: "DEADLINE_EXCEEDED", 10: "ABORTED", 13: "INTERNAL", 14: "UNAVAILABLE"}


@dataclass(frozen=True)
class Model:
    label: str
    durations: tuple[int, ...]
    resolutions: tuple[str, ...] = ("720p", "1080p")  # 1080p only at 8 s
    last_frame: bool = False
    reference_images: int = 0  # character/place stills (8 s only, not with a first or last frame)
    usd_per_second: float = 0.0  # 0 = not known

    def capabilities(self) -> Capabilities:
        return Capabilities(first_frame=True, last_frame=self.last_frame,
                            durations=tuple(float(d) for d in self.durations), seed=False,
                            reference_images=self.reference_images, aspect_ratios=("16:9", "9:16"), can_cancel=False,
                            price_per_second=self.usd_per_second)


# Prices from service-apis.md §3.4 (third-party reports of Google's page; they drift). The first is the default.
MODELS: dict[str, Model] = {
    "veo-3.1-generate-preview": Model("Veo 3.1", (4, 6, 8), last_frame=True, reference_images=3, usd_per_second=0.40),
    "veo-3.1-fast-generate-preview": Model("Veo 3.1 Fast", (4, 6, 8), last_frame=True, reference_images=3,
                                           usd_per_second=0.15),
    "veo-3.1-lite-generate-preview": Model("Veo 3.1 Lite", (4, 6, 8), last_frame=True, usd_per_second=0.05),
    "veo-3.0-generate-001": Model("Veo 3", (4, 6, 8)),
    "veo-3.0-fast-generate-001": Model("Veo 3 Fast", (4, 6, 8)),
    "veo-2.0-generate-001": Model("Veo 2 (silent)", (5, 6, 7, 8), resolutions=()),
}
DEFAULT = next(iter(MODELS))


class VeoService(CloudService):
    id = "veo"
    label = "Veo"
    catalogue = MODELS
    key_env = "GEMINI_API_KEY"
    default_url = "https://generativelanguage.googleapis.com"
    poll_interval = 10.0
    max_concurrency = 2
    max_wait = 20 * 60.0  # seconds of polling before an operation counts as lost (Veo: 11 s to 6 min)

    def __init__(self) -> None:
        self._operations: dict[str, dict] = {}  # operation name -> its finished reply

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    # -- what it can do ---------------------------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        super().check(request)
        model_id, model = _model(request)
        inputs.options(request)
        if not request.prompt.strip() and not request.reference_image:
            raise ServiceError(f"Veo {model_id} needs a prompt.")
        if request.last_frame_image and not request.reference_image:
            raise ServiceError(f"Veo {model_id} cannot end on a last frame without a first frame.")
        if request.reference_images and (request.reference_image or request.last_frame_image):
            raise ServiceError(f"Veo {model_id} takes reference images or a first/last frame, not both.")
        if request.reference_images and not request.prompt.strip():
            raise ServiceError(f"Veo {model_id} needs a prompt with reference images.")
        _duration(model_id, model, request)
        for path in (request.reference_image, request.last_frame_image, *request.reference_images):
            if path and not Path(path).is_file():
                raise ServiceError(f"Cannot read {Path(path).name} for Veo: {path} is not there.")

    def estimate_cost(self, request: Request) -> float | None:
        model_id, model = _model(request)
        return _duration(model_id, model, request) * model.usd_per_second if model.usd_per_second else None

    def test_connection(self) -> str:
        info = self.api().get(f"v1beta/models/{DEFAULT}") or {}
        return f"Veo: connected ({info.get('displayName') or DEFAULT} is available)."

    # -- a job --------------------------------------------------------------------------------------------------------

    def submit(self, request: Request, ctl: JobControl) -> str:
        self.check(request)
        model_id, model = _model(request)
        body = _body(model_id, model, request)
        reply = self.api().create(f"v1beta/models/{model_id}:predictLongRunning", ctl, json=body)
        if not isinstance(reply, dict) or not reply.get("name"):
            raise ServiceError("Veo accepted the request but gave no operation name.")
        return str(reply["name"])

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        operation = self.api().get(f"v1beta/{remote_id}", ctl)
        if not isinstance(operation, dict):
            raise ServiceError("Veo answered a status request with something that is not an operation.",
                               retryable=True)
        if not operation.get("done"):
            return Status(message=f"Generating on Veo ({_NOT_CANCELLABLE})")
        _video_uri(operation)  # raises the operation's error or the safety filter's reasons
        self._operations[remote_id] = operation
        return Status(done=True, progress=1.0, message="Finished")

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        api = self.api()
        operation = self._operations.pop(remote_id, None) or api.get(f"v1beta/{remote_id}", ctl)
        try:
            info = api.download(_video_uri(operation), dest, ctl,
                                on_progress=lambda f: ctl.report("downloading", f, "Downloading"))
        except ApiError as e:
            if e.status == 404:
                raise ServiceError("Veo no longer has the clip (Google keeps generated videos for 2 days). "
                                   "Generate again.") from None
            raise
        return Result(path=dest, fps=info.fps, frames=info.frames, width=info.width, height=info.height)

    def cancel(self, remote_id: str) -> None:
        """The Gemini API has no cancel (§0.7): the job goes on and is billed. Shotline only stops waiting."""
        self._operations.pop(remote_id, None)
        log.warning("Veo: stopped waiting for %s, but %s.", remote_id, _NOT_CANCELLABLE)


def _model(request: Request) -> tuple[str, Model]:
    model_id = request.model if request.model in MODELS else DEFAULT
    return model_id, MODELS[model_id]


def _duration(model_id: str, model: Model, request: Request) -> int:
    """The shortest accepted length covering the shot (the take is trimmed to the cut); 8 s with
    reference images, the only length they take."""
    seconds = float(request.duration)
    durations = (8,) if request.reference_images else model.durations
    for d in durations:
        if d >= seconds - 1e-3:
            return d
    raise ServiceError(f"Veo {model_id} makes at most {durations[-1]} s; this shot is {seconds:.2f} s. "
                       f"Split the shot or choose another model.")


def _inline(path: str) -> dict[str, str]:
    head, data = inputs.image_data_uri(path, IMAGE_MAX).split(",", 1)
    return {"bytesBase64Encoded": data, "mimeType": head[len("data:"):].split(";")[0]}


def _body(model_id: str, model: Model, request: Request) -> dict[str, Any]:
    instance: dict[str, Any] = {}
    if request.prompt.strip():
        instance["prompt"] = request.prompt.strip()
    if request.reference_image:
        instance["image"] = _inline(request.reference_image)
    if request.last_frame_image:
        instance["lastFrame"] = _inline(request.last_frame_image)
    if request.reference_images:
        instance["referenceImages"] = [{"image": _inline(p), "referenceType": "ASSET"}
                                       for p in request.reference_images]
    seconds = _duration(model_id, model, request)
    parameters: dict[str, Any] = {
        "aspectRatio": inputs.nearest_ratio(request.width, request.height, ("16:9", "9:16")),
        "durationSeconds": seconds, "sampleCount": 1}
    if model.resolutions:
        sharp = seconds == 8 and min(request.width, request.height) > 720 and "1080p" in model.resolutions
        parameters["resolution"] = "1080p" if sharp else "720p"
    if request.negative_prompt.strip():
        parameters["negativePrompt"] = request.negative_prompt.strip()
    parameters.update(inputs.options(request))
    return {"instances": [instance], "parameters": parameters}


def _video_uri(operation: dict) -> str:
    """The finished operation's clip, or its failure as a director reads it (never retryable: the
    same operation cannot succeed)."""
    error = operation.get("error")
    if isinstance(error, dict):
        message = " ".join(str(error.get("message") or "no reason given").split())[:200]
        if any(word in message.lower() for word in ("usage guidelines", "safety", "responsible ai", "policy")):
            raise ServiceError(f"Veo refused the shot under Google's content policy ({message}). Change the prompt "
                               f"or image: the same request will be refused again.")
        code = error.get("code")
        if code in _TRANSIENT:
            raise ServiceError(f"Veo failed ({_TRANSIENT[code]}: {message}). Generate again to retry.")
        raise ServiceError(f"Veo failed: {message}")
    answer = (operation.get("response") or {}).get("generateVideoResponse") or {}
    for sample in answer.get("generatedSamples") or []:
        uri = (sample.get("video") or {}).get("uri")
        if uri:
            return str(uri)
    reasons = "; ".join(str(r) for r in answer.get("raiMediaFilteredReasons") or [])
    if answer.get("raiMediaFilteredCount") or reasons:
        raise ServiceError(f"Google's safety filters blocked the Veo clip ({reasons or 'no reason given'}). "
                           f"Change the prompt or image: the same request will be blocked again.")
    raise ServiceError("Veo finished but gave no clip.")
