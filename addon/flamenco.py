"""Run a saved .blend's shots on a Flamenco 3 render farm: submit a `shotline-batch` job to the
Manager's REST API and read its status back.

The job type is scripts/flamenco/shotline-batch.js, copied into the Manager's `scripts` folder;
its header says which tasks it makes and why. Paths go to the farm as given: the .blend and the
batch script must be on storage the workers share (Flamenco's two-way variables map them per
platform).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import PurePath

from .services.base import ServiceError, SubmissionUncertain
from .services.http import Api, ApiError

JOB_TYPE = "shotline-batch"
LABEL = "Flamenco Manager"
FINISHED = frozenset(("completed", "failed", "canceled"))


class FlamencoError(ServiceError):
    """What went wrong talking to the Manager, in words for the director."""


@dataclass(frozen=True)
class JobState:
    id: str
    name: str
    status: str  # Flamenco's job status: queued, active, completed, failed, canceled, paused ...
    activity: str  # what the Manager last said it did

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def submitter_platform() -> str:
    """Go's name for this operating system: the Manager picks two-way variables by it."""
    return {"win32": "windows", "cygwin": "windows"}.get(sys.platform, sys.platform)


def build_job(blendfile: str, shots: list[str], batch_script: str, *, service: str = "", model: str = "",
              online: bool = False, preview_output: str = "", name: str = "", priority: int = 50) -> dict:
    """The SubmittedJob for `shots` of the saved `blendfile`."""
    for label, path in (("The .blend", blendfile), ("The batch script", batch_script)):
        if not PurePath(path).is_absolute():
            raise ValueError(f"{label} must be an absolute path on the farm's shared storage, not {path!r}")
    if not shots:
        raise ValueError("No shots to send to the farm")
    if len(set(shots)) != len(shots):
        raise ValueError("A shot is named twice")
    settings = {
        "blendfile": blendfile,
        "shots": json.dumps(list(shots), ensure_ascii=False),
        "batch_script": batch_script,
        "blender_cmd": "{blender}",
        "service": service,
        "model": model,
        "online": online,
        "preview_output": preview_output,
    }
    stem = PurePath(blendfile).stem
    return {
        "name": name or f"Shotline: {stem} ({len(shots)} shots)",
        "type": JOB_TYPE,
        "priority": priority,
        "submitter_platform": submitter_platform(),
        "settings": settings,
        "metadata": {"project": stem},
    }


class Manager:
    """One Flamenco Manager. A Manager that is down is said so at once: reads are tried twice."""

    def __init__(self, url: str, *, max_attempts: int = 2, base_delay: float = 0.5):
        self.url = url.rstrip("/")
        self.api = Api(LABEL, self.url, max_attempts=max_attempts, base_delay=base_delay)

    def version(self) -> str:
        """The Manager's version; refuses a server that is not a Flamenco Manager."""
        answer = self._read("api/v3/version")
        if not isinstance(answer, dict) or "shortversion" not in answer:
            raise FlamencoError(f"{self.url} does not answer as a Flamenco Manager: check the address")
        return str(answer["shortversion"])

    def submit(self, job: dict) -> JobState:
        """Submit `job` (from build_job) against the job type the Manager has now."""
        self.version()
        try:
            job_type = self.api.get(f"api/v3/jobs/type/{JOB_TYPE}")
        except ApiError as err:
            if err.status == 404:
                raise FlamencoError(
                    f"{LABEL} at {self.url} has no {JOB_TYPE} job type: copy scripts/flamenco/{JOB_TYPE}.js "
                    "into its scripts folder and restart it") from None
            raise FlamencoError(str(err)) from None
        except ServiceError as err:
            raise FlamencoError(str(err)) from None
        job = {**job, "type_etag": job_type.get("etag", "")}
        try:
            answer = self.api.create("api/v3/jobs", json=job)
        except SubmissionUncertain:
            raise FlamencoError(
                f"{LABEL} may have made the job or not (its answer was lost). Look at its job list at {self.url} "
                "before submitting again: two jobs on one .blend would write it at the same time.") from None
        except ApiError as err:
            if err.status == 412:
                raise FlamencoError(f"The {JOB_TYPE} job type changed on the Manager while submitting: "
                                    "submit again") from None
            raise FlamencoError(f"{LABEL} refused the job: {err}") from None
        except ServiceError as err:
            raise FlamencoError(str(err)) from None
        return _state(answer)

    def status(self, job_id: str) -> JobState:
        return _state(self._read(f"api/v3/jobs/{job_id}"))

    def _read(self, path: str):
        try:
            return self.api.get(path)
        except ServiceError as err:
            raise FlamencoError(str(err)) from None


def _state(job) -> JobState:
    if not isinstance(job, dict) or not job.get("id"):
        raise FlamencoError(f"{LABEL} answered without a job: {str(job)[:200]}")
    return JobState(job["id"], job.get("name", ""), job.get("status", ""), job.get("activity", ""))
