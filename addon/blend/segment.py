"""Live footage under a shot as a video file, for video to video.

The strip is rendered alone, as the timeline shows it (its grade, transform and crop), one PNG per
scene frame of the shot, a few frames per pump on the main thread (`step`), so the UI never stalls;
then a job's worker encodes them (`encode`) to H.264 at the scene's rate with Blender's FFmpeg in a
child process. The frames go to a scratch folder named like the encoder's, so one a killed Blender
left behind is removed as theirs are (encode.remove_stale_scratch).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import bpy

from .. import encode as encoder
from ..services.base import Cancelled, JobControl
from . import compat, frames, shots


class SegmentExport:
    """Scene frames [left, right) of `strip` as an MP4 at `dest`, `width` x `height`, at the scene's rate.

    The scene and strip are looked up by name at every step (an undo may have replaced them);
    raises ValueError, with what to do, for a strip that does not cover the frames."""

    def __init__(self, scene, strip, left: int, right: int, dest: Path, width: int, height: int):
        if right <= left:
            raise ValueError(f"The shot has no frames ({left}-{right})")
        if width % 2 or height % 2 or width < 2 or height < 2:
            raise ValueError(f"A video needs an even width and height, not {width}x{height}")
        s_left, s_right = compat.span(strip)
        if s_left > left or s_right < right:
            raise ValueError(f"\"{strip.name}\" covers frames {s_left}-{s_right - 1}, the shot {left}-{right - 1}: "
                             "extend the strip over the whole shot, or choose footage that covers it")
        self.scene_name, self.strip_name = scene.name, strip.name
        self.left, self.count = left, right - left
        self.dest, self.width, self.height = Path(dest), width, height
        self.fps = shots.scene_fps(scene)
        self.rendered = 0
        self._scratch: Path | None = None  # made at the first step: a plan dropped before it leaves nothing
        self._cancelled = False

    @property
    def progress(self) -> float:
        return self.rendered / self.count

    @property
    def done(self) -> bool:
        return self.rendered == self.count

    def step(self, budget_s: float = 0.03) -> bool:
        """Render frames until `budget_s` is used (one at least); True once all are rendered. Main thread."""
        if self._cancelled:
            raise RuntimeError("the export was cancelled")
        if self.done:
            return True
        scene, strip = self._find()
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"{encoder.SCRATCH_PREFIX}segment-"))
        started = time.perf_counter()
        while not self.done:
            path = self._scratch / f"{self.rendered:06d}.png"
            frames.render_frame(scene, self.left + self.rendered, path, only=[strip])
            self.rendered += 1
            if time.perf_counter() - started >= budget_s:
                break
        return self.done

    def _find(self):
        scene = bpy.data.scenes.get(self.scene_name)
        strip = compat.strips_all(scene.sequence_editor).get(self.strip_name) if scene and scene.sequence_editor \
            else None
        if strip is None:
            raise ValueError(f"The source video strip \"{self.strip_name}\" is gone (renamed or deleted?)")
        return scene, strip

    def cancel(self) -> None:
        """Stop and remove the rendered frames (an encoding under way stops at its job's cancel)."""
        self._cancelled = True
        self._remove_scratch()

    def encode(self, ctl: JobControl) -> None:
        """Encode the rendered frames to `dest` (whole or not at all) and remove them. Worker thread."""
        try:
            if self._cancelled:
                raise Cancelled()
            if not self.done or self._scratch is None:
                raise RuntimeError(f"only {self.rendered} of {self.count} frames of the source video are rendered")
            _fit_frames(self._scratch, self.width, self.height)
            ctl.check()
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            encoder.frames_to_clip(self._scratch, self.count, self.fps, self.width, self.height, self.dest, ctl)
        finally:
            self._remove_scratch()

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _fit_frames(folder: Path, width: int, height: int) -> None:
    """Bring frames rendered at another size (an odd output size, a request of another shape) to
    `width` x `height`: scaled to cover it, centred, the overflow cut. Pillow lets go of the GIL while it resamples."""
    from PIL import Image, ImageOps  # a wheel of the extension: imported when a segment is made

    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            if image.size == (width, height):
                continue
            fitted = ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
        fitted.save(path)
