"""The local animatic service: placeholder clips drawn on this machine, no network, no key.

submit() does the whole job in the worker thread: draws the frames (../animatic.py), encodes
them in a child process (../encode.py) into a private staging folder, and returns that
folder's name as the remote id. poll() then says done; fetch() moves the clip to `dest`.
The staging folder holds everything fetch needs, so a job survives a restart of Blender
for as long as the temporary folder does.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

from .. import animatic, encode, framecode
from .base import Capabilities, JobControl, Request, Result, Service, ServiceError, Status

_PREFIX = "shotline-animatic-"
_ID = re.compile(re.escape(_PREFIX) + r"[A-Za-z0-9_]+")
_CLIP, _META = "clip.mp4", "clip.json"
_DRAW_SHARE = 0.35  # of the progress bar; the rest is the encode (measured: 30/70 at 640x360, 40/60 at 1080p)


class AnimaticService(Service):
    id = "animatic"
    label = "Animatic (local)"
    needs_network = False
    capabilities = Capabilities(text_to_video=True, first_frame=True, max_frames=framecode.MAX_INDEX + 1)
    max_concurrency = 2
    poll_interval = 0.1

    def __init__(self, staging_root: Path | None = None):
        self.staging_root = Path(staging_root or tempfile.gettempdir())

    def submit(self, request: Request, ctl: JobControl) -> str:
        _validate(request)
        ctl.check()
        job = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=self.staging_root))
        try:
            frames = job / "frames"
            frames.mkdir()
            self._draw(request, frames, ctl)
            encode.encode(frames, request.frames, request.fps, request.width, request.height, job / _CLIP, ctl,
                          lambda done: ctl.progress(_DRAW_SHARE + (1 - _DRAW_SHARE) * done, "encoding"))
            shutil.rmtree(frames)
            meta = {"fps": str(request.fps), "frames": request.frames, "width": request.width,
                    "height": request.height}
            (job / _META).write_text(json.dumps(meta), encoding="utf-8")
        except BaseException:
            shutil.rmtree(job, ignore_errors=True)
            raise
        return job.name

    @staticmethod
    def _draw(request: Request, folder: Path, ctl: JobControl) -> None:
        try:
            painter = animatic.Animatic(request)
        except OSError as ex:
            raise ServiceError(f"Cannot read the reference image {Path(request.reference_image).name}: {ex}") from None
        reported = 0.0
        for index in range(request.frames):
            ctl.check()
            animatic.write_frame(painter.frame(index), encode.frame_path(folder, index))
            done = (index + 1) / request.frames
            if done - reported >= 0.01 or index + 1 == request.frames:  # don't flood the event queue
                reported = done
                ctl.progress(_DRAW_SHARE * done, "drawing")

    def poll(self, remote_id: str, ctl: JobControl) -> Status:
        if not (self._job(remote_id) / _CLIP).is_file():
            raise ServiceError("The animatic clip is gone (temporary files were cleared); generate it again.")
        return Status(done=True, progress=1.0)

    def fetch(self, remote_id: str, dest: Path, ctl: JobControl) -> Result:
        job = self._job(remote_id)
        try:
            meta = json.loads((job / _META).read_text(encoding="utf-8"))
            shutil.move(job / _CLIP, dest)
        except (OSError, ValueError) as ex:
            raise ServiceError(f"Cannot collect the animatic clip: {ex}") from None
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


def _validate(request: Request) -> None:
    if not 1 <= request.frames <= framecode.MAX_INDEX + 1:
        raise ServiceError(f"The animatic makes 1 to {framecode.MAX_INDEX + 1} frames, not {request.frames}.")
    if request.width < 16 or request.height < 16 or request.width % 2 or request.height % 2:
        raise ServiceError(f"The animatic needs an even width and height of at least 16 pixels (H.264), "
                           f"not {request.width}x{request.height}.")
    if request.fps <= 0:
        raise ServiceError(f"Invalid frame rate {request.fps}.")
    if request.reference_image and not Path(request.reference_image).is_file():
        raise ServiceError(f"The reference image {request.reference_image} does not exist.")
