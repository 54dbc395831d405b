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


class SubmissionUncertain(ServiceError):
    """A create whose reply was lost (timeout, reset, 5xx after sending): the service may have made
    the job, and billed it. Never resubmitted by itself: the director decides."""


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
    reference_image: str = ""  # absolute path of a still the clip starts from (first frame), or ""
    model: str = ""  # the service's model id; "" = the service's default
    last_frame_image: str = ""  # absolute path of a still the clip ends on
    source_video: str = ""  # absolute path of a clip to transform (video to video)
    audio: str = ""  # absolute path of a sound file to follow (lip-sync)
    reference_images: tuple[str, ...] = ()  # absolute paths of stills of characters and places
    options: str = ""  # model-specific options as a JSON object (text, so the request stays hashable)

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
    negative_prompt: bool = True
    seed: bool = True
    reference_images: int = 0  # how many character/place stills it takes
    aspect_ratios: tuple[str, ...] = ()  # e.g. ("16:9", "9:16"); empty = any size
    can_cancel: bool = True  # False: a started job runs (and bills) to completion
    price_per_second: float = 0.0  # USD per second of video, for estimates; 0 = unknown or free


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
    cost: float | None = None  # USD, where the service reports it
    content_key: str = ""  # sha256 of the file, read by the job queue's worker (not on Blender's main thread)


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
    max_wait: float = 0.0  # seconds of polling before a job counts as lost (0: no limit)
    needs_network: bool = True
    # What the preferences offer for it (see addon/blend/prefs.py); empty: nothing to set.
    key_env: str = ""  # the environment variable of its key (or token)
    key_label: str = "Key"
    default_url: str = ""  # its address when none is set
    extra_keys: tuple[tuple[str, str, str], ...] = ()  # (config id, label, environment variable) of other keys
    uses_workflow: bool = False  # runs the director's workflow file: its path and pins go in Request.options

    def models(self) -> list[str]:
        """The model ids a shot may ask for; empty: the service has one."""
        return []

    def capabilities_for(self, model: str) -> Capabilities:
        """What `model` (or the default, for "") accepts."""
        return self.capabilities

    def check(self, request: Request) -> None:
        """Raise ServiceError when the service cannot take `request` (called before it is sent)."""
        name = f"{self.label} {request.model}".strip()
        models = self.models()
        if request.model and models and request.model not in models:
            raise ServiceError(f"{self.label} has no model \"{request.model}\" (it has: {', '.join(models)}).")
        caps = self.capabilities_for(request.model)
        if caps.max_frames and request.frames > caps.max_frames:
            raise ServiceError(f"{name} makes at most {caps.max_frames} frames, not {request.frames}.")
        if caps.fps and request.fps not in caps.fps:
            raise ServiceError(f"{name} does not make {float(request.fps):g} fps clips.")
        if not request.prompt and caps.text_to_video and not (request.reference_image or request.source_video):
            raise ServiceError(f"{name} needs a prompt.")
        for present, accepted, what in (
                (request.reference_image, caps.first_frame, "start from a first-frame image"),
                (request.last_frame_image, caps.last_frame, "end on a last-frame image"),
                (request.source_video, caps.video_to_video, "take a source video"),
                (request.audio, caps.lip_sync, "follow an audio file (lip-sync)"),
                (request.negative_prompt.strip(), caps.negative_prompt, "take a negative prompt")):
            if present and not accepted:
                raise ServiceError(f"{name} cannot {what}.")
        if len(request.reference_images) > caps.reference_images:
            most = f"at most {caps.reference_images}" if caps.reference_images else "no"
            raise ServiceError(f"{name} takes {most} reference images, not {len(request.reference_images)}.")

    def estimate_cost(self, request: Request) -> float | None:
        """USD the request is expected to cost; None when unknown, 0 when free."""
        price = self.capabilities_for(request.model).price_per_second
        return float(request.duration) * price if price else (0.0 if not self.needs_network else None)

    def test_connection(self) -> str:
        """The cheapest authenticated call; returns a one-line answer or raises ServiceError."""
        return f"{self.label} needs no connection."

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
