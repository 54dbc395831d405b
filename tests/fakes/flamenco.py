"""A fake Flamenco 3 Manager (pkg/api/flamenco-openapi.yaml) on a real local server.

Routes: GET /api/v3/version, GET /api/v3/jobs/type/{name}, POST /api/v3/jobs, GET /api/v3/jobs/{id}.
It knows one job type, read from a job compiler script through tests/flamenco_harness.js (as the
Manager loads its `scripts` folder), with the Manager's etag: a sha1 of the job type as JSON. A
submitted job is checked as the OpenAPI schema says (name, type, priority, submitter_platform;
metadata values are strings; a stale `type_etag` is a 412) and then against the job type's
settings, more strictly than the Manager does, to catch a submitter drifting from the script:
every required setting given, no undeclared one, each of its declared type. Then the script
compiles it (what it throws is a 400) and the job is stored, queued, with its tasks.
`set_status(id, status, activity)` moves a job on, as workers would.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

from .server import Call, FakeServer, Reply

HARNESS = Path(__file__).resolve().parents[1] / "flamenco_harness.js"
SETTING_TYPES = {"string": (str,), "int32": (int,), "float": (int, float), "bool": (bool,)}


def harness(script: Path, mode: str, job: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(HARNESS), str(script), mode], input=json.dumps(job or {}),
                          capture_output=True, text=True, encoding="utf-8", timeout=60)


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"code": status, "message": message})


class FakeFlamenco(FakeServer):
    def __init__(self, script: Path) -> None:
        super().__init__()
        self.script = Path(script)
        self.type_name = self.script.stem.replace("_", "-")  # the Manager's filenameToJobType
        loaded = harness(self.script, "type")
        assert loaded.returncode == 0, loaded.stderr
        self.job_type = {"name": self.type_name, **json.loads(loaded.stdout)}
        self.job_type["etag"] = hashlib.sha1(json.dumps(self.job_type, sort_keys=True).encode()).hexdigest()
        self.jobs: dict[str, dict] = {}
        self.route("GET", r"/api/v3/version", self._version)
        self.route("GET", r"/api/v3/jobs/type/(?P<name>[^/]+)", self._type)
        self.route("POST", r"/api/v3/jobs", self._submit)
        self.route("GET", r"/api/v3/jobs/(?P<id>[0-9a-f-]+)", self._job)

    def set_status(self, job_id: str, status: str, activity: str = "") -> None:
        with self.lock:
            self.jobs[job_id].update(status=status, activity=activity)

    def _version(self, _call: Call) -> Reply:
        return Reply(200, {"version": "3.7", "shortversion": "3.7", "name": "Fake Manager", "git": "v3.7"})

    def _type(self, call: Call) -> Reply:
        if call.match["name"] != self.type_name:
            return _error(404, "no such job type known")
        return Reply(200, self.job_type)

    def _submit(self, call: Call) -> Reply:
        try:
            job = call.json()
        except ValueError:
            return _error(400, "invalid format")
        problem = self._schema_problem(job) or self._settings_problem(job.get("settings") or {})
        if problem:
            return _error(400, problem)
        if job["type"] != self.type_name:
            return _error(400, f"job type {job['type']!r} unknown")
        if job.get("type_etag") and job["type_etag"] != self.job_type["etag"]:
            return _error(412, "rejecting job because its settings are outdated, refresh the job type")
        compiled = harness(self.script, "compile", job)
        if compiled.returncode != 0:
            return _error(400, compiled.stderr.strip())
        stored = {**job, **json.loads(compiled.stdout), "id": str(uuid.uuid4()), "status": "queued",
                  "activity": "", "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
                  "steps_completed": 0, "steps_total": 0}
        with self.lock:
            self.jobs[stored["id"]] = stored
        return Reply(200, {k: v for k, v in stored.items() if k != "tasks"})

    def _job(self, call: Call) -> Reply:
        with self.lock:
            job = self.jobs.get(call.match["id"])
        if job is None:
            return _error(404, "no such job")
        return Reply(200, {k: v for k, v in job.items() if k != "tasks"})

    @staticmethod
    def _schema_problem(job) -> str:
        if not isinstance(job, dict):
            return "invalid format"
        for key, kind in (("name", str), ("type", str), ("priority", int), ("submitter_platform", str)):
            if not isinstance(job.get(key), kind):
                return f"{key}: required, a {kind.__name__}"
        metadata = job.get("metadata") or {}
        if not all(isinstance(v, str) for v in metadata.values()):
            return "metadata: values must be strings"
        return ""

    def _settings_problem(self, settings: dict) -> str:
        declared = {s["key"]: s for s in self.job_type["settings"]}
        for key, value in settings.items():
            if key not in declared:
                return f"setting {key!r} is not one of the {self.type_name} job type's"
            kind = declared[key]["type"]
            if not isinstance(value, SETTING_TYPES[kind]) or (kind != "bool" and isinstance(value, bool)):
                return f"setting {key!r} must be a {kind}, not {value!r}"
        missing = [key for key, s in declared.items() if s.get("required") and key not in settings]
        return f"required settings missing: {', '.join(missing)}" if missing else ""
