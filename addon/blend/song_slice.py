"""The song under a shot as a WAV file, for lip-sync: exactly what plays during the shot's frames.

The strip's facts (where it starts, its trims, its sound offset, the scene rate) are read on the
main thread; decoding, slicing and writing run on a job's worker (see audio_slice for the maths).
The song's channels are kept; the strip's volume and pan are not applied (the service wants the voice).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from .. import audio_slice
from . import compat, shots, song

RETIME_TOLERANCE = 2  # frames: Blender rounds a sound's length to whole frames


def placement(scene, song_strip) -> audio_slice.SoundPlacement:
    """Where `song_strip` plays its file on the timeline. Main thread."""
    if song_strip.type != 'SOUND':
        raise ValueError(f"\"{song_strip.name}\" is not a sound strip")
    fps = shots.scene_fps(scene)
    left, right = compat.span(song_strip)
    # Blender skips the content's own trim (in scene frames); a positive sound offset (seconds, a float32:
    # taken as stored) plays the file that much later (checked against Blender's mixdown)
    skip = Fraction(_trims(song_strip)[0]) / fps - Fraction(getattr(song_strip, "sound_offset", 0.0))
    return audio_slice.SoundPlacement(Fraction(compat.content_start(song_strip)), skip, left, right, fps)


def _trims(strip) -> tuple[float, float]:
    """Frames of the file cut off the content's start and end (5.x renamed them; the old names warn)."""
    if hasattr(strip, "content_trim_start"):
        return strip.content_trim_start, strip.content_trim_end
    return strip.animation_offset_start, strip.animation_offset_end


def slice_job(scene, song_strip, left: int, right: int, dest: Path) -> Callable[[], None]:
    """What writes the song under scene frames [left, right) to `dest` (WAV, 32-bit float, the song's
    rate and channels). Reads the strip now, on the main thread; the returned function is safe on a worker
    thread and raises ValueError (with what to fix) when the file cannot be decoded or the strip is retimed."""
    if right <= left:
        raise ValueError(f"The shot has no frames ({left}-{right})")
    placed = placement(scene, song_strip)
    try:
        path = song.file_path(song_strip)
    except song.SongError as err:
        raise ValueError(str(err)) from None
    # frames the file fills at normal speed, to tell a retimed strip (its speed is not in the API)
    shown = compat.content_frames(song_strip) + sum(_trims(song_strip))
    name, dest = song_strip.name, Path(dest)

    def write() -> None:
        try:
            samples, rate = song.decode(path)
        except song.SongError as err:
            raise ValueError(str(err)) from None
        if abs(Fraction(len(samples), rate) * placed.fps - shown) > RETIME_TOLERANCE:
            raise ValueError(f"The song strip \"{name}\" is retimed (its speed changed): reset its speed for lip-sync")
        cut = audio_slice.cut(samples, audio_slice.plan(placed, left, right, rate, len(samples)))
        dest.parent.mkdir(parents=True, exist_ok=True)
        audio_slice.write_wav(dest, cut, rate)

    return write
