"""The contract every generation service implements.

A job's worker thread drives a service through submit -> poll ... -> fetch.
Services never touch Blender data; they see plain requests and write files.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable


class ServiceError(Exception):
    """A failure with a reason a director can read (no secrets, no traceback)."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class Cancelled(Exception):
    """Raised inside a worker when its job was cancelled."""


@dataclass(frozen=True)
class Request:
    """What to generate for one shot."""

    shot_name: str
    prompt: str
    frames: int
    fps: Fraction
    width: int
    height: int
    seed: int
    negative_prompt: str = ""
    reference_image: str = ""  # absolute path of a still the clip starts from, or ""

    @property
    def duration(self) -> Fraction:
        return self.frames / self.fps


@dataclass(frozen=True)
class Capabilities:
    text_to_video: bool = True
    first_frame: bool = False
    last_frame: bool = False
    video_to_video: bool = False
    lip_sync: bool = False
    durations: tuple[float, ...] = ()  # accepted lengths in seconds; empty = any
    frame_multiple: tuple[int, int] = (1, 0)  # frames must be n * a + b (e.g. (8, 1))
    fps: tuple[Fraction, ...] = ()  # accepted rates; empty = any
    max_frames: int = 0  # 0 = no limit


@dataclass
class Status:
    """One poll's answer."""

    done: bool = False
    progress: float | None = None  # 0..1 when the service tells
    message: str = ""


@dataclass
class Result:
    """A finished clip on disk, with what is known of it."""

    path: Path
    fps: Fraction | None = None
    frames: int | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class JobControl:
    """What a worker gives a service: a cancel flag and a progress callback."""

    cancel_event: threading.Event = field(default_factory=threading.Event)
    report: Callable[[str, float | None, str], None] = lambda stage, progress, message: None

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()

    def progress(self, fraction: float | None, message: str = "") -> None:
        self.report("generating", fraction, message)

    def sleep(self, seconds: float) -> None:
        """Wait between polls, waking at once on cancel."""
        if self.cancel_event.wait(seconds):
            raise Cancelled()


class Service:
    """Base class: subclasses set the class attributes and implement the four calls."""

    id: str = ""
    label: str = ""
    capabilities: Capabilities = Capabilities()
    max_concurrency: int = 2
    poll_interval: float = 2.0
    needs_network: bool = True

    def check(self, request: Request) -> None:
        """Raise ServiceError when the service cannot take `request` (called before it is sent)."""
        caps = self.capabilities
        if caps.max_frames and request.frames > caps.max_frames:
            raise ServiceError(f"{self.label} makes at most {caps.max_frames} frames, not {request.frames}.")
        if caps.fps and request.fps not in caps.fps:
            raise ServiceError(f"{self.label} does not make {float(request.fps):g} fps clips.")
        if request.reference_image and not caps.first_frame:
            raise ServiceError(f"{self.label} does not start from a reference image.")

    def submit(self, request: Request, ctl: JobControl) -> str:
        """Start generating; return the service's id for the job."""
        raise NotImplementedError

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        raise NotImplementedError

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        """Write the finished clip to `dest` (a temporary name the queue renames when complete)."""
        raise NotImplementedError

    def cancel(self, remote_id: str) -> None:
        """Best effort: tell the service to stop. Never raises."""
