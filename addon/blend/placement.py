"""Putting a take on the timeline: the shot's take strip, frame-exact and at real speed.

The take strip starts on the shot's first frame, is retimed so the clip plays at its
own rate whatever the scene's, is trimmed or fitted to the shot by its fit policy and
never spills past it. Regenerating swaps the strip's file, so what the user set on the
strip (modifiers, transform, crop, blend) stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import bpy

from .. import timing
from . import compat, shots

MAX_CHANNEL = 128


class PlacementError(Exception):
    """A take that cannot be placed; the message is for the director."""


@dataclass
class Placed:
    strip: object
    plan: timing.FitPlan
    channel_note: str = ""


def _overlaps(strip, left: int, right: int) -> bool:
    s_left, s_right = compat.span(strip)
    return s_left < right and left < s_right


def free_channel(scene, wanted: int, left: int, right: int, ignore=()) -> int:
    """`wanted` if nothing else occupies [left, right) there, else the next free channel above."""
    ed = scene.sequence_editor
    siblings = [s for s in compat.strips(ed) if s not in ignore]
    for channel in range(wanted, MAX_CHANNEL + 1):
        if not any(s.channel == channel and _overlaps(s, left, right) for s in siblings):
            return channel
    raise PlacementError(f"No room for the take strip: channels {wanted} to {MAX_CHANNEL} are all taken "
                         f"at frames {left}-{right}")


def take_channel(scene, shot) -> tuple[int, str]:
    """The channel a new take strip of `shot` goes to, and a note when it is not the usual one.

    Usually `take_channel_offset` above the shot. Where shots overlap, their takes stack above
    the highest of them in the shots' own channel order, whatever order they are generated in.
    Raises PlacementError when there is no room: checked before anything is generated.
    """
    left, right = compat.span(shot)
    overlapping = sorted((s for s in shots.shots(scene) if s == shot or _overlaps(s, left, right)),
                         key=lambda s: (s.channel, s.name))
    wanted = overlapping[-1].channel + scene.shotline.take_channel_offset + overlapping.index(shot)
    if wanted > MAX_CHANNEL:
        raise PlacementError(f"No room for the take strip: it would go on channel {wanted}, past Blender's last "
                             f"channel ({MAX_CHANNEL}); move the shot to a lower channel")
    channel = free_channel(scene, wanted, left, right)
    note = f"channel {wanted} is taken there, the take went to channel {channel}" if channel != wanted else ""
    return channel, note


def check_room(scene, shot) -> None:
    """Raise PlacementError now if a take of `shot` could not be placed once generated."""
    if shots.take_strip(scene, shot) is None:
        take_channel(scene, shot)


def _new_movie(ed, name: str, filepath: str, channel: int, frame_start: int):
    try:  # scaled to fit the frame, like Blender's own Add Movie
        return compat.strips(ed).new_movie(name=name, filepath=filepath, channel=channel, frame_start=frame_start,
                                           fit_method='FIT')
    except RuntimeError:
        raise PlacementError(f"Blender cannot read the video \"{bpy.path.basename(filepath)}\"") from None


def _clip_facts(strip, clip_fps: Fraction | None) -> tuple[Fraction, int]:
    """The clip's rate and frame count. Reading `strip.fps` opens the file again (~7 ms of the
    main thread), so a rate already known from the service or the take record is preferred."""
    frames = compat.content_frames(strip)
    if frames < 1:
        raise PlacementError(f"Blender cannot read the video \"{bpy.path.basename(strip.filepath)}\"")
    if clip_fps is None:
        if strip.fps <= 0:
            raise PlacementError(f"Blender cannot read the frame rate of \"{bpy.path.basename(strip.filepath)}\"")
        clip_fps = timing.rate(strip.fps)
    return clip_fps, frames


def _fit(scene, strip, shot_left: int, shot_right: int, policy: str, clip_fps: Fraction | None) -> timing.FitPlan:
    """Conform `strip` (its content already loaded, retiming reset) to the shot."""
    compat.set_content_start(strip, shot_left)
    clip_fps, clip_frames = _clip_facts(strip, clip_fps)
    plan = timing.plan_fit(shot_right - shot_left, clip_frames, clip_fps, shots.scene_fps(scene), policy,
                           compat.RETIMES_TO_LAST_FRAME)
    compat.conform(strip, scene, plan.content_frames)
    compat.set_content_start(strip, shot_left)
    compat.set_span(strip, shot_left, shot_left + plan.visible_frames)
    return plan


def _load(strip, filepath: str) -> None:
    """Point a movie strip at another file, its retiming cleared."""
    strip.filepath = filepath
    if len(strip.retiming_keys):
        strip.retiming_keys.reset()


def fitted_movie(scene, name: str, filepath: str, channel: int, left: int, right: int, policy: str,
                 clip_fps: Fraction | None = None) -> Placed:
    """A new movie strip of `filepath` on `channel`, fitted to frames [left, right) as a take strip is
    to its shot (real speed, trimmed, `policy` when short; `plan.loops` copies would fill a LOOP range).
    For pictures shown beside the take strip (an A/B compare); the caller tags the strip."""
    ed = scene.sequence_editor
    strip = _new_movie(ed, name, filepath, channel, left)
    try:
        plan = _fit(scene, strip, left, right, policy, clip_fps)
    except Exception:
        compat.strips(ed).remove(strip)
        raise
    return Placed(strip, plan)


def place_take(scene, shot, filepath: str, clip_fps: Fraction | None = None) -> Placed:
    """Show `filepath` as `shot`'s take: swap the take strip's file, or make the take strip.

    `clip_fps` is the clip's rate when known (it saves opening the file a second time).
    """
    left, right = compat.span(shot)
    props = shot.shotline
    policy = props.fit
    ed = scene.sequence_editor
    strip = shots.take_strip(scene, shot)
    note = ""
    if strip is not None and strip.type == 'MOVIE':
        previous = strip.filepath
        try:
            _load(strip, filepath)
            plan = _fit(scene, strip, left, right, policy, clip_fps)
        except PlacementError:
            _load(strip, previous)  # the take strip shows its previous take again, fitted as before
            _fit(scene, strip, left, right, policy, None)
            raise
    else:
        channel, note = take_channel(scene, shot)
        strip = _new_movie(ed, f"{shot.name} take", filepath, channel, left)
        try:
            plan = _fit(scene, strip, left, right, policy, clip_fps)
        except Exception:
            compat.strips(ed).remove(strip)
            raise
        strip.shotline.role = 'TAKE'
        strip.shotline.shot_id = props.shot_id
        shots.claim(strip)
        strip.color_tag = 'COLOR_05'
    _place_loops(scene, shot, strip, plan, right)
    return Placed(strip, plan, note)


def refit(scene, shot) -> Placed | None:
    """Fit the shot's take strip to the shot's frames again, after the shot was moved or trimmed:
    a take never shows past its shot. None when the shot has no take strip."""
    strip = shots.take_strip(scene, shot)
    if strip is None or strip.type != 'MOVIE':
        return None
    props = shot.shotline
    take = props.takes[props.active_take] if 0 <= props.active_take < len(props.takes) else None
    if take is not None:
        return place_take(scene, shot, take.filepath, timing.rate(take.fps) if take.fps > 0 else None)
    return place_take(scene, shot, strip.filepath)


def _place_loops(scene, shot, take, plan: timing.FitPlan, shot_right: int) -> None:
    """Rebuild the copies that repeat the take to fill a LOOP shot (nothing else is removed)."""
    ed = scene.sequence_editor
    for old in shots.loop_strips(scene, shot):
        compat.strips(ed).remove(old)
    start = compat.span(take)[0]
    for n in range(1, plan.loops + 1):
        left = start + n * plan.content_frames
        right = min(left + plan.content_frames, shot_right)
        channel = free_channel(scene, take.channel, left, right)
        copy = _new_movie(ed, f"{shot.name} loop {n}", take.filepath, channel, left)
        compat.conform(copy, scene, plan.content_frames)
        compat.set_content_start(copy, left)
        compat.set_span(copy, left, right)
        copy.shotline.role = 'LOOP'
        copy.shotline.shot_id = take.shotline.shot_id
        shots.claim(copy)
        copy.color_tag = take.color_tag
