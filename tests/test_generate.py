"""Generate Selected Shots in Blender: operators, the queue pumped as the timer would, statuses, takes, cancel, save."""

from __future__ import annotations

import time
import wave
from fractions import Fraction
from pathlib import Path

import bpy
import numpy as np
import pytest

from shotline.addon import timing
from shotline.addon.blend import compat, mediafolder, runtime, shots, song
from vse import set_fps


def _wav(path: Path, seconds: float, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    data = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate)
        out.writeframes(data.tobytes())
    return path


def _text_shot(scene, text: str, left: int, length: int, channel: int = 2):
    strip = compat.new_effect(compat.strips(scene.sequence_editor), text[:20], 'TEXT', channel, left, length)
    strip.text = text
    return strip


def _select(scene, strips):
    for s in compat.strips_all(scene.sequence_editor):
        s.select = s in strips


def _op(scene, name, **kw):
    with compat.operators_on(scene):
        return getattr(bpy.ops.sequencer, name)(**kw)


def _pump_until_idle(timeout=120):
    runtime.run_until_idle(timeout, interval=0.02)


@pytest.fixture
def song_scene(scene, tmp_path):
    set_fps(scene, Fraction(24))
    scene.render.resolution_x, scene.render.resolution_y = 160, 90
    sound = compat.strips(scene.sequence_editor).new_sound("song", str(_wav(tmp_path / "song.wav", 8)), 1, 1)
    return scene, sound


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(24000, 1001), Fraction(30000, 1001)], ids=str)
def test_make_shots_generate_and_place(song_scene, fps):
    """End to end at film and NTSC rates, set with Blender's own presets (29.97: fps_base 1.001 as a float32)."""
    scene, song_strip = song_scene
    set_fps(scene, fps)
    a = _text_shot(scene, "a neon city at night", 1, 24)
    b = _text_shot(scene, "a car on a desert road", 25, 30)
    other = compat.new_effect(compat.strips(scene.sequence_editor), "not a shot", 'ADJUSTMENT', 5, 1, 10)
    _select(scene, [a, b, other])
    assert _op(scene, "shotline_make_shots") == {'FINISHED'}
    assert shots.is_shot(a) and shots.is_shot(b) and not shots.is_shot(other)
    assert shots.prompt(a) == "a neon city at night"
    b.shotline.prompt = "override prompt"
    assert shots.prompt(b) == "override prompt"
    assert song.strip(scene) == song_strip

    _select(scene, [a, b])
    assert _op(scene, "shotline_generate") == {'FINISHED'}
    assert a.shotline.status == 'QUEUED'
    _pump_until_idle()
    for shot in (a, b):
        assert shot.shotline.status == 'PLACED', shot.shotline.status_message
        take = shots.take_strip(scene, shot)
        assert take is not None and take.channel == shot.channel + 1
        assert compat.span(take) == compat.span(shot)
        assert len(shot.shotline.takes) == 1
        assert timing.rate(shot.shotline.takes[0].fps) == fps
        assert Path(bpy.path.abspath(take.filepath)).is_file()
        assert mediafolder.unsaved_root() in Path(bpy.path.abspath(take.filepath)).parents

    first = shots.take_strip(scene, a)
    first_file = first.filepath
    _select(scene, [a])
    _op(scene, "shotline_generate")
    _pump_until_idle()
    again = shots.take_strip(scene, a)
    assert again == first and again.filepath != first_file  # same strip, new file
    assert len(a.shotline.takes) == 2 and a.shotline.active_take == 1
    assert Path(first_file).is_file(), "the earlier take is kept"

    scene.sequence_editor.active_strip = a
    assert _op(scene, "shotline_use_take", index=0) == {'FINISHED'}
    assert shots.take_strip(scene, a).filepath == first_file and a.shotline.active_take == 0


def test_shot_without_prompt_fails_with_a_reason(song_scene):
    scene, _song = song_scene
    empty = _text_shot(scene, "   ", 1, 24)
    shots.make_shot(empty)
    _select(scene, [empty])
    with pytest.raises(RuntimeError, match="no prompt yet"):
        _op(scene, "shotline_generate")
    assert empty.shotline.status == 'NONE'
    assert "No prompt yet" in empty.shotline.status_message


def test_placeholder_text_is_never_sent_as_a_prompt(song_scene):
    """Add Shot's "Describe the shot" and Lay Out's bar labels are shown on the strip, never sent."""
    scene, _song = song_scene
    scene.frame_current = 1
    assert _op(scene, "shotline_add_shot") == {'FINISHED'}
    added = scene.sequence_editor.active_strip
    assert added.text == "Describe the shot"
    labelled = _text_shot(scene, "bars 1-4", 30, 24, channel=4)
    shots.make_shot(labelled, placeholder="bars 1-4")
    written = _text_shot(scene, "Певица поёт «Qəmgin mahnı» — крупный план", 60, 24, channel=6)
    shots.make_shot(written, placeholder="bars 5-8")
    _select(scene, [added, labelled, written])
    assert _op(scene, "shotline_generate") == {'FINISHED'}
    runtime.run_until_idle(120, interval=0.02)
    for skipped in (added, labelled):
        assert skipped.shotline.status == 'NONE' and "No prompt yet" in skipped.shotline.status_message
        assert shots.take_strip(scene, skipped) is None and not skipped.shotline.job_id
    assert written.shotline.status == 'PLACED', written.shotline.status_message
    assert written.shotline.takes[0].prompt == "Певица поёт «Qəmgin mahnı» — крупный план"
    # the director writes over the placeholder: now it is a prompt
    added.text = "a dancer on a rooftop"
    assert shots.prompt(added) == "a dancer on a rooftop"


def test_what_cannot_be_placed_is_refused_before_anything_is_generated(song_scene, tmp_path):
    scene, _song = song_scene
    top = _text_shot(scene, "a shot on the last channel", 1, 24, channel=128)
    no_reference = _text_shot(scene, "from a still", 30, 24, channel=2)
    shots.make_shot(top)
    shots.make_shot(no_reference)
    no_reference.shotline.reference_image = str(tmp_path / "gone.png")
    jobs_before = len(runtime.queue().jobs)
    _select(scene, [top, no_reference])
    with pytest.raises(RuntimeError, match="Nothing was queued"):
        _op(scene, "shotline_generate")
    assert len(runtime.queue().jobs) == jobs_before
    assert top.shotline.status == 'FAILED' and "channel 129" in top.shotline.status_message
    assert no_reference.shotline.status == 'FAILED' and "first-frame image is missing" in no_reference.shotline.status_message
    scene.render.resolution_x = 10  # the animatic needs 16 pixels at least
    ok = _text_shot(scene, "too small a frame", 60, 24, channel=2)
    shots.make_shot(ok)
    _select(scene, [ok])
    with pytest.raises(RuntimeError, match="at least 16 pixels"):
        _op(scene, "shotline_generate")
    assert len(runtime.queue().jobs) == jobs_before


def test_a_selected_take_strip_means_its_shot(song_scene):
    scene, _song = song_scene
    shot = _text_shot(scene, "a lighthouse at dawn", 1, 24)
    shots.make_shot(shot)
    _select(scene, [shot])
    _op(scene, "shotline_generate")
    _pump_until_idle()
    take = shots.take_strip(scene, shot)
    _select(scene, [take])  # only the take strip, as after clicking on it
    assert _op(scene, "shotline_generate") == {'FINISHED'}
    _pump_until_idle()
    assert len(shot.shotline.takes) == 2 and shots.take_strip(scene, shot) == take


@pytest.mark.parametrize("order", ["low first", "high first"])
def test_overlapping_shots_stack_their_takes_in_the_shots_order(song_scene, order):
    scene, _song = song_scene
    low = _text_shot(scene, "the wide shot", 1, 48, channel=2)
    high = _text_shot(scene, "a close-up over it", 12, 24, channel=3)
    for shot in (low, high):
        shots.make_shot(shot)
    for shot in ([low, high] if order == "low first" else [high, low]):
        _select(scene, [shot])
        _op(scene, "shotline_generate")
        _pump_until_idle()
    low_take, high_take = shots.take_strip(scene, low), shots.take_strip(scene, high)
    assert low.channel < high.channel < low_take.channel < high_take.channel
    assert compat.span(low_take) == compat.span(low) and compat.span(high_take) == compat.span(high)


def test_cancel_leaves_nothing_on_disk_or_timeline(song_scene):
    scene, _song = song_scene
    long_shot = _text_shot(scene, "a long slow pan", 1, 24 * 20)
    shots.make_shot(long_shot)
    scene.render.resolution_x, scene.render.resolution_y = 640, 360  # slow enough to cancel mid-way
    _select(scene, [long_shot])
    strips_before = {s.name for s in compat.strips_all(scene.sequence_editor)}
    _op(scene, "shotline_generate")
    end = time.monotonic() + 60
    while long_shot.shotline.status != 'GENERATING':
        assert time.monotonic() < end
        runtime.pump()
        time.sleep(0.02)
    scene.sequence_editor.active_strip = long_shot
    assert _op(scene, "shotline_cancel") == {'FINISHED'}
    _pump_until_idle(timeout=30)
    assert long_shot.shotline.status == 'CANCELLED'
    assert {s.name for s in compat.strips_all(scene.sequence_editor)} == strips_before
    shot_dir = mediafolder.unsaved_root() / long_shot.name
    leftovers = list(shot_dir.rglob("*")) if shot_dir.exists() else []
    assert leftovers == []
    assert len(long_shot.shotline.takes) == 0
