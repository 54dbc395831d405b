"""The local animatic service: placeholder clips made on this machine, no network, no key.

submit() does the whole job in the worker thread: a child process (../encode.py) draws the
frames (../animatic.py) and encodes them into a private staging folder, and submit returns
that folder's name as the remote id. The worker only waits, relays progress and cancels: no
per-frame work runs in Blender's process. poll() then says done; fetch() moves the clip to
`dest`. The staging folder holds everything fetch needs, so a job survives a restart of
Blender for as long as the temporary folder does.

It takes every input a cloud service takes (first and last frame, reference images, a source
video, audio), so the director's features can be tried offline. check() refuses a missing or
unreadable input file by name before a job starts; what only decoding tells (a video or sound
Blender cannot read) the child reports, naming the file.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

from PIL import Image

from .. import encode, framecode
from .base import Capabilities, JobControl, Request, Result, Service, ServiceError, Status

_PREFIX = "shotline-animatic-"
_ID = re.compile(re.escape(_PREFIX) + r"[A-Za-z0-9_]+")
_CLIP, _META = "clip.mp4", "clip.json"
# Of the progress bar; the rest is the encode, with the child's bpy start-up (measured on the child,
# 96 frames: 37/63 at 640x360, 51/49 at 1080p).
_DRAW_SHARE = 0.35


class AnimaticService(Service):
    id = "animatic"
    label = "Animatic (local)"
    needs_network = False
    capabilities = Capabilities(text_to_video=True, first_frame=True, last_frame=True, video_to_video=True,
                                lip_sync=True, reference_images=4, max_frames=framecode.MAX_INDEX + 1)
    max_concurrency = 2
    poll_interval = 0.1

    def __init__(self, staging_root: Path | None = None):
        self.staging_root = Path(staging_root or tempfile.gettempdir())

    def check(self, request: Request) -> None:
        super().check(request)
        _validate(request)

    def submit(self, request: Request, ctl: JobControl) -> str:
        self.check(request)
        ctl.check()
        job = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=self.staging_root))
        try:
            encode.make_clip(request, job / _CLIP, ctl, lambda phase, done: ctl.progress(_share(phase, done), phase))
            meta = {"fps": str(request.fps), "frames": request.frames, "width": request.width,
                    "height": request.height}
            (job / _META).write_text(json.dumps(meta), encoding="utf-8")
        except BaseException:
            shutil.rmtree(job, ignore_errors=True)
            raise
        return job.name

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        if not (self._job(remote_id) / _CLIP).is_file():
            raise ServiceError("The animatic clip is gone (temporary files were cleared); generate it again.")
        return Status(done=True, progress=1.0)

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        job = self._job(remote_id)
        try:
            meta = json.loads((job / _META).read_text(encoding="utf-8"))
        except (OSError, ValueError) as ex:
            raise ServiceError(f"Cannot read the animatic clip's details: {ex}") from None
        try:
            shutil.move(job / _CLIP, dest)
        except OSError as ex:  # a full or read-only disk: the job has failed, its staging goes
            shutil.rmtree(job, ignore_errors=True)
            raise ServiceError(f"Cannot write the take into {Path(dest).parent}: {ex.strerror or ex}") from None
        shutil.rmtree(job, ignore_errors=True)
        return Result(Path(dest), Fraction(meta["fps"]), meta["frames"], meta["width"], meta["height"])

    def cancel(self, remote_id: str) -> None:
        try:
            shutil.rmtree(self._job(remote_id), ignore_errors=True)
        except ServiceError:
            pass

    def _job(self, remote_id: str) -> Path:
        """The staging folder of a job; refuses anything but our own folder names (ids come from saved files)."""
        if not _ID.fullmatch(remote_id or ""):
            raise ServiceError(f"Not an animatic job id: {remote_id!r}")
        return self.staging_root / remote_id


def _share(phase: str, done: float) -> float:
    """The progress bar's position for `done` (0..1) of the child's drawing or encoding phase."""
    return _DRAW_SHARE * done if phase == "drawing" else _DRAW_SHARE + (1 - _DRAW_SHARE) * done


def _validate(request: Request) -> None:
    if not 1 <= request.frames <= framecode.MAX_INDEX + 1:
        raise ServiceError(f"The animatic makes 1 to {framecode.MAX_INDEX + 1} frames, not {request.frames}.")
    if request.width < 16 or request.height < 16 or request.width % 2 or request.height % 2:
        raise ServiceError(f"The animatic needs an even width and height of at least 16 pixels (H.264), "
                           f"not {request.width}x{request.height}.")
    if request.fps <= 0:
        raise ServiceError(f"Invalid frame rate {request.fps}.")
    pictures = [(request.reference_image, "reference image"), (request.last_frame_image, "last-frame image")]
    pictures += [(path, "reference image") for path in request.reference_images]
    for path, label in pictures:
        if path:
            _check_picture(path, label)
    if request.source_video:
        _check_file(request.source_video, "source video")  # decoded by the child: Blender reads what it reads
    if request.audio:
        _check_audio(request.audio)


def _check_file(path: str, label: str) -> bytes:
    """The first bytes of an input file; ServiceError naming it when it is missing, unreadable or empty."""
    file = Path(path)
    if not file.is_file():
        raise ServiceError(f"The {label} {path} does not exist.")
    try:
        with file.open("rb") as handle:
            head = handle.read(12)
    except OSError as ex:
        raise ServiceError(f"Cannot read the {label} {file.name}: {ex.strerror or ex}") from None
    if not head:
        raise ServiceError(f"The {label} {file.name} is empty.")
    return head


def _check_picture(path: str, label: str) -> None:
    """Only the header is read (Pillow opens lazily): a file that is no picture is refused before a job starts."""
    _check_file(path, label)
    try:
        with Image.open(path):
            pass
    except OSError:
        raise ServiceError(f"Cannot read the {label} {Path(path).name}: not a picture.") from None


def _check_audio(path: str) -> None:
    """A WAV file must say it is one; other formats are read by Blender in the child, which names the
    file if it cannot."""
    head = _check_file(path, "audio file")
    if Path(path).suffix.lower() in (".wav", ".wave") and not (head[:4] in (b"RIFF", b"RF64") and head[8:] == b"WAVE"):
        raise ServiceError(f"Cannot read the audio file {Path(path).name}: not a WAV file.")
