"""What a downloaded clip really is, read from the file: complete or cut, its frame rate and length.

Services deliver 16, 24, 25 or 30 fps whatever they were asked; placement conforms what the file
says. ISO media (MP4, MOV) is read box by box: a clip cut short (a download that ended early but
looked whole over HTTP) has boxes running past the end of the file, or no 'moov'.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from . import timing

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


class ClipError(Exception):
    """A file that is not a whole clip; the message says what is wrong."""


@dataclass(frozen=True)
class ClipInfo:
    fps: Fraction | None
    frames: int | None
    width: int | None
    height: int | None


def _boxes(data: memoryview, start: int, end: int):
    """(type, payload start, payload end) of each box in data[start:end]; raises when one runs past the end."""
    pos = start
    while pos < end:
        if end - pos < 8:
            raise ClipError("the file ends inside a box header")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise ClipError("the file ends inside a box header")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos  # to the end of the file
        if size < header or pos + size > end:
            raise ClipError(f"the '{kind.decode('latin-1')}' box runs past the end of the file (cut short)")
        yield kind, pos + header, pos + size
        pos += size


def _video_track(data: memoryview, moov: tuple[int, int]) -> tuple[Fraction | None, int | None, int | None, int | None]:
    for kind, a, b in _boxes(data, *moov):
        if kind != b"trak":
            continue
        width = height = timescale = None
        samples = 0
        stts_total = 0
        is_video = False
        stack = [(a, b)]
        while stack:
            start, end = stack.pop()
            for k, s, e in _boxes(data, start, end):
                if k in _CONTAINERS:
                    stack.append((s, e))
                elif k == b"tkhd":
                    version = data[s]
                    offset = s + (88 if version == 1 else 76)
                    if offset + 8 <= e:
                        width, height = (v >> 16 for v in struct.unpack_from(">II", data, offset))
                elif k == b"mdhd":
                    version = data[s]
                    timescale = struct.unpack_from(">I", data, s + (20 if version == 1 else 12))[0]
                elif k == b"hdlr":
                    is_video = bytes(data[s + 8:s + 12]) == b"vide"
                elif k == b"stts":
                    count = struct.unpack_from(">I", data, s + 4)[0]
                    for i in range(count):
                        n, delta = struct.unpack_from(">II", data, s + 8 + 8 * i)
                        samples += n
                        stts_total += n * delta
        if is_video:
            fps = timing.rate(Fraction(samples * timescale, stts_total)) if samples and stts_total and timescale else None
            return fps, samples or None, width or None, height or None
    return None, None, None, None


def read_clip(path: Path) -> ClipInfo:
    """Check `path` is a whole clip and read its rate, frame count and size (None where the
    container does not say, as for WebM). Raises ClipError for a cut or foreign file."""
    data = memoryview(Path(path).read_bytes())
    if len(data) >= 4 and bytes(data[:4]) == b"\x1a\x45\xdf\xa3":
        return ClipInfo(None, None, None, None)  # Matroska/WebM: Blender reads it; not walked here
    top = {kind: (s, e) for kind, s, e in _boxes(data, 0, len(data))}
    if b"ftyp" not in top and b"moov" not in top:
        raise ClipError("not an MP4 or QuickTime file")
    if b"moov" not in top:
        raise ClipError("no 'moov' box: the file is incomplete")
    if b"mdat" not in top:
        raise ClipError("no 'mdat' box: the file holds no pictures")
    return ClipInfo(*_video_track(data, top[b"moov"]))
