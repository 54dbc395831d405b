"""A fake fal.ai queue API (service-apis.md §5), on FakeServer, with its files on a Cdn.

- POST /{endpoint} (any depth) makes a job and answers request_id + status/response/cancel URLs
  under {owner}/{alias} only, as fal does (the endpoint sub-path is dropped).
- GET …/requests/{id}/status walks `steps` one per poll (IN_QUEUE with queue_position, then
  IN_PROGRESS, COMPLETED); GET …/requests/{id} answers the output {"video": File} or, for a job
  made to fail, 422 {"detail": [{loc, msg, type}]} (failure is discovered on the result, §0.4).
- PUT …/cancel answers 202 CANCELLATION_REQUESTED, or 400 ALREADY_COMPLETED.
- Storage: POST /storage/auth/token (the REST host) and POST /files/upload (the CDN upload host,
  token auth, never the key) are served here too; point both hosts at this server.
- Inputs are validated against SCHEMAS, transcribed from §5.8 and §8 independently of the add-on's
  model table, so a wrong input name or encoding in the table gets fal's 422. (Real fal ignores
  unknown fields; the fake refuses them, to catch typos.)
- Every call must carry `Authorization: Key <key>`; `revoke()` makes the key invalid (401).

The clip a job delivers comes from `clip(endpoint, input, schema) -> bytes` (default: a tiny MP4
at the endpoint's rate, length and size), so a test can plug in playable clips.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

from .clips import tiny_mp4
from .server import Call, Cdn, FakeServer, Reply

URL = object()  # a field holding a file: an https URL or a data URI


@dataclass(frozen=True)
class Schema:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    enums: dict[str, tuple] = field(default_factory=dict)  # exact values, types included ("5" is not 5)
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    fps: Fraction = Fraction(24)  # what the endpoint delivers
    seconds: int = 5  # when the input says nothing about length


def _durations(first: int, last: int) -> tuple[str, ...]:
    return tuple(str(d) for d in range(first, last + 1))


_VEO = ("aspect_ratio", "duration", "resolution", "generate_audio", "negative_prompt", "seed", "auto_fix",
        "safety_tolerance")
_VEO_ENUMS = {"duration": ("4s", "6s", "8s"), "aspect_ratio": ("16:9", "9:16"), "resolution": ("720p", "1080p", "4k")}
_SEEDANCE2 = ("generate_audio", "aspect_ratio", "bitrate_mode", "duration", "resolution")
_SEEDANCE2_ENUMS = {"duration": ("auto",) + _durations(4, 15), "resolution": ("480p", "720p", "1080p", "4k")}
_LTX = ("duration", "resolution", "fps", "aspect_ratio", "generate_audio")
_LTX_ENUMS = {"duration": (6, 8, 10, 12, 14, 16, 18, 20), "resolution": ("1080p", "1440p", "2160p"), "fps": (25, 50)}

SCHEMAS: dict[str, Schema] = {
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": Schema(
        ("prompt",), ("aspect_ratio", "negative_prompt", "cfg_scale", "duration"),
        {"duration": ("5", "10"), "aspect_ratio": ("16:9", "9:16", "1:1")}),
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": Schema(
        ("prompt", "image_url"), ("tail_image_url", "negative_prompt", "cfg_scale", "duration"),
        {"duration": ("5", "10")}),
    "fal-ai/kling-video/v3/pro/image-to-video": Schema(
        ("start_image_url",), ("prompt", "multi_prompt", "end_image_url", "generate_audio", "negative_prompt",
                               "cfg_scale", "elements", "shot_type", "duration"),
        {"duration": _durations(3, 15)}),
    "fal-ai/veo3.1": Schema(("prompt",), _VEO, _VEO_ENUMS),
    "fal-ai/veo3.1/fast": Schema(("prompt",), _VEO, _VEO_ENUMS),
    "fal-ai/veo3.1/image-to-video": Schema(("prompt", "image_url"), _VEO, _VEO_ENUMS),
    "fal-ai/veo3.1/first-last-frame-to-video": Schema(("prompt", "first_frame_url", "last_frame_url"), _VEO,
                                                      _VEO_ENUMS),
    "bytedance/seedance-2.0/text-to-video": Schema(("prompt",), _SEEDANCE2, _SEEDANCE2_ENUMS),
    "bytedance/seedance-2.0/image-to-video": Schema(("prompt", "image_url"), _SEEDANCE2 + ("end_image_url",),
                                                    _SEEDANCE2_ENUMS),
    "fal-ai/bytedance/seedance/v1/pro/image-to-video": Schema(
        ("prompt", "image_url"), ("camera_fixed", "seed", "enable_safety_checker", "end_image_url", "duration",
                                  "resolution"),
        {"duration": _durations(2, 12), "resolution": ("480p", "720p", "1080p")}),
    "fal-ai/minimax/hailuo-02/standard/image-to-video": Schema(
        ("prompt", "image_url"), ("end_image_url", "prompt_optimizer", "duration", "resolution"),
        {"duration": ("6", "10"), "resolution": ("512P", "768P")}),
    "fal-ai/wan-25-preview/image-to-video": Schema(
        ("prompt", "image_url"), ("audio_url", "negative_prompt", "seed", "enable_prompt_expansion", "duration",
                                  "resolution"),
        {"duration": ("5", "10"), "resolution": ("480p", "720p", "1080p")}),
    "fal-ai/wan/v2.2-a14b/image-to-video/lora": Schema(
        ("prompt", "image_url"), ("end_image_url", "num_frames", "frames_per_second", "seed", "negative_prompt",
                                  "loras", "resolution"),
        {"resolution": ("480p", "580p", "720p")}, {"num_frames": (17, 161), "frames_per_second": (4, 60)},
        fps=Fraction(16)),
    "fal-ai/ltxv-2/text-to-video/fast": Schema(("prompt",), _LTX, _LTX_ENUMS, fps=Fraction(25)),
    "fal-ai/ltxv-2/image-to-video/fast": Schema(("prompt", "image_url"), _LTX, _LTX_ENUMS, fps=Fraction(25)),
    "fal-ai/sync-lipsync/v2": Schema(("video_url", "audio_url"), ("model", "sync_mode"), {
        "model": ("lipsync-2", "lipsync-2-pro"), "sync_mode": ("cut_off", "loop", "bounce", "silence", "remap")},
        fps=Fraction(25)),
    "fal-ai/kling-video/lipsync/audio-to-video": Schema(("video_url", "audio_url"), fps=Fraction(25)),
    "fal-ai/latentsync": Schema(("video_url", "audio_url"), ("guidance_scale", "loop_mode", "seed"),
                                fps=Fraction(25)),
    "fal-ai/bytedance/omnihuman/v1.5": Schema(("image_url", "audio_url"), ("prompt", "resolution", "turbo_mode",
                                                                           "mask_url"),
                                              {"resolution": ("720p", "1080p")}, fps=Fraction(25)),
    "fal-ai/kling-video/ai-avatar/v2/pro": Schema(("image_url", "audio_url"), ("prompt",), fps=Fraction(30)),
}

FILE_FIELDS = {"image_url", "tail_image_url", "start_image_url", "end_image_url", "first_frame_url",
               "last_frame_url", "audio_url", "video_url", "mask_url"}


def clip_size(resolution: Any, aspect: Any) -> tuple[int, int]:
    """The frame size a model makes for a resolution ("720p", "768P", "4k") and an aspect ("16:9")."""
    text = str(resolution or "720p").lower()
    lines = int(text[:-1]) * 540 if text.endswith("k") else int(text.rstrip("p") or 720)
    w, h = (int(x) for x in str(aspect).split(":")) if aspect and ":" in str(aspect) else (16, 9)
    long_side = round(lines * max(w, h) / min(w, h) / 2) * 2
    return (long_side, lines) if w >= h else (lines, long_side)


def default_clip(endpoint: str, payload: dict, schema: Schema) -> bytes:
    if "num_frames" in payload:
        fps, frames = Fraction(payload.get("frames_per_second", 16)), int(payload["num_frames"])
    else:
        raw = str(payload.get("duration", schema.seconds)).rstrip("s")
        fps = Fraction(payload.get("fps", schema.fps))
        frames = int((int(raw) if raw.isdigit() else schema.seconds) * fps)
    width, height = clip_size(payload.get("resolution"), payload.get("aspect_ratio"))
    return tiny_mp4(fps, frames, width, height)


def validate(schema: Schema, payload: Any) -> list[dict]:
    """FastAPI-style validation errors for `payload` (empty when it is fine)."""
    if not isinstance(payload, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    errors = [{"loc": ["body", name], "msg": "Field required", "type": "missing"}
              for name in schema.required if name not in payload]
    for name, value in payload.items():
        loc = ["body", name]
        if name not in schema.required + schema.optional:
            errors.append({"loc": loc, "msg": "Extra inputs are not permitted", "type": "extra_forbidden"})
        elif name in schema.enums and value not in schema.enums[name]:
            allowed = " or ".join(repr(v) for v in schema.enums[name])
            errors.append({"loc": loc, "msg": f"Input should be {allowed}", "type": "literal_error", "input": value})
        elif name in schema.ranges and not (isinstance(value, int)
                                            and schema.ranges[name][0] <= value <= schema.ranges[name][1]):
            low, high = schema.ranges[name]
            errors.append({"loc": loc, "msg": f"Input should be between {low} and {high}", "type": "int_range"})
        elif name in FILE_FIELDS and not (isinstance(value, str) and value.startswith(("https://", "http://",
                                                                                        "data:"))):
            errors.append({"loc": loc, "msg": "Input should be a valid URL", "type": "url_parsing"})
    return errors


@dataclass
class FalJob:
    id: str
    endpoint: str
    input: dict
    polls: int = 0
    result: Reply | None = None  # set when made to fail; else the video once completed
    cancelled: bool = False
    completed: bool = False


class FalFake(FakeServer):
    """fal's queue, REST (storage) and upload hosts on one local server."""

    def __init__(self, cdn: Cdn, key: str = "fal-key-id:fal-key-secret") -> None:
        super().__init__()
        self.cdn = cdn
        self.key: str | None = key
        self.steps = ["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
        self.clip: Callable[[str, dict, Schema], bytes] = default_clip
        self.jobs: dict[str, FalJob] = {}
        self.uploads: list[tuple[str, bytes]] = []  # (file name, bytes)
        self._fail_next: list[Reply | None] = []
        self._tokens: set[str] = set()
        self.route("POST", r"/storage/auth/token", self._token, name="token")
        self.route("POST", r"/files/upload", self._upload, name="upload")
        self.route("GET", r"/(?P<app>[^/]+/[^/]+)/requests/(?P<id>[^/]+)/status", self._status, name="status")
        self.route("GET", r"/(?P<app>[^/]+/[^/]+)/requests/(?P<id>[^/]+)", self._result, name="result")
        self.route("PUT", r"/(?P<app>[^/]+/[^/]+)/requests/(?P<id>[^/]+)/cancel", self._cancel, name="cancel")
        self.route("POST", r"/(?P<endpoint>[^?]+)", self._submit, name="submit")

    @property
    def creates(self) -> int:
        return len(self.jobs)

    def revoke(self) -> None:
        self.key = None

    def fail_next(self, detail: Any, status: int = 422) -> None:
        """The next job made completes, then its result answers `status` with this detail."""
        self._fail_next.append(Reply(status, {"detail": detail}))

    def succeed_next(self) -> None:
        """The next job made succeeds (to order outcomes after others queued behind it)."""
        self._fail_next.append(None)

    def content_policy_next(self) -> None:
        self.fail_next([{"loc": ["body", "prompt"], "msg": "The content was flagged by a content checker.",
                         "type": "content_policy_violation",
                         "url": "https://docs.fal.ai/errors#content_policy_violation", "categories": ["violence"]}])

    # -- handlers -------------------------------------------------------------------------------------------

    def _refused(self, call: Call) -> Reply | None:
        if self.key is None or call.headers.get("authorization") != f"Key {self.key}":
            return Reply(401, {"detail": "Authentication is required to access this resource."})
        return None

    def _urls(self, job: FalJob) -> dict:
        app = "/".join(job.endpoint.split("/")[:2])
        base = f"{self.url}/{app}/requests/{job.id}"
        return {"request_id": job.id, "response_url": base, "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel"}

    def _submit(self, call: Call) -> Reply:
        endpoint = call.match["endpoint"]
        schema = SCHEMAS.get(endpoint)
        if schema is None:
            return Reply(404, {"detail": f"Application '{endpoint}' not found"})
        refused = self._refused(call)
        if refused:
            return refused
        try:
            payload = call.json()
        except ValueError:
            return Reply(422, {"detail": [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]})
        errors = validate(schema, payload)
        if errors:
            return Reply(422, {"detail": errors})
        with self.lock:
            job = FalJob(str(uuid.uuid4()), endpoint, payload)
            job.result = self._fail_next.pop(0) if self._fail_next else None
            self.jobs[job.id] = job
        return Reply(200, {**self._urls(job), "queue_position": 0})

    def _job(self, call: Call) -> FalJob | None:
        job = self.jobs.get(call.match["id"])
        return job if job and "/".join(job.endpoint.split("/")[:2]) == call.match["app"] else None

    def _status(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        job = self._job(call)
        if job is None:
            return Reply(404, {"detail": "Request not found"})
        with self.lock:
            step = self.steps[min(job.polls, len(self.steps) - 1)]
            job.polls += 1
            job.completed = job.completed or step == "COMPLETED"
            ahead = self.steps[job.polls:].count("IN_QUEUE")  # the queue moves one place per poll
        body = {"status": step, **self._urls(job)}
        if step == "IN_QUEUE":
            body["queue_position"] = ahead
        elif step == "COMPLETED":
            body.update(logs=[], metrics={"inference_time": 41.7})
        else:
            body["logs"] = [{"message": "step 3/30", "level": "INFO", "source": "USER",
                             "timestamp": "2026-11-30T12:00:00Z"}]
        return Reply(200, body)

    def _result(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        job = self._job(call)
        if job is None:
            return Reply(404, {"detail": "Request not found"})
        if not job.completed:
            return Reply(400, {"detail": "Request is still in progress"})
        with self.lock:
            if job.result is None:
                data = self.clip(job.endpoint, job.input, SCHEMAS[job.endpoint])
                job.result = Reply(200, {"video": {"url": self.cdn.publish(data), "content_type": "video/mp4",
                                                   "file_name": "output.mp4", "file_size": len(data)}})
        return job.result

    def _cancel(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        job = self._job(call)
        if job is None:
            return Reply(404, {"status": "NOT_FOUND"})
        if job.completed:
            return Reply(400, {"status": "ALREADY_COMPLETED"})
        job.cancelled = True
        return Reply(202, {"status": "CANCELLATION_REQUESTED"})

    def _token(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        token = uuid.uuid4().hex
        self._tokens.add(token)
        return Reply(200, {"token": token, "token_type": "Bearer", "base_url": self.url,
                           "expires_at": "2099-01-01T00:00:00Z"})

    def _upload(self, call: Call) -> Reply:
        auth = call.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._tokens:
            return Reply(401, {"detail": "Invalid upload token"})
        name = call.headers.get("x-fal-file-name", "upload.bin")
        self.uploads.append((name, call.body))
        return Reply(200, {"access_url": self.cdn.publish(call.body, name, call.headers.get("content-type", ""))})
