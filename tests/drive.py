"""Helpers for the tests that drive a cloud service against its local fake (test_fal, test_replicate,
test_runway, test_luma, test_veo): push jobs through the real JobQueue the way Blender's timer does,
build requests and input media, stop the fake servers, and check that no key got out.

Plain functions only; the `queue` fixture that goes with `run` and `pump` is in conftest.py. What is
particular to one service (its fake, its keys, its fixtures) stays in that service's test file."""

from __future__ import annotations

import json
import threading
import time
import wave
from fractions import Fraction
from pathlib import Path

from PIL import Image

from fakes.clips import tiny_mp4
from fakes.server import Cdn
from shotline.addon.jobs import Event, Job, JobQueue
from shotline.addon.services.base import Request

TIMEOUT = 10.0


# -- driving the job queue ---------------------------------------------------------------------------------------------

def pump(q: JobQueue, predicate, timeout: float = TIMEOUT) -> list[Event]:
    """Pump `q` like Blender's timer until `predicate()` holds, then once more; the events it gave."""
    events = []
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        events += q.pump()
        time.sleep(0.002)
    return events + q.pump()


def run(queue, service, request: Request, folder: Path, name: str = "take.mp4") -> tuple[Job, list[Event]]:
    """One job on a queue from the `queue` fixture (shut down after the test), pumped to its end."""
    q = queue(service)
    job = q.submit("shot", service.id, request, folder / name)
    events = pump(q, lambda: job.is_finished)
    return job, events


def run_alone(service, request: Request, folder: Path, until=None, timeout: float = 15.0) -> tuple[Job, list[Event]]:
    """One job through a JobQueue of its own, pumped to its end (or until `until(q, job)` holds), the
    queue shut down before it returns and no .part file left behind."""
    q = JobQueue({service.id: service}, retry_delay=0.01)
    events: list[Event] = []
    try:
        job = q.submit("shot", service.id, request, folder / "take_001.mp4")
        deadline = time.monotonic() + timeout
        while not job.is_finished and not (until and until(q, job)):
            assert time.monotonic() < deadline, f"stuck: {job.state} {job.message}"
            events += q.pump()
            time.sleep(0.002)
    finally:
        assert q.shutdown(wait=True, timeout=timeout)
    assert not (folder / "take_001.mp4.part").exists()
    return job, events


def quick(api, read_timeout: float = 5.0) -> None:
    """Test-sized retries and timeouts on a service's HTTP client."""
    api.base_delay = 0.01
    api.timeout = (2.0, read_timeout)


def close_later(*servers) -> None:
    """A server takes up to half a second to stop (its serve_forever poll): let it, off the test's time."""
    for server in servers:
        threading.Thread(target=server.close, daemon=True).start()


# -- what goes in ------------------------------------------------------------------------------------------------------

def shots(**defaults):
    """A `shot(**kw)` request builder: Shot 1, 96 frames at 24 fps, 1280x720, seed 7, then `defaults`
    (a service's prompt, say), then what each call gives."""
    base = {"shot_name": "Shot 1", "frames": 96, "fps": Fraction(24), "width": 1280, "height": 720, "seed": 7,
            **defaults}

    def shot(**kw) -> Request:
        return Request(**{**base, **kw})

    return shot


def still(path: Path, color=(200, 40, 90), size=(640, 360), noise: bool = False) -> str:
    """An RGB still (flat `color`, or noise that compresses badly) saved at `path`; its path as a string."""
    image = Image.effect_noise(size, 90).convert("RGB") if noise else Image.new("RGB", size, color)
    image.save(path)
    return str(path)


def media(folder: Path) -> dict[str, str]:
    """A still, a last frame, a short clip and a WAV on disk, as a shot would reference them."""
    Image.new("RGB", (640, 360), (200, 40, 40)).save(folder / "first.png")
    Image.new("RGBA", (640, 360), (40, 40, 200, 128)).save(folder / "last.png")
    (folder / "source.mp4").write_bytes(tiny_mp4(Fraction(25), 100, 640, 360))
    with wave.open(str(folder / "voice.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return {k: str(folder / f) for k, f in (("image", "first.png"), ("last", "last.png"), ("video", "source.mp4"),
                                            ("audio", "voice.wav"))}


# -- the key stays home ------------------------------------------------------------------------------------------------

def assert_no_key(cdn: Cdn, secrets, *texts: str) -> None:
    """No key reached the file host, and none of `secrets` is in any of `texts`."""
    assert cdn.keys_seen() == []
    for text in texts:
        assert not any(s in text for s in secrets), text


def assert_no_leak(cdn: Cdn, caplog, secrets, *texts: str) -> None:
    """assert_no_key, and no secret in a file-host URL or in the log either."""
    assert_no_key(cdn, secrets, *texts)
    for call in cdn.calls:
        assert not any(s in call.path + json.dumps(call.query) for s in secrets)
    for record in caplog.records:
        assert not any(s in record.getMessage() for s in secrets), record.getMessage()
