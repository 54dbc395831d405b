"""The director's iteration loop through the operators: takes and what made them, stepping,
favourites, the trash, reusing settings, variations, regenerate, lock and the take limit."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import bpy
import numpy as np
import pytest

from shotline.addon import media
from shotline.addon.blend import compat, mediafolder, runtime, shots
from shotline.panels import shot as shot_panels
from test_panels import _draw, _operators
from vse import add_shot, generate, op, render_frame, select, set_fps


def _show(scene, shot) -> None:
    select(scene, [shot])
    scene.sequence_editor.active_strip = shot


@pytest.fixture
def shot_scene(scene):
    set_fps(scene, Fraction(30000, 1001))
    scene.render.resolution_x, scene.render.resolution_y = 96, 54
    shot = add_shot(scene, "Qəmgin · кадр", 1, 30, channel=2)
    shot.shotline.negative_prompt = "размыто"
    _show(scene, shot)
    return scene, shot


def _generate(scene, shot, **kw) -> None:
    _show(scene, shot)
    assert op(scene, "shotline_generate", **kw) == {'FINISHED'}
    runtime.run_until_idle(300, interval=0.02)


def test_every_take_keeps_what_made_it_and_no_file_is_overwritten(shot_scene):
    scene, shot = shot_scene
    shot.shotline.prompt = "Лейла поёт под дождём"
    for _ in range(2):
        _generate(scene, shot)
    first, second = shot.shotline.takes
    assert first.filepath != second.filepath
    assert all(os.path.isfile(bpy.path.abspath(t.filepath)) for t in (first, second))
    for take in (first, second):
        assert take.prompt == "Лейла поёт под дождём" and take.negative_prompt == "размыто"
        assert take.service == "animatic" and take.created
        assert take.duration == pytest.approx(30 / (30000 / 1001), abs=0.05)
        assert take.content_key == media.content_key(Path(bpy.path.abspath(take.filepath)))
        assert take.size == os.path.getsize(bpy.path.abspath(take.filepath))
        settings = json.loads(take.settings)
        assert settings["prompt"] == take.prompt and settings["seed"] == take.seed
    assert first.seed != second.seed


def test_switching_among_three_takes_keeps_the_directors_grade_transform_and_crop(shot_scene, tmp_path):
    scene, shot = shot_scene
    for _ in range(3):
        _generate(scene, shot)
    strip = shots.take_strip(scene, shot)
    grade = strip.modifiers.new("Director grade", 'COLOR_BALANCE')
    grade.color_balance.gain = (1.4, 0.8, 0.6)
    strip.transform.scale_x = strip.transform.scale_y = 0.8
    strip.transform.offset_x, strip.transform.offset_y = 6, -4
    strip.crop.min_x, strip.crop.max_y = 4, 3
    seen = {shot.shotline.active_take}
    for step in ({"previous": False}, {"previous": False}, {"previous": True}):
        assert op(scene, "shotline_step_take", **step) == {'FINISHED'}
        seen.add(shot.shotline.active_take)
        assert shots.take_strip(scene, shot) == strip
        assert strip.filepath == shot.shotline.takes[shot.shotline.active_take].filepath
    assert op(scene, "shotline_use_take", index=1) == {'FINISHED'}
    seen.add(shot.shotline.active_take)
    assert seen == {0, 1, 2}
    assert [m.name for m in strip.modifiers] == ["Director grade"]
    assert tuple(round(v, 3) for v in strip.modifiers[0].color_balance.gain) == (1.4, 0.8, 0.6)
    assert (strip.transform.scale_x, strip.transform.offset_x, strip.transform.offset_y) == \
        (pytest.approx(0.8), 6, -4)
    assert (strip.crop.min_x, strip.crop.max_y) == (4, 3)
    assert compat.span(strip) == compat.span(shot)
    graded = render_frame(scene, 10, tmp_path / "graded.png").astype(float)
    strip.modifiers[0].mute = True
    plain = render_frame(scene, 10, tmp_path / "plain.png").astype(float)
    assert graded[..., 0].mean() > plain[..., 0].mean() and graded[..., 2].mean() < plain[..., 2].mean()


def test_favourites_and_reusing_a_takes_settings(shot_scene):
    scene, shot = shot_scene
    shot.shotline.prompt = "first idea"
    _generate(scene, shot)
    shot.shotline.prompt, shot.shotline.negative_prompt, shot.shotline.fit = "second idea", "", 'STRETCH'
    _generate(scene, shot)
    assert op(scene, "shotline_favourite_take", index=0) == {'FINISHED'}
    assert [t.favourite for t in shot.shotline.takes] == [True, False]
    assert op(scene, "shotline_reuse_take", index=0) == {'FINISHED'}
    props = shot.shotline
    assert (props.prompt, props.negative_prompt, props.fit) == ("first idea", "размыто", 'HOLD')
    assert not props.random_seed and props.seed == props.takes[0].seed
    _generate(scene, shot)  # the same settings and seed again: the animatic draws the same picture
    assert props.takes[2].seed == props.takes[0].seed
    assert props.takes[2].request_key == props.takes[0].request_key


def test_deleting_a_take_moves_its_file_to_the_trash_and_emptying_removes_only_those(shot_scene):
    scene, shot = shot_scene
    for _ in range(3):
        _generate(scene, shot)
    props = shot.shotline
    paths = [bpy.path.abspath(t.filepath) for t in props.takes]
    assert op(scene, "shotline_delete_take", index=2) == {'FINISHED'}  # the shown one
    assert len(props.takes) == 2 and props.active_take == 1
    assert shots.take_strip(scene, shot).filepath == props.takes[1].filepath
    assert not os.path.exists(paths[2])
    trashed = bpy.path.abspath(scene.shotline.trash[0].filepath)
    assert os.path.isfile(trashed) and media.TRASH in Path(trashed).parts
    assert op(scene, "shotline_delete_take", index=0) == {'FINISHED'}
    assert props.active_take == 0 and props.takes[0].filepath == shots.take_strip(scene, shot).filepath
    # a file the director put into the trash folder by hand is not Shotline's to remove
    trash_root = mediafolder.root(scene) / media.TRASH
    theirs = trash_root / "keep-me.mp4"
    theirs.write_bytes(b"the director's own file")
    _generate(scene, shot)  # a new take never reuses a deleted take's number
    numbers = [Path(t.filepath).name for t in props.takes]
    assert Path(trashed).name not in numbers and Path(paths[0]).name not in numbers
    assert op(scene, "shotline_empty_trash") == {'FINISHED'}
    assert not os.path.exists(trashed) and theirs.is_file() and len(scene.shotline.trash) == 0
    assert all(os.path.isfile(bpy.path.abspath(t.filepath)) for t in props.takes)


def test_deleting_the_last_take_removes_only_shotlines_strips(shot_scene):
    scene, shot = shot_scene
    live = compat.new_effect(compat.strips(scene.sequence_editor), "live", 'COLOR', 5, 1, 30)
    _generate(scene, shot)
    assert op(scene, "shotline_delete_take") == {'FINISHED'}
    assert shots.take_strip(scene, shot) is None and len(shot.shotline.takes) == 0
    names = {s.name for s in compat.strips_all(scene.sequence_editor)}
    assert names == {shot.name, live.name}


def test_variations_make_n_takes_with_different_seeds(shot_scene):
    scene, shot = shot_scene
    _generate(scene, shot, variations=3)
    props = shot.shotline
    assert len(props.takes) == 3 and len({t.seed for t in props.takes}) == 3
    assert len({t.filepath for t in props.takes}) == 3
    assert props.status == 'PLACED' and props.active_take == 2
    assert shots.take_strip(scene, shot).filepath == props.takes[2].filepath


def test_regenerate_with_the_same_seed_or_a_new_one(shot_scene):
    scene, shot = shot_scene
    shot.shotline.random_seed, shot.shotline.seed = False, 1234
    _generate(scene, shot)
    _generate(scene, shot, seed='SAME')
    _generate(scene, shot, seed='NEW')
    seeds = [t.seed for t in shot.shotline.takes]
    assert seeds[:2] == [1234, 1234] and seeds[2] != 1234
    assert shot.shotline.seed == 1234, "a regenerate with a new seed leaves the shot's fixed seed"


def test_a_locked_shot_is_never_submitted(shot_scene):
    scene, shot = shot_scene
    other = add_shot(scene, "open shot", 40, 20, channel=2)
    _generate(scene, shot)
    shot.shotline.locked = True
    select(scene, [shot, other])
    assert op(scene, "shotline_generate") == {'FINISHED'}
    assert not runtime.running_jobs(shot) and runtime.running_jobs(other)
    runtime.run_until_idle(300, interval=0.02)
    assert len(shot.shotline.takes) == 1 and len(other.shotline.takes) == 1
    for kw in ({"seed": 'NEW'}, {"variations": 3}, {"force": True}):
        _show(scene, shot)
        with pytest.raises(RuntimeError, match="locked on take 1, skipped"):
            op(scene, "shotline_generate", **kw)
    with pytest.raises(RuntimeError, match="locked on take 1: unlock it"):
        op(scene, "shotline_delete_take")
    assert len(shot.shotline.takes) == 1 and not runtime.busy()


def test_the_take_limit_stops_further_takes_with_a_message(shot_scene):
    scene, shot = shot_scene
    shot.shotline.take_limit = 2
    _generate(scene, shot)
    _show(scene, shot)
    with pytest.raises(RuntimeError, match="Take limit: 1 of 2 takes; 2 more would pass it"):
        op(scene, "shotline_generate", variations=2)
    _generate(scene, shot)
    _show(scene, shot)
    with pytest.raises(RuntimeError, match="Take limit reached: 2 of 2 takes"):
        op(scene, "shotline_generate")
    assert shot.shotline.status_message.startswith("Take limit reached: 2 of 2 takes")
    assert len(shot.shotline.takes) == 2


def test_the_project_view_counts_locked_open_and_empty_shots(shot_scene):
    scene, shot = shot_scene
    add_shot(scene, "empty", 40, 20, channel=2)
    third = add_shot(scene, "open", 70, 20, channel=2)
    generate(scene, [shot, third])
    shot.shotline.locked = True
    labels = []

    class Layout:
        def __getattr__(self, name):
            return lambda *a, **k: Layout() if name in ("box", "row", "column") else labels.append(k.get("text"))
    shot_panels.draw_progress(Layout(), scene)
    assert labels[0] == "1 of 3 shots locked · 1 open · 1 without takes"
    assert labels[1].startswith("2 takes · spent $0.00")


def test_a_deleted_take_can_be_restored_from_the_trash(shot_scene):
    scene, shot = shot_scene
    for _ in range(2):
        _generate(scene, shot)
    first = dict(path=shot.shotline.takes[0].filepath, seed=shot.shotline.takes[0].seed,
                 key=shot.shotline.takes[0].content_key)
    assert op(scene, "shotline_delete_take", index=0) == {'FINISHED'}
    drawn = _operators(_draw(shot_panels.SEQUENCER_PT_shotline_project, scene))  # Blender's own checks
    assert ("sequencer.shotline_restore_take", "", {"index": 0}) in drawn
    assert ("sequencer.shotline_empty_trash", "Empty", {}) in drawn
    assert op(scene, "shotline_restore_take", index=0) == {'FINISHED'}
    props = shot.shotline
    assert len(props.takes) == 2 and len(scene.shotline.trash) == 0
    back = props.takes[1]
    assert (back.filepath, back.seed, back.content_key) == (first["path"], first["seed"], first["key"])
    assert os.path.isfile(bpy.path.abspath(back.filepath))
    assert op(scene, "shotline_use_take", index=1) == {'FINISHED'}
    assert shots.take_strip(scene, shot).filepath == first["path"]


def test_undoing_a_delete_brings_the_take_back_with_its_file(shot_scene):
    scene, shot = shot_scene
    for _ in range(2):
        _generate(scene, shot)
    name, shot_id = scene.name, shot.shotline.shot_id
    path = bpy.path.abspath(shot.shotline.takes[1].filepath)
    bpy.ops.ed.undo_push(message="two takes")
    assert op(scene, "shotline_delete_take", index=1) == {'FINISHED'}
    bpy.ops.ed.undo_push(message="take deleted")
    assert not os.path.exists(path)
    assert bpy.ops.ed.undo() == {'FINISHED'}
    scene = bpy.data.scenes[name]
    shot = shots.by_id(scene, shot_id)
    assert len(shot.shotline.takes) == 2 and os.path.isfile(path), "the undone delete left the file in the trash"
    assert shots.take_strip(scene, shot).filepath == shot.shotline.takes[1].filepath
    assert bpy.ops.ed.redo() == {'FINISHED'}
    scene = bpy.data.scenes[name]
    assert len(shots.by_id(scene, shot_id).shotline.takes) == 1 and not os.path.exists(path)
    assert os.path.isfile(bpy.path.abspath(scene.shotline.trash[0].filepath))
