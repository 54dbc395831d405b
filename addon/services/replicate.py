"""Replicate predictions (service-apis.md §6): create on the model (or a version), poll the
prediction, download its output from replicate.delivery (no key sent there), cancel.

Replicate can list predictions, so a create whose reply was lost is reconciled: the newest
prediction of the same model, with the same input, made since we sent it, is our job. Only when
none is found does SubmissionUncertain reach the director.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from . import inputs, models
from .base import JobControl, Request, Result, ServiceError, Status, SubmissionUncertain
from .http import ApiError

log = logging.getLogger("shotline.replicate")

IMAGE_MAX_BYTES = 1_000_000  # Replicate advises data URIs only under 1 MB: stills are scaled to fit
INLINE_MAX_BYTES = 1_000_000  # larger audio and video go to /v1/files
UPLOAD_MAX_BYTES = 100 * 1024**2
CLOCK_SKEW = 120.0  # seconds our clock may be off Replicate's when matching a lost create
_VERSION = re.compile(r"[0-9a-f]{64}")
_PROGRESS = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)", re.M)  # tqdm lines, as the SDK reads them
_POLICY = re.compile(r"sensitive|nsfw|safety|content.?(polic|moderat|filter)|\bE005\b", re.I)


class ReplicateService(models.TableService):
    id = "replicate"
    label = "Replicate"
    key_env = "REPLICATE_API_TOKEN"
    default_url = "https://api.replicate.com/v1"
    poll_interval = 4.0
    max_concurrency = 4

    def test_connection(self) -> str:
        account = self.api().get("account")
        name = account.get("username") if isinstance(account, dict) else None
        return f"Replicate accepted the key{f' (account {name})' if name else ''}."

    # -- the job ---------------------------------------------------------------------------------------------

    def submit(self, request: Request, ctl: JobControl) -> str:
        self.check(request)
        model = self.model(request.model)
        api = self.api()
        payload = models.build_input(model, request, lambda kind, path: self._media(kind, path, ctl))
        if _VERSION.fullmatch(model.id) or ":" in model.id:
            path, body = "predictions", {"version": model.id, "input": payload}
        else:
            path, body = f"models/{model.id}/predictions", {"input": payload}
        ctl.check()
        sent = time.time()
        try:
            prediction = api.create(path, ctl, json=body)
        except SubmissionUncertain:
            prediction = self._reconcile(model, payload, sent, ctl)
            if prediction is None:
                raise
            log.info("Replicate: the create's reply was lost; found its prediction %s", prediction.get("id"))
        if not isinstance(prediction, dict) or not prediction.get("id"):
            raise ServiceError("Replicate accepted the job but sent no prediction id; check the dashboard.")
        return _record(prediction, model)

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        prediction = self._get(remote_id, ctl)
        status = str(prediction.get("status", ""))
        if status == "starting":
            return Status(message="Starting")
        if status == "processing":
            return Status(progress=_progress(prediction.get("logs")), message="Generating")
        if status == "succeeded":
            return Status(done=True, progress=1.0)
        _raise_if_over(prediction)
        log.warning("Replicate: unknown status %r; still waiting", status)
        return Status(message=f"Replicate says {status or 'nothing'}")

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        prediction = self._get(remote_id, ctl)
        if prediction.get("status") != "succeeded":
            _raise_if_over(prediction)
            raise ServiceError("The Replicate job has not finished yet.", retryable=True)
        url = _output_url(prediction.get("output"))
        if not url:
            raise ServiceError("Replicate finished the job but sent no video.")
        info = self.api().download(url, dest, ctl,
                                   on_progress=lambda f: ctl.report("downloading", f, "Downloading"))
        model = models.table().find(self.id, _job(remote_id).get("model", ""))
        seconds = float(info.frames / info.fps) if info.frames and info.fps else None
        metrics = prediction.get("metrics") if isinstance(prediction.get("metrics"), dict) else {}
        run = metrics.get("predict_time")
        return Result(dest, info.fps, info.frames, info.width, info.height,
                      models.cost(model, seconds, float(run) if isinstance(run, (int, float)) else None)
                      if model else None)

    def cancel(self, remote_id: str) -> None:
        try:
            self.api().read("POST", _job(remote_id)["cancel"])
        except Exception as e:
            log.warning("Replicate cancel failed: %s", e)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _get(self, remote_id: str, ctl: JobControl) -> dict:
        try:
            prediction = self.api().get(_job(remote_id)["get"], ctl)
        except ApiError as e:
            if e.status == 404:
                raise ServiceError("Replicate no longer knows this job (404); generate the shot again.") from None
            raise
        if not isinstance(prediction, dict):
            raise ServiceError("Replicate answered the status request with something else.", retryable=True)
        return prediction

    def _reconcile(self, model: models.Model, payload: dict, sent: float, ctl: JobControl) -> dict | None:
        """The prediction a lost create made: same model, same input, created since we sent it."""
        try:
            page = self.api().get("predictions", ctl)
        except ServiceError as e:
            log.warning("Replicate: cannot list predictions to find a lost create: %s", e)
            return None
        for prediction in (page.get("results") or []) if isinstance(page, dict) else []:
            if (isinstance(prediction, dict) and _same_model(prediction, model.id)
                    and _created(prediction) >= sent - CLOCK_SKEW and _same_input(prediction.get("input"), payload)):
                return prediction
        return None

    def _media(self, kind: str, path: str, ctl: JobControl) -> str:
        if kind == "image":
            return inputs.image_data_uri(path, IMAGE_MAX_BYTES)
        size = Path(path).stat().st_size
        if size <= INLINE_MAX_BYTES:
            return inputs.file_data_uri(path)
        if size > UPLOAD_MAX_BYTES:
            raise ServiceError(f"{Path(path).name} is over {UPLOAD_MAX_BYTES // 1024**2} MB; Replicate takes less.")
        # The Files API (§6.4); uploading twice makes two files, never two paid jobs, so it may be retried.
        reply = self.api().read("POST", "files", ctl, files={
            "content": (Path(path).name, Path(path).read_bytes(), inputs.mime_type(path))})
        url = (reply.get("urls") or {}).get("get") if isinstance(reply, dict) else None
        if not url:
            raise ServiceError(f"Replicate did not take {Path(path).name}.")
        return url


def _record(prediction: dict, model: models.Model) -> str:
    urls = prediction.get("urls") if isinstance(prediction.get("urls"), dict) else {}
    pid = prediction["id"]
    return json.dumps({"id": pid, "model": model.id, "get": urls.get("get") or f"predictions/{pid}",
                       "cancel": urls.get("cancel") or f"predictions/{pid}/cancel"}, separators=(",", ":"))


def _job(remote_id: str) -> dict:
    try:
        job = json.loads(remote_id)
        if isinstance(job, dict) and job.get("get") and job.get("cancel"):
            return job
    except ValueError:
        pass
    raise ServiceError("This Replicate job's record is damaged; generate the shot again.")


def _raise_if_over(prediction: dict) -> None:
    """Raise the reason of a prediction that ended without a video."""
    status = prediction.get("status")
    if status == "failed":
        reason = " ".join(str(prediction.get("error") or "no reason given").split())[:300]
        if _POLICY.search(reason):
            raise ServiceError(f"Replicate refused the shot: {reason} Change the prompt or images; "
                               f"trying again will not help.")
        raise ServiceError(f"The Replicate job failed: {reason}")
    if status == "canceled":
        raise ServiceError("The job was cancelled on Replicate.")
    if status == "aborted":
        raise ServiceError("Replicate aborted the job: its deadline passed before it started.")


def _progress(logs: Any) -> float | None:
    matches = _PROGRESS.findall(logs) if isinstance(logs, str) else []
    if not matches:
        return None
    _percent, done, total = matches[-1]
    return min(1.0, int(done) / int(total)) if int(total) else None


def _output_url(output: Any) -> str:
    """Video models answer a URL; some a list of them, or an object holding one."""
    if isinstance(output, str):
        return output if output.startswith(("https://", "http://")) else ""
    if isinstance(output, list):
        return next((u for u in (_output_url(o) for o in output) if u), "")
    if isinstance(output, dict):
        return next((u for u in (_output_url(o) for o in output.values()) if u), "")
    return ""


def _same_model(prediction: dict, model_id: str) -> bool:
    if _VERSION.fullmatch(model_id):
        return prediction.get("version") == model_id
    name, _, version = model_id.partition(":")
    return prediction.get("model") == name and (not version or prediction.get("version") == version)


def _same_input(theirs: Any, ours: dict) -> bool:
    """Every value we sent, except files (Replicate may show them as its own URLs)."""
    if not isinstance(theirs, dict):
        return False
    return all(theirs.get(k) == v for k, v in ours.items()
               if not (isinstance(v, str) and v.startswith("data:")) and not isinstance(v, list))


def _created(prediction: dict) -> float:
    text = str(prediction.get("created_at") or "")
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?", text)
    if not match:
        return 0.0
    zone = match.group(3) or "Z"
    stamp = datetime.fromisoformat(match.group(1) + ("+00:00" if zone == "Z" else zone))
    return stamp.timestamp() + float(match.group(2) or 0)
