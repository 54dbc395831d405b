"""Make an animatic clip (MP4/H.264) in a child process that draws the frames and encodes them;
or encode frames already on disk the same way (`frames_to_clip`: a ComfyUI image sequence).

All per-frame work runs in the child, `blend/animatic_child.py`: Pillow's drawing holds the GIL
for tens of milliseconds at a time, which would stall Blender's main thread if it ran in a
worker thread here. `make_clip` and `frames_to_clip` are called from worker threads, never from
Blender's main thread: they start the child, relay its progress, kill it on cancel and check its
file. The child is run by a Python with the `bpy` module (tests, demo: the default) or by the
Blender binary (set by `blend/encoder.configure_for_blender`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Callable

from .services.base import Cancelled, JobControl, Request, ServiceError

_CORE = os.path.dirname(os.path.abspath(__file__))  # this `addon/` folder
CHILD_SCRIPT = os.path.join(_CORE, "blend", "animatic_child.py")
ADDON_ROOT = os.path.dirname(_CORE)  # the child imports the pure core from here as the top-level package `addon`
_PROGRESS = re.compile(r"shotline-progress (drawing|encoding) (\d+) (\d+)")  # the child's markers
_DONE = "shotline-done"
_POLL = 0.05  # seconds between looks at the cancel flag
_GRACE = 2.0  # seconds a terminated child gets before it is killed
_TAIL = 8  # child output lines quoted in an error
# The child is background work: Blender's UI gets the CPU first (Windows; elsewhere the child lowers itself).
_BELOW_NORMAL = getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0)

SCRATCH_PREFIX = "shotline-child-"
_STALE = 24 * 3600  # seconds: a scratch folder this old belongs to a Blender that was killed

_prefix: list[str] | None = None


def configure(argv_prefix: list[str] | None) -> None:
    """Set the command that runs the child script; the child's arguments follow it. None: the default."""
    global _prefix
    _prefix = list(argv_prefix) if argv_prefix is not None else None


def command_prefix() -> list[str]:
    return list(_prefix) if _prefix is not None else [sys.executable, CHILD_SCRIPT]


def import_paths() -> list[str]:
    """What the child puts first on sys.path: the add-on root, and the folder Pillow is installed in
    (Blender installs extension wheels into a site-packages a `--factory-startup` child lacks)."""
    paths = [ADDON_ROOT]
    spec = importlib.util.find_spec("PIL")  # finds Pillow without importing it into Blender's process
    if spec and spec.submodule_search_locations:
        paths.append(os.path.dirname(list(spec.submodule_search_locations)[0]))
    return paths


def make_clip(request: Request, output: Path, ctl: JobControl,
              on_progress: Callable[[str, float], None] | None = None) -> None:
    """Draw and encode `request` to `output` (MP4, H.264, no audio, exact fps, frame count and size).

    on_progress(phase, done): phase "drawing" then "encoding", done 0..1 within the phase.
    Raises Cancelled (child killed) or ServiceError (with the child's last output lines). On any
    failure nothing is left at `output` or at its partial name.
    """
    _child(_request_fields(request), None, output, ctl, on_progress)


def frames_to_clip(frames_dir: Path, count: int, fps: Fraction, width: int, height: int, output: Path,
                   ctl: JobControl, on_progress: Callable[[str, float], None] | None = None) -> None:
    """Encode the `count` frames in `frames_dir` (PNG or JPEG, played in name order, all `width` x
    `height`, both even: H.264 needs it) to `output` at `fps`, like `make_clip` without drawing:
    on_progress("encoding", done), Cancelled or ServiceError, nothing left at `output` on failure."""
    if width % 2 or height % 2:
        raise ValueError(f"H.264 needs an even width and height, not {width}x{height}")
    fields = {"frames": count, "fps": f"{fps.numerator}/{fps.denominator}", "width": width, "height": height}
    _child(fields, Path(frames_dir), output, ctl, on_progress)


def _child(fields: dict, frames_dir: Path | None, output: Path, ctl: JobControl,
           on_progress: Callable[[str, float], None] | None) -> None:
    """Run the child on `fields` (its request JSON) and move its clip to `output`. frames_dir None:
    it draws the frames into its scratch folder; else it only encodes the frames there."""
    what = "animatic" if frames_dir is None else "encoding"
    output = Path(output)
    partial = output.with_name(output.stem + ".part" + output.suffix)
    # Blender keeps a session folder under TMPDIR; the child leaves with os._exit, so give it one we remove.
    # Its user folder goes there too (the user's preferences and add-ons have no business in the child),
    # and so do the request and the drawn frames.
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    env = dict(os.environ, TMPDIR=str(scratch), TEMP=str(scratch), TMP=str(scratch),
               BLENDER_USER_RESOURCES=str(scratch))
    try:
        request_file = scratch / "request.json"
        request_file.write_text(json.dumps(fields), encoding="utf-8")
        argv = command_prefix()
        for path in import_paths():
            argv += ["--path", path]
        argv += ["--request", str(request_file), "--frames", str(frames_dir or scratch / "frames"),
                 "--output", str(partial)]
        if frames_dir is not None:
            argv.append("--encode-only")
        _run(argv, env, ctl, on_progress, what)
        if not partial.is_file() or partial.stat().st_size == 0:
            raise ServiceError(f"The {what} process finished but wrote no video file.")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)


def remove_stale_scratch(now: float | None = None) -> int:
    """Remove the scratch folders (drawn frames: gigabytes for long HD shots) that a killed Blender
    left in the temporary folder; a day old at least, so another running Blender's are kept."""
    now = time.time() if now is None else now
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"):
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > _STALE:
                shutil.rmtree(folder)
                removed += 1
        except OSError:
            pass  # in use or not ours to remove: left alone
    return removed


def _request_fields(request: Request) -> dict:
    fps = request.fps
    return {"shot_name": request.shot_name, "prompt": request.prompt, "negative_prompt": request.negative_prompt,
            "seed": request.seed, "frames": request.frames, "fps": f"{fps.numerator}/{fps.denominator}",
            "width": request.width, "height": request.height, "reference_image": request.reference_image,
            "last_frame_image": request.last_frame_image, "reference_images": list(request.reference_images),
            "source_video": request.source_video, "audio": request.audio}


def _run(argv: list[str], env: dict[str, str], ctl: JobControl,
         on_progress: Callable[[str, float], None] | None, what: str) -> None:
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=env, text=True, encoding="utf-8", errors="replace",
                                 creationflags=_BELOW_NORMAL)
    except OSError as ex:
        raise ServiceError(f"Cannot start the {what} process ({argv[0]}): {ex.strerror or ex}") from None

    tail: deque[str] = deque(maxlen=_TAIL)
    state = {"progress": None, "finished": False}

    def read_output() -> None:  # a thread: the pipe must be drained or the child blocks
        try:
            for line in child.stdout:
                line = line.rstrip()
                marker = _PROGRESS.fullmatch(line)
                if marker:
                    phase, done, total = marker.groups()
                    state["progress"] = (phase, min(int(done) / max(int(total), 1), 1.0))
                elif line == _DONE:
                    state["finished"] = True
                elif line:
                    tail.append(line)
        except (OSError, ValueError):  # the pipe was closed under us after a kill
            pass

    reader = threading.Thread(target=read_output, name="shotline-animatic-output", daemon=True)
    reader.start()
    reported = None
    try:
        while child.poll() is None:
            if ctl.cancel_event.wait(_POLL):
                raise Cancelled()
            progress = state["progress"]
            if on_progress and progress and progress != reported:
                reported = progress
                on_progress(*progress)
    finally:
        if child.poll() is None:
            _stop(child)
        reader.join(timeout=_GRACE)
        child.stdout.close()

    if child.returncode != 0 or not state["finished"]:
        lines = "\n".join(tail) or "(no output)"
        raise ServiceError(f"The {what} process failed (exit code {child.returncode}):\n{lines}")


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(_GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
