"""A fake Luma (service-apis.md §2) on a real local server: both APIs on one host, under their
own path prefixes, as the service reaches them when a base URL is configured.

Agents API (/v1): POST /generations (201, the Generation), GET /generations/{id}; states queued,
processing, completed (output[] with a presigned link, fresh at each GET) or failed with
failure_code/failure_reason. Dream Machine API (/dream-machine/v1): POST /generations and
/generations/video, GET /generations/{id}, GET /generations?limit&offset (newest first),
GET /credits; states queued, dreaming, completed (assets.video, one link) or failed. Bodies are
validated per model (400/422 with {"detail"}); no cancel on either (as on Luma). Each API checks
its own key. `clip(generation)` makes the bytes served: replace it to serve playable clips.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any, Callable

from .clips import tiny_mp4
from .server import Call, Cdn, FakeServer, Reply

KEY = "luma-5ecret-0123456789abcdef"
FPS = Fraction(24)

AGENT_RATIOS = ("9:16", "3:4", "1:1", "4:3", "16:9", "21:9")
DM_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
DM_MODELS = ("ray-2", "ray-flash-2", "ray-1-6")
_SIZES = {"540p": 540, "720p": 720, "1080p": 1080, "4k": 2160}
_AGENT_FIELDS = {"type", "model", "prompt", "aspect_ratio", "video", "image", "user_id", "source"}
_VIDEO_FIELDS = {"duration", "resolution", "start_frame", "end_frame", "loop", "hdr", "exr_export"}
_DM_FIELDS = {"model", "prompt", "aspect_ratio", "duration", "resolution", "loop", "keyframes", "concepts",
              "callback_url", "generation_type"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _size(ratio: str, resolution: str) -> tuple[int, int]:
    """Frame size for an aspect ratio at a resolution (its short side), even numbers."""
    w, h = (int(x) for x in ratio.split(":"))
    short = _SIZES.get(resolution, 720)
    return (round(short * w / h / 2) * 2, short) if w >= h else (short, round(short * h / w / 2) * 2)


class FakeLuma(FakeServer):
    def __init__(self, cdn: Cdn, key: str = KEY, agents_key: str | None = None,
                 agent_steps: tuple[str, ...] = ("queued", "processing", "processing"),
                 dm_steps: tuple[str, ...] = ("queued", "dreaming", "dreaming")):
        super().__init__()
        self.cdn = cdn
        self.keys = {"agents": agents_key or key, "dm": key}
        self.steps = {"agents": list(agent_steps), "dm": list(dm_steps)}
        self.generations: dict[str, dict] = {}
        self.creates = 0
        self.bodies: list[dict] = []
        self._outcomes: list[dict] = []
        self.clip: Callable[[dict], bytes] = self.tiny_clip
        self.route("POST", r"/v1/generations", self._agents_create, name="create")
        self.route("GET", r"/v1/generations/(?P<id>[^/]+)", self._read, name="status")
        self.route("POST", r"/dream-machine/v1/generations(?:/video)?", self._dm_create, name="create_dm")
        self.route("GET", r"/dream-machine/v1/generations/(?P<id>[^/]+)", self._read, name="status_dm")
        self.route("GET", r"/dream-machine/v1/generations", self._dm_list, name="list")
        self.route("GET", r"/dream-machine/v1/credits", self._credits, name="credits")

    # -- test controls -----------------------------------------------------------------------------------------------

    def fail_next(self, reason: str = "Generation failed", code: str | None = "generation_failed") -> None:
        """The next generation fails (the Dream Machine API sends no code: only the reason)."""
        self._outcomes.append({"state": "failed", "failure_code": code, "failure_reason": reason})

    def succeed_next(self) -> None:
        """The next job succeeds (to order outcomes after others queued behind it)."""
        self._outcomes.append({"state": "completed"})

    def never_finish(self) -> None:
        self._outcomes.append({"state": "running"})

    def revoke(self) -> None:
        self.keys = {k: "revoked" for k in self.keys}

    @staticmethod
    def tiny_clip(generation: dict) -> bytes:
        body = generation["body"]
        video = body.get("video", body)
        width, height = _size(body["aspect_ratio"], video["resolution"])
        return tiny_mp4(FPS, int(FPS * int(video["duration"].rstrip("s"))), width, height)

    # -- routes ------------------------------------------------------------------------------------------------------

    def _refused(self, call: Call, api: str) -> Reply | None:
        if call.headers.get("authorization") != f"Bearer {self.keys[api]}":
            return Reply(401, {"detail": "Invalid API key"})
        return None

    def _agents_create(self, call: Call) -> Reply:
        refused = self._refused(call, "agents")
        if refused:
            return refused
        body = call.json()
        problem = self._check_agents(body)
        if problem:
            return Reply(problem[0], {"detail": problem[1]})
        return Reply(201, self._render(self._make("agents", body)))

    def _check_agents(self, body: Any) -> tuple[int, str] | None:
        if not isinstance(body, dict) or body.get("type") != "video" or body.get("model") != "ray-3.2":
            return 400, "type must be 'video' and model one of uni-1, uni-1-max, ray-3.2 for video"
        if body.keys() - _AGENT_FIELDS:
            return 400, f"Unknown fields: {', '.join(sorted(body.keys() - _AGENT_FIELDS))}"
        if not body.get("prompt"):
            return 400, "prompt: field required"
        if body.get("aspect_ratio") not in AGENT_RATIOS:
            return 422, f"aspect_ratio {body.get('aspect_ratio')!r} is not supported for ray-3.2 video"
        video = body.get("video") or {}
        if video.keys() - _VIDEO_FIELDS:
            return 400, f"Unknown video fields: {', '.join(sorted(video.keys() - _VIDEO_FIELDS))}"
        if video.get("duration") not in ("5s", "10s") or video.get("resolution") not in ("540p", "720p", "1080p"):
            return 400, "video.duration must be 5s or 10s and video.resolution 540p, 720p or 1080p"
        frames = [video[k] for k in ("start_frame", "end_frame") if k in video]
        if frames and video["duration"] == "10s":
            return 422, "10s videos are text-to-video only: remove start_frame and end_frame"
        for ref in frames:
            if not isinstance(ref, dict) or len(ref.keys() & {"url", "data", "generation_id"}) != 1:
                return 422, "An image reference must have exactly one of url, data, generation_id"
            if "data" in ref:
                if not ref.get("media_type", "").startswith("image/"):
                    return 422, "media_type is required with data"
                try:
                    base64.b64decode(ref["data"], validate=True)
                except (binascii.Error, ValueError):
                    return 422, "data is not valid base64"
        return None

    def _dm_create(self, call: Call) -> Reply:
        refused = self._refused(call, "dm")
        if refused:
            return refused
        body = call.json()
        if not isinstance(body, dict) or body.get("model") not in DM_MODELS:
            return Reply(400, {"detail": f"model must be one of {', '.join(DM_MODELS)}"})
        unknown = body.keys() - _DM_FIELDS
        if unknown:
            return Reply(400, {"detail": f"Unknown fields: {', '.join(sorted(unknown))}"})
        if body.get("aspect_ratio") not in DM_RATIOS or body.get("duration") not in ("5s", "9s") \
                or body.get("resolution") not in _SIZES:
            return Reply(400, {"detail": "Invalid aspect_ratio, duration or resolution"})
        for frame in (body.get("keyframes") or {}).values():
            if not str(frame.get("url", "")).startswith("https://"):
                return Reply(400, {"detail": "Keyframe images must be https URLs"})
        return Reply(201, self._render(self._make("dm", body)))

    def _make(self, api: str, body: dict) -> dict:
        with self.lock:
            self.creates += 1
            self.bodies.append(body)
            generation = {"id": str(uuid.uuid4()), "api": api, "body": body, "created_at": _now(), "polls": -1,
                          "outcome": self._outcomes.pop(0) if self._outcomes else {"state": "completed"}}
            self.generations[generation["id"]] = generation
            return generation

    def _read(self, call: Call) -> Reply:
        api = "dm" if call.path.startswith("/dream-machine/") else "agents"
        refused = self._refused(call, api)
        if refused:
            return refused
        with self.lock:
            generation = self.generations.get(call.match["id"])
            if generation is None or generation["api"] != api:
                return Reply(404, {"detail": "Generation not found"})
            generation["polls"] += 1
            return Reply(200, self._render(generation))

    def _render(self, generation: dict) -> dict:
        """The Generation object as this API shapes it, at its current step."""
        api, body, step = generation["api"], generation["body"], max(0, generation["polls"])
        steps = self.steps[api]
        outcome = generation["outcome"]
        if step < len(steps):
            state = steps[step]
        else:
            state = steps[-1] if outcome["state"] == "running" else outcome["state"]
        reply: dict[str, Any] = {"id": generation["id"], "created_at": generation["created_at"],
                                 "model": body["model"], "state": state, "failure_reason": None}
        if state == "failed":
            reply["failure_reason"] = outcome["failure_reason"]
        if api == "agents":
            reply.update(type="video", failure_code=outcome.get("failure_code") if state == "failed" else None,
                         output=[])
            if state == "completed":
                reply["output"] = [{"type": "video", "url": self.cdn.publish(self._clip(generation), "video.mp4")}]
        else:
            reply.update(generation_type="video", request=body,
                         assets={"video": None, "image": None, "progress_video": None})
            if state == "completed":
                if "url" not in generation:
                    generation["url"] = self.cdn.publish(self._clip(generation), "video.mp4")
                reply["assets"]["video"] = generation["url"]
        return reply

    def _clip(self, generation: dict) -> bytes:
        if "clip" not in generation:
            generation["clip"] = self.clip(generation)
        return generation["clip"]

    def _dm_list(self, call: Call) -> Reply:
        refused = self._refused(call, "dm")
        if refused:
            return refused
        limit = int(call.query.get("limit", ["100"])[0])
        offset = int(call.query.get("offset", ["0"])[0])
        with self.lock:
            mine = [g for g in reversed(self.generations.values()) if g["api"] == "dm"]
            page = [self._render(g) for g in mine[offset:offset + limit]]
        return Reply(200, {"generations": page, "has_more": offset + limit < len(mine), "count": len(page),
                           "limit": limit, "offset": offset})

    def _credits(self, call: Call) -> Reply:
        return self._refused(call, "dm") or Reply(200, {"credit_balance": 4200})
