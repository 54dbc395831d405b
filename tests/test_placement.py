"""Placing takes: first frame exact, real speed, fit policies, channels, file swaps that keep the user's work."""

from __future__ import annotations

from fractions import Fraction

import pytest

from shotline.addon.blend import compat, placement, shots
from vse import add_shot, make_clip, set_fps, shown_source_frame


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "long24": make_clip(folder, 96, Fraction(24)),
        "short24": make_clip(folder, 24, Fraction(24), seed=2),
        "short30": make_clip(folder, 30, Fraction(30), seed=3),
    }


def _everything(scene):
    return {s.name: (s.channel, *compat.span(s)) for s in compat.strips_all(scene.sequence_editor)}


def test_long_clip_is_trimmed_at_the_shot_end(scene, clips, tmp_path):
    set_fps(scene, Fraction(24))
    shot = add_shot(scene, "A", 10, 48)
    placed = placement.place_take(scene, shot, str(clips["long24"]))
    assert compat.span(placed.strip) == (10, 58)
    assert placed.strip.channel == shot.channel + 1
    assert placed.plan.trimmed
    assert shown_source_frame(scene, 10, tmp_path / "f.png") == 0
    assert shown_source_frame(scene, 57, tmp_path / "f.png") == 47
    assert shown_source_frame(scene, 58, tmp_path / "f.png") is None  # nothing past the cut


@pytest.mark.parametrize("fit", ['STRETCH', 'HOLD', 'LOOP', 'SHORT'])
def test_short_clip_fit_policies(scene, clips, tmp_path, fit):
    set_fps(scene, Fraction(24))
    shot = add_shot(scene, "B", 100, 60, fit=fit)
    placed = placement.place_take(scene, shot, str(clips["short24"]))
    out = tmp_path / "f.png"
    take_left, take_right = compat.span(placed.strip)
    assert take_left == 100
    assert shown_source_frame(scene, 100, out) == 0
    if fit == 'STRETCH':
        assert take_right == 160
        assert shown_source_frame(scene, 159, out) == 23
        assert shown_source_frame(scene, 130, out) == 12  # half way through the shot, half way through the clip
    elif fit == 'HOLD':
        assert take_right == 160
        assert shown_source_frame(scene, 123, out) == 23
        assert shown_source_frame(scene, 159, out) == 23
    elif fit == 'LOOP':
        assert take_right == 124
        loops = shots.loop_strips(scene, shot)
        assert [compat.span(s) for s in loops] == [(124, 148), (148, 160)]
        assert shown_source_frame(scene, 124, out) == 0
        assert shown_source_frame(scene, 159, out) == 11
    else:
        assert take_right == 124
        assert placed.plan.short_by == 36
        assert shown_source_frame(scene, 124, out) is None
    assert max(compat.span(s)[1] for s in [placed.strip, *shots.loop_strips(scene, shot)]) <= 160


def test_placement_never_moves_or_deletes_other_strips(scene, clips):
    set_fps(scene, Fraction(24))
    shot = add_shot(scene, "C", 10, 48, channel=1)
    blocker = compat.new_effect(compat.strips(scene.sequence_editor), "User title", 'COLOR', 2, 30, 20)
    above = compat.new_effect(compat.strips(scene.sequence_editor), "User grade", 'ADJUSTMENT', 4, 0, 200)
    before = _everything(scene)
    placed = placement.place_take(scene, shot, str(clips["long24"]))
    assert placed.strip.channel == 3
    assert "channel 2 is taken" in placed.channel_note and "channel 3" in placed.channel_note
    after = _everything(scene)
    assert {k: after[k] for k in before} == before
    assert blocker.name in after and above.name in after


def test_swapping_the_take_keeps_the_users_modifier_and_transform(scene, clips, tmp_path):
    set_fps(scene, Fraction(24))
    shot = add_shot(scene, "D", 1, 48)
    take = placement.place_take(scene, shot, str(clips["long24"])).strip
    with compat.operators_on(scene):
        balance = take.modifiers.new(name="Grade", type='COLOR_BALANCE')
    balance.color_balance.gain = (1.2, 0.9, 0.8)
    take.transform.offset_x, take.transform.scale_x = 12, 1.5
    take.crop.min_x = 4
    swapped = placement.place_take(scene, shot, str(clips["short30"])).strip
    assert swapped == take
    assert swapped.filepath.endswith(clips["short30"].name)
    assert [m.name for m in swapped.modifiers] == ["Grade"]
    assert tuple(round(v, 3) for v in swapped.modifiers["Grade"].color_balance.gain) == (1.2, 0.9, 0.8)
    assert (swapped.transform.offset_x, swapped.transform.scale_x, swapped.crop.min_x) == (12, 1.5, 4)
    # the new clip is 30 frames at 30 fps: 24 frames at real speed in the 24 fps scene, then held
    assert compat.span(swapped) == (1, 49)
    swapped.transform.offset_x, swapped.transform.scale_x, swapped.crop.min_x = 0, 1, 0  # to read the frame code
    assert shown_source_frame(scene, 1 + 12, tmp_path / "f.png") == 15


def test_unreadable_file_is_refused_and_nothing_is_left(scene, clips, tmp_path):
    set_fps(scene, Fraction(24))
    shot = add_shot(scene, "E", 1, 48)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    count = len(compat.strips_all(scene.sequence_editor))
    with pytest.raises(placement.PlacementError, match="cannot read"):
        placement.place_take(scene, shot, str(broken))
    assert len(compat.strips_all(scene.sequence_editor)) == count
    take = placement.place_take(scene, shot, str(clips["long24"])).strip
    with pytest.raises(placement.PlacementError):
        placement.place_take(scene, shot, str(broken))
    assert take.filepath.endswith(clips["long24"].name)
    assert compat.span(take) == (1, 49)
