"""encode.frames_to_clip: frames already on disk encoded by the animatic's child process without
drawing, at an exact rate and in name order; cancel kills the child and leaves nothing."""

from __future__ import annotations

import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import bpy
import pytest
from PIL import Image

from shotline.addon import encode, framecode, probe
from shotline.addon.blend import compat
from shotline.addon.services.base import Cancelled, JobControl


@pytest.fixture(autouse=True)
def default_encoder():
    encode.configure(None)
    yield
    encode.configure(None)


def write_frames(folder: Path, count: int, size=(320, 180)) -> Path:
    """`count` PNG and JPEG frames (alternately: both may come), each carrying its index."""
    folder.mkdir()
    for index in range(count):
        frame = Image.new("RGB", size, (30 + index * 9 % 200, 120, 60))
        framecode.draw(frame, index)
        frame.save(folder / f"{index:06d}.{'png' if index % 2 else 'jpg'}", quality=95)
    return folder


def decoded_indices(path: Path, frames: int, size, folder: Path) -> list[int | None]:
    """The frame code of every frame of the clip, as Blender's sequencer shows it."""
    scene = bpy.data.scenes.new("decode")
    try:
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = *size, 100
        scene.frame_start, scene.frame_end = 1, frames
        scene.view_settings.view_transform = 'Standard'
        render.image_settings.file_format = 'PNG'
        render.filepath = str(folder / "f_######")
        editor = scene.sequence_editor_create()
        strip = compat.strips(editor).new_movie("clip", str(path), 1, 1)
        assert compat.content_frames(strip) == frames
        with bpy.context.temp_override(scene=scene):
            bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.data.scenes.remove(scene)
    return [framecode.read(Image.open(folder / f"f_{n:06d}.png")) for n in range(1, frames + 1)]


def test_frames_become_an_mp4_at_the_rate_in_name_order(tmp_path):
    frames = write_frames(tmp_path / "frames", 24)
    output = tmp_path / "clip.mp4"
    progress = []
    encode.frames_to_clip(frames, 24, Fraction(16), 320, 180, output, JobControl(),
                          lambda phase, done: progress.append((phase, done)))
    assert probe.read_clip(output) == probe.ClipInfo(Fraction(16), 24, 320, 180)
    assert {phase for phase, _ in progress} == {"encoding"} and progress[-1][1] == 1.0
    (tmp_path / "decoded").mkdir()
    assert decoded_indices(output, 24, (320, 180), tmp_path / "decoded") == list(range(24))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "decoded", "frames"]


def test_a_wrong_count_or_an_odd_size_is_refused(tmp_path):
    frames = write_frames(tmp_path / "frames", 3)
    with pytest.raises(ValueError, match="even width and height"):
        encode.frames_to_clip(frames, 3, Fraction(24), 321, 180, tmp_path / "clip.mp4", JobControl())
    with pytest.raises(Exception, match="Expected 4 frames"):
        encode.frames_to_clip(frames, 4, Fraction(24), 320, 180, tmp_path / "clip.mp4", JobControl())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_cancel_mid_encode_kills_the_child_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the child's scratch folder goes here
    (tmp_path / "tmp").mkdir()
    frames = write_frames(tmp_path / "frames", 600)
    ctl = JobControl()
    cancelled_at = []

    def on_progress(phase, done):
        if not cancelled_at:
            cancelled_at.append(time.perf_counter())
            ctl.cancel_event.set()

    with pytest.raises(Cancelled):
        encode.frames_to_clip(frames, 600, Fraction(24), 320, 180, tmp_path / "clip.mp4", ctl, on_progress)
    assert cancelled_at and time.perf_counter() - cancelled_at[0] < 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []
    if sys.platform.startswith("linux"):
        running = []
        for process in Path("/proc").iterdir():
            try:
                if str(tmp_path) in (process / "cmdline").read_bytes().decode(errors="replace"):
                    running.append(process.name)
            except OSError:
                continue
        assert running == []
