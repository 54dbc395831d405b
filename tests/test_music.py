"""Cut on the music in Blender: Analyze Song (aud decode, cache), markers, grid corrections,
Lay Out Shots, Snap Shots, service-length rounding; the song strip may start late, be trimmed
and play in a 23.976 fps scene."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import bpy
import numpy as np
import pytest

import signals
from shotline.addon import beats, timing
from shotline.addon.blend import compat, runtime, shots, song
from shotline.addon.services import animatic, registry
from shotline.addon.services.base import Capabilities
from vse import set_fps

NTSC = Fraction(24000, 1001)


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="module")
def truth():
    return signals.catalogue()["steady_120"]()


@pytest.fixture
def music_scene(scene, truth, tmp_path):
    """The song starts at frame 100 with its first 2 s trimmed away, in a 23.976 fps scene."""
    set_fps(scene, NTSC)
    path = _write_wav(tmp_path / "song.wav", truth.audio, truth.rate)
    sound = compat.strips(scene.sequence_editor).new_sound("Song", str(path), channel=1, frame_start=100)
    left, right = compat.span(sound)
    compat.set_span(sound, left + timing.nearest_frame(2, NTSC), right)
    return scene, sound, path


def _op(scene, name, **kw):
    with bpy.context.temp_override(**compat.scene_override(scene)):
        return getattr(bpy.ops.sequencer, name)(**kw)


def _truth_frames(scene, sound, times):
    place = song.on_timeline(scene, sound)
    return sorted(place.nearest_frame(t) for t in times if place.audible(t))


def test_analysis_follows_the_song_strip_on_the_timeline(music_scene, truth):
    scene, sound, _path = music_scene
    assert _op(scene, "shotline_analyze_song") == {'FINISHED'}
    result = song.analysis(scene)
    assert result is not None and result.beats_per_bar == 4
    assert abs(result.bpm - 120) < 1
    ours = song.frames(scene, result.beats)
    expected = _truth_frames(scene, sound, truth.beats)
    assert ours[0] >= compat.span(sound)[0], "no beat before the strip's trimmed start"
    matched = sum(any(abs(o - e) <= 1 for o in ours) for e in expected)
    assert matched / len(expected) >= 0.95
    exact = sum(e in ours for e in expected)
    assert exact / len(expected) >= 0.9, "beat frames are the frames nearest the beat times"


def test_analysis_is_cached_by_content_and_keeps_corrections(music_scene, truth, tmp_path):
    scene, sound, path = music_scene
    _op(scene, "shotline_analyze_song")
    first = song.analysis(scene)
    assert _op(scene, "shotline_correct_grid", action='HALVE') == {'FINISHED'}
    halved = song.analysis(scene)
    assert len(halved.beats) == pytest.approx(len(first.beats) / 2, abs=1)
    assert len(halved.tracked_beats) == len(first.tracked_beats), "the tracked beats are kept"
    key = scene.shotline.song_key
    result, reused = song.analyze(scene)
    assert reused and result.corrections.tempo_octaves == -1
    # the same content under another name: still cached
    renamed = path.with_name("renamed.wav")
    path.rename(renamed)
    sound.sound.filepath = str(renamed)
    assert song.analyze(scene)[1] and scene.shotline.song_key == key
    # the file changes: analysed afresh
    _write_wav(renamed, truth.audio[: len(truth.audio) // 2], truth.rate)
    result, reused = song.analyze(scene)
    assert not reused and scene.shotline.song_key != key
    assert result.duration == pytest.approx(truth.duration / 2, abs=0.01)
    _op(scene, "shotline_correct_grid", action='RESET')
    assert song.analysis(scene).corrections == beats.Corrections()


def test_markers_are_ours_only(music_scene):
    scene, _sound, _path = music_scene
    mine = scene.timeline_markers.new("chorus starts", frame=500)
    _op(scene, "shotline_analyze_song", markers='BARS')
    ours = [m for m in scene.timeline_markers if m.name.startswith(song.MARKER_PREFIX)]
    bar_frames = song.frames(scene, [a for a, _b in beats.bars(song.analysis(scene))])
    assert sorted(m.frame for m in ours) == bar_frames
    _op(scene, "shotline_analyze_song", markers='BEATS')
    assert sum(m.name.startswith(song.MARKER_PREFIX) for m in scene.timeline_markers) == len(
        song.frames(scene, song.analysis(scene).beats))
    assert _op(scene, "shotline_remove_markers") == {'FINISHED'}
    assert [m.name for m in scene.timeline_markers] == [mine.name]


def test_lay_out_every_two_bars_on_bar_frames(music_scene):
    scene, _sound, _path = music_scene
    _op(scene, "shotline_analyze_song")
    blocker = compat.new_effect(compat.strips(scene.sequence_editor), "user title", 'COLOR', 2, 300, 40)
    assert _op(scene, "shotline_lay_out", mode='BARS', bars=2, first_bar=3, last_bar=14, channel=2) == {'FINISHED'}
    made = shots.shots(scene)
    assert len(made) == 6
    bar_frames = song.frames(scene, song.analysis(scene).downbeats)
    for shot in made:
        left, right = compat.span(shot)
        assert left in bar_frames and right in bar_frames
    spans = sorted(compat.span(s) for s in made)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "consecutive shots share their cut"
    assert compat.span(blocker) == (300, 340) and blocker.channel == 2
    assert any(s.channel == 3 for s in made), "the shot over the user's strip went one channel up"


def test_lay_out_from_a_shot_list_and_per_section(music_scene, tmp_path):
    scene, _sound, _path = music_scene
    _op(scene, "shotline_analyze_song")
    listing = tmp_path / "shots.csv"
    listing.write_text("bars,prompt\n2,a neon sunrise\n1,the singer close-up\n4,a car at night\n")
    assert _op(scene, "shotline_lay_out", mode='LIST', filepath=str(listing), first_bar=2) == {'FINISHED'}
    made = sorted(shots.shots(scene), key=lambda s: compat.span(s)[0])
    assert [shots.prompt(s) for s in made] == ["a neon sunrise", "the singer close-up", "a car at night"]
    bar_list = beats.bars(song.analysis(scene))
    place = song.on_timeline(scene, song.strip(scene))
    assert compat.span(made[0]) == (place.nearest_frame(bar_list[1][0]), place.nearest_frame(bar_list[2][1]))
    too_long = tmp_path / "long.csv"
    too_long.write_text("bars,prompt\n400,too long\n")
    with pytest.raises(RuntimeError, match="the song has"):
        _op(scene, "shotline_lay_out", mode='LIST', filepath=str(too_long))
    before = len(shots.shots(scene))
    _op(scene, "shotline_lay_out", mode='SECTIONS', channel=6)
    assert len(shots.shots(scene)) > before


def test_snap_moves_shot_edges_to_bars_and_beats(music_scene):
    scene, _sound, _path = music_scene
    _op(scene, "shotline_analyze_song")
    result = song.analysis(scene)
    bar_frames = song.frames(scene, result.downbeats)
    beat_frames = song.frames(scene, result.beats)
    shot = compat.new_effect(compat.strips(scene.sequence_editor), "rough", 'TEXT', 3, bar_frames[2] + 5,
                             bar_frames[4] - bar_frames[2] - 3)
    shots.make_shot(shot)
    for s in compat.strips_all(scene.sequence_editor):
        s.select = s == shot
    assert _op(scene, "shotline_snap", to='BAR') == {'FINISHED'}
    assert compat.span(shot) == (bar_frames[2], bar_frames[4])
    compat.set_span(shot, beat_frames[9] + 4, beat_frames[13] - 3)
    _op(scene, "shotline_snap", to='BEAT')
    assert compat.span(shot) == (beat_frames[9], beat_frames[13])


def test_shot_length_rounds_up_to_what_the_service_accepts(scene, monkeypatch):
    """A 6 s shot on a service that makes 5 s or 10 s clips: it asks for 10 s, the take is cut at 6 s."""

    class FiveOrTen(animatic.AnimaticService):
        id, label = "five_or_ten", "Five or ten seconds"
        capabilities = Capabilities(durations=(5.0, 10.0))

    service = FiveOrTen()
    monkeypatch.setitem(registry._SERVICES, service.id, service)
    set_fps(scene, Fraction(24))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    shot = compat.new_effect(compat.strips(scene.sequence_editor), "six", 'TEXT', 2, 1, 144)
    shots.make_shot(shot)
    shot.shotline.prompt, shot.shotline.service = "six seconds", service.id
    request = shots.build_request(scene, shot, service)
    assert request.frames == 240
    runtime.submit(scene, [shot])
    runtime.run_until_idle(timeout=120, interval=0.02)
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    take = shots.take_strip(scene, shot)
    assert compat.span(take) == (1, 145)
    assert shot.shotline.takes[0].frames == 240


def test_corrections_move_our_markers_with_the_grid(music_scene):
    scene, _sound, _path = music_scene
    _op(scene, "shotline_analyze_song", markers='BEATS')
    before = sum(m.name.startswith(song.MARKER_PREFIX) for m in scene.timeline_markers)
    _op(scene, "shotline_correct_grid", action='DOUBLE')
    after = sum(m.name.startswith(song.MARKER_PREFIX) for m in scene.timeline_markers)
    assert after == len(song.frames(scene, song.analysis(scene).beats))
    assert after == pytest.approx(2 * before, abs=2)


def test_missing_song_file_is_a_clear_error(music_scene):
    scene, _sound, path = music_scene
    path.unlink()
    with pytest.raises(RuntimeError, match="The song file is missing: song.wav"):
        _op(scene, "shotline_analyze_song")
    assert song.analysis(scene) is None
