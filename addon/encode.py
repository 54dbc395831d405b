"""Turn a folder of JPEG frames into an MP4/H.264 file in a child process (Blender's own FFmpeg).

Called from worker threads, never from Blender's main thread: `encode` blocks until the
child is done, polling the cancel flag, and kills the child on cancel. The child is
`blend/encode_child.py` run by a Python with the `bpy` module (tests, demo: the default) or
by the Blender binary (set by `blend/encoder.configure_for_blender`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Callable

from .services.base import Cancelled, JobControl, ServiceError

CHILD_SCRIPT = str(Path(__file__).parent / "blend" / "encode_child.py")
_PROGRESS, _DONE = "shotline-progress", "shotline-done"  # the child's markers
_POLL = 0.05  # seconds between looks at the cancel flag
_GRACE = 2.0  # seconds a terminated child gets before it is killed
_TAIL = 8  # child output lines quoted in an error

_prefix: list[str] | None = None


def configure(argv_prefix: list[str] | None) -> None:
    """Set the command that runs the child script; the encoder's arguments follow it. None: the default."""
    global _prefix
    _prefix = list(argv_prefix) if argv_prefix is not None else None


def command_prefix() -> list[str]:
    return list(_prefix) if _prefix is not None else [sys.executable, CHILD_SCRIPT]


def frame_path(folder: Path, index: int) -> Path:
    """Where frame `index` (0-based) goes; encode_child.py reads the same names."""
    return folder / f"{index:06d}.jpg"


def encode(frames_dir: Path, count: int, fps: Fraction, width: int, height: int, output: Path,
           ctl: JobControl, on_progress: Callable[[float], None] | None = None) -> None:
    """Encode frames 0..count-1 of `frames_dir` to `output` (MP4, H.264, no audio, exact fps, size, count).

    Raises Cancelled (child killed) or ServiceError (with the child's last output lines). On any
    failure nothing is left at `output` or at its partial name.
    """
    output = Path(output)
    partial = output.with_name(output.stem + ".part" + output.suffix)
    argv = command_prefix() + ["--frames", str(frames_dir), "--count", str(count), "--fps", f"{fps}",
                               "--size", f"{width}x{height}", "--output", str(partial)]
    # Blender keeps a session folder under TMPDIR; the child leaves with os._exit, so give it one we remove.
    # Its user folder goes there too: the user's preferences and add-ons have no business in the encode.
    scratch = tempfile.mkdtemp(prefix="shotline-encode-")
    env = dict(os.environ, TMPDIR=scratch, TEMP=scratch, TMP=scratch, BLENDER_USER_RESOURCES=scratch)
    try:
        _run(argv, env, count, ctl, on_progress)
        if not partial.is_file() or partial.stat().st_size == 0:
            raise ServiceError("The encoder finished but wrote no video file.")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _run(argv: list[str], env: dict[str, str], count: int, ctl: JobControl,
         on_progress: Callable[[float], None] | None) -> None:
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env=env, text=True, encoding="utf-8", errors="replace")
    except OSError as ex:
        raise ServiceError(f"Cannot start the encoder ({argv[0]}): {ex.strerror or ex}") from None

    tail: deque[str] = deque(maxlen=_TAIL)
    state = {"done": 0, "finished": False}

    def read_output() -> None:  # a thread: the pipe must be drained or the child blocks
        try:
            for line in child.stdout:
                line = line.rstrip()
                if line.startswith(_PROGRESS):
                    state["done"] = int(line.split()[1])
                elif line == _DONE:
                    state["finished"] = True
                elif line:
                    tail.append(line)
        except (OSError, ValueError):  # the pipe was closed under us after a kill
            pass

    reader = threading.Thread(target=read_output, name="shotline-encode-output", daemon=True)
    reader.start()
    reported = -1
    try:
        while child.poll() is None:
            if ctl.cancel_event.wait(_POLL):
                raise Cancelled()
            if on_progress and state["done"] != reported:
                reported = state["done"]
                on_progress(min(reported / max(count, 1), 1.0))
    finally:
        if child.poll() is None:
            _stop(child)
        reader.join(timeout=_GRACE)
        child.stdout.close()

    if child.returncode != 0 or not state["finished"]:
        lines = "\n".join(tail) or "(no output)"
        raise ServiceError(f"The encoder failed (exit code {child.returncode}):\n{lines}")


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(_GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
