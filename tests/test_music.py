"""Cut on the music in Blender: Analyze Song (aud decode, cache, in the background), which strip is
the song, markers, grid corrections, Lay Out Shots, Snap Shots, service-length rounding; the song
strip may start late, be trimmed and play in a 23.976 fps scene."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import wave
from fractions import Fraction
from pathlib import Path

import bpy
import numpy as np
import pytest

import signals
from shotline.addon import beats, timing
from shotline.addon.blend import compat, runtime, shots, song, sources
from shotline.addon.services import animatic, registry
from shotline.addon.services.base import Capabilities
from shotline.panels import shot as shot_panels
from vse import add_service, add_shot, editor_op, generate, select, set_fps

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

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
    with compat.operators_on(scene):
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


def _by_start(strips) -> list:
    return sorted(strips, key=lambda s: compat.span(s)[0])


def test_lay_out_per_section_then_from_a_shot_list(music_scene, tmp_path):
    scene, sound, _path = music_scene
    _op(scene, "shotline_analyze_song")
    assert _op(scene, "shotline_lay_out", mode='SECTIONS') == {'FINISHED'}
    (_start, _end, label), = song.analysis(scene).sections  # one groove all through: one section
    (section_shot,) = shots.shots(scene)
    assert section_shot.shotline.placeholder == label and shots.prompt(section_shot) == ""
    assert compat.span(section_shot) == compat.span(sound), "cut to the audible part of the song"
    listing = tmp_path / "shots.csv"
    listing.write_text("bars,prompt\n2,a neon sunrise\n1,the singer close-up\n4,a car at night\n")
    assert _op(scene, "shotline_lay_out", mode='LIST', filepath=str(listing), first_bar=2) == {'FINISHED'}
    made = _by_start(shots.shots(scene))
    assert label not in {s.shotline.placeholder for s in made}, "the untouched section shot was replaced"
    assert [shots.prompt(s) for s in made] == ["a neon sunrise", "the singer close-up", "a car at night"]
    bar_list = beats.bars(song.analysis(scene))
    place = song.on_timeline(scene, song.strip(scene))
    assert compat.span(made[0]) == (place.nearest_frame(bar_list[1][0]), place.nearest_frame(bar_list[2][1]))
    too_long = tmp_path / "long.csv"
    too_long.write_text("bars,prompt\n400,too long\n")
    with pytest.raises(RuntimeError, match="the song has"):
        _op(scene, "shotline_lay_out", mode='LIST', filepath=str(too_long))
    assert _by_start(shots.shots(scene)) == made


def _no_two_shots_at_once(scene) -> None:
    spans = sorted(compat.span(s) for s in shots.shots(scene))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans


def test_lay_out_again_replaces_its_untouched_shots_and_keeps_the_directors(music_scene, capfd):
    scene, _sound, _path = music_scene
    _op(scene, "shotline_analyze_song")
    assert _op(scene, "shotline_lay_out", mode='BARS', bars=2, first_bar=3, last_bar=14) == {'FINISHED'}
    first = _by_start(shots.shots(scene))
    cuts = {compat.span(s) for s in first}
    assert len(first) == 6 and all(s.shotline.placeholder.startswith("bars ") for s in first)
    prompted, with_take, typed = first[:3]
    prompted.shotline.prompt = "the singer in the rain"
    with_take.shotline.takes.add()  # a take and no prompt: the director cleared it after generating
    typed.text = "a car at night"  # typed over the placeholder
    only_negative = first[3]  # the director started on it: a negative prompt, no prompt yet
    only_negative.shotline.negative_prompt = "no text on screen"
    # The director's own Color strip made a shot over bars 13-14, no prompt yet: not Shotline's to replace.
    left, right = compat.span(first[5])
    own = compat.new_effect(compat.strips(scene.sequence_editor), "own", 'COLOR', 5, left, right - left)
    select(scene, [own])
    _op(scene, "shotline_make_shots")
    directors = {s.name: compat.span(s) for s in (prompted, with_take, typed, only_negative, own)}
    capfd.readouterr()

    assert _op(scene, "shotline_lay_out", mode='BARS', bars=2, first_bar=3, last_bar=14) == {'FINISHED'}
    again = _by_start(shots.shots(scene))
    assert len(again) == 6, [s.name for s in again]
    assert {s.name: compat.span(s) for s in again if s.name in directors} == directors
    assert {compat.span(s) for s in again} == cuts
    _no_two_shots_at_once(scene)
    assert "replaced 2 untouched shot(s); 5 slot(s) left to your shots there" in capfd.readouterr().out

    assert _op(scene, "shotline_lay_out", mode='BARS', bars=1, first_bar=3, last_bar=14) == {'FINISHED'}
    one_bar = [s.shotline.placeholder for s in shots.shots(scene) if s.name not in directors]
    assert sorted(one_bar) == sorted(f"bar {n}" for n in (11, 12))
    assert {s.name: compat.span(s) for s in shots.shots(scene) if s.name in directors} == directors
    _no_two_shots_at_once(scene)
    capfd.readouterr()
    assert _op(scene, "shotline_lay_out", mode='BARS', bars=2, first_bar=3, last_bar=8) == {'CANCELLED'}
    assert "No shots: your shots are already there" in capfd.readouterr().out


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


def test_snap_fits_the_take_to_the_moved_shot(music_scene):
    """A take never shows past its shot: snapping moves and trims the take strip with its shot."""
    scene, _sound, _path = music_scene
    scene.render.resolution_x, scene.render.resolution_y = 160, 90
    _op(scene, "shotline_analyze_song")
    bar_frames = song.frames(scene, song.analysis(scene).downbeats)
    # a bar is 2 s (48 frames): both edges are within half a bar of bars 3 and 5
    shot = add_shot(scene, "rough cut", bar_frames[3] + 20, bar_frames[5] + 22 - (bar_frames[3] + 20), channel=3)
    generate(scene, [shot])
    take = shots.take_strip(scene, shot)
    assert shot.shotline.status == 'PLACED' and compat.span(take) == compat.span(shot)
    select(scene, [shot])
    assert _op(scene, "shotline_snap", to='BAR') == {'FINISHED'}
    assert compat.span(shot) == (bar_frames[3], bar_frames[5]), "earlier and two frames shorter"
    assert compat.span(take) == compat.span(shot)
    assert compat.content_start(take) == bar_frames[3], "the take starts on the shot's first frame"


def test_shot_length_rounds_up_to_what_the_service_accepts(scene, monkeypatch):
    """A 6 s shot on a service that makes 5 s or 10 s clips: it asks for 10 s, the take is cut at 6 s."""

    class FiveOrTen(animatic.AnimaticService):
        id, label = "five_or_ten", "Five or ten seconds"
        capabilities = Capabilities(durations=(5.0, 10.0))

    service = FiveOrTen()
    add_service(monkeypatch, service)
    set_fps(scene, Fraction(24))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    shot = compat.new_effect(compat.strips(scene.sequence_editor), "six", 'TEXT', 2, 1, 144)
    shots.make_shot(shot)
    shot.shotline.prompt, shot.shotline.service = "six seconds", service.id
    request = shots.build_request(scene, shot, service, sources.gather(scene, shot, service))
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


def test_a_correction_that_leaves_no_grid_is_refused_and_changes_nothing(music_scene):
    scene, _sound, _path = music_scene
    _op(scene, "shotline_analyze_song", markers='BARS')
    stored = scene.shotline.song_analysis
    markers = sorted((m.name, m.frame) for m in scene.timeline_markers)
    for action, amount, refusal in [
        ('BPM', 0.001, "Set BPM: 0.001 BPM is not a tempo to cut on"),
        ('BPM', 1e9, "Set BPM: 1e[+]09 BPM is not a tempo to cut on"),
        ('PHASE', 1e6, "Shift Beats: that would leave no beats in the song"),
        ('PHASE', -100, "Shift Beats: that would leave no beats in the song"),
        ('DOWNBEAT', 1e12, "Shift Downbeat: that would move the downbeats"),
        ('METER', 1000, "Set Beats per Bar: a bar has 1 to 16 beats, not 1000"),
    ]:
        with pytest.raises(RuntimeError, match=refusal + ".*; the grid is unchanged"):
            _op(scene, "shotline_correct_grid", action=action, amount=amount)
        assert scene.shotline.song_analysis == stored, action
        assert sorted((m.name, m.frame) for m in scene.timeline_markers) == markers, action
    for _ in range(2):  # 120 -> 240 -> 480 BPM
        assert _op(scene, "shotline_correct_grid", action='DOUBLE') == {'FINISHED'}
    doubled = scene.shotline.song_analysis
    with pytest.raises(RuntimeError, match="Double Tempo: that would make the grid 960 BPM"):
        _op(scene, "shotline_correct_grid", action='DOUBLE')
    assert scene.shotline.song_analysis == doubled
    # a grid of two beats (the song's audible part holds only a second of music) cannot be halved
    song.store(scene, beats.Analysis(3.0, np.array([2.5, 3.0]), np.array([0]), 1, [(0.0, 3.0, "verse")]))
    two = scene.shotline.song_analysis
    with pytest.raises(RuntimeError, match="Half Tempo: that would leave one beat in the song"):
        _op(scene, "shotline_correct_grid", action='HALVE')
    assert scene.shotline.song_analysis == two


def test_a_steady_click_reads_as_one_tempo(scene, tmp_path, capfd):
    """A click from the file's first sample used to read "120-123 BPM"."""
    click = signals.click(120, 8, 44100)
    path = _write_wav(tmp_path / "click.wav", click.audio, click.rate)
    compat.strips(scene.sequence_editor).new_sound("Click", str(path), channel=1, frame_start=1)
    capfd.readouterr()
    assert _op(scene, "shotline_analyze_song") == {'FINISHED'}
    assert "Info: Click: 120.0 BPM, 4/4, 32 beats" in capfd.readouterr().out
    assert "120.0 BPM · 4/4 · 32 beats" in _music_panel(scene)


class _Recorder:
    """A layout that records what a panel draws (nothing is drawn headless)."""

    def __init__(self, log: list):
        object.__setattr__(self, "_log", log)

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self._log.append((name, args, kwargs))
            return _Recorder(self._log)
        return call

    def __setattr__(self, _name, _value):  # an operator button's properties
        pass


def _music_panel(scene) -> str:
    """What the Music panel shows: its texts and operators, one line each."""
    log: list = []
    with bpy.context.temp_override(**compat.scene_override(scene)):
        shot_panels.SEQUENCER_PT_shotline_music.draw(type("Panel", (), {"layout": _Recorder(log)})(), bpy.context)
    return "\n".join(" ".join(map(str, args)) + " " + str(kw.get("text", "")) for _name, args, kw in log)


def _wav_of(path: Path, seconds: float, rate: int = 22050) -> Path:
    return _write_wav(path, np.zeros(int(seconds * rate), np.float32), rate)


def test_the_song_is_the_strip_itself(scene, tmp_path):
    ed = scene.sequence_editor
    backing = compat.strips(ed).new_sound("Backing", str(_wav_of(tmp_path / "backing.wav", 10)), 1, 1)
    vocals = compat.strips(ed).new_sound("Vocals", str(_wav_of(tmp_path / "vocals.wav", 6)), 2, 1)
    compat.new_effect(compat.strips(ed), "Title", 'COLOR', 3, 1, 24)
    settings = scene.shotline
    assert song.strip(scene) == backing and settings.song == "", "the longest sound strip by default"

    ed.active_strip = vocals
    assert _op(scene, "shotline_set_song") == {'FINISHED'}
    assert song.strip(scene) == vocals and settings.song == "Vocals"
    vocals.name = "Lead vocal"
    assert song.strip(scene) == vocals, "renamed, still the song"
    assert song.name_shown_is_stale(scene), "the panel asks its timer to show the new name"
    runtime.resolve_copies()  # that timer's work
    assert settings.song == "Lead vocal"

    settings.song = "Backing"  # the song picker in the Project panel
    assert song.strip(scene) == backing and settings.song == "Backing"
    settings.song = "Title"  # the picker lists every strip: a Color strip is no song
    assert song.strip(scene) == backing
    settings.song = "Lead vocal"
    settings.song = ""
    assert song.strip(scene) == backing and vocals.shotline.role == 'NONE', "empty: the longest again"

    settings.song = "Lead vocal"
    vocals.name = "Vocals take 2"  # renamed, then copied: the copy is not a second song
    select(scene, [vocals])
    assert editor_op(scene, "duplicate") == {'FINISHED'}
    (copy,) = [s for s in compat.strips_all(ed) if s.type == 'SOUND' and s not in (backing, vocals)]
    assert copy.shotline.role == 'SONG', "Blender copies the role with the strip"
    assert song.strip(scene) == vocals and song.copies(scene) == [copy]
    assert f"\"{copy.name}\" is a copy of the song strip: not followed" in _music_panel(scene)
    runtime.resolve_copies()  # as on save: the copy becomes a plain sound strip
    assert copy.shotline.role == 'NONE' and song.copies(scene) == [] and song.strip(scene) == vocals


def test_a_file_saved_before_song_roles_keeps_its_song(scene, tmp_path):
    ed = scene.sequence_editor
    compat.strips(ed).new_sound("Backing", str(_wav_of(tmp_path / "backing.wav", 10)), 1, 1)
    vocals = compat.strips(ed).new_sound("Vocals", str(_wav_of(tmp_path / "vocals.wav", 6)), 2, 1)
    scene.shotline[song.NAME_KEY] = "Vocals"  # what such a file holds: the name only
    assert song.strip(scene) == vocals and scene.shotline.song == "Vocals"
    runtime.resolve_copies()  # on load: the name becomes the role, so a rename keeps the song
    vocals.name = "Lead vocal"
    assert song.strip(scene) == vocals and vocals.shotline.role == 'SONG'


@pytest.fixture(scope="module")
def five_minutes(tmp_path_factory) -> Path:
    """A master as a director gets it: five minutes of stereo WAV at 48 kHz."""
    long = signals.build("five_minutes", [signals.Section(150, 120)], signals.Groove(), seed=1, rate=48000,
                         stereo=True)
    return _write_wav(tmp_path_factory.mktemp("long") / "five_minutes.wav", long.audio, long.rate)


def test_analyze_song_runs_off_the_main_thread(scene, five_minutes, monkeypatch):
    """The button (background=True, as its invoke sets) returns at once; the main thread keeps running
    while a five-minute song is decoded and analysed, the Music panel shows the progress, and the result
    lands with the bar markers and is cached."""
    compat.strips(scene.sequence_editor).new_sound("Song", str(five_minutes), 1, 1)
    started = time.perf_counter()
    assert _op(scene, "shotline_analyze_song", background=True, markers='BARS') == {'FINISHED'}
    returned = time.perf_counter() - started
    running = song.analysing(scene)
    assert running is not None and song.analysis(scene) is None
    assert returned < 0.1, f"the operator held the main thread {returned:.3f} s"

    progress, panels, gaps = [], [], []
    last = time.perf_counter()
    while song.analysing(scene):  # the main thread, as Blender's timer drives it
        progress.append(running.progress)
        panels.append(_music_panel(scene))
        song.pump_analysis()
        time.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    took = time.perf_counter() - started
    assert song.problem(scene) == ""
    assert len(gaps) > 50, f"only {len(gaps)} turns in {took:.2f} s: too quick to tell"
    assert max(gaps) < 0.1, f"the main thread waited {max(gaps):.3f} s of {took:.2f} s"
    assert progress == sorted(progress) and any(0.4 < p < 1.0 for p in progress), progress[::10]
    assert any("Analysing Song" in text and "%" in text and "sequencer.shotline_cancel_analysis" in text
               for text in panels)

    result = song.analysis(scene)
    assert result is not None and result.tempo_text == "120.0 BPM" and len(beats.bars(result)) == 150
    assert sum(m.name.startswith(song.MARKER_PREFIX) for m in scene.timeline_markers) == 150
    assert "sequencer.shotline_analyze_song" in _music_panel(scene)

    def not_again(*_args, **_kw):
        raise AssertionError("the cached analysis was computed again")

    monkeypatch.setattr(beats, "analyze", not_again)
    assert _op(scene, "shotline_analyze_song", background=True) == {'FINISHED'}
    song.run_until_analysed(timeout=60, interval=0.01)
    assert song.problem(scene) == "" and song.analysis(scene).to_dict() == result.to_dict()


def test_a_wav_decoded_in_pieces_is_the_whole_file(tmp_path, five_minutes):
    """Decoded 10 s at a time on the worker (aud holds the GIL while it decodes), sample for sample."""
    mono = np.random.default_rng(2).uniform(-0.9, 0.9, int(22050 * 95.5)).astype(np.float32)
    for path in (five_minutes, _write_wav(tmp_path / "mono_22k.wav", mono, 22050)):
        done = []
        pieces, rate = song.decode(str(path), done.append)
        whole, whole_rate = song.decode(str(path))
        assert rate == whole_rate and pieces.shape == whole.shape and np.array_equal(pieces, whole), path.name
        assert len(done) == -(-len(whole) // (10 * rate)) and done == sorted(done)


def _workers_alive() -> list:
    return [t for t in threading.enumerate() if t.name == "shotline-song"]


def test_cancel_analysis(scene, five_minutes):
    compat.strips(scene.sequence_editor).new_sound("Song", str(five_minutes), 1, 1)
    assert _op(scene, "shotline_analyze_song", background=True) == {'FINISHED'}
    with pytest.raises(RuntimeError, match="Already analysing \"Song\": wait for it or cancel it"):
        _op(scene, "shotline_analyze_song", background=True)
    assert _op(scene, "shotline_cancel_analysis") == {'FINISHED'}
    assert song.analysing(scene) is None
    deadline = time.monotonic() + 10
    while _workers_alive() and time.monotonic() < deadline:
        song.pump_analysis()
        time.sleep(0.02)
    assert not _workers_alive(), "the worker stops"
    assert song.analysis(scene) is None and song.problem(scene) == ""


def test_a_song_blender_cannot_decode_is_a_clear_error(scene, tmp_path):
    """Blender 4.5 aborts on aud's data() of such a file: the specs are read first."""
    broken = tmp_path / "broken.wav"
    broken.write_bytes(np.random.default_rng(1).bytes(50_000))
    compat.strips(scene.sequence_editor).new_sound("Song", str(_wav_of(broken, 3)), 1, 1)
    broken.write_bytes(np.random.default_rng(1).bytes(50_000))  # Blender opened it fine; now it is damaged
    with pytest.raises(RuntimeError, match="Blender cannot decode broken.wav"):
        _op(scene, "shotline_analyze_song")
    assert _op(scene, "shotline_analyze_song", background=True) == {'FINISHED'}
    song.run_until_analysed(timeout=60, interval=0.01)
    assert song.problem(scene).startswith("Blender cannot decode broken.wav")
    assert "Blender cannot decode broken.wav" in _music_panel(scene)
    assert song.analysis(scene) is None


QUIT_WHILE_ANALYSING = """
import sys
sys.path.insert(0, {scripts!r})
import shotline_dev
shotline_dev.expose_checkout()
import bpy
shotline_dev.enable()
from shotline.addon.blend import compat, song


def analyse():
    scene = bpy.context.scene
    compat.strips(scene.sequence_editor_create()).new_sound("Song", {wav!r}, 1, 1)
    with compat.operators_on(scene):
        bpy.ops.sequencer.shotline_analyze_song(background=True)
    assert song.analysing(scene) is not None


analyse()
bpy.ops.wm.read_homefile(use_empty=True)
song.run_until_analysed(timeout=30, interval=0.01)
print("after opening another file:", song.analysis(bpy.context.scene), flush=True)
analyse()
print("quitting", flush=True)
sys.exit(0)
"""


def test_opening_a_file_or_quitting_while_analysing(tmp_path, five_minutes):
    script = tmp_path / "quit.py"
    script.write_text(QUIT_WHILE_ANALYSING.format(scripts=str(SCRIPTS), wav=str(five_minutes)))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    said = [line for line in run.stdout.splitlines() if not line.startswith(("Info: Analysing", "00:"))]
    assert said == ["after opening another file: None", "quitting"], run.stdout
    assert "Traceback" not in run.stderr
