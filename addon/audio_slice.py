"""The song under a shot, sample-exact: which samples of the file play during a range of scene frames.

Blender plays a sound strip's file from `skip` seconds in at the strip's content start, and only
between the strip's handles (its trims). Scene frames and file samples meet on one clock, kept as
exact Fractions (29.97 is 30000/1001): sample j of a slice of frames [a, b) is the moment
a / fps + j / rate of the timeline, and carries the file's sample floor(file time * rate) — always
the floor, so a moment that falls between two samples takes the earlier one. The slice holds every
moment in [a / fps, b / fps): ceil((b - a) * rate / fps) samples. A moment outside the strip's
handles, or before the file's start or after its end, is silence.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

_IEEE_FLOAT = 3  # WAVE_FORMAT_IEEE_FLOAT


@dataclass(frozen=True)
class SoundPlacement:
    """Where a sound strip plays its file on the timeline.

    `content_start`: the scene frame where the strip's content starts (frame_start / content_start);
    `skip`: seconds of the file before that point (the content's own trim, animation_offset_start,
    over the scene rate, less the strip's sound_offset, which delays the file); `left`/`right`: its handles, end exclusive."""

    content_start: Fraction
    skip: Fraction
    left: int
    right: int
    fps: Fraction


@dataclass(frozen=True)
class SlicePlan:
    """A slice of `length` samples whose samples [out_start, out_end) are the file's samples from
    `source_start` on (one for one); the others are silence. out_start == out_end: all silence."""

    length: int
    out_start: int
    out_end: int
    source_start: int


def plan(placement: SoundPlacement, a: int, b: int, rate: int, source_length: int) -> SlicePlan:
    """The samples of a file of `source_length` samples at `rate` Hz playing during scene frames [a, b)."""
    if b <= a:
        raise ValueError(f"an empty frame range ({a}-{b})")
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    fps = placement.fps
    length = math.ceil(Fraction(b - a) * rate / fps)

    def first_at(frame) -> int:
        """The first sample j of the slice whose moment is at or after `frame`."""
        return min(max(math.ceil(Fraction(frame - a) * rate / fps), 0), length)

    # source sample of slice sample j: floor(file time * rate) = j + shift, j being an integer
    shift = math.floor((Fraction(a) - placement.content_start) * rate / fps + placement.skip * rate)
    out_start = max(first_at(placement.left), -shift)
    out_end = min(first_at(placement.right), source_length - shift)
    if out_end <= out_start:
        return SlicePlan(length, 0, 0, 0)
    return SlicePlan(length, out_start, out_end, out_start + shift)


def cut(samples: np.ndarray, cut_plan: SlicePlan) -> np.ndarray:
    """The slice of `samples` ((n, channels) or (n,)) that `cut_plan` describes; silence is zeros."""
    out = np.zeros((cut_plan.length, *samples.shape[1:]), dtype=samples.dtype)
    count = cut_plan.out_end - cut_plan.out_start
    out[cut_plan.out_start:cut_plan.out_end] = samples[cut_plan.source_start:cut_plan.source_start + count]
    return out


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Write float samples ((n, channels) or (n,)) as a 32-bit float WAV, atomically: the file appears
    whole at `path` or not at all. Float, so the samples are the decoded song's, bit for bit, whatever
    its own format (the stdlib `wave` writes integer PCM only: the header is written here)."""
    path = Path(path)
    frames = np.ascontiguousarray(samples.reshape(len(samples), -1), dtype="<f4")
    channels = frames.shape[1]
    data = frames.tobytes()
    block = 4 * channels
    header = b"".join([
        b"RIFF", struct.pack("<I", 4 + 26 + 12 + 8 + len(data)), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHHH", 18, _IEEE_FLOAT, channels, int(rate), int(rate) * block, block, 32, 0),
        b"fact", struct.pack("<II", 4, len(frames)),  # a non-PCM WAV names its sample count
        b"data", struct.pack("<I", len(data)),
    ])
    partial = path.with_name(f".{path.name}.part")
    try:
        with open(partial, "wb") as out:
            out.write(header)
            out.write(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
