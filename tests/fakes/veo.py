"""A fake Gemini API for Veo (service-apis.md §3) on a real local server.

POST /v1beta/models/{model}:predictLongRunning (validated per model; Google's error envelope),
GET /v1beta/models/{model}/operations/{id} (done after `steps` polls: generated samples, an
`error`, or zero samples with raiMediaFilteredReasons), GET /v1beta/files/{id}:download?alt=media
(needs the key, then 302 to the file host, which must not get it), GET /v1beta/models/{model}.
A wrong key is 400 API_KEY_INVALID, none 403; quota is 429 RESOURCE_EXHAUSTED with RetryInfo in
the body (`quota_exceeded`). `clip(operation)` makes the bytes served: replace it to serve
playable clips; `file_link(data)` is where a file redirects (the file host, fresh each time).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from fractions import Fraction
from typing import Any, Callable

from .clips import tiny_mp4
from .server import Call, Cdn, FakeServer, Reply

KEY = "AIzaSyFake-5ecret-0123456789abcdefghij"
FPS = Fraction(24)

MODELS = {  # durations each model takes, and its resolutions
    "veo-3.1-generate-preview": ((4, 6, 8), ("720p", "1080p")),
    "veo-3.1-fast-generate-preview": ((4, 6, 8), ("720p", "1080p")),
    "veo-3.1-lite-generate-preview": ((4, 6, 8), ("720p", "1080p")),
    "veo-3.0-generate-001": ((4, 6, 8), ("720p", "1080p")),
    "veo-3.0-fast-generate-001": ((4, 6, 8), ("720p", "1080p")),
    "veo-2.0-generate-001": ((5, 6, 7, 8), ("720p",)),
}
_PARAMETERS = {"aspectRatio", "durationSeconds", "resolution", "negativePrompt", "personGeneration", "enhancePrompt",
               "sampleCount"}
_INSTANCE = {"prompt", "image", "lastFrame", "video", "referenceImages"}


def google_error(code: int, status: str, message: str, *details: dict) -> dict:
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


def quota_exceeded(delay: str = "0.05s") -> dict:
    """The 429 body Gemini sends: the wait is in a RetryInfo detail, not in a Retry-After header."""
    return google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and "
                        "billing details.",
                        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                         "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_requests",
                                         "quotaId": "GenerateRequestsPerMinutePerProject"}]},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})


def _invalid(message: str) -> Reply:
    return Reply(400, google_error(400, "INVALID_ARGUMENT", message))


class FakeVeo(FakeServer):
    def __init__(self, cdn: Cdn, key: str = KEY, steps: int = 2):
        super().__init__()
        self.cdn = cdn
        self.key = key
        self.steps = steps  # polls answered done:false before the outcome
        self.operations: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.creates = 0
        self.bodies: list[dict] = []
        self._outcomes: list[dict] = []
        self.clip: Callable[[dict], bytes] = self.tiny_clip
        self.file_link: Callable[[bytes], str] = lambda data: self.cdn.publish(data, "video.mp4")
        self.route("POST", r"/v1beta/models/(?P<model>[^/:]+):predictLongRunning", self._create, name="create")
        self.route("GET", r"/v1beta/(?P<name>models/[^/]+/operations/[^/]+)", self._operation, name="status")
        self.route("GET", r"/v1beta/files/(?P<file>[^/:]+):download", self._file, name="file")
        self.route("GET", r"/v1beta/models/(?P<model>[^/:]+)", self._model, name="model")

    # -- test controls -----------------------------------------------------------------------------------------------

    def fail_next(self, message: str = "Internal error encountered.", code: int = 13) -> None:
        self._outcomes.append({"error": {"code": code, "message": message, "details": []}})

    def filter_next(self, *reasons: str) -> None:
        self._outcomes.append({"filtered": list(reasons)})

    def succeed_next(self) -> None:
        """The next job succeeds (to order outcomes after others queued behind it)."""
        self._outcomes.append({})

    def never_finish(self) -> None:
        self._outcomes.append({"never": True})

    def revoke(self) -> None:
        self.key = "AIzaRevoked"

    def expire_files(self) -> None:
        """Two days later: Google has deleted the generated files."""
        with self.lock:
            self.files.clear()

    @staticmethod
    def tiny_clip(operation: dict) -> bytes:
        parameters = operation["body"].get("parameters", {})
        short = 1080 if parameters.get("resolution") == "1080p" else 720
        long = short * 16 // 9
        width, height = (long, short) if parameters.get("aspectRatio", "16:9") == "16:9" else (short, long)
        return tiny_mp4(FPS, int(FPS * parameters.get("durationSeconds", 8)), width, height)

    # -- routes ------------------------------------------------------------------------------------------------------

    def _refused(self, call: Call) -> Reply | None:
        key = call.headers.get("x-goog-api-key") or (call.query.get("key") or [""])[0]
        if not key:
            return Reply(403, google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers "
                                           "(callers without established identity). Please use API Key or other "
                                           "form of API consumer identity to call this API."))
        if key != self.key:
            return Reply(400, google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                           {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                            "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                                            "metadata": {"service": "generativelanguage.googleapis.com"}}))
        return None

    def _create(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        model = call.match["model"]
        if model not in MODELS:
            return Reply(404, google_error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, "
                                           f"or is not supported for predictLongRunning."))
        body = call.json()
        problem = self._validate(model, body)
        if problem:
            return _invalid(problem)
        with self.lock:
            self.creates += 1
            self.bodies.append(body)
            name = f"models/{model}/operations/{uuid.uuid4().hex[:12]}"
            self.operations[name] = {"name": name, "body": body, "polls": 0,
                                     "outcome": self._outcomes.pop(0) if self._outcomes else {}}
        return Reply(200, {"name": name})

    def _validate(self, model: str, body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list) or len(body["instances"]) != 1:
            return "Invalid JSON payload received. 'instances' must hold one instance."
        instance, parameters = body["instances"][0], body.get("parameters") or {}
        unknown = (instance.keys() - _INSTANCE) | (parameters.keys() - _PARAMETERS) | (body.keys() - {
            "instances", "parameters", "webhookConfig"})
        if unknown:
            return f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\": Cannot find field."
        durations, resolutions = MODELS[model]
        if parameters.get("durationSeconds", 8) not in durations:
            return f"The duration {parameters.get('durationSeconds')} is not supported for {model}."
        if parameters.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
            return f"Aspect ratio {parameters.get('aspectRatio')!r} is not supported."
        resolution = parameters.get("resolution", "720p")
        if resolution not in resolutions or (resolution == "1080p" and parameters.get("durationSeconds", 8) != 8):
            return f"Resolution {resolution} is not supported for {model} at this duration."
        if "lastFrame" in instance and "image" not in instance:
            return "lastFrame is only supported for image to video."
        if "referenceImages" in instance and ({"image", "lastFrame", "video"} & instance.keys()):
            return "referenceImages cannot be combined with image, lastFrame or video."
        if not instance.get("prompt") and "image" not in instance:
            return "A prompt is required."
        images = [instance.get("image"), instance.get("lastFrame")]
        images += [r.get("image") for r in instance.get("referenceImages", []) if isinstance(r, dict)]
        for image in filter(None, images):
            if "gcsUri" in image:
                return "gcsUri is not supported in the Gemini API; send bytesBase64Encoded."
            if not str(image.get("mimeType", "")).startswith("image/"):
                return "Image mimeType is required."
            try:
                base64.b64decode(image.get("bytesBase64Encoded", ""), validate=True)
            except (binascii.Error, ValueError):
                return "Image bytesBase64Encoded is not valid base64."
        return None

    def _operation(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        with self.lock:
            operation = self.operations.get(call.match["name"])
            if operation is None:
                return Reply(404, google_error(404, "NOT_FOUND", "Operation not found."))
            operation["polls"] += 1
            outcome = operation["outcome"]
            if operation["polls"] <= self.steps or outcome.get("never"):
                return Reply(200, {"name": operation["name"], "done": False})
            reply: dict[str, Any] = {"name": operation["name"], "done": True}
            if "error" in outcome:
                reply["error"] = outcome["error"]
                return Reply(200, reply)
            answer: dict[str, Any]
            if "filtered" in outcome:
                answer = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": outcome["filtered"]}
            else:
                if "file" not in operation:
                    operation["file"] = uuid.uuid4().hex[:12]
                    self.files[operation["file"]] = self.clip(operation)
                uri = f"{self.url}/v1beta/files/{operation['file']}:download?alt=media"
                answer = {"generatedSamples": [{"video": {"uri": uri}}]}
            reply["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": answer}
        return Reply(200, reply)

    def _file(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        with self.lock:
            data = self.files.get(call.match["file"])
        if data is None:
            return Reply(404, google_error(404, "NOT_FOUND", f"File {call.match['file']} not found."))
        return Reply(302, b"", {"Location": self.file_link(data)})

    def _model(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        model = call.match["model"]
        if model not in MODELS:
            return Reply(404, google_error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta."))
        return Reply(200, {"name": f"models/{model}", "displayName": "Veo 3.1",
                           "supportedGenerationMethods": ["predictLongRunning"]})
