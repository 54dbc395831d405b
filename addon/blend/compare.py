"""A/B compare of two takes of a shot in the preview: side by side, or a wipe.

A compare is strips of its own above everything at the shot's frames, tagged COMPARE with the
shot's id: a black backdrop, then take A and take B, each played and fitted as the take strip
plays its take (placement.fitted_movie). Side by side, each take is scaled into its half of the
picture, letterboxed; in a wipe both fill the picture, A cropped to the left of the line and B
to the right. Ending the compare removes exactly those strips: the take strip and every other
strip are never touched, so the director's grading on them is safe.
"""

from __future__ import annotations

import os

import bpy

from .. import timing
from . import compat, placement, shots

MODES = ('SIDE_BY_SIDE', 'WIPE')


class CompareError(Exception):
    """A compare that cannot be shown; the message is for the director."""


def strips(scene, shot) -> list:
    """The strips of `shot`'s compare (empty when none is shown)."""
    ed = scene.sequence_editor
    sid = shot.shotline.shot_id
    return [s for s in compat.strips_all(ed) if s.shotline.role == 'COMPARE' and s.shotline.shot_id == sid]


def active(scene, shot) -> bool:
    return bool(strips(scene, shot))


def end(scene, shot) -> int:
    """Remove `shot`'s compare strips; how many there were."""
    found = strips(scene, shot)
    _remove(scene, found)
    return len(found)


def default_pair(shot, a: int | None = None, b: int | None = None) -> tuple[int, int]:
    """Take indexes (0-based) to compare: A the active take unless chosen, B the one before A
    (after it when A is the first) unless chosen."""
    props = shot.shotline
    if a is None:
        a = props.active_take
    if b is None:
        b = a - 1 if a > 0 else a + 1
    return a, b


def start(scene, shot, a: int | None = None, b: int | None = None, mode: str = 'SIDE_BY_SIDE',
          position: float = 0.5) -> list:
    """Show takes `a` and `b` (0-based indexes into the shot's takes; None: `default_pair`) over the
    shot's frames, replacing a compare the shot already has. `position` is the wipe line's place,
    0 (left edge) to 1 (right edge). Returns the compare strips; raises CompareError or
    placement.PlacementError with a message for the director, leaving no new strip behind."""
    if mode not in MODES:
        raise CompareError(f"Unknown compare mode \"{mode}\"; use one of {', '.join(MODES)}")
    if not 0.0 <= position <= 1.0:
        raise CompareError(f"The wipe position must be between 0 and 1, not {position}")
    a, b = default_pair(shot, a, b)
    takes = shot.shotline.takes
    for index in (a, b):
        if not 0 <= index < len(takes):
            raise CompareError(f"Shot \"{shot.name}\" has no take {index + 1} (it has {len(takes)})")
    if a == b:
        raise CompareError(f"Choose two different takes of \"{shot.name}\" to compare")
    paths = [_take_file(shot, index) for index in (a, b)]
    end(scene, shot)
    left, right = compat.span(shot)
    made = []
    try:
        made.append(_backdrop(scene, shot, _top_channel(scene, left, right) + 1, left, right))
        for side, index, path in (('A', a, paths[0]), ('B', b, paths[1])):
            channel = placement.free_channel(scene, made[-1].channel + 1, left, right)
            pictures = _fitted(scene, shot, f"{shot.name} compare {side}", path, channel, takes[index].fps)
            made += pictures
            for strip in pictures:
                _tag(strip, shot)
                _lay_out(scene, strip, side, mode, position)
    except Exception:
        _remove(scene, made)
        raise
    return made


def _take_file(shot, index: int) -> str:
    path = bpy.path.abspath(shot.shotline.takes[index].filepath)
    if not os.path.isfile(path):
        raise CompareError(f"Take {index + 1} of \"{shot.name}\" is missing: {path}")
    return path


def _top_channel(scene, left: int, right: int) -> int:
    """The highest channel used anywhere in frames [left, right) (0 when none)."""
    used = [s.channel for s in compat.strips(scene.sequence_editor)
            if compat.span(s)[0] < right and left < compat.span(s)[1]]
    return max(used, default=0)


def _backdrop(scene, shot, wanted: int, left: int, right: int):
    """Black under both takes: the letterbox of side by side, and nothing of the take strip shows
    through where a take does not cover the picture."""
    channel = placement.free_channel(scene, wanted, left, right)
    strip = compat.new_effect(compat.strips(scene.sequence_editor), f"{shot.name} compare", 'COLOR', channel,
                              left, right - left)
    strip.color = (0.0, 0.0, 0.0)
    strip.blend_type = 'REPLACE'
    _tag(strip, shot)
    return strip


def _fitted(scene, shot, name: str, path: str, channel: int, fps: float) -> list:
    """Movie strips that play `path` over the shot as its take strip would: the first, then for a
    LOOP shot the copies that repeat it (each a fitted range of its own, on the same channel)."""
    left, right = compat.span(shot)
    clip_fps = timing.rate(fps) if fps > 0 else None
    first = placement.fitted_movie(scene, name, path, channel, left, right, shot.shotline.fit, clip_fps)
    made = [first.strip]
    try:
        length = first.plan.content_frames
        for n in range(1, first.plan.loops + 1):
            begin = left + n * length
            made.append(placement.fitted_movie(scene, f"{name} loop {n}", path, channel, begin,
                                               min(begin + length, right), 'HOLD', clip_fps).strip)
    except Exception:
        _remove(scene, made)
        raise
    return made


def _tag(strip, shot) -> None:
    strip.shotline.role = 'COMPARE'
    strip.shotline.shot_id = shot.shotline.shot_id
    shots.claim(strip)
    strip.color_tag = 'COLOR_06'


def _lay_out(scene, strip, side: str, mode: str, position: float) -> None:
    """Place a take's picture: into its half (side by side) or cropped at the wipe line."""
    width, height = scene.render.resolution_x, scene.render.resolution_y
    element = strip.elements[0]
    clip_w, clip_h = element.orig_width, element.orig_height
    if mode == 'SIDE_BY_SIDE':
        scale = min(width / 2 / clip_w, height / clip_h)
        strip.transform.scale_x = strip.transform.scale_y = scale
        strip.transform.offset_x = -width / 4 if side == 'A' else width / 4
        return
    # the strip is fitted (scaled and centred) to the picture: find the source column under the line
    scale = strip.transform.scale_x
    column = round((position * width - (width - clip_w * scale) / 2) / scale)
    column = min(max(column, 0), clip_w)
    if side == 'A':
        strip.crop.max_x = clip_w - column
    else:
        strip.crop.min_x = column


def _remove(scene, found) -> None:
    ed = scene.sequence_editor
    for strip in found:
        compat.strips(ed).remove(strip)
