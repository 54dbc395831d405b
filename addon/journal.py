"""The job journal: never pay twice for one job.

The moment a service gives a job its id, the worker appends the job's record to a journal file on
disk (flushed and fsynced) before anything else happens; when a job ends, a line says so. A
Blender killed right after a submit, with nothing saved, leaves the job in the journal: opening
any save of the .blend adopts it (polls, downloads and places it) instead of submitting again.

One JSON object per line, appended; a torn last line (a crash mid-write) is skipped. Lines:
  {"submitted": <job record>}      (jobs.Job.to_record() shape, with its remote id)
  {"ended": "<job id>", "state": "done" | "failed" | "cancelled"}
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("shotline.journal")

FILE_NAME = "shotline-jobs.jsonl"
_lock = threading.Lock()  # appends from several workers; one line each, whole


def _append(path: Path, entry: dict[str, Any]) -> None:
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def submitted(path: Path, record: dict[str, Any]) -> None:
    """Write a job that has a remote id; raises OSError when the journal cannot be written."""
    _append(path, {"submitted": record})


def ended(path: Path, job_id: str, state: str) -> None:
    try:
        _append(path, {"ended": job_id, "state": state})
    except OSError as err:  # the job is over either way; a stale entry is only polled once more
        log.warning("cannot note the end of job %s in %s: %s", job_id, path, err)


def pending(path: Path) -> list[dict[str, Any]]:
    """Records of jobs submitted and not ended, oldest first."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        log.warning("cannot read the job journal %s: %s", path, err)
        return []
    open_jobs: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if not isinstance(entry, dict):
            continue
        record = entry.get("submitted")
        if isinstance(record, dict) and record.get("id") and record.get("remote_id"):
            open_jobs[record["id"]] = record
        elif entry.get("ended"):
            open_jobs.pop(entry["ended"], None)
    return list(open_jobs.values())


def compact(path: Path) -> None:
    """Rewrite the journal with only its open jobs (the file stays small over months of work)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with _lock:
        if not path.exists():
            return
        jobs = pending(path)
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                for record in jobs:
                    f.write(json.dumps({"submitted": record}, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            log.warning("cannot compact the job journal %s: %s", path, err)
            tmp.unlink(missing_ok=True)
