"""A fake Runway API (service-apis.md §1) on a real local server.

Endpoints: POST /v1/{image_to_video,text_to_video,video_to_video,character_performance} (bodies
validated against the per-model tables of §1.3, answering Runway's 400 {"error","issues","docUrl"}),
GET/DELETE /v1/tasks/{id}, POST /v1/uploads (+ the presigned multipart POST, on the file host),
GET /v1/organization. Bearer key and X-Runway-Version required.

A task shows `steps` one per GET (THROTTLED, PENDING, RUNNING with progress and estimatedCost), then
its outcome: SUCCEEDED with a fresh signed link on the file host at each GET (Runway's links expire;
a new GET gives new ones) and `cost`, or FAILED with failure/failureCode, CANCELLED, or RUNNING
for ever. Outcomes are queued per task with `fail_next`, `cancel_next`, `never_finish`.
`clip(task)` makes the bytes served: replace it to serve playable clips.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any, Callable

from .clips import tiny_mp4
from .server import Call, Cdn, FakeServer, Reply

KEY = "key_" + "0123456789abcdef" * 8  # the documented shape: key_ + 128 hex digits
VERSION = "2024-11-06"
FPS = Fraction(24)
DATA_URI_MAX = 5_000_000
DOC_URL = "https://docs.dev.runwayml.com/api"

_GEN4 = ("1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672")
_VEO = ("1280:720", "720:1280", "1080:1920", "1920:1080")
_COMMON = {"model", "promptText", "contentModeration"}


def _spec(required, allowed, durations=(), ratios=(), last=False, prompt_max=0, credits=0):
    return {"required": set(required), "allowed": _COMMON | set(required) | set(allowed), "durations": durations,
            "ratios": ratios, "last": last, "prompt_max": prompt_max, "credits": credits}


# What each endpoint takes per model (§1.3), and credits per second (§1.8).
MODELS: dict[str, dict[str, dict]] = {
    "image_to_video": {
        "gen4.5": _spec({"promptImage", "promptText", "ratio", "duration"}, {"seed"}, range(2, 11), _GEN4,
                        prompt_max=1000, credits=12),
        "gen4_turbo": _spec({"promptImage", "ratio"}, {"duration", "seed"}, range(2, 11), _GEN4, prompt_max=1000,
                            credits=5),
        "veo3.1": _spec({"promptImage", "ratio"}, {"duration", "audio", "negativePrompt"}, (4, 6, 8), _VEO,
                        last=True, credits=20),
        "veo3.1_fast": _spec({"promptImage", "ratio"}, {"duration", "audio", "negativePrompt"}, (4, 6, 8), _VEO,
                             last=True, credits=10),
        "veo3": _spec({"promptImage", "ratio", "duration"}, {"negativePrompt"}, (8,), _VEO, credits=40),
    },
    "text_to_video": {
        "gen4.5": _spec({"promptText", "ratio", "duration"}, {"seed"}, range(2, 11), ("1280:720", "720:1280"),
                        prompt_max=1000, credits=12),
        "veo3.1": _spec({"promptText", "ratio"}, {"duration", "audio", "negativePrompt"}, (4, 6, 8), _VEO, credits=20),
        "veo3.1_fast": _spec({"promptText", "ratio"}, {"duration", "audio", "negativePrompt"}, (4, 6, 8), _VEO,
                             credits=10),
        "veo3": _spec({"promptText", "ratio", "duration"}, {"negativePrompt"}, (8,), _VEO, credits=40),
    },
    "video_to_video": {
        "aleph2": _spec({"videoUri"}, {"keyframes", "targetAspectRatio", "seed"}),
    },
    "character_performance": {
        "act_two": _spec({"character", "reference"}, {"bodyControl", "expressionIntensity", "ratio", "seed"},
                         ratios=_GEN4, credits=5),
    },
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _issue(path: str, message: str, code: str = "custom") -> dict:
    return {"code": code, "message": message, "path": [path] if path else []}


class FakeRunway(FakeServer):
    def __init__(self, cdn: Cdn, key: str = KEY,
                 steps: tuple[str, ...] = ("THROTTLED", "PENDING", "RUNNING", "RUNNING")):
        super().__init__()
        self.cdn = cdn
        self.key = key
        self.steps = list(steps)
        self.tasks: dict[str, dict] = {}
        self.creates = 0
        self.bodies: list[dict] = []  # every create body that was accepted
        self.uploads: dict[str, bytes] = {}
        self._outcomes: list[dict] = []
        self.clip: Callable[[dict], bytes] = self.tiny_clip
        endpoints = "|".join(MODELS)
        self.route("POST", rf"/v1/(?P<endpoint>{endpoints})", self._create, name="create")
        self.route("GET", r"/v1/tasks/(?P<id>[0-9a-f-]+)", self._status, name="status")
        self.route("DELETE", r"/v1/tasks/(?P<id>[0-9a-f-]+)", self._delete, name="cancel")
        self.route("POST", r"/v1/uploads", self._upload_slot, name="upload_slot")
        self.route("GET", r"/v1/organization", self._organization, name="organization")
        cdn.route("POST", r"/uploads/(?P<token>[0-9a-f]+)", self._upload, name="upload")

    # -- test controls -----------------------------------------------------------------------------------------------

    def fail_next(self, code: str = "INTERNAL", reason: str = "An unexpected error occurred.") -> None:
        self._outcomes.append({"status": "FAILED", "failureCode": code, "failure": reason})

    def cancel_next(self) -> None:
        self._outcomes.append({"status": "CANCELLED"})

    def succeed_next(self) -> None:
        """The next job succeeds (to order outcomes after others queued behind it)."""
        self._outcomes.append({"status": "SUCCEEDED"})

    def never_finish(self) -> None:
        self._outcomes.append({"status": "RUNNING"})

    def revoke(self) -> None:
        self.key = "key_revoked"

    @staticmethod
    def tiny_clip(task: dict) -> bytes:
        width, height = (int(x) for x in task["body"].get("ratio", "1280:720").split(":"))
        return tiny_mp4(FPS, int(FPS * task["body"].get("duration", 5)), width, height)

    # -- routes ------------------------------------------------------------------------------------------------------

    def _refused(self, call: Call) -> Reply | None:
        if call.headers.get("authorization") != f"Bearer {self.key}":
            return Reply(401, {"error": "Invalid API secret or no API secret provided."})
        if call.headers.get("x-runway-version") != VERSION:
            return Reply(400, {"error": "The X-Runway-Version header is missing or not a valid API version.",
                               "docUrl": DOC_URL})
        return None

    def _create(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        endpoint = call.match["endpoint"]
        try:
            body = call.json()
        except ValueError:
            return Reply(400, {"error": "Invalid JSON body", "docUrl": DOC_URL})
        issues = self._validate(endpoint, body)
        if issues:
            return Reply(400, {"error": "Validation of body failed", "issues": issues, "docUrl": DOC_URL})
        with self.lock:
            self.creates += 1
            self.bodies.append(body)
            task_id = str(uuid.uuid4())
            self.tasks[task_id] = {"id": task_id, "createdAt": _now(), "endpoint": endpoint, "body": body, "polls": 0,
                                   "outcome": self._outcomes.pop(0) if self._outcomes else {"status": "SUCCEEDED"},
                                   "deleted": False}
        return Reply(200, {"id": task_id})

    def _validate(self, endpoint: str, body: Any) -> list[dict]:
        if not isinstance(body, dict):
            return [_issue("", "Expected object", "invalid_type")]
        spec = MODELS[endpoint].get(body.get("model"))
        if spec is None:
            return [_issue("model", f"Invalid enum value. Expected {' | '.join(MODELS[endpoint])}, "
                                    f"received '{body.get('model')}'", "invalid_enum_value")]
        issues = [_issue(k, "Required", "invalid_type") for k in sorted(spec["required"] - body.keys())]
        extra = sorted(body.keys() - spec["allowed"])
        if extra:
            issues.append({"code": "unrecognized_keys", "keys": extra, "path": [],
                           "message": f"Unrecognized key(s) in object: {', '.join(map(repr, extra))}"})
        if "duration" in body and body["duration"] not in spec["durations"]:
            issues.append(_issue("duration", f"Invalid duration {body['duration']!r} for {body['model']}"))
        if "ratio" in body and body["ratio"] not in spec["ratios"]:
            issues.append(_issue("ratio", f"Invalid enum value. Expected {' | '.join(spec['ratios'])}, "
                                          f"received '{body['ratio']}'", "invalid_enum_value"))
        text = body.get("promptText", "")
        if spec["prompt_max"] and len(str(text)) > spec["prompt_max"]:
            issues.append(_issue("promptText", f"String must contain at most {spec['prompt_max']} character(s)",
                                 "too_big"))
        if "seed" in body and not (isinstance(body["seed"], int) and 0 <= body["seed"] <= 4294967295):
            issues.append(_issue("seed", "Number must be an integer from 0 to 4294967295", "too_big"))
        issues += self._check_images(body.get("promptImage"), spec)
        for path, ref in (("character", body.get("character")), ("reference", body.get("reference"))):
            if ref is not None:
                issues += self._check_uri(path, ref.get("uri") if isinstance(ref, dict) else None)
        if "videoUri" in body:
            issues += self._check_uri("videoUri", body["videoUri"])
        return issues

    def _check_images(self, images: Any, spec: dict) -> list[dict]:
        if images is None:
            return []
        if isinstance(images, str):
            return self._check_uri("promptImage", images)
        if not isinstance(images, list) or not images:
            return [_issue("promptImage", "Expected string or array", "invalid_type")]
        positions = [i.get("position") for i in images if isinstance(i, dict)]
        issues = [problem for i in images for problem in self._check_uri("promptImage", i.get("uri"))]
        if "last" in positions and not spec["last"]:
            issues.append(_issue("promptImage", "This model does not support a last frame"))
        if "first" not in positions:
            issues.append(_issue("promptImage", "This model does not support only a last frame"))
        return issues

    def _check_uri(self, path: str, uri: Any) -> list[dict]:
        if not isinstance(uri, str):
            return [_issue(path, "Expected string", "invalid_type")]
        if uri.startswith("data:"):
            if ";base64," not in uri or not uri[5:].split(";")[0]:
                return [_issue(path, "Data URIs must carry a media type and be base64")]
            if len(uri) > DATA_URI_MAX:
                return [_issue(path, "Data URI must be at most 5MB", "too_big")]
            return []
        if uri.startswith("runway://"):
            return [] if uri.rsplit("/", 1)[-1] in self.uploads else [_issue(path, "Unknown or expired upload")]
        if uri.startswith("https://"):
            return []
        return [_issue(path, "Invalid url: must be https, a runway:// upload or a data URI", "invalid_string")]

    def _status(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        with self.lock:
            task = self.tasks.get(call.match["id"])
            if task is None or task["deleted"]:
                return Reply(404, {"error": "Task not found"})
            task["polls"] += 1
            step = task["polls"] - 1
            reply: dict[str, Any] = {"id": task["id"], "createdAt": task["createdAt"]}
            credits = MODELS[task["endpoint"]][task["body"]["model"]]["credits"] * task["body"].get("duration", 5)
            if step < len(self.steps):
                reply["status"] = self.steps[step]
                if self.steps[step] == "RUNNING":
                    reply["progress"] = round((step + 1) / (len(self.steps) + 1), 2)
                    reply["estimatedCost"] = credits
                return Reply(200, reply)
            outcome = task["outcome"]
            reply.update(outcome)
            if outcome["status"] == "RUNNING":
                reply["progress"] = 0.99
            elif outcome["status"] == "SUCCEEDED":
                if "clip" not in task:
                    task["clip"] = self.clip(task)
                reply["output"] = [self.cdn.publish(task["clip"], "output.mp4")]
                reply["cost"] = credits
        return Reply(200, reply)

    def _delete(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        with self.lock:
            task = self.tasks.get(call.match["id"])
            if task is None or task["deleted"]:
                return Reply(404, {"error": "Task not found"})
            task["deleted"] = True  # a running task is aborted, a finished one deleted: gone either way
        return Reply(204)

    def _upload_slot(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        body = call.json() or {}
        if body.get("type") != "ephemeral" or not body.get("filename"):
            return Reply(400, {"error": "Validation of body failed",
                               "issues": [_issue("type", "Expected 'ephemeral'")], "docUrl": DOC_URL})
        token = uuid.uuid4().hex
        return Reply(200, {"runwayUri": f"runway://uploads/{token}", "uploadUrl": f"{self.cdn.url}/uploads/{token}",
                           "fields": {"key": f"uploads/{token}/{body['filename']}", "policy": "eyJmYWtlIjp0cnVlfQ=="}})

    def _upload(self, call: Call) -> Reply:
        """The presigned multipart POST: every field of the slot, then the file part named 'file'."""
        message = email.message_from_bytes(
            b"Content-Type: " + call.headers.get("content-type", "").encode() + b"\r\n\r\n" + call.body,
            policy=email.policy.HTTP)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()} \
            if message.is_multipart() else {}
        if "policy" not in parts or "key" not in parts or "file" not in parts:
            return Reply(400, "<Error><Code>InvalidArgument</Code></Error>", {"Content-Type": "application/xml"})
        with self.lock:
            self.uploads[call.match["token"]] = parts["file"].get_payload(decode=True)
        return Reply(204)

    def _organization(self, call: Call) -> Reply:
        return self._refused(call) or Reply(200, {
            "creditBalance": 12500,
            "tier": {"maxMonthlyCreditSpend": 10000,
                     "models": {m: {"maxConcurrentGenerations": 2, "maxDailyGenerations": 200}
                                for endpoint in MODELS.values() for m in endpoint}},
            "usage": {"models": {}}})
