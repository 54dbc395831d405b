"""Jobs: one request of one shot to one service, run on worker threads.

Workers never touch a Job: they post Events to a thread-safe queue, and the main thread applies
them in `JobQueue.pump()` (a bpy.app.timers callback in Blender, called directly in tests and the
batch). So everything the UI reads changes only on the main thread, in bounded steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping

from . import journal
from .media import content_key, partial_path
from .services.base import Cancelled, JobControl, Request, Result, Service, ServiceError

log = logging.getLogger("shotline.jobs")

STATES = ("queued", "submitting", "generating", "downloading", "done", "failed", "cancelled")
FINAL_STATES = frozenset(("done", "failed", "cancelled"))
RECORD_VERSION = 1
_MAX_RETRY_DELAY = 60.0
_MAX_REASON = 300


@dataclass
class Job:
    """The main thread's view of one job; changed only by JobQueue.submit/resume/pump."""

    key: str  # the shot's identity; opaque to the queue
    service_id: str
    request: Request
    dest: Path  # the take file once done
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "queued"
    progress: float | None = None
    message: str = ""
    remote_id: str | None = None
    attempts: int = 0
    result: Result | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    journal: str = ""  # the journal file its remote id is written to the moment it has one ("" = none)
    estimate: float | None = None  # USD expected, for the budget while it runs

    @property
    def is_finished(self) -> bool:
        return self.state in FINAL_STATES

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict, stored in the .blend so a job outlives the Blender session."""
        return {
            "version": RECORD_VERSION,
            "id": self.id,
            "key": self.key,
            "service_id": self.service_id,
            "request": _encode(self.request),
            "dest": str(self.dest),
            "state": self.state,
            "progress": self.progress,
            "message": self.message,
            "remote_id": self.remote_id,
            "attempts": self.attempts,
            "result": _encode(self.result) if self.result else None,
            "created": self.created,
            "finished": self.finished,
            "journal": self.journal,
            "estimate": self.estimate,
        }

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> Job:
        return cls(
            id=d["id"],
            key=d["key"],
            service_id=d["service_id"],
            request=_decode(Request, d["request"]),
            dest=Path(d["dest"]),
            state=d.get("state", "queued"),
            progress=d.get("progress"),
            message=d.get("message", ""),
            remote_id=d.get("remote_id"),
            attempts=d.get("attempts", 0),
            result=_decode(Result, d["result"]) if d.get("result") else None,
            created=d.get("created", time.time()),
            finished=d.get("finished"),
            journal=d.get("journal", ""),
            estimate=d.get("estimate"),
        )


def _encode(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-safe dict: Fractions as "num/den" text, Paths as text."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out[f.name] = str(value) if isinstance(value, (Fraction, Path)) else value
    return out


def _decode(cls: type, d: Mapping[str, Any]) -> Any:
    """The inverse of _encode; keys a newer version added are ignored. Types come from the annotations."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        value = d[f.name]
        if isinstance(value, str) and "Fraction" in str(f.type):
            value = Fraction(value)
        elif isinstance(value, str) and "Path" in str(f.type):
            value = Path(value)
        elif isinstance(value, list):  # JSON has no tuples; frozen requests hold them
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _workflow_of(request: Request) -> Path | None:
    try:
        options = json.loads(request.options) if request.options else {}
    except ValueError:
        return None
    path = options.get("workflow") if isinstance(options, dict) else None
    return Path(path) if isinstance(path, str) and Path(path).is_file() else None


def request_key(service_id: str, request: Request) -> str:
    """A fingerprint of what is asked: the service, the model, every input (files by their content)
    and the seed. The shot's name is not part of it: the same request from a renamed shot is the same."""
    fields = _encode(request)
    fields.pop("shot_name")
    for name in ("reference_image", "last_frame_image", "source_video", "audio"):
        if fields[name]:
            fields[name] = content_key(Path(fields[name]))
    fields["reference_images"] = [content_key(Path(p)) for p in request.reference_images]
    workflow = _workflow_of(request)
    if workflow:  # a workflow service: the workflow by its content, not its path
        fields["options"] = json.dumps({**json.loads(request.options), "workflow": content_key(workflow)},
                                       sort_keys=True, ensure_ascii=False)
    text = json.dumps([service_id, fields], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Event:
    """What a worker tells the main thread. `remote_id` comes with the first event after submit
    (so the Job can be persisted and resumed); `attempt` with each 'started'."""

    job_id: str
    kind: str  # 'queued' | 'started' | 'progress' | 'downloading' | 'done' | 'failed' | 'cancelled'
    progress: float | None = None
    message: str = ""
    result: Result | None = None
    remote_id: str | None = None
    attempt: int = 0


def _apply(job: Job, ev: Event) -> None:
    if ev.remote_id:
        job.remote_id = ev.remote_id
    if ev.kind in ("started", "progress"):
        # Until the service has given the job an id, it is still being submitted.
        job.state = "generating" if job.remote_id else "submitting"
        if ev.kind == "started":
            job.attempts = ev.attempt
    elif ev.kind in STATES:
        job.state = ev.kind
    job.progress = 1.0 if ev.kind == "done" else ev.progress
    if ev.message:
        job.message = ev.message
    if ev.result is not None:
        job.result = ev.result
    if job.is_finished:
        job.finished = time.time()


@dataclass(eq=False)
class _Task:
    """The worker's side of a job (workers never read or write the Job object)."""

    job_id: str
    key: str
    service_id: str
    service: Service
    request: Request
    dest: Path
    remote_id: str | None
    created: float
    journal: str
    prepare: Callable[[JobControl], None] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    detached: bool = False  # stopped by shutdown: the remote job goes on

    def record(self) -> dict[str, Any]:
        return Job(key=self.key, service_id=self.service_id, request=self.request, dest=self.dest, id=self.job_id,
                   state="generating", remote_id=self.remote_id, created=self.created,
                   journal=self.journal).to_record()


class JobQueue:
    """Runs jobs on worker threads, at most `limits[service_id]` (default: the service's
    max_concurrency) at once per service; the rest wait queued."""

    def __init__(
        self,
        services: Mapping[str, Service] | Callable[[str], Service],
        limits: dict[str, int] | None = None,
        max_attempts: int = 3,
        retry_delay: float = 2.0,
    ):
        self._lookup: Callable[[str], Service] = services.__getitem__ if isinstance(services, Mapping) else services
        self._limits = dict(limits or {})
        self._max_attempts = max(1, max_attempts)
        self._retry_delay = retry_delay  # doubled after each retryable failure, capped
        self._jobs: dict[str, Job] = {}  # main thread only
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards everything below
        self._tasks: dict[str, _Task] = {}  # queued or running
        self._pending: dict[str, deque[_Task]] = {}
        self._workers: dict[str, int] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- main thread -------------------------------------------------------------------------------------------

    def submit(self, key: str, service_id: str, request: Request, dest: Path, journal_file: str = "",
               estimate: float | None = None, prepare: Callable[[JobControl], None] | None = None) -> Job:
        """`prepare` makes the request's input files (a song slice, a video segment) on the worker,
        before anything is sent; it is not saved: a resumed job finds its inputs made or fails."""
        job = Job(key=key, service_id=service_id, request=request, dest=Path(dest), journal=journal_file,
                  estimate=estimate)
        return self._add(job, prepare)

    def resume(self, record: Mapping[str, Any]) -> Job:
        """Re-adopt a job saved by `to_record`. With a remote_id it polls the service again without
        re-submitting (no second charge); without one it starts over. A finished record is only listed."""
        job = Job.from_record(record)
        if job.id in self._jobs:
            raise ValueError(f"job {job.id} is already in the queue")
        if job.is_finished:
            self._jobs[job.id] = job
            return job
        job.state, job.progress, job.attempts = "queued", None, 0
        return self._add(job)

    def cancel(self, job_id: str) -> bool:
        """Stop a job (queued or running). Its 'cancelled' event arrives through pump. False if nothing to stop."""
        with self._lock:
            task = self._tasks.get(job_id)
            if task is None:
                return False
            task.cancel_event.set()
            if task.started:
                return True  # the worker notices, cleans up and posts 'cancelled'
            self._pending[task.service_id].remove(task)
            del self._tasks[job_id]
            if task.remote_id:
                # Submitted in an earlier session: tell the service, off the main thread (it may be slow).
                self._spawn(self._cancel_remote, task, name=f"shotline-cancel-{job_id[:8]}")
                return True
        self._post(Event(job_id, "cancelled", message="Cancelled"))
        return True

    def cancel_all(self) -> None:
        with self._lock:
            ids = list(self._tasks)
        for job_id in ids:
            self.cancel(job_id)

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def active(self) -> list[Job]:
        return [j for j in self._jobs.values() if not j.is_finished]

    @property
    def busy(self) -> bool:
        """Whether anything is queued, running, or waiting to be pumped."""
        return not self._events.empty() or any(not j.is_finished for j in self._jobs.values())

    def pump(self, max_events: int = 64, budget_s: float = 0.003) -> list[Event]:
        """Apply pending events to their Jobs and return them; main thread only.

        Stops after `max_events` or once `budget_s` has passed (at least one event is handled),
        leaving the rest for the next call so the UI never stalls. Events of a job that is already
        over (a late progress after a cancel) are dropped, so a finished status never flips back.
        """
        start = time.perf_counter()
        applied: list[Event] = []
        while len(applied) < max_events:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                break
            job = self._jobs.get(ev.job_id)
            if job is not None and not job.is_finished:
                _apply(job, ev)
                applied.append(ev)
            if time.perf_counter() - start >= budget_s:
                break
        return applied

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> bool:
        """Stop the workers and (with `wait`) join them; True when none is left running.

        Called by the add-on's unregister (Blender quitting, the add-on disabled): worker threads
        left running crash Blender. Remote jobs are left to go on, not cancelled: jobs outlive the
        session and are resumed from the saved file, so quitting never throws paid work away.
        Local work in flight (a child process) is stopped; a job without a remote id starts over.
        """
        with self._lock:
            self._closed = True
            for task in self._tasks.values():
                task.detached = not task.cancel_event.is_set()  # a cancel asked for before still cancels
                task.cancel_event.set()
            for pending in self._pending.values():
                pending.clear()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        if wait:
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def _add(self, job: Job, prepare: Callable[[JobControl], None] | None = None) -> Job:
        if self._closed:
            raise RuntimeError("the job queue is shut down")
        if any(j.dest == job.dest for j in self.active()):
            raise ValueError(f"another job already writes {job.dest}")
        self._jobs[job.id] = job
        try:
            service = self._lookup(job.service_id)
        except Exception:
            self._post(Event(job.id, "failed", message=f"Unknown service: {job.service_id}"))
            return job
        task = _Task(job.id, job.key, job.service_id, service, job.request, job.dest, job.remote_id, job.created,
                     job.journal, prepare)
        self._post(Event(job.id, "queued", message="Queued"))
        limit = max(1, self._limits.get(job.service_id, service.max_concurrency or 1))
        with self._lock:
            self._tasks[job.id] = task
            self._pending.setdefault(job.service_id, deque()).append(task)
            if self._workers.get(job.service_id, 0) < limit:
                self._workers[job.service_id] = self._workers.get(job.service_id, 0) + 1
                self._spawn(self._work, job.service_id, name=f"shotline-{job.service_id}")
        return job

    def _spawn(self, target: Callable[..., None], *args: Any, name: str) -> None:
        """Start a tracked thread (caller holds the lock); shutdown joins every one of them."""
        self._threads = [t for t in self._threads if t.is_alive()]
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    # -- worker threads ----------------------------------------------------------------------------------------

    def _post(self, ev: Event) -> None:
        self._events.put(ev)

    def _work(self, service_id: str) -> None:
        """One worker slot of a service: run its queued tasks one after another, exit when none is left."""
        while True:
            with self._lock:
                pending = self._pending[service_id]
                if not pending:
                    self._workers[service_id] -= 1
                    return
                task = pending.popleft()
                task.started = True
            try:
                self._run(task)
            finally:
                with self._lock:
                    self._tasks.pop(task.job_id, None)

    def _run(self, task: _Task) -> None:
        def report(stage: str, progress: float | None, message: str) -> None:
            kind = "downloading" if stage == "downloading" else "progress"
            self._post(Event(task.job_id, kind, progress, message))

        ctl = JobControl(cancel_event=task.cancel_event, report=report)
        part = partial_path(task.dest)
        attempt = 0
        try:
            while True:
                attempt += 1
                stage = "Waiting for the service" if task.remote_id else "Submitting"
                self._post(Event(task.job_id, "started", message=stage, attempt=attempt))
                try:
                    result = self._attempt(task, ctl, part)
                    break
                except ServiceError as e:
                    if not e.retryable or attempt >= self._max_attempts or ctl.cancelled:
                        raise
                    delay = min(self._retry_delay * 2 ** (attempt - 1), _MAX_RETRY_DELAY)
                    log.info("job %s: %s; retry %d in %.1f s", task.job_id, e, attempt, delay)
                    self._post(Event(task.job_id, "progress", message=f"{_reason(e)} (retrying in {delay:.0f} s)"))
                    ctl.sleep(delay)
        except Exception as e:
            part.unlink(missing_ok=True)
            if task.detached:
                return
            if ctl.cancelled or isinstance(e, Cancelled):
                # Services may fail in any way once cancelled (closed sockets ...): that is a cancel, not a failure.
                self._cancel_remote(task)
            elif isinstance(e, ServiceError):
                log.warning("job %s failed: %s", task.job_id, e)
                self._post(Event(task.job_id, "failed", message=_reason(e)))
            else:
                log.exception("job %s failed unexpectedly", task.job_id)
                self._post(Event(task.job_id, "failed", message=_reason(e, with_type=True)))
            return
        self._post(Event(task.job_id, "done", 1.0, "Done", result=result))

    def _attempt(self, task: _Task, ctl: JobControl, part: Path) -> Result:
        """submit (unless resuming) -> poll until done -> fetch into `part` -> rename to dest."""
        service = task.service
        if task.prepare is not None:
            self._post(Event(task.job_id, "progress", message="Preparing inputs"))
            try:
                task.prepare(ctl)
            except (OSError, ValueError) as e:
                raise ServiceError(f"Cannot prepare the inputs: {e}") from None
            task.prepare = None  # made once; a retry sends the same files
        if task.remote_id is None:
            ctl.check()
            task.remote_id = service.submit(task.request, ctl)
            self._note_submitted(task)
            self._post(Event(task.job_id, "progress", message="Submitted", remote_id=task.remote_id))
        polling_since = time.monotonic()
        while True:
            ctl.check()
            status = service.poll(task.remote_id, ctl)
            if status.done:
                break
            if service.max_wait and time.monotonic() - polling_since > service.max_wait:
                raise self._overdue(task)
            self._post(Event(task.job_id, "progress", status.progress, status.message or "Generating"))
            ctl.sleep(service.poll_interval)
        self._post(Event(task.job_id, "downloading", None, "Downloading"))
        task.dest.parent.mkdir(parents=True, exist_ok=True)
        part.unlink(missing_ok=True)  # a failed earlier attempt's leftovers
        result = service.fetch(task.remote_id, part, ctl)
        ctl.check()
        if not part.is_file():
            raise ServiceError(f"{service.label or service.id or task.service_id} returned no file")
        os.replace(part, task.dest)
        return dataclasses.replace(result or Result(path=task.dest), path=task.dest,
                                   content_key=content_key(task.dest))

    @staticmethod
    def _overdue(task: _Task) -> ServiceError:
        """A job polled past its service's limit: cancelled where the service can, else left to run."""
        service = task.service
        label = service.label or task.service_id
        minutes = f"{service.max_wait / 60:.0f} min" if service.max_wait >= 60 else f"{service.max_wait:g} s"
        if service.capabilities_for(task.request.model).can_cancel:
            try:
                service.cancel(task.remote_id)
            except Exception:
                log.warning("job %s: the service's cancel failed", task.job_id, exc_info=True)
            return ServiceError(f"{label} had not finished after {minutes}; the job was cancelled. "
                                "Generate again to retry.")
        return ServiceError(f"{label} had not finished after {minutes}. It may still finish and be billed: "
                            f"check the {label} dashboard. Generate again to retry.")

    def _note_submitted(self, task: _Task) -> None:
        """Before anything else: a Blender killed from here on leaves the job in the journal."""
        if not task.journal:
            return
        try:
            journal.submitted(Path(task.journal), task.record())
        except OSError as err:  # the job goes on; only a crash before the next save could lose it
            log.warning("job %s: cannot write the job journal %s: %s", task.job_id, task.journal, err)

    def _cancel_remote(self, task: _Task) -> None:
        """Tell the service to stop (best effort), then report the job cancelled."""
        message = "Cancelled"
        if task.remote_id:
            try:
                task.service.cancel(task.remote_id)
            except Exception:
                log.warning("job %s: the service's cancel failed", task.job_id, exc_info=True)
            if not task.service.capabilities_for(task.request.model).can_cancel:
                label = task.service.label or task.service_id
                message = f"Cancelled here; {label} cannot stop a started job: it still runs and is billed"
        self._post(Event(task.job_id, "cancelled", message=message))


def _reason(e: BaseException, with_type: bool = False) -> str:
    """One short line for the UI. URL queries are cut: they may carry keys (?key=...)."""
    text = " ".join(str(e).split())
    text = re.sub(r"(https?://[^\s?#]+)[?#]\S*", r"\1?…", text)
    if with_type:
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    text = text or "The service failed without a reason"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
