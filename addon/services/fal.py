"""fal.ai through its queue API (service-apis.md §5): submit to the endpoint, poll the status URL,
read the result from the response URL, download the video from fal's CDN (no key sent there).

The remote id is a compact JSON text with the request id and the three URLs fal returned, so a
job saved in the .blend is polled again after a restart. fal has no list of requests: a submit
whose reply was lost cannot be looked up, so SubmissionUncertain goes to the director.
Uploads use fal's REST host (rest.fal.ai; SHOTLINE_FAL_REST_URL points it elsewhere, for tests).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from . import config, http, inputs, models
from .base import JobControl, Request, Result, ServiceError, Status
from .http import ApiError

log = logging.getLogger("shotline.fal")

IMAGE_MAX_BYTES = 10_000_000  # as a data URI; endpoints allow 8-30 MB (the table narrows it per model)
INLINE_MAX_BYTES = 2_000_000  # larger audio and video go through fal's storage, not into the JSON body
UPLOAD_MAX_BYTES = 100 * 1024**2  # beyond this fal wants a multipart upload
REST_URL = "https://rest.fal.ai"


class FalService(models.TableService):
    id = "fal"
    label = "fal"
    key_env = "FAL_KEY"
    default_url = "https://queue.fal.run"
    poll_interval = 4.0  # fal_client polls every 0.1 s; a video takes minutes
    max_concurrency = 4  # fal queues the rest itself (IN_QUEUE), never rejecting for concurrency

    def __init__(self) -> None:
        self._rest: tuple[tuple[str, str], http.Api] | None = None

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Key {key}"}

    def rest(self) -> http.Api:
        """fal's REST host (storage); same key, another origin, so a client of its own."""
        api = self.api()  # raises without a key
        key, url = config.key(self.id, self.key_env), config.base_url("fal_rest", REST_URL)
        if self._rest is None or self._rest[0] != (key, url):
            self._rest = (key, url), http.Api(self.label, url, self.auth_headers(key), key_hint=api.key_hint,
                                              timeout=api.timeout, max_attempts=api.max_attempts,
                                              base_delay=api.base_delay)
        return self._rest[1]

    def test_connection(self) -> str:
        # Asking for an upload token is free and needs a valid key.
        self.rest().read("POST", "storage/auth/token?storage_type=fal-cdn-v3", json={})
        return "fal accepted the key."

    # -- the job ---------------------------------------------------------------------------------------------

    def submit(self, request: Request, ctl: JobControl) -> str:
        self.check(request)
        model = self.model(request.model)
        api = self.api()
        body = models.build_input(model, request, lambda kind, path: self._media(kind, path, model, ctl))
        ctl.check()
        reply = api.create(model.id, ctl, json=body)
        if not isinstance(reply, dict) or not reply.get("request_id"):
            raise ServiceError("fal accepted the job but sent no request id; check the fal dashboard.")
        rid = reply["request_id"]
        # Status, result and cancel live under owner/alias only (§0.9): use the URLs fal sent.
        base = api.url("/".join(model.id.split("/")[:2]) + f"/requests/{rid}")
        job = {"request_id": rid, "model": model.id,
               "status_url": reply.get("status_url") or f"{base}/status",
               "response_url": reply.get("response_url") or base,
               "cancel_url": reply.get("cancel_url") or f"{base}/cancel"}
        return json.dumps(job, separators=(",", ":"))

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        job = _job(remote_id)
        try:
            body = self.api().get(job["status_url"], ctl)
        except ApiError as e:
            raise _gone(e) if e.status == 404 else e from None
        body = body if isinstance(body, dict) else {}
        status = str(body.get("status", ""))
        if status == "IN_QUEUE":
            position = body.get("queue_position")
            return Status(message=f"In fal's queue (position {position + 1})" if isinstance(position, int)
                          else "In fal's queue")
        if status == "IN_PROGRESS":
            return Status(message="Generating")
        if status == "COMPLETED":
            if body.get("error"):
                raise _failure(str(body["error"]), str(body.get("error_type") or ""))
            return Status(done=True, progress=1.0)
        if status in ("FAILED", "ERROR"):  # not in fal's clients, but third-party schemas list it
            raise _failure(str(body.get("error") or "no reason given"), str(body.get("error_type") or ""))
        if status in ("CANCELED", "CANCELLED"):
            raise ServiceError("The job was cancelled on fal.")
        log.warning("fal: unknown status %r; still waiting", status)
        return Status(message=f"fal says {status or 'nothing'}")

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        job = _job(remote_id)
        api = self.api()
        try:
            body = api.get(job["response_url"], ctl)
        except ApiError as e:
            raise _result_error(e) from None
        url = _video_url(body)
        if not url:
            raise ServiceError("fal finished the job but sent no video.")
        info = api.download(url, dest, ctl, on_progress=lambda f: ctl.report("downloading", f, "Downloading"))
        model = models.table().find(self.id, job.get("model", ""))
        seconds = float(info.frames / info.fps) if info.frames and info.fps else None
        return Result(dest, info.fps, info.frames, info.width, info.height,
                      models.cost(model, seconds) if model else None)

    def cancel(self, remote_id: str) -> None:
        try:
            self.api().read("PUT", _job(remote_id)["cancel_url"])
        except ApiError as e:  # ALREADY_COMPLETED, NOT_FOUND: nothing left to stop
            log.info("fal cancel: %s", e)
        except Exception as e:
            log.warning("fal cancel failed: %s", e)

    # -- inputs ----------------------------------------------------------------------------------------------

    def _media(self, kind: str, path: str, model: models.Model, ctl: JobControl) -> str:
        if kind == "image":
            return inputs.image_data_uri(path, model.image_max_bytes or IMAGE_MAX_BYTES)
        size = Path(path).stat().st_size
        if size <= INLINE_MAX_BYTES:
            return inputs.file_data_uri(path)
        if size > UPLOAD_MAX_BYTES:
            raise ServiceError(f"{Path(path).name} is over {UPLOAD_MAX_BYTES // 1024**2} MB; fal takes less.")
        return self._upload(path, ctl)

    def _upload(self, path: str, ctl: JobControl) -> str:
        """Into fal's CDN (§5.6): a storage token from the REST host, then the bytes to the CDN."""
        rest = self.rest()
        token = rest.read("POST", "storage/auth/token?storage_type=fal-cdn-v3", ctl, json={})
        try:
            target = str(token.get("base_url") or "https://v3.fal.media").rstrip("/") + "/files/upload"
            auth = f"{token['token_type']} {token['token']}"
        except (AttributeError, KeyError):
            raise ServiceError("fal's storage sent no upload token.") from None
        reply = rest.read("POST", target, ctl, data=Path(path).read_bytes(),
                          headers={"Authorization": auth, "Content-Type": inputs.mime_type(path),
                                   "X-Fal-File-Name": Path(path).name})
        if not isinstance(reply, dict) or not reply.get("access_url"):
            raise ServiceError(f"fal's storage did not take {Path(path).name}.")
        return reply["access_url"]


def _job(remote_id: str) -> dict:
    try:
        job = json.loads(remote_id)
        if isinstance(job, dict) and job.get("status_url") and job.get("response_url"):
            return job
    except ValueError:
        pass
    raise ServiceError("This fal job's record is damaged; generate the shot again.")


def _gone(e: ApiError) -> ServiceError:
    return ServiceError(f"fal no longer knows this job ({e.status}); generate the shot again.")


def _failure(message: str, error_type: str = "", categories: list | None = None) -> ServiceError:
    if "content_policy" in error_type or "content_policy" in message:
        flagged = f" ({', '.join(map(str, categories))})" if categories else ""
        return ServiceError(f"fal refused the shot: its content checker flagged it{flagged}. Change the prompt "
                            f"or images; trying again will not help.")
    return ServiceError(f"The fal job failed: {message[:300]}")


def _result_error(e: ApiError) -> ServiceError:
    """A result GET answered with an error: how fal reports a failed job (§5.4)."""
    if e.status == 404:
        return _gone(e)
    if e.status >= 500 or e.status in (401, 403, 429):
        return e
    detail = e.body.get("detail") if isinstance(e.body, dict) else None
    items = [d for d in detail if isinstance(d, dict)] if isinstance(detail, list) else []
    for item in items:
        if item.get("type") == "content_policy_violation":
            return _failure(str(item.get("msg", "")), "content_policy_violation", item.get("categories"))
    error_type = str(e.body.get("error_type", "")) if isinstance(e.body, dict) else ""
    return _failure(http.error_text(e.body) or str(e), error_type)


def _video_url(body) -> str:
    """{"video": {"url": ...}} on every video endpoint; a list of videos on a few."""
    if not isinstance(body, dict):
        return ""
    video = body.get("video") or next(iter(body.get("videos") or []), None)
    return str(video.get("url") or "") if isinstance(video, dict) else ""
