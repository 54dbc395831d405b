"""Time arithmetic: scene frames, clip frames and song seconds, with exact rates.

Frame rates are Fractions (24000/1001, not 23.976) so that a take placed an hour
into the timeline is still on the right frame. Blender hands us floats; they are
turned into Fractions once, here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

FIT_POLICIES = ("STRETCH", "HOLD", "LOOP", "SHORT")


def rate(value: float | Fraction) -> Fraction:
    """An exact rate for a float read from Blender or a file: a whole rate (25.0 -> 25) or an
    NTSC one (23.976023..., 47.952... -> n*1000/1001) when within 0.01 %, else the nearest
    fraction with a denominator up to 1001 (12.5 -> 25/2)."""
    if isinstance(value, Fraction):
        return value
    if value <= 0:
        raise ValueError(f"frame rate must be positive, got {value}")
    for candidate in (Fraction(round(value)), Fraction(round(value * 1.001) * 1000, 1001)):
        if candidate and abs(value - float(candidate)) < 1e-4 * value:
            return candidate
    return Fraction(value).limit_denominator(1001)


def scene_rate(fps: int, fps_base: float) -> Fraction:
    """The scene's rate from Blender's `render.fps` / `render.fps_base`.

    Blender stores fps_base as a float32 (29.97 is 30 / 1.0010000467), so the quotient is
    snapped like any float: 30 / 1.0010000467 is 30000/1001.
    """
    return rate(fps / float(fps_base))


def frames_to_seconds(frames: float | Fraction, fps: Fraction) -> Fraction:
    return Fraction(frames) / fps


def seconds_to_frames(seconds: float | Fraction, fps: Fraction) -> Fraction:
    return Fraction(seconds) * fps


def nearest_frame(seconds: float | Fraction, fps: Fraction) -> int:
    """The frame whose start is nearest to `seconds` (ties go up, like a cut on the beat)."""
    return math.floor(seconds_to_frames(seconds, fps) + Fraction(1, 2))


def conformed_length(clip_frames: int, clip_fps: Fraction, scene_fps: Fraction, anchor_last: bool = False) -> int:
    """Timeline frames a clip fills when played at its real speed.

    Blender 5.x retimes to the end of the clip's last frame: N frames span N * scene/clip.
    Blender 4.5 retimes to the last frame itself (`anchor_last`): its first and last frames
    are (N - 1) * scene/clip apart, and the strip is one frame longer than that.
    """
    if anchor_last and clip_frames > 1:
        return 1 + round(Fraction(clip_frames - 1) * scene_fps / clip_fps)
    return max(1, round(Fraction(clip_frames) * scene_fps / clip_fps))


def source_position(timeline_offset: int, clip_fps: Fraction, scene_fps: Fraction) -> Fraction:
    """Where the real clock is in the clip, in source frames, `timeline_offset` frames after its start."""
    return Fraction(timeline_offset) * clip_fps / scene_fps


@dataclass(frozen=True)
class FitPlan:
    """How a take fills its shot.

    `content_frames` is how many timeline frames the whole clip spans once conformed
    (stretched or at real speed); `visible_frames` is how much of the shot the take strip
    covers; `loops` is how many extra copies follow the take strip (LOOP only);
    `short_by` is how many frames the shot is left uncovered (SHORT only).
    """

    content_frames: int
    visible_frames: int
    loops: int = 0
    short_by: int = 0

    @property
    def trimmed(self) -> bool:
        return self.content_frames > self.visible_frames and self.loops == 0


def plan_fit(shot_frames: int, clip_frames: int, clip_fps: Fraction, scene_fps: Fraction, policy: str,
             anchor_last: bool = False) -> FitPlan:
    """Decide how a clip covers a shot. A take never spills past its shot (`anchor_last`: see conformed_length)."""
    if shot_frames < 1:
        raise ValueError("a shot must be at least one frame long")
    if policy not in FIT_POLICIES:
        raise ValueError(f"unknown fit policy {policy!r}")
    natural = conformed_length(clip_frames, clip_fps, scene_fps, anchor_last)
    if natural >= shot_frames:
        return FitPlan(content_frames=natural, visible_frames=shot_frames)
    if policy == "STRETCH":
        return FitPlan(content_frames=shot_frames, visible_frames=shot_frames)
    if policy == "HOLD":
        return FitPlan(content_frames=natural, visible_frames=shot_frames)
    if policy == "LOOP":
        return FitPlan(content_frames=natural, visible_frames=natural, loops=math.ceil(shot_frames / natural) - 1)
    return FitPlan(content_frames=natural, visible_frames=natural, short_by=shot_frames - natural)


def request_frames(shot_frames: int, scene_fps: Fraction, clip_fps: Fraction,
                   durations: tuple[float, ...] = (), multiple: tuple[int, int] = (1, 0), max_frames: int = 0,
                   anchor_last: bool = False) -> int:
    """Clip frames to ask a service for so the take covers the shot.

    The request rounds up to what the service accepts (fixed durations such as 5 s or
    10 s, or frame counts of the form a*n + b such as 8n+1); the take is trimmed to the cut.
    Where the count is free, a few frames more are asked for when that makes the clip span a
    whole number of scene frames: Blender retimes a clip to whole frames, so a 33-frame 16 fps
    clip (49.45 frames at 23.976) would play 1 % fast, a 34-frame one (50.95) at its speed
    (`anchor_last`: see conformed_length).
    """
    needed = math.ceil(Fraction(shot_frames) * clip_fps / scene_fps)
    if durations:
        fitting = [d for d in sorted(durations) if round(Fraction(d) * clip_fps) >= needed]
        seconds = fitting[0] if fitting else max(durations)
        needed = round(Fraction(seconds) * clip_fps)
    step, offset = multiple
    if step > 1:
        needed = offset + step * max(0, math.ceil((needed - offset) / step))
    if not durations:
        step = max(step, 1)
        candidates = [needed + k * step for k in range(_RATE_SEARCH)]
        if max_frames:
            candidates = [n for n in candidates if n <= max_frames] or [needed]
        error = {n: _retime_error(n - anchor_last, clip_fps, scene_fps) for n in candidates}
        good = [n for n in candidates if error[n] <= _GOOD_ENOUGH]
        needed = good[0] if good else min(candidates, key=error.get)
    if max_frames:
        needed = min(needed, max_frames)
    return max(1, needed)


_RATE_SEARCH = 8  # counts looked at past the shortest that covers the shot
_GOOD_ENOUGH = Fraction(1, 10)  # of a scene frame, over the whole clip


def _retime_error(clip_frames: int, clip_fps: Fraction, scene_fps: Fraction) -> Fraction:
    """How far from a whole number of scene frames a clip spans at real speed."""
    span = Fraction(clip_frames) * scene_fps / clip_fps
    return abs(span - round(span))


@dataclass(frozen=True)
class SongPlacement:
    """Where the song strip sits on the timeline, to map song-file seconds to scene frames.

    `content_start` is the (possibly fractional) scene frame where second 0 of the file
    would play; `left`/`right` are the strip's visible handles (end exclusive).
    """

    content_start: float
    left: int
    right: int
    fps: Fraction

    def frame_at(self, song_seconds: float | Fraction) -> Fraction:
        """Exact timeline position of a moment of the song file."""
        return Fraction(self.content_start) + seconds_to_frames(song_seconds, self.fps)

    def nearest_frame(self, song_seconds: float | Fraction) -> int:
        return math.floor(self.frame_at(song_seconds) + Fraction(1, 2))

    def seconds_at(self, frame: float | Fraction) -> Fraction:
        """Song-file time playing at a timeline frame."""
        return frames_to_seconds(Fraction(frame) - Fraction(self.content_start), self.fps)

    def audible(self, song_seconds: float | Fraction) -> bool:
        """Whether a moment of the song is inside the strip's handles (not trimmed away)."""
        return self.left <= self.frame_at(song_seconds) < self.right
