"""Shot identity through Blender's own editing: duplicate (Shift+D), copy and paste, split (K).

A copy becomes a shot of its own (new id, same prompt and settings, no takes); of a split the
left half is the original and keeps its takes; a copied take strip is never tied to two shots.
"""

from __future__ import annotations

from fractions import Fraction

import bpy
import pytest

from shotline.addon.blend import compat, identity, runtime, shots
from shotline.panels import shot as shot_panels
from vse import add_shot, editor_op, generate, op, select, set_fps


@pytest.fixture
def shot_with_take(scene):
    set_fps(scene, Fraction(24))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    shot = add_shot(scene, "Певица", 1, 48, channel=2)
    shot.shotline.prompt = "певица идёт по ночному городу"
    shot.shotline.negative_prompt = "blur"
    generate(scene, [shot])
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    return scene, shot


def _strips(scene):
    return list(compat.strips_all(scene.sequence_editor))


def _shot_ids(scene):
    return [s.shotline.shot_id for s in _strips(scene) if s.shotline.role == 'SHOT']


def test_a_duplicated_shot_is_its_own_shot_and_its_job_finishes(shot_with_take):
    scene, original = shot_with_take
    select(scene, [original])
    scene.sequence_editor.active_strip = original
    assert editor_op(scene, "duplicate") == {'FINISHED'}
    copy = next(s for s in _strips(scene) if s.shotline.role == 'SHOT' and s != original)
    assert copy.shotline.shot_id == original.shotline.shot_id  # Blender copied everything

    generate(scene, [copy])
    assert len(set(_shot_ids(scene))) == 2
    assert copy.shotline.status == 'PLACED', copy.shotline.status_message
    assert copy.shotline.prompt == original.shotline.prompt and copy.shotline.negative_prompt == "blur"
    assert len(copy.shotline.takes) == 1 and len(original.shotline.takes) == 1
    assert copy.shotline.takes[0].filepath != original.shotline.takes[0].filepath
    assert shots.take_strip(scene, copy) != shots.take_strip(scene, original)
    assert shots.take_strip(scene, original).filepath == original.shotline.takes[0].filepath


def test_a_split_shot_keeps_its_takes_on_the_left_half(shot_with_take):
    scene, original = shot_with_take
    take = shots.take_strip(scene, original)
    select(scene, [original])
    assert editor_op(scene, "split", frame=25, type='SOFT', side='BOTH') == {'FINISHED'}
    right = next(s for s in _strips(scene) if s.shotline.role == 'SHOT' and s != original)
    assert compat.span(original) == (1, 25) and compat.span(right) == (25, 49)
    notes = runtime.resolve_copies()
    assert any(right.name in n for n in notes)
    assert len(original.shotline.takes) == 1 and len(right.shotline.takes) == 0
    assert right.shotline.shot_id != original.shotline.shot_id and right.shotline.job_id == ""
    assert right.shotline.status == 'NONE' and "Copy of" in right.shotline.status_message
    assert compat.span(take) == (1, 25), "the take never shows past its shot"
    assert shots.take_strip(scene, right) is None


def test_a_pasted_shot_and_take_strip_are_not_tied_to_the_original(shot_with_take):
    scene, original = shot_with_take
    take = shots.take_strip(scene, original)
    select(scene, [original, take])
    assert editor_op(scene, "copy") == {'FINISHED'}
    scene.frame_current = 200
    assert editor_op(scene, "paste") == {'FINISHED'}
    pasted = [s for s in _strips(scene) if s.select]
    assert len(pasted) == 2
    pasted_shot = next(s for s in pasted if s.type == 'COLOR')
    pasted_take = next(s for s in pasted if s.type == 'MOVIE')
    assert op(scene, "shotline_make_shots") == {'CANCELLED'}  # already shots: nothing to make, no error
    assert pasted_shot.shotline.shot_id != original.shotline.shot_id
    assert len(pasted_shot.shotline.takes) == 0
    assert pasted_take.shotline.role == 'NONE' and pasted_take.shotline.shot_id == ""
    assert shots.take_strip(scene, original) == take
    assert shots.take_strip(scene, pasted_shot) is None


def test_the_panel_notices_a_copy_and_a_renamed_original_stays_the_original(shot_with_take):
    scene, original = shot_with_take
    original.name = "Певица (final)"
    select(scene, [original])
    editor_op(scene, "duplicate")
    copy = next(s for s in _strips(scene) if s.shotline.role == 'SHOT' and s != original)
    scene.sequence_editor.active_strip = copy
    assert identity.find_copies([scene])
    with compat.operators_on(scene):
        assert shot_panels.SEQUENCER_PT_shotline_shot.poll(bpy.context)
        labels = []

        class Layout:
            def __getattr__(self, name):
                def call(*args, **kw):
                    labels.append(kw.get("text", ""))
                    return self
                return call

        shot_panels.SEQUENCER_PT_shotline_shot.draw(type("P", (), {"layout": Layout()})(), bpy.context)
    assert any("Copied Shotline strips found" in text for text in labels)
    assert bpy.app.timers.is_registered(runtime._resolve_tick)
    runtime._resolve_tick()  # what the timer does in Blender
    bpy.app.timers.unregister(runtime._resolve_tick) if bpy.app.timers.is_registered(runtime._resolve_tick) else None
    assert not identity.find_copies([scene])
    assert len(original.shotline.takes) == 1 and len(copy.shotline.takes) == 0


def test_copies_are_resolved_when_the_file_is_saved_and_opened(shot_with_take, tmp_path):
    scene, original = shot_with_take
    select(scene, [original])
    editor_op(scene, "duplicate")
    name = scene.name
    blend = tmp_path / "copies.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    reopened = bpy.data.scenes[name]
    ids = _shot_ids(reopened)
    assert len(ids) == 2 and len(set(ids)) == 2
    with_takes = [s for s in _strips(reopened) if s.shotline.role == 'SHOT' and len(s.shotline.takes)]
    assert [s.name for s in with_takes] == ["Певица"]
