"""Match to Neighbour: a take next to live footage gets a starting grade that brings its colours
towards the footage's, measured on rendered frames; the director's own grading stays on top."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from shotline.addon import grade
from shotline.addon.blend import compat, shots
from vse import add_shot, generate, op, render_frame, set_fps

WARM = (235, 165, 80)  # bright orange daylight: far from the animatic's darker colours


def still(path, colour, size=(160, 90)):
    """Live footage as a still: `colour` with a gradient and noise, so it has a spread to match."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(-40, 40, size[0])[None, :, None]
    picture = np.asarray(colour, dtype=float)[None, None, :] + ramp + rng.normal(0, 12, (size[1], size[0], 3))
    Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(path)
    return path


def footage(scene, path, left: int, right: int, name: str = "işıq ə"):
    strip = compat.strips(scene.sequence_editor).new_image(name, str(path), 1, left)
    compat.set_span(strip, left, right)
    return strip


def mean_colour(picture: np.ndarray) -> np.ndarray:
    return picture.reshape(-1, 3).mean(axis=0)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def values(modifier) -> tuple:
    """The match grade's slope, offset and power, flat (it is always Offset/Power/Slope)."""
    balance = modifier.color_balance
    assert balance.correction_method == 'OFFSET_POWER_SLOPE'
    return (*balance.slope, *balance.offset, *balance.power)


@pytest.fixture
def small(scene):
    set_fps(scene, Fraction(25))
    scene.render.resolution_x, scene.render.resolution_y = 160, 90
    return scene


@pytest.fixture
def cut(small, tmp_path):
    """Warm live footage on frames 1-24, then a shot with a generated take on 25-48 (the active strip)."""
    scene = small
    live = footage(scene, still(tmp_path / "işıq ə.png", WARM), 1, 25)
    shot = add_shot(scene, "Кадр ə", 25, 24)
    generate(scene, [shot])
    scene.sequence_editor.active_strip = shot
    return scene, shot, live


def test_match_moves_the_takes_mean_colour_towards_the_neighbours(cut, tmp_path):
    scene, shot, _live = cut
    neighbour = mean_colour(render_frame(scene, 24, tmp_path / "live.png"))
    plain = render_frame(scene, 25, tmp_path / "plain.png")
    before = distance(mean_colour(plain), neighbour)
    assert before > 60, "the take must start far from the footage for the test to mean anything"

    scene.view_settings.view_transform = 'AgX'  # the director's view: measuring must put it back
    assert op(scene, "shotline_match_neighbour") == {'FINISHED'}
    assert scene.view_settings.view_transform == 'AgX'
    take = shots.take_strip(scene, shot)
    assert [m.name for m in take.modifiers] == ["Shotline Match"]
    matched = render_frame(scene, 25, tmp_path / "matched.png")
    after = distance(mean_colour(matched), neighbour)
    assert after < before / 10, f"mean colour distance {before:.1f} -> {after:.1f}"

    first = values(take.modifiers[0])
    assert op(scene, "shotline_match_neighbour") == {'FINISHED'}  # again: the same grade, not one on top
    assert [m.name for m in take.modifiers] == ["Shotline Match"]
    assert values(take.modifiers[0]) == pytest.approx(first)
    assert np.array_equal(render_frame(scene, 25, tmp_path / "again.png"), matched)

    assert op(scene, "shotline_match_neighbour", strength=0.5) == {'FINISHED'}
    half = distance(mean_colour(render_frame(scene, 25, tmp_path / "half.png")), neighbour)
    assert after < half < before

    assert op(scene, "shotline_clear_match") == {'FINISHED'}
    assert len(take.modifiers) == 0
    assert np.array_equal(render_frame(scene, 25, tmp_path / "cleared.png"), plain)


def test_the_directors_own_grading_stays_on_top_and_does_not_change_the_match(cut):
    scene, shot, _live = cut
    take = shots.take_strip(scene, shot)
    mine = take.modifiers.new("Мой грейд", type='COLOR_BALANCE')
    mine.color_balance.gain = (1.3, 1.0, 0.7)
    curves = take.modifiers.new("Curves", type='CURVES')
    curves.mute = True

    assert op(scene, "shotline_match_neighbour") == {'FINISHED'}
    assert [m.name for m in take.modifiers] == ["Shotline Match", "Мой грейд", "Curves"]
    assert tuple(mine.color_balance.gain) == pytest.approx((1.3, 1.0, 0.7))
    assert not mine.mute and curves.mute
    with_mine = values(take.modifiers[0])

    take.modifiers.remove(mine)
    take.modifiers.remove(curves)
    assert op(scene, "shotline_match_neighbour") == {'FINISHED'}
    assert values(take.modifiers[0]) == pytest.approx(with_mine), "measured on the bare take"
    assert op(scene, "shotline_clear_match") == {'FINISHED'}
    assert op(scene, "shotline_clear_match") == {'CANCELLED'}


PER_STRIP_LINEAR = pytest.mark.skipif("use_linear_modifiers" not in compat.StripType.bl_rna.properties,
                                      reason="Blender 5.x has no per-strip linear modifiers")


@pytest.mark.parametrize("linear", ["sequencer", pytest.param("strip float", marks=PER_STRIP_LINEAR),
                                    pytest.param("strip bytes", marks=PER_STRIP_LINEAR)])
def test_modifiers_on_linear_values_are_matched_too(cut, tmp_path, linear):
    """A linear working space for the sequencer, or 4.5's "linear modifiers" on the take: on a
    float picture (a colour space other than the sequencer's) they see linear values; on bytes not."""
    scene, shot, _live = cut
    take = shots.take_strip(scene, shot)
    if linear == "sequencer":
        scene.sequencer_colorspace_settings.name = "Linear Rec.709"
    else:
        take.use_linear_modifiers = True
        if linear == "strip float":
            take.colorspace_settings.name = "Linear Rec.709"
    neighbour = mean_colour(render_frame(scene, 24, tmp_path / "live.png"))
    before = distance(mean_colour(render_frame(scene, 25, tmp_path / "plain.png")), neighbour)
    assert op(scene, "shotline_match_neighbour") == {'FINISHED'}
    after = distance(mean_colour(render_frame(scene, 25, tmp_path / "matched.png")), neighbour)
    assert after < before / 10, f"mean colour distance {before:.1f} -> {after:.1f}"


def test_footage_after_the_shot_overlapping_its_end_is_the_neighbour(small, tmp_path):
    scene = small
    footage(scene, still(tmp_path / "far.png", (40, 80, 220)), 1, 15, "далеко")  # 10 frames before: not beside
    footage(scene, still(tmp_path / "warm.png", WARM), 47, 70)  # starts 2 frames before the shot ends
    shot = add_shot(scene, "Son kadr", 25, 24, channel=2)
    generate(scene, [shot])
    scene.sequence_editor.active_strip = shot
    warm = mean_colour(render_frame(scene, 50, tmp_path / "live.png"))
    before = distance(mean_colour(render_frame(scene, 48, tmp_path / "plain.png")), warm)

    assert op(scene, "shotline_match_neighbour") == {'FINISHED'}
    after = distance(mean_colour(render_frame(scene, 48, tmp_path / "matched.png")), warm)
    assert after < before / 10, f"mean colour distance {before:.1f} -> {after:.1f}"


def test_without_a_take_or_footage_beside_the_shot_it_says_so_and_changes_nothing(small, tmp_path):
    scene = small
    footage(scene, still(tmp_path / "far.png", WARM), 1, 15)  # ends 10 frames before the shot
    compat.new_effect(compat.strips(scene.sequence_editor), "colour", 'COLOR', 1, 49, 10)  # beside, not footage
    shot = add_shot(scene, "Yalnız", 25, 24, channel=2)
    scene.sequence_editor.active_strip = shot
    with pytest.raises(RuntimeError, match="no take strip"):
        op(scene, "shotline_match_neighbour")

    generate(scene, [shot])
    take = shots.take_strip(scene, shot)
    take.modifiers.new("Мой грейд", type='CURVES')
    with pytest.raises(RuntimeError, match="No live footage"):
        op(scene, "shotline_match_neighbour")
    assert [m.name for m in take.modifiers] == ["Мой грейд"]


def test_grade_gives_the_take_the_neighbours_mean_and_spread():
    rng = np.random.default_rng(3)
    take = rng.normal((60, 70, 110), (20, 15, 30), (90, 160, 3)).clip(0, 255).astype(np.uint8)
    neighbour = rng.normal((200, 150, 70), (35, 30, 10), (90, 160, 3)).clip(0, 255).astype(np.uint8)
    ours, theirs = grade.channels(take), grade.channels(neighbour)

    graded = grade.apply(ours, grade.match(take, neighbour))
    assert graded.mean(axis=0) == pytest.approx(theirs.mean(axis=0), abs=0.002)
    assert graded.std(axis=0) == pytest.approx(theirs.std(axis=0), rel=0.05)

    halfway = grade.apply(ours, grade.match(take, neighbour, strength=0.5)).mean(axis=0)
    assert halfway == pytest.approx((ours.mean(axis=0) + theirs.mean(axis=0)) / 2, abs=0.002)
    untouched = grade.match(take, neighbour, strength=0.0)
    assert untouched.slope == pytest.approx((1, 1, 1)) and untouched.offset == pytest.approx((1, 1, 1))


def test_grade_reaches_a_bright_mean_despite_clipping_and_keeps_to_sane_ranges():
    rng = np.random.default_rng(5)
    take = rng.normal(128, 60, (90, 160, 3)).clip(0, 255).astype(np.uint8)
    neighbour = rng.normal(200, 60, (90, 160, 3)).clip(0, 255).astype(np.uint8)
    ours, target = grade.channels(take), grade.channels(neighbour).mean(axis=0)
    found = grade.match(take, neighbour)
    assert grade.apply(ours, found).mean(axis=0) == pytest.approx(target, abs=0.001)
    # the plain linear shift: the take's bright end is pushed past white and the mean falls short
    plain = grade.Grade(found.slope, tuple(1 + target - np.asarray(found.slope) * ours.mean(axis=0)))
    assert np.all(grade.apply(ours, plain).mean(axis=0) < target - 0.005)

    flat = np.full((9, 16, 3), 40, np.uint8)  # no spread: only the level moves, within Blender's ranges
    assert grade.match(flat, neighbour).slope == (1.0, 1.0, 1.0)
    extreme = grade.match(neighbour, flat)
    assert all(s == grade.SLOPE_RANGE[0] for s in extreme.slope) and all(o >= 0.0 for o in extreme.offset)
    with pytest.raises(ValueError):
        grade.match(take, neighbour, strength=1.5)
