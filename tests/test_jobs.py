import json
import logging
import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from addon.jobs import Event, Job, JobQueue
from addon.services.base import JobControl, Request, Result, Service, ServiceError, Status

TIMEOUT = 10.0  # generous: the machine may be loaded; only real hangs should hit it


class FakeService(Service):
    """A slow local service: `polls` polls before done, fetch writes a small file in chunks.

    Counts how many jobs are in flight at once (submit .. end of fetch or cancel). `submit_errors` /
    `poll_errors` are raised one per call until used up; cancel is honoured through ctl.sleep.
    """

    id = "fake"
    label = "Fake"
    max_concurrency = 2
    poll_interval = 0.01

    def __init__(self, polls=3, fetch_pause=0.0, submit_errors=(), poll_errors=(), progress_events=0):
        self.polls = polls
        self.fetch_pause = fetch_pause
        self.submit_errors = list(submit_errors)
        self.poll_errors = list(poll_errors)
        self.progress_events = progress_events
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.submits = 0
        self.polled: dict[str, int] = {}
        self.cancelled: list[str] = []
        self.submitted = threading.Event()
        self.fetching = threading.Event()
        self.fetched = threading.Event()

    def _enter(self):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self):
        with self.lock:
            self.in_flight -= 1

    def submit(self, request: Request, ctl: JobControl) -> str:
        with self.lock:
            self.submits += 1
            n = self.submits
            error = self.submit_errors.pop(0) if self.submit_errors else None
        if error:
            raise error
        for i in range(self.progress_events):
            ctl.progress(i / self.progress_events)
        self._enter()
        self.submitted.set()
        return f"remote-{n}"

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        with self.lock:
            count = self.polled[remote_id] = self.polled.get(remote_id, 0) + 1
            error = self.poll_errors.pop(0) if self.poll_errors else None
        if error:
            raise error
        return Status(done=count > self.polls, progress=min(1.0, count / (self.polls + 1)), message="rendering")

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        try:
            with open(dest, "wb") as f:
                f.write(b"take:")
                f.flush()
                self.fetching.set()
                ctl.sleep(self.fetch_pause)
                f.write(remote_id.encode())
        finally:
            self._leave()
        self.fetched.set()
        return Result(path=dest, fps=Fraction(24), frames=48)

    def cancel(self, remote_id: str) -> None:
        with self.lock:
            self.cancelled.append(remote_id)
        self._leave()


REQUEST = Request(shot_name="Shot 1", prompt="neon rain", frames=48, fps=Fraction(30000, 1001), width=640,
                  height=360, seed=7)


@pytest.fixture
def make_queue():
    queues = []

    def make(service, **kwargs):
        q = JobQueue({service.id: service}, **kwargs)
        queues.append(q)
        return q

    yield make
    for q in queues:
        assert q.shutdown(wait=True, timeout=TIMEOUT)


def pump_until(q: JobQueue, predicate, timeout: float = TIMEOUT) -> list[Event]:
    events = []
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        events += q.pump()
        time.sleep(0.002)
    return events


def wait_for(flag: threading.Event):
    assert flag.wait(TIMEOUT), "timed out"


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- running -----------------------------------------------------------------------------------------------------


def test_twelve_jobs_with_a_limit_of_three(tmp_path, make_queue):
    svc = FakeService(polls=8)
    q = make_queue(svc, limits={"fake": 3})  # overrides the service's own max_concurrency of 2
    jobs = [q.submit(f"shot-{i}", "fake", REQUEST, tmp_path / f"s{i}" / "take_001.mp4") for i in range(12)]
    events = pump_until(q, lambda: not q.busy)
    assert [j.state for j in jobs] == ["done"] * 12
    assert svc.max_in_flight == 3
    for job in jobs:
        assert job.result.path == job.dest and job.progress == 1.0 and job.finished is not None
        assert job.dest.read_bytes() == b"take:" + job.remote_id.encode()
        assert job.result.frames == 48
    assert files(tmp_path) == sorted(f"s{i}/take_001.mp4" for i in range(12))  # no .part left
    assert sum(e.kind == "done" for e in events) == 12
    assert q.active() == [] and len(q.jobs) == 12


def test_the_services_own_limit_applies_by_default(tmp_path, make_queue):
    svc = FakeService(polls=8)
    q = make_queue(svc)
    jobs = [q.submit(f"shot-{i}", "fake", REQUEST, tmp_path / f"take_{i:03d}.mp4") for i in range(5)]
    pump_until(q, lambda: not q.busy)
    assert all(j.state == "done" for j in jobs)
    assert svc.max_in_flight == 2


def test_job_states_change_only_in_pump(tmp_path, make_queue):
    svc = FakeService(polls=2)
    q = make_queue(svc)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    wait_for(svc.fetched)
    deadline = time.monotonic() + TIMEOUT
    while not job.dest.exists():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(0.05)
    # The worker has finished, but nothing the main thread sees has moved.
    assert (job.state, job.progress, job.remote_id, job.result, job.attempts) == ("queued", None, None, None, 0)
    events = pump_until(q, lambda: not q.busy)
    assert job.state == "done" and job.remote_id == "remote-1" and job.attempts == 1
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["queued", "started"] and kinds[-2:] == ["downloading", "done"]
    assert "progress" in kinds
    assert events[-1].result.path == job.dest


def test_pump_is_bounded_in_count_and_time(tmp_path, make_queue):
    svc = FakeService(polls=1, progress_events=20_000)
    q = make_queue(svc)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    wait_for(svc.fetched)  # 20 000 progress events are now waiting

    assert len(q.pump(max_events=64, budget_s=60.0)) == 64
    assert len(q.pump(max_events=10**9, budget_s=0.0)) == 1  # always makes progress

    t0 = time.perf_counter()
    events = q.pump(max_events=10**9, budget_s=0.005)
    elapsed = time.perf_counter() - t0
    assert 1 <= len(events) < 20_000 - 65  # it stopped on time, not because it ran out
    assert elapsed < 0.5

    sizes = []
    while q.busy:
        sizes.append(len(q.pump()))
    assert max(sizes) <= 64 and job.state == "done"


# -- cancel ------------------------------------------------------------------------------------------------------


def test_cancel_while_generating_is_prompt_and_leaves_nothing(tmp_path, make_queue):
    svc = FakeService(polls=10**6)
    svc.poll_interval = 30.0  # only a cancel can wake it
    q = make_queue(svc)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "shot" / "take_001.mp4")
    wait_for(svc.submitted)
    t0 = time.monotonic()
    assert q.cancel(job.id)
    pump_until(q, lambda: job.state == "cancelled", timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert job.message == "Cancelled" and job.finished is not None
    assert svc.cancelled == ["remote-1"]
    assert files(tmp_path) == []
    assert not q.busy and q.active() == []


def test_cancel_while_downloading_removes_the_partial_file(tmp_path, make_queue):
    svc = FakeService(polls=0, fetch_pause=30.0)
    q = make_queue(svc)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    wait_for(svc.fetching)
    assert files(tmp_path) == ["take_001.mp4.part"]  # half-written, under its temporary name
    q.cancel(job.id)
    pump_until(q, lambda: job.state == "cancelled", timeout=1.0)
    assert files(tmp_path) == []
    assert svc.cancelled == ["remote-1"]


def test_cancel_a_queued_job(tmp_path, make_queue):
    svc = FakeService(polls=10**6)
    q = make_queue(svc, limits={"fake": 1})
    running = q.submit("a", "fake", REQUEST, tmp_path / "a.mp4")
    waiting = q.submit("b", "fake", REQUEST, tmp_path / "b.mp4")
    wait_for(svc.submitted)
    assert q.cancel(waiting.id)
    pump_until(q, lambda: waiting.state == "cancelled")
    assert running.state == "generating" and svc.submits == 1
    assert not q.cancel(waiting.id)  # already over
    q.cancel(running.id)
    pump_until(q, lambda: not q.busy)
    assert running.state == "cancelled" and svc.submits == 1
    assert files(tmp_path) == []


def test_cancel_all(tmp_path, make_queue):
    svc = FakeService(polls=10**6)
    q = make_queue(svc, limits={"fake": 2})
    jobs = [q.submit(f"s{i}", "fake", REQUEST, tmp_path / f"take_{i:03d}.mp4") for i in range(6)]
    pump_until(q, lambda: sum(j.state == "generating" for j in jobs) == 2)
    q.cancel_all()
    pump_until(q, lambda: not q.busy, timeout=2.0)
    assert [j.state for j in jobs] == ["cancelled"] * 6
    assert svc.submits == 2 and sorted(svc.cancelled) == ["remote-1", "remote-2"]
    assert files(tmp_path) == []


# -- failures ----------------------------------------------------------------------------------------------------


def test_failure_carries_the_services_reason(tmp_path, make_queue):
    svc = FakeService(submit_errors=[ServiceError("Quota exceeded for this month")])
    q = make_queue(svc, retry_delay=0.01)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    events = pump_until(q, lambda: not q.busy)
    assert job.state == "failed" and job.message == "Quota exceeded for this month"
    assert events[-1].kind == "failed" and events[-1].message == job.message
    assert svc.submits == 1 and job.attempts == 1  # not retryable: not retried
    assert files(tmp_path) == []


def test_retryable_failure_is_retried_then_succeeds(tmp_path, make_queue):
    svc = FakeService(submit_errors=[ServiceError("Rate limited", retryable=True)])
    q = make_queue(svc, retry_delay=0.01)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    events = pump_until(q, lambda: not q.busy)
    assert job.state == "done" and job.attempts == 2 and svc.submits == 2
    assert any("Rate limited" in e.message and "retrying" in e.message for e in events)


def test_retryable_poll_failure_polls_again_without_resubmitting(tmp_path, make_queue):
    svc = FakeService(poll_errors=[ServiceError("Connection reset", retryable=True)] * 2)
    q = make_queue(svc, retry_delay=0.01)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    pump_until(q, lambda: not q.busy)
    assert job.state == "done" and job.attempts == 3
    assert svc.submits == 1  # the remote job is reused: no second charge


def test_retries_are_bounded(tmp_path, make_queue):
    svc = FakeService(submit_errors=[ServiceError("Service unavailable", retryable=True)] * 10)
    q = make_queue(svc, max_attempts=3, retry_delay=0.01)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    pump_until(q, lambda: not q.busy)
    assert job.state == "failed" and job.message == "Service unavailable"
    assert svc.submits == 3 and job.attempts == 3


def test_unexpected_error_is_short_and_readable_and_logged(tmp_path, make_queue, caplog):
    svc = FakeService(poll_errors=[ValueError("bad frame count\n  at line 3")])
    q = make_queue(svc)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    with caplog.at_level(logging.ERROR, logger="shotline.jobs"):
        pump_until(q, lambda: not q.busy)
    assert job.state == "failed" and job.message == "ValueError: bad frame count at line 3"
    assert "Traceback" not in job.message
    logged = [r for r in caplog.records if r.name == "shotline.jobs"]
    assert logged and logged[0].exc_info is not None  # the traceback goes to the log


def test_failure_text_drops_url_queries(tmp_path, make_queue):
    svc = FakeService(poll_errors=[RuntimeError("GET https://api.example.com/v1/jobs?key=SECRET123 failed")])
    q = make_queue(svc)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    pump_until(q, lambda: not q.busy)
    assert job.state == "failed" and "SECRET123" not in job.message
    assert "https://api.example.com/v1/jobs" in job.message


def test_unknown_service_fails_readably(tmp_path, make_queue):
    q = make_queue(FakeService())
    job = q.submit("shot", "nope", REQUEST, tmp_path / "take_001.mp4")
    pump_until(q, lambda: not q.busy)
    assert job.state == "failed" and job.message == "Unknown service: nope"


def test_two_jobs_may_not_write_the_same_take(tmp_path, make_queue):
    q = make_queue(FakeService(polls=10**6))
    q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    with pytest.raises(ValueError):
        q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")


def test_services_may_come_from_a_callable(tmp_path, make_queue):
    svc = FakeService()
    q = JobQueue(lambda service_id: svc)
    try:
        job = q.submit("shot", "anything", REQUEST, tmp_path / "take_001.mp4")
        pump_until(q, lambda: not q.busy)
        assert job.state == "done"
    finally:
        assert q.shutdown(wait=True, timeout=TIMEOUT)


# -- persistence -------------------------------------------------------------------------------------------------


def test_record_round_trip_through_json(tmp_path):
    job = Job(key="scene:Shot 1", service_id="fake", request=REQUEST, dest=tmp_path / "take_001.mp4",
              state="done", progress=1.0, message="Done", remote_id="r-1", attempts=2,
              result=Result(path=tmp_path / "take_001.mp4", fps=Fraction(24000, 1001), frames=48, width=640),
              finished=time.time())
    record = json.loads(json.dumps(job.to_record()))
    assert Job.from_record(record) == job
    assert Job.from_record(record).request.fps == Fraction(30000, 1001)


def test_record_without_result_and_with_unknown_keys(tmp_path):
    job = Job(key="k", service_id="fake", request=REQUEST, dest=tmp_path / "t.mp4")
    record = job.to_record()
    record["request"]["added_in_a_later_version"] = 1
    assert Job.from_record(record) == job


def test_resume_polls_without_submitting_again(tmp_path, make_queue):
    svc = FakeService(polls=2)
    q = make_queue(svc)
    saved = Job(key="shot", service_id="fake", request=REQUEST, dest=tmp_path / "take_001.mp4",
                state="generating", progress=0.4, remote_id="remote-77", attempts=1)
    job = q.resume(json.loads(json.dumps(saved.to_record())))
    assert job.id == saved.id and job.state == "queued"
    pump_until(q, lambda: not q.busy)
    assert job.state == "done" and job.remote_id == "remote-77"
    assert svc.submits == 0 and svc.polled["remote-77"] == 3
    assert job.dest.read_bytes() == b"take:remote-77"


def test_resume_without_remote_id_submits(tmp_path, make_queue):
    svc = FakeService()
    q = make_queue(svc)
    saved = Job(key="shot", service_id="fake", request=REQUEST, dest=tmp_path / "take_001.mp4", state="submitting")
    job = q.resume(saved.to_record())
    pump_until(q, lambda: not q.busy)
    assert job.state == "done" and svc.submits == 1


def test_resume_of_a_finished_record_only_lists_it(tmp_path, make_queue):
    svc = FakeService()
    q = make_queue(svc)
    saved = Job(key="shot", service_id="fake", request=REQUEST, dest=tmp_path / "take_001.mp4", state="failed",
                message="Quota exceeded", remote_id="remote-1")
    job = q.resume(saved.to_record())
    assert q.get(saved.id) is job and job.state == "failed" and not q.busy
    assert svc.submits == 0 and svc.polled == {}
    with pytest.raises(ValueError):
        q.resume(saved.to_record())


# -- shutdown ----------------------------------------------------------------------------------------------------


def _queue_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("shotline-")]


def test_shutdown_joins_every_worker_thread_and_leaves_remote_jobs_running(tmp_path):
    """Blender quitting stops the workers, never the (paid) remote jobs: they are resumed next session."""
    svc = FakeService(polls=10**6)
    svc.poll_interval = 30.0
    q = JobQueue({"fake": svc}, limits={"fake": 3})
    jobs = [q.submit(f"s{i}", "fake", REQUEST, tmp_path / f"take_{i:03d}.mp4") for i in range(5)]
    resumed = Job(key="old", service_id="fake", request=REQUEST, dest=tmp_path / "old.mp4", remote_id="remote-old")
    jobs.append(q.resume(resumed.to_record()))
    pump_until(q, lambda: sum(j.state == "generating" for j in jobs) == 3)
    assert len(_queue_threads()) == 3
    q.cancel(jobs[0].id)  # the director's own cancel, just before quitting, still cancels

    assert q.shutdown(wait=True, timeout=TIMEOUT)
    assert _queue_threads() == []
    q.pump()
    assert svc.cancelled == ["remote-1"]
    assert [j.state for j in jobs[1:3]] == ["generating"] * 2 and jobs[1].remote_id
    assert files(tmp_path) == []
    with pytest.raises(RuntimeError):
        q.submit("late", "fake", REQUEST, tmp_path / "late.mp4")


def test_shutdown_of_an_idle_queue(tmp_path):
    q = JobQueue({})
    assert q.shutdown(wait=True, timeout=1.0)
    assert not q.busy and q.pump() == []


def test_no_thread_outlives_a_finished_batch(tmp_path, make_queue):
    svc = FakeService()
    q = make_queue(svc, limits={"fake": 3})
    for i in range(6):
        q.submit(f"s{i}", "fake", REQUEST, tmp_path / f"take_{i:03d}.mp4")
    pump_until(q, lambda: not q.busy)
    deadline = time.monotonic() + TIMEOUT
    while _queue_threads():  # idle workers exit on their own
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert sorted(os.listdir(tmp_path)) == [f"take_{i:03d}.mp4" for i in range(6)]


# -- the journal: never pay twice ----------------------------------------------------------------------------------


class _HoldsAfterSubmit(FakeService):
    """Submits, then waits in poll until released: the moment a crash would hit."""

    def __init__(self):
        super().__init__(polls=1)
        self.release = threading.Event()
        self.posted_before_journal = None

    def poll(self, remote_id, ctl):
        self.release.wait(TIMEOUT)
        return super().poll(remote_id, ctl)


def test_the_remote_id_is_journalled_before_anything_else(tmp_path, make_queue):
    from addon import journal

    svc = _HoldsAfterSubmit()
    q = make_queue(svc)
    book = tmp_path / "media" / journal.FILE_NAME
    job = q.submit("Scene\x1fshot-1", "fake", REQUEST, tmp_path / "take_001.mp4", str(book))
    wait_for(svc.submitted)
    deadline = time.monotonic() + TIMEOUT
    while not journal.pending(book):
        assert time.monotonic() < deadline, "the job never reached the journal"
        time.sleep(0.002)
    (record,) = journal.pending(book)
    assert record["id"] == job.id and record["remote_id"] == "remote-1" and record["key"] == "Scene\x1fshot-1"
    assert Job.from_record(record).request == REQUEST

    # Another Blender (after a crash) resumes it from the journal: polled and fetched, never submitted.
    svc.release.set()
    pump_until(q, lambda: job.is_finished)  # (this one goes on here; the other writes the same take after it)
    other = FakeService(polls=1)
    q2 = make_queue(other)
    resumed = q2.resume(record)
    pump_until(q2, lambda: resumed.is_finished)
    assert resumed.state == "done" and other.submits == 0 and other.polled == {"remote-1": 2}


def test_the_journal_skips_a_torn_line_and_forgets_ended_jobs(tmp_path):
    from addon import journal

    book = tmp_path / journal.FILE_NAME
    for n in (1, 2, 3):
        journal.submitted(book, {"id": f"j{n}", "remote_id": f"r{n}", "key": "Сцена\x1fшот"})
    journal.ended(book, "j2", "done")
    with open(book, "a", encoding="utf-8") as f:
        f.write('{"submitted": {"id": "j4", "remo')  # Blender killed mid-write
    assert [r["id"] for r in journal.pending(book)] == ["j1", "j3"]
    journal.compact(book)
    assert [r["id"] for r in journal.pending(book)] == ["j1", "j3"]
    assert len(book.read_text(encoding="utf-8").splitlines()) == 2
    assert journal.pending(tmp_path / "none.jsonl") == []


def test_a_job_polled_past_its_services_limit_fails_and_is_cancelled(tmp_path, make_queue):
    svc = FakeService(polls=10**6)
    svc.max_wait = 0.2
    q = make_queue(svc)
    job = q.submit("shot", "fake", REQUEST, tmp_path / "take_001.mp4")
    pump_until(q, lambda: job.is_finished)
    assert job.state == "failed" and "Fake had not finished after 0.2 s; the job was cancelled" in job.message
    assert svc.cancelled == ["remote-1"] and svc.submits == 1
