"""Match to Neighbour: a starting grade on a take strip that brings it towards the live footage beside it.

The grade is a Color Balance modifier named "Shotline Match", kept FIRST in the take strip's
stack: it sees the clip as delivered, and the director's own modifiers, after it, grade what it
made and stay theirs. The pictures are measured with that modifier and every other one on the
take muted, so matching again gives the same grade. See addon/grade.py for the maths.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from .. import grade
from . import compat, frames, shots

MODIFIER_NAME = "Shotline Match"
FOOTAGE_TYPES = {'MOVIE', 'IMAGE'}
EDGE_FRAMES = 3  # footage that overlaps the cut or stops short of it by this much still counts as beside it


class MatchError(Exception):
    """Why a take cannot be matched; the message is for the director."""


@dataclass(frozen=True)
class Neighbour:
    strip: object
    before: bool  # the footage comes before the shot (else after it)
    frame: int  # the footage's frame nearest the cut
    take_frame: int  # the take strip's frame nearest the cut


@dataclass(frozen=True)
class Matched:
    take: object
    neighbour: Neighbour
    applied: grade.Grade


def find_neighbour(scene, shot, take) -> Neighbour | None:
    """The live footage (a movie or image strip that is not Shotline's) next to the shot: ending
    at its first frame or starting at its end, within EDGE_FRAMES; the one before when both; the
    nearest cut, then the topmost channel, when several."""
    left, right = compat.span(shot)
    take_left, take_right = compat.span(take)
    found = []
    for strip in compat.strips_all(scene.sequence_editor):
        if strip.type not in FOOTAGE_TYPES or strip.shotline.role != 'NONE' or strip.mute:
            continue
        s_left, s_right = compat.span(strip)
        if s_left < left and abs(s_right - left) <= EDGE_FRAMES:
            found.append(((0, abs(s_right - left), -strip.channel), Neighbour(strip, True, s_right - 1, take_left)))
        elif s_right > right and abs(s_left - right) <= EDGE_FRAMES:
            found.append(((1, abs(s_left - right), -strip.channel), Neighbour(strip, False, s_left, take_right - 1)))
    return min(found, key=lambda item: item[0])[1] if found else None


def match_modifier(take):
    """The take strip's "Shotline Match" modifier, or None."""
    modifier = take.modifiers.get(MODIFIER_NAME)
    return modifier if modifier is not None and modifier.type == 'COLOR_BALANCE' else None


def match_neighbour(scene, shot, strength: float = 1.0) -> Matched:
    """Grade the shot's take strip towards the footage beside the shot (see the module's doc)."""
    take = shots.take_strip(scene, shot)
    if take is None:
        raise MatchError(f"Shot \"{shot.name}\" has no take strip yet: generate a take first")
    neighbour = find_neighbour(scene, shot, take)
    if neighbour is None:
        raise MatchError(f"No live footage (a movie or image strip) next to shot \"{shot.name}\" to match")
    if MODIFIER_NAME in take.modifiers and match_modifier(take) is None:
        raise MatchError(f"The take strip's modifier \"{MODIFIER_NAME}\" is not a Color Balance: rename it")
    with tempfile.TemporaryDirectory(prefix="shotline-match-") as folder, _measuring(scene, take):
        theirs = _picture(scene, neighbour.strip, neighbour.frame, Path(folder) / "neighbour.png")
        ours = _picture(scene, take, neighbour.take_frame, Path(folder) / "take.png")
    found = grade.match(ours, theirs, strength, linear=_works_linear(scene, take))
    _set_grade(scene, take, found)
    return Matched(take, neighbour, found)


def clear_match(scene, shot) -> bool:
    """Remove the take strip's "Shotline Match" modifier (only that one); False when there is none."""
    take = shots.take_strip(scene, shot)
    modifier = match_modifier(take) if take is not None else None
    if modifier is None:
        return False
    take.modifiers.remove(modifier)
    return True


def _picture(scene, strip, frame: int, path: Path) -> np.ndarray:
    from PIL import Image  # a wheel of the extension: imported when a match is asked for

    frames.render_frame(scene, frame, path, only=[strip])
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@contextmanager
def _measuring(scene, take):
    """Render the values the modifier works on: the Standard view with no look, exposure, gamma
    or curves writes the sequencer's sRGB values to the PNG unchanged (linear ones sRGB-encoded),
    where any other view would bend them; and the take without its modifiers (ours comes first,
    so it sees the bare clip)."""
    muted = [m for m in take.modifiers if not m.mute]
    with frames.kept(scene.view_settings, **frames.FLAT_VIEW):
        try:
            for modifier in muted:
                modifier.mute = True
            yield
        finally:
            for modifier in muted:
                modifier.mute = False


def _works_linear(scene, take) -> bool:
    """Whether the modifiers see linear values: with a linear working space for the sequencer (the
    scene's colour management), or with 4.5's "linear modifiers" option on a take that Blender turns
    into a float picture (its colour space is not the sequencer's; an 8-bit one in the sequencer's
    space stays bytes, which the option leaves alone)."""
    space = scene.sequencer_colorspace_settings.name
    return "linear" in space.lower() or \
        (getattr(take, "use_linear_modifiers", False) and take.colorspace_settings.name != space)


def _set_grade(scene, take, found: grade.Grade) -> None:
    modifier = match_modifier(take) or take.modifiers.new(MODIFIER_NAME, type='COLOR_BALANCE')
    modifier.mute = False
    modifier.color_multiply = 1.0
    balance = modifier.color_balance
    balance.correction_method = 'OFFSET_POWER_SLOPE'
    balance.invert_slope = balance.invert_offset = balance.invert_power = False
    balance.slope, balance.offset, balance.power = found.slope, found.offset, found.power
    _move_first(scene, take, modifier.name)


def _move_first(scene, take, name: str) -> None:
    """Move the modifier `name` to the top of the take's stack with Blender's own operator (the
    only way on every version), which acts on the active strip."""
    ed = scene.sequence_editor
    active = ed.active_strip
    ed.active_strip = take
    try:
        with compat.operators_on(scene):
            for _ in range(list(take.modifiers).index(take.modifiers[name])):
                bpy.ops.sequencer.strip_modifier_move(name=name, direction='UP')
    finally:
        ed.active_strip = active
    if take.modifiers[0].name != name:
        raise RuntimeError(f"the modifier \"{name}\" could not be moved to the top of \"{take.name}\"")
