"""A/B compare of two takes, through the operators a director runs, checked on rendered frames.

The takes are animatic clips made by Generate with different seeds: each has its own
background, and the same burned-in frame code (the source frame shown). A compare must show
take A and take B where the mode puts them, at the source frame the take strip would show
(real speed, fitted), and leave every other strip as it was.
"""

from __future__ import annotations

import os
from fractions import Fraction

import bpy
import numpy as np
import pytest
from PIL import Image

from shotline.addon import framecode
from shotline.addon.blend import compare, compat, shots
from vse import add_shot, fixed_rate_service, generate, op, render_frame, set_fps

NTSC_30 = Fraction(30000, 1001)
WIDTH, HEIGHT = 320, 180
SEEDS = (11, 22, 33)


def _new_shot(scene, frames: int = 20, fit: str = 'HOLD'):
    """A shot that gets its takes with fixed seeds."""
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    shot = add_shot(scene, "Kadr ə — кадр", 1, frames, channel=2, fit=fit)
    shot.shotline.random_seed = False
    return shot


def _generate_takes(scene, shot):
    for seed in SEEDS:
        shot.shotline.seed = seed
        generate(scene, [shot])
    assert [t.seed for t in shot.shotline.takes] == list(SEEDS) and shot.shotline.active_take == 2
    scene.sequence_editor.active_strip = shot


def _grade(scene, shot) -> None:
    """What a director does to the take strip (after the takes alone are rendered: it moves the frame code)."""
    take = shots.take_strip(scene, shot)
    take.modifiers.new("grade", 'COLOR_BALANCE')
    take.transform.offset_x = 7
    take.crop.min_y = 3


def _alone(scene, shot, frames, tmp_path) -> dict:
    """{(take index, frame): the picture with that take in the take strip}; the active take is put back."""
    active = shot.shotline.active_take
    pictures = {}
    for index in range(len(shot.shotline.takes)):
        shot.shotline.active_take = index  # clicking the row in the takes list
        for frame in frames:
            pictures[index, frame] = render_frame(scene, frame, tmp_path / f"alone{index}_{frame}.png")
    shot.shotline.active_take = active
    return pictures


def _state(scene) -> dict:
    """What the director set on every strip that is not a compare strip."""
    found = {}
    for s in compat.strips_all(scene.sequence_editor):
        if s.shotline.role == 'COMPARE':
            continue
        transform = s.transform if hasattr(s, "transform") else None
        crop = s.crop if hasattr(s, "crop") else None
        found[s.name] = (
            s.shotline.role, s.channel, compat.span(s), s.mute, s.blend_type, getattr(s, "filepath", None),
            [(m.name, m.type) for m in s.modifiers],
            (transform.offset_x, transform.offset_y, transform.scale_x, transform.scale_y) if transform else None,
            (crop.min_x, crop.max_x, crop.min_y, crop.max_y) if crop else None,
        )
    return found


def _compare_strips(scene) -> list:
    return [s for s in compat.strips_all(scene.sequence_editor) if s.shotline.role == 'COMPARE']


def _half(picture: np.ndarray, side: str) -> np.ndarray:
    """A take's picture in a side-by-side frame: half the width, letterboxed in the middle rows."""
    top, width = HEIGHT // 4, WIDTH // 2
    columns = slice(0, width) if side == 'A' else slice(width, WIDTH)
    return picture[top:top + HEIGHT // 2, columns]


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _small(picture: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(picture).resize((WIDTH // 2, HEIGHT // 2), Image.BOX))


@pytest.mark.parametrize("scene_fps, clip_fps", [(Fraction(25), None), (NTSC_30, Fraction(24))],
                         ids=["scene25", "scene29.97-clip24"])
def test_side_by_side_shows_take_a_left_and_take_b_right_in_sync(scene, tmp_path, monkeypatch, scene_fps, clip_fps):
    set_fps(scene, scene_fps)
    shot = _new_shot(scene)
    if clip_fps:  # a service that only delivers 24 fps: the takes are retimed to the scene
        shot.shotline.service = fixed_rate_service(monkeypatch, clip_fps).id
    _generate_takes(scene, shot)
    frames = (3, 17)
    alone = _alone(scene, shot, frames, tmp_path)
    _grade(scene, shot)
    before = {f: render_frame(scene, f, tmp_path / f"before{f}.png") for f in frames}
    state = _state(scene)

    assert op(scene, "shotline_compare_takes") == {'FINISHED'}  # defaults: A the active take (3), B take 2
    a, b = 2, 1
    made = _compare_strips(scene)
    assert made and all(s.shotline.shot_id == shot.shotline.shot_id and s.type != 'SOUND' for s in made)
    top = max(s.channel for s in compat.strips_all(scene.sequence_editor) if s.shotline.role != 'COMPARE')
    assert min(s.channel for s in made) > top and all(compat.span(s) == compat.span(shot) for s in made)
    assert _state(scene) == state
    codes = set()
    for frame in frames:
        picture = render_frame(scene, frame, tmp_path / f"compare{frame}.png")
        code = framecode.read(alone[a, frame])
        assert code is not None
        codes.add(code)
        for side, index, other in (('A', a, b), ('B', b, a)):
            half = _half(picture, side)
            assert framecode.read(half) == code, f"{side} at frame {frame}: not the take strip's source frame"
            mine, theirs = _distance(half, _small(alone[index, frame])), _distance(half, _small(alone[other, frame]))
            assert mine < theirs / 3, f"{side} at frame {frame} does not look like take {index + 1}"
        assert picture[:HEIGHT // 4 - 2].max() < 10 and picture[-(HEIGHT // 4 - 2):].max() < 10, "letterbox"
    assert len(codes) == 2, "two different moments of the shot"

    assert op(scene, "shotline_end_compare") == {'FINISHED'}
    assert not _compare_strips(scene) and _state(scene) == state
    for frame in frames:
        assert np.array_equal(render_frame(scene, frame, tmp_path / f"after{frame}.png"), before[frame])


def test_wipe_splits_the_picture_at_the_line_and_moves_with_it(scene, tmp_path):
    set_fps(scene, NTSC_30)
    shot = _new_shot(scene)
    _generate_takes(scene, shot)
    frames = (2, 15)
    alone = _alone(scene, shot, frames, tmp_path)
    _grade(scene, shot)
    before = render_frame(scene, frames[0], tmp_path / "before.png")
    state = _state(scene)

    for position in (0.4, 0.75):  # run again to move the line
        assert op(scene, "shotline_compare_takes", a=1, b=3, mode='WIPE', position=position) == {'FINISHED'}
        line = round(position * WIDTH)
        assert len(_compare_strips(scene)) == 3, "a second run replaces the compare"
        for frame in frames:
            picture = render_frame(scene, frame, tmp_path / f"wipe{frame}.png")
            a, b = alone[0, frame], alone[2, frame]
            assert not np.array_equal(a[:, line + 2:], b[:, line + 2:])
            assert np.array_equal(picture[:, :line - 1], a[:, :line - 1]), f"left of {line} is not take 1"
            assert np.array_equal(picture[:, line + 1:], b[:, line + 1:]), f"right of {line} is not take 3"
            assert framecode.read(picture) == framecode.read(a) is not None
    assert _state(scene) == state

    assert op(scene, "shotline_end_compare") == {'FINISHED'}
    assert np.array_equal(render_frame(scene, frames[0], tmp_path / "after.png"), before)
    assert _state(scene) == state


def test_generating_during_a_compare_adds_a_take_and_keeps_the_compare(scene):
    set_fps(scene, Fraction(25))
    shot = _new_shot(scene)
    _generate_takes(scene, shot)
    assert op(scene, "shotline_compare_takes", a=1, b=2) == {'FINISHED'}
    shown = {s.name for s in _compare_strips(scene)}
    shot.shotline.seed = 44
    generate(scene, [shot])
    assert len(shot.shotline.takes) == 4 and shot.shotline.status == 'PLACED', shot.shotline.status_message
    assert {s.name for s in _compare_strips(scene)} == shown and compare.active(scene, shot)


def test_a_looping_take_is_compared_as_the_take_strip_loops_it(scene, tmp_path):
    set_fps(scene, Fraction(25))
    shot = _new_shot(scene, frames=12, fit='LOOP')
    _generate_takes(scene, shot)
    compat.set_span(shot, 1, 30)  # the director lengthens the shot: the take strip loops the take
    assert op(scene, "shotline_refit_takes") == {'FINISHED'}
    assert shots.loop_strips(scene, shot)
    frames = (5, 12 + 5, 27)
    alone = _alone(scene, shot, frames, tmp_path)

    assert op(scene, "shotline_compare_takes", a=3, b=1) == {'FINISHED'}
    assert all(compat.span(s)[1] <= 30 for s in _compare_strips(scene))
    for frame in frames:
        picture = render_frame(scene, frame, tmp_path / f"compare{frame}.png")
        for side, index in (('A', 2), ('B', 0)):
            assert framecode.read(_half(picture, side)) == framecode.read(alone[index, frame]) is not None
    assert framecode.read(alone[2, frames[0]]) == framecode.read(alone[2, frames[1]]), "the loop starts again"


def test_missing_take_files_and_bad_choices_are_refused_with_a_message(scene, tmp_path):
    set_fps(scene, Fraction(25))
    shot = _new_shot(scene, frames=8)
    _generate_takes(scene, shot)
    _grade(scene, shot)
    state = _state(scene)
    with pytest.raises(RuntimeError, match="has no take 5"):
        op(scene, "shotline_compare_takes", a=5)
    with pytest.raises(RuntimeError, match="two different takes"):
        op(scene, "shotline_compare_takes", a=2, b=2)
    assert op(scene, "shotline_compare_takes", a=1, b=2) == {'FINISHED'}
    shown = [s.name for s in _compare_strips(scene)]
    os.remove(bpy.path.abspath(shot.shotline.takes[2].filepath))
    with pytest.raises(RuntimeError, match="Take 3 of \"Kadr ə — кадр\" is missing"):
        op(scene, "shotline_compare_takes", a=3, b=1)
    assert [s.name for s in _compare_strips(scene)] == shown, "the compare shown stays"
    assert compare.active(scene, shot)
    assert op(scene, "shotline_end_compare") == {'FINISHED'}
    assert not compare.active(scene, shot) and _state(scene) == state

