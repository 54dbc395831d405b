"""A fake Replicate API (service-apis.md §6), on FakeServer, with outputs on a Cdn.

- POST /v1/models/{owner}/{name}/predictions and POST /v1/predictions ({"version": ...}) make a
  prediction (201, the prediction object); GET /v1/predictions/{id} walks `steps` one per GET
  (starting, processing with tqdm-style logs, then succeeded with an output URL string and
  metrics.predict_time; or failed with `error` for a job made to fail); GET /v1/predictions lists
  them newest first; POST /v1/predictions/{id}/cancel cancels; POST /v1/files takes a multipart
  upload; GET /v1/account names the account.
- Errors are RFC 7807 problem bodies; a missing or revoked token gets 401; inputs are validated
  against SCHEMAS (from §6.6 and §8, independent of the add-on's table): unknown or wrong inputs
  get 422 "Input validation failed".
- The clip comes from `clip(model, input, schema) -> bytes` (pluggable, like the fal fake's).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from fractions import Fraction
from typing import Any, Callable

from .clips import tiny_mp4
from .fal import clip_size
from .server import Call, Cdn, FakeServer, Reply


@dataclass(frozen=True)
class Schema:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    enums: dict[str, tuple] = field(default_factory=dict)
    fps: Fraction = Fraction(24)
    seconds: int = 5


_VEO = ("aspect_ratio", "duration", "image", "last_frame", "reference_images", "negative_prompt", "resolution",
        "generate_audio", "seed")
_VEO_ENUMS = {"duration": (4, 6, 8), "aspect_ratio": ("16:9", "9:16"), "resolution": ("720p", "1080p")}

SCHEMAS: dict[str, Schema] = {
    "google/veo-3.1": Schema(("prompt",), _VEO, _VEO_ENUMS, seconds=8),
    "google/veo-3.1-fast": Schema(("prompt",), _VEO, _VEO_ENUMS, seconds=8),
    "kwaivgi/kling-v2.5-turbo-pro": Schema(("prompt",), ("start_image", "negative_prompt", "duration",
                                                         "aspect_ratio"),
                                           {"duration": (5, 10), "aspect_ratio": ("16:9", "9:16", "1:1")}),
    "wan-video/wan-2.7-i2v": Schema((), ("first_frame", "last_frame", "first_clip", "audio", "prompt",
                                         "negative_prompt", "resolution", "duration", "enable_prompt_expansion",
                                         "seed"),
                                    {"duration": tuple(range(2, 16))}),
    "kwaivgi/kling-lip-sync": Schema(("video_url",), ("audio_file", "text", "voice_id", "voice_speed"),
                                     fps=Fraction(25)),
}

POLICY_ERROR = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"


def default_clip(model: str, payload: dict, schema: Schema) -> bytes:
    seconds = payload.get("duration", schema.seconds)
    width, height = clip_size(payload.get("resolution"), payload.get("aspect_ratio"))
    return tiny_mp4(schema.fps, int(seconds * schema.fps), width, height)


def _problem(status: int, title: str, detail: str, **extra) -> Reply:
    return Reply(status, {"type": f"https://replicate.com/docs/reference/http#{status}", "title": title,
                          "status": status, "detail": detail, **extra},
                 {"Content-Type": "application/problem+json"})


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReplicateFake(FakeServer):
    """Replicate's API under /v1 (base URL: `fake.api_url`)."""

    def __init__(self, cdn: Cdn, token: str = "r8_fakeTokenForTests0123456789") -> None:
        super().__init__()
        self.cdn = cdn
        self.token: str | None = token
        self.steps = ["starting", "processing", "processing", "succeeded"]
        self.clip: Callable[[str, dict, Schema], bytes] = default_clip
        self.predictions: dict[str, dict] = {}
        self.files: list[tuple[str, bytes, str]] = []  # (name, bytes, content type)
        self._polls: dict[str, int] = {}
        self._fail_next: list[str | None] = []
        self.route("POST", r"/v1/models/(?P<model>[^/]+/[^/]+)/predictions", self._create_on_model, name="create")
        self.route("POST", r"/v1/predictions", self._create_on_version, name="create")
        self.route("GET", r"/v1/predictions", self._list, name="list")
        self.route("GET", r"/v1/predictions/(?P<id>[a-z0-9]+)", self._get, name="get")
        self.route("POST", r"/v1/predictions/(?P<id>[a-z0-9]+)/cancel", self._cancel, name="cancel")
        self.route("POST", r"/v1/files", self._file, name="files")
        self.route("GET", r"/v1/account", self._account, name="account")

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def creates(self) -> int:
        return len(self.predictions)

    def revoke(self) -> None:
        self.token = None

    def fail_next(self, error: str = "CUDA out of memory") -> None:
        """The next prediction made fails (after processing) with this error."""
        self._fail_next.append(error)

    def succeed_next(self) -> None:
        """The next job made succeeds (to order outcomes after others queued behind it)."""
        self._fail_next.append(None)

    def content_policy_next(self) -> None:
        self.fail_next(POLICY_ERROR)

    # -- handlers -------------------------------------------------------------------------------------------

    def _refused(self, call: Call) -> Reply | None:
        if self.token is None or call.headers.get("authorization") != f"Bearer {self.token}":
            return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        return None

    def _create_on_model(self, call: Call) -> Reply:
        body = call.json() if call.body else {}
        return self._create(call, call.match["model"], None, body)

    def _create_on_version(self, call: Call) -> Reply:
        body = call.json() if call.body else {}
        model, _, version = str(body.get("version", "")).partition(":")
        return self._create(call, model, version or None, body)

    def _create(self, call: Call, model: str, version: str | None, body: Any) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        schema = SCHEMAS.get(model)
        if schema is None:
            return _problem(404, "Model not found", f"Model {model} does not exist or you do not have access")
        payload = body.get("input") if isinstance(body, dict) else None
        invalid = self._invalid(schema, payload)
        if invalid:
            return _problem(422, "Input validation failed", "".join(f"- {f['description']}\n" for f in invalid),
                            invalid_fields=invalid)
        pid = "".join(random.choices(string.ascii_lowercase + string.digits, k=26))
        prediction = {
            "id": pid, "model": model, "version": version or "9c6ca0c2" + "0" * 56, "status": "starting",
            "input": payload, "output": None, "logs": "", "error": None, "metrics": {},
            "created_at": _now(), "started_at": None, "completed_at": None, "data_removed": False,
            "urls": {"get": f"{self.api_url}/predictions/{pid}", "cancel": f"{self.api_url}/predictions/{pid}/cancel",
                     "web": f"https://replicate.com/p/{pid}"},
        }
        with self.lock:
            prediction["_fail"] = self._fail_next.pop(0) if self._fail_next else None
            self.predictions[pid] = prediction
            self._polls[pid] = 0
        return Reply(201, self._public(prediction))

    @staticmethod
    def _invalid(schema: Schema, payload: Any) -> list[dict]:
        if not isinstance(payload, dict):
            return [{"type": "required", "field": "input", "description": "input is required"}]
        out = [{"type": "required", "field": "input", "description": f"{name} is required"}
               for name in schema.required if name not in payload]
        for name, value in payload.items():
            if name not in schema.required + schema.optional:
                out.append({"type": "additional_property_not_allowed", "field": "input",
                            "description": f"Additional property {name} is not allowed"})
            elif name in schema.enums and value not in schema.enums[name]:
                allowed = ", ".join(repr(v) for v in schema.enums[name])
                out.append({"type": "enum", "field": f"input.{name}",
                            "description": f"{name} must be one of the following: {allowed}"})
        return out

    @staticmethod
    def _public(prediction: dict) -> dict:
        return {k: v for k, v in prediction.items() if not k.startswith("_")}

    def _advance(self, prediction: dict) -> None:
        """One GET's worth of progress."""
        if prediction["status"] in ("succeeded", "failed", "canceled", "aborted"):
            return
        pid = prediction["id"]
        step = self.steps[min(self._polls[pid], len(self.steps) - 1)]
        self._polls[pid] += 1
        if step == "processing":
            prediction.update(status="processing", started_at=prediction["started_at"] or _now(),
                              logs=f"{prediction['logs']}{25 * self._polls[pid]}%|##   | {self._polls[pid]}/4 "
                                   f"[00:01<00:03]\n")
        elif step == "succeeded" and prediction["_fail"]:
            prediction.update(status="failed", error=prediction["_fail"], completed_at=_now())
        elif step == "succeeded":
            data = self.clip(prediction["model"], prediction["input"], SCHEMAS[prediction["model"]])
            prediction.update(status="succeeded", output=self.cdn.publish(data), completed_at=_now(),
                              metrics={"predict_time": 42.5, "total_time": 50.1})
        else:
            prediction["status"] = step

    def _get(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        with self.lock:
            prediction = self.predictions.get(call.match["id"])
            if prediction is None:
                return _problem(404, "Not found", "The requested resource could not be found.")
            self._advance(prediction)
            return Reply(200, self._public(prediction))

    def _list(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        with self.lock:
            results = [self._public(p) for p in reversed(self.predictions.values())]
        return Reply(200, {"next": None, "previous": None, "results": results})

    def _cancel(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        with self.lock:
            prediction = self.predictions.get(call.match["id"])
            if prediction is None:
                return _problem(404, "Not found", "The requested resource could not be found.")
            if prediction["status"] in ("starting", "processing"):
                prediction.update(status="canceled", completed_at=_now())
            return Reply(200, self._public(prediction))

    def _file(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {call.headers.get('content-type', '')}\r\n\r\n".encode() + call.body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "content":
                name = part.get_filename() or "file"
                data = part.get_payload(decode=True)
                self.files.append((name, data, part.get_content_type()))
                fid = "".join(random.choices(string.ascii_lowercase + string.digits, k=12))
                return Reply(201, {"id": fid, "name": name, "content_type": part.get_content_type(),
                                   "size": len(data), "metadata": {}, "created_at": _now(),
                                   "urls": {"get": f"{self.api_url}/files/{fid}"}})
        return _problem(400, "Bad request", "a multipart part named 'content' is required")

    def _account(self, call: Call) -> Reply:
        return self._refused(call) or Reply(200, {"type": "user", "username": "director", "name": "A Director"})

