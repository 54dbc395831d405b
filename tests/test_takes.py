"""The takes list and Refit Takes, through the properties and operators a director uses."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from shotline.addon.blend import compat, shots
from vse import add_shot, generate, op, render_frame, select, set_fps


@pytest.fixture
def three_takes(scene):
    set_fps(scene, Fraction(25))
    scene.render.resolution_x, scene.render.resolution_y = 96, 54
    shot = add_shot(scene, "Три дубля", 1, 25, channel=2)
    for _ in range(3):  # random seed per take: three different pictures
        generate(scene, [shot])
    assert len(shot.shotline.takes) == 3 and shot.shotline.active_take == 2
    return scene, shot


def test_choosing_a_row_shows_that_take_and_keeps_the_directors_grading(three_takes, tmp_path):
    scene, shot = three_takes
    take = shots.take_strip(scene, shot)
    take.modifiers.new("grade", 'COLOR_BALANCE')
    take.transform.offset_x = 7
    pictures = {}
    for index in (0, 1, 2):
        shot.shotline.active_take = index  # what clicking the row in the takes list does
        assert shots.take_strip(scene, shot) == take
        assert take.filepath == shot.shotline.takes[index].filepath
        assert compat.span(take) == compat.span(shot)
        pictures[index] = render_frame(scene, 10, tmp_path / f"take{index}.png")
    assert not np.array_equal(pictures[0], pictures[2]), "the picture must change with the row"
    shot.shotline.active_take = 0
    assert np.array_equal(render_frame(scene, 10, tmp_path / "again.png"), pictures[0])
    assert [m.name for m in take.modifiers] == ["grade"] and take.transform.offset_x == 7


def test_refit_takes_fits_take_strips_to_shots_moved_by_hand(three_takes):
    scene, shot = three_takes
    other = add_shot(scene, "другой", 40, 25, channel=2)
    generate(scene, [other])
    compat.set_span(shot, 5, 20)  # the director trims the shot by hand
    compat.set_span(other, 40, 52)
    select(scene, [shot])
    assert op(scene, "shotline_refit_takes") == {'FINISHED'}
    assert compat.span(shots.take_strip(scene, shot)) == (5, 20)
    assert compat.span(shots.take_strip(scene, other)) != (40, 52), "only the selected shot"
    select(scene, [])
    assert op(scene, "shotline_refit_takes") == {'FINISHED'}  # none selected: every shot
    assert compat.span(shots.take_strip(scene, other)) == (40, 52)
    assert shots.take_strip(scene, shot).filepath == shot.shotline.takes[2].filepath
