"""Clips the fakes deliver.

`tiny_mp4` is a well-formed MP4 skeleton (ftyp, moov with one video track, mdat) that states a
rate, frame count and size, for protocol tests that never open it in Blender. `real_clip` is a
playable H.264 clip with frame codes (made once per rate and size by the animatic's encoder), for
tests that place and render takes.
"""

from __future__ import annotations

import struct
import tempfile
import threading
from fractions import Fraction
from pathlib import Path


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full(kind: bytes, version_flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version_flags), *payload)


def tiny_mp4(fps: Fraction = Fraction(24), frames: int = 48, width: int = 1280, height: int = 720) -> bytes:
    fps = Fraction(fps)
    timescale, delta = fps.numerator, fps.denominator  # each frame lasts denominator/numerator s
    duration = frames * delta
    mvhd = _full(b"mvhd", 0, struct.pack(">IIII", 0, 0, timescale, duration), b"\0" * 80)
    tkhd = _full(b"tkhd", 3, struct.pack(">IIIII", 0, 0, 1, 0, duration), b"\0" * 52,
                 struct.pack(">II", width << 16, height << 16))
    mdhd = _full(b"mdhd", 0, struct.pack(">IIII", 0, 0, timescale, duration), b"\0" * 4)
    hdlr = _full(b"hdlr", 0, b"\0" * 4, b"vide", b"\0" * 12, b"VideoHandler\0")
    stts = _full(b"stts", 0, struct.pack(">III", 1, frames, delta))
    stbl = _box(b"stbl", stts)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, _box(b"minf", stbl)))
    return (_box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41") + _box(b"moov", mvhd, trak)
            + _box(b"mdat", b"\0" * 4096))


_made: dict[tuple, bytes] = {}
_lock = threading.Lock()


def real_clip(fps: Fraction, frames: int, width: int = 320, height: int = 180) -> bytes:
    """A playable clip whose pictures carry their frame index (read back by tests/vse.py)."""
    from shotline.addon import encode
    from shotline.addon.services.base import JobControl, Request

    key = (Fraction(fps), frames, width, height)
    with _lock:
        if key not in _made:
            out = Path(tempfile.mkdtemp(prefix="shotline-fake-clip-")) / "clip.mp4"
            request = Request(shot_name="fake", prompt="fake service clip", frames=frames, fps=Fraction(fps),
                              width=width, height=height, seed=1)
            encode.make_clip(request, out, JobControl(), lambda _phase, _done: None)
            _made[key] = out.read_bytes()
        return _made[key]
