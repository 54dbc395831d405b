"""Saving and reopening as a director does: wm.save_as_mainfile and wm.open_mainfile, jobs running.

Takes made before the first save move next to the .blend; a save that fails moves nothing; a take
that finishes during or after the first save lands next to the .blend; a job saved with its remote
id is resumed when the file is opened again, never submitted twice.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import bpy
import pytest

from shotline.addon.blend import compat, mediafolder, runtime, shots
from shotline.addon.services import animatic, registry
from vse import add_service, add_shot, generate, op, select, set_fps, unwritable


@pytest.fixture
def small(scene):
    set_fps(scene, Fraction(30000, 1001))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    return scene


def _take_paths(scene, shot):
    return shots.take_strip(scene, shot).filepath, [t.filepath for t in shot.shotline.takes]


def test_first_save_moves_takes_next_to_the_blend_and_removes_the_temporary_folder(small, tmp_path):
    shot = add_shot(small, "Qəmgin mahnı", 1, 30)
    generate(small, [shot])
    temp_file = Path(shots.take_strip(small, shot).filepath)
    assert mediafolder.unsaved_root() in temp_file.parents
    blend = tmp_path / "фильм" / "project.blend"
    blend.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    strip_path, take_paths = _take_paths(small, shot)
    assert strip_path.startswith("//shotline") and take_paths == [strip_path]
    assert blend.parent in Path(bpy.path.abspath(strip_path)).parents
    assert Path(bpy.path.abspath(strip_path)).is_file() and not temp_file.exists()
    assert not mediafolder.unsaved_root().exists(), sorted(mediafolder.unsaved_root().rglob("*"))


def test_a_first_save_that_fails_moves_and_relinks_nothing(small, tmp_path, capfd):
    shot = add_shot(small, "shot", 1, 30)
    generate(small, [shot])
    before = _take_paths(small, shot)
    with pytest.raises(RuntimeError, match="Cannot open file"):
        bpy.ops.wm.save_as_mainfile(filepath=str(unwritable(tmp_path) / "project.blend"))
    assert _take_paths(small, shot) == before
    assert Path(before[0]).is_file() and not bpy.data.filepath
    assert "Traceback" not in capfd.readouterr().err


def test_a_save_blender_fails_to_write_puts_the_moved_takes_back(small, tmp_path):
    """The media folder can be written, the .blend cannot: the moved takes go back, paths too."""
    shot = add_shot(small, "shot", 1, 30)
    generate(small, [shot])
    before = _take_paths(small, shot)
    media = tmp_path / "media"
    small.shotline.media_folder = str(media)
    with pytest.raises(RuntimeError, match="Cannot open file"):
        bpy.ops.wm.save_as_mainfile(filepath=str(unwritable(tmp_path) / "project.blend"))
    assert _take_paths(small, shot) == before
    assert Path(before[0]).is_file()
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_a_take_finishing_during_the_first_save_lands_next_to_the_blend(small, tmp_path):
    shot = add_shot(small, "long", 1, 240)
    small.render.resolution_x, small.render.resolution_y = 320, 180  # a few seconds of work
    select(small, [shot])
    op(small, "shotline_generate")
    blend = tmp_path / "project.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))  # the job is still running
    assert runtime.queue().active(), "the job finished before the save: the test proves nothing"
    runtime.run_until_idle(300, interval=0.02)
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    strip_path, take_paths = _take_paths(small, shot)
    assert strip_path.startswith("//shotline") and take_paths == [strip_path]
    assert Path(bpy.path.abspath(strip_path)).is_file()
    assert not mediafolder.unsaved_root().exists(), sorted(mediafolder.unsaved_root().rglob("*"))


class _Gated(animatic.AnimaticService):
    """An animatic that counts its submissions and holds its jobs at 'generating' until let go,
    like a cloud job that outlives a Blender session (quitting does not stop it)."""

    id, label = "gated", "Gated animatic"
    submissions = 0
    release = threading.Event()

    def submit(self, request, ctl):
        type(self).submissions += 1
        return super().submit(request, ctl)

    def poll(self, remote_id, ctl):
        if not self.release.is_set():
            return animatic.Status(done=False, progress=0.5, message="Rendering on the farm")
        return super().poll(remote_id, ctl)

    def cancel(self, remote_id):
        pass  # the remote job goes on


def test_a_saved_job_is_resumed_on_open_and_never_submitted_again(small, tmp_path, monkeypatch):
    service = _Gated()
    _Gated.submissions = 0
    _Gated.release.clear()
    add_service(monkeypatch, service)
    shot = add_shot(small, "resumed", 1, 30)
    shot.shotline.service = service.id
    select(small, [shot])
    op(small, "shotline_generate")
    end = time.monotonic() + 60
    while not (runtime.queue().get(shot.shotline.job_id).remote_id):
        assert time.monotonic() < end
        runtime.pump()
        time.sleep(0.02)
    name, shot_name = small.name, shot.name
    blend = tmp_path / "resume.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    runtime.unregister()  # Blender quits: the queue and its workers are gone
    runtime.register()
    _Gated.release.set()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.data.scenes[name]
    shot = compat.strips_all(scene.sequence_editor)[shot_name]
    assert runtime.busy(), "the saved job was not resumed"
    runtime.run_until_idle(120, interval=0.02)
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    assert _Gated.submissions == 1
    assert Path(bpy.path.abspath(shots.take_strip(scene, shot).filepath)).is_file()
    assert compat.span(shots.take_strip(scene, shot)) == compat.span(shot)


def test_a_media_folder_takes_cannot_be_written_into_is_refused_before_generating(small, tmp_path):
    shot = add_shot(small, "shot", 1, 30)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "film.blend"))
    small.shotline.media_folder = str(unwritable(tmp_path) / "takes")
    jobs_before = len(runtime.queue().jobs)
    select(small, [shot])
    with pytest.raises(RuntimeError, match="Cannot write takes into"):
        op(small, "shotline_generate")
    assert len(runtime.queue().jobs) == jobs_before
    assert shot.shotline.status == 'FAILED' and "Cannot write takes into" in shot.shotline.status_message


def test_a_job_submitted_after_the_last_save_is_adopted_from_the_journal(small, tmp_path, monkeypatch):
    """Saved, then generated, then Blender gone without saving: the save knows no job, the journal does."""
    service = _Gated()
    _Gated.submissions = 0
    _Gated.release.clear()
    add_service(monkeypatch, service)
    shot = add_shot(small, "Певица", 1, 30)
    shot.shotline.service = service.id
    name, shot_name = small.name, shot.name
    blend = tmp_path / "фильм.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    shot = compat.strips_all(bpy.data.scenes[name].sequence_editor)[shot_name]
    select(bpy.data.scenes[name], [shot])
    op(bpy.data.scenes[name], "shotline_generate")
    end = time.monotonic() + 60
    while not runtime.queue().get(shot.shotline.job_id).remote_id:
        assert time.monotonic() < end
        runtime.pump()
        time.sleep(0.02)
    journal_file = tmp_path / "shotline" / "shotline-jobs.jsonl"
    assert journal_file.is_file(), "the job was not journalled next to the file"
    runtime.unregister()  # Blender gone, nothing saved after the submit
    runtime.register()
    _Gated.release.set()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.data.scenes[name]
    shot = compat.strips_all(scene.sequence_editor)[shot_name]
    assert runtime.busy(), "the journalled job was not adopted"
    runtime.run_until_idle(120, interval=0.02)
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    assert _Gated.submissions == 1, "submitted again"
    assert compat.span(shots.take_strip(scene, shot)) == compat.span(shot)
    runtime.unregister()
    runtime.register()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert not runtime.busy(), "a placed job is adopted again"
