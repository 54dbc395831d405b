"""Accuracy of addon/beats.py on synthetic songs with exact ground truth (tests/signals.py), and its API."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import signals

from addon import beats

SONGS = signals.catalogue()
FOUR_FOUR = [name for name in SONGS if name != "waltz_3_4"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def analysed() -> dict:
    """name -> (song, analysis), built lazily and shared by the module's tests."""
    cache: dict = {}

    def get(name: str) -> tuple[signals.Song, beats.Analysis]:
        if name not in cache:
            song = SONGS[name]()
            cache[name] = (song, beats.analyze(song.audio, song.rate))
        return cache[name]

    return get


# -- the ground truth is the signal's ------------------------------------------------------------------------------

def test_ground_truth_marks_the_synthesised_hits() -> None:
    song = signals.build("kick_only", [signals.Section(4, 120, parts=("kick",))], signals.Groove(), seed=1)
    x = np.abs(song.audio.astype(float))
    starts = np.round(song.beats * song.rate).astype(int)
    assert not x[: starts[0]].any(), "silence before the first hit"
    assert x[starts[0]] > 0
    for n in starts[1:]:  # each kick's click makes the 2 ms after its sample louder than the 2 ms before
        assert x[n:n + 88].max() > 3 * x[n - 88:n].max()
    assert np.allclose(np.diff(song.beats), 0.5, atol=1.5 / song.rate)
    assert np.array_equal(song.downbeats, song.beats[::4])


def test_scores_against_known_answers() -> None:
    ref = np.arange(10) * 0.5
    assert signals.f_measure(ref, ref + 0.05) == 1.0
    assert signals.f_measure(ref, ref + 0.08) == 0.0
    assert signals.f_measure(ref, ref[::2]) == pytest.approx(2 * 5 / 15)
    assert signals.timing_error(ref, ref + 0.004) == pytest.approx(0.004)
    assert signals.cmlt(ref, ref) == 1.0
    assert signals.cmlt(ref, ref[::2]) == 0.0  # half tempo: wrong metrical level
    assert signals.cmlt(ref, ref + 0.25) == 0.0  # off-beat


# -- accuracy ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SONGS))
def test_beats(analysed, name: str) -> None:
    song, a = analysed(name)
    f = signals.f_measure(song.beats, a.beats)
    err = signals.timing_error(song.beats, a.beats)
    assert f >= 0.95, f"{name}: beat F {f:.3f}"
    assert err <= 0.010, f"{name}: median timing error {err * 1000:.1f} ms"
    assert a.bpm == pytest.approx(song.bpm, rel=0.02), f"{name}: tempo octave"


@pytest.mark.parametrize("name", FOUR_FOUR)
def test_downbeats_four_four(analysed, name: str) -> None:
    song, a = analysed(name)
    assert a.beats_per_bar == 4
    f = signals.f_measure(song.downbeats, a.downbeats)
    assert f >= 0.9, f"{name}: downbeat F {f:.3f}"


def test_three_four_detected(analysed) -> None:
    song, a = analysed("waltz_3_4")
    assert a.beats_per_bar == 3
    assert signals.f_measure(song.downbeats, a.downbeats) >= 0.9


def test_meter_can_be_given(analysed) -> None:
    song, _ = analysed("steady_120")
    a = beats.analyze(song.audio, song.rate, meter=3)
    assert a.beats_per_bar == 3
    assert np.all(np.diff(np.searchsorted(a.beats, a.downbeats)) % 3 == 0)


def test_quiet_intro_and_outro_keep_their_beats(analysed) -> None:
    song, a = analysed("quiet_intro")
    for start, end, label in (song.sections[0], song.sections[-1]):
        assert label in ("intro", "outro")
        ref = song.beats[(song.beats > start - 0.1) & (song.beats < end - 0.1)]
        est = a.beats[(a.beats > start - 0.1) & (a.beats < end - 0.1)]
        assert len(signals.match(ref, est)) == len(ref) == len(est), label


def test_silent_breakdown_keeps_the_grid(analysed) -> None:
    song, a = analysed("breakdown")
    start, end, _ = song.sections[1]
    inside = (song.beats > start + 0.1) & (song.beats < end - 0.1)
    est = a.beats[(a.beats > start + 0.1) & (a.beats < end - 0.1)]
    assert len(signals.match(song.beats[inside], est)) == inside.sum() == len(est)


def test_tempo_change_and_ramp_are_followed(analysed) -> None:
    _, step = analysed("tempo_change")
    times, bpm = step.tempo_curve
    assert np.median(bpm[times < 18]) == pytest.approx(120, rel=0.01)
    assert np.median(bpm[times > 23]) == pytest.approx(96, rel=0.01)
    _, ramp = analysed("tempo_ramp")
    low, high = ramp.bpm_range
    assert low == pytest.approx(110, abs=2) and high == pytest.approx(130, abs=2)


CHANGING = ("tempo_change", "tempo_ramp")


@pytest.mark.parametrize("name", list(SONGS))
def test_one_tempo_is_shown_unless_it_changes(analysed, name: str) -> None:
    song, a = analysed(name)
    low, high = a.bpm_range
    spread = (high - low) / np.median(a.tempo_curve[1])
    if name in CHANGING:
        assert a.tempo_changes and spread > 5 * beats.TEMPO_CHANGE
        assert a.tempo_text == f"{low:.0f}-{high:.0f} BPM"
    else:  # with room to spare: a steady song's jitter stays well under the threshold
        assert not a.tempo_changes and spread < beats.TEMPO_CHANGE / 2, f"{name}: {low:.2f}-{high:.2f}"
        assert a.tempo_text == f"{song.bpm:.1f} BPM"


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("bpm", [120, 128])
def test_a_steady_click_from_the_first_sample_is_one_tempo(rate: int, bpm: int) -> None:
    """Its first click cannot be placed as exactly as the others (no audio before it): that one beat is no
    tempo change, and the tempo of the whole click is its exact tempo."""
    song = signals.click(bpm, 8, rate)
    a = beats.analyze(song.audio, song.rate)
    assert signals.f_measure(song.beats, a.beats) == 1.0
    assert a.tempo_text == f"{bpm}.0 BPM"


def test_sections_find_verse_and_chorus(analysed) -> None:
    song, a = analysed("verse_chorus")
    bar = 4 * 60 / 128
    assert len(a.sections) == len(song.sections)
    for (start, _, label), (ref_start, _, ref_label) in zip(a.sections[1:], song.sections[1:]):
        assert abs(start - ref_start) <= bar / 2
        assert label == ref_label
    assert a.sections[0][2] == "verse"
    assert a.sections[0][0] == 0.0 and a.sections[-1][1] == pytest.approx(song.duration)


def test_sections_intro_outro_and_breakdown(analysed) -> None:
    song, a = analysed("quiet_intro")
    assert [label for _, _, label in a.sections] == ["intro", "chorus", "outro"]
    for (start, _, _), (ref_start, _, _) in zip(a.sections[1:], song.sections[1:]):
        assert start == pytest.approx(ref_start, abs=0.5)
    song, a = analysed("breakdown")
    assert [label for _, _, label in a.sections][1:] == ["breakdown", "drop"]
    for (start, _, _), (ref_start, _, _) in zip(a.sections[1:], song.sections[1:]):
        assert start == pytest.approx(ref_start, abs=0.5)


# -- input handling ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("samples, rate", [
    (np.zeros(0, np.float32), 44100),
    (np.zeros(4410, np.float32), 44100),
    (np.zeros(5 * 48000, np.float32), 48000),
    (np.zeros((3 * 44100, 2), np.float32), 44100),
])
def test_silence_and_tiny_input_give_no_beats(samples: np.ndarray, rate: int) -> None:
    a = beats.analyze(samples, rate)
    assert len(a.beats) == 0 and len(a.downbeats) == 0
    assert a.duration == pytest.approx(len(samples) / rate)
    assert beats.bars(a) == []
    assert a.bpm == 0.0


def test_stereo_and_other_rates_match_mono(analysed) -> None:
    song, a = analysed("steady_120")
    stereo = beats.analyze(np.stack([song.audio, song.audio], axis=1), song.rate)
    assert np.allclose(stereo.beats, a.beats, atol=1e-4)
    low_rate = beats.analyze(song.audio[::2], song.rate // 2)
    assert signals.f_measure(song.beats, low_rate.beats) >= 0.95
    assert signals.timing_error(song.beats, low_rate.beats) <= 0.010


def test_no_heavy_imports() -> None:
    code = ("import sys; import addon.beats; "
            "bad = [m for m in ('bpy', 'aud', 'scipy', 'librosa', 'numba', 'madmom') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- corrections, serialisation, bars ------------------------------------------------------------------------------

def test_halve_and_double(analysed) -> None:
    song, a = analysed("ballad_66")
    slow = a.halve_tempo()
    assert slow.bpm == pytest.approx(a.bpm / 2, rel=0.02)
    assert set(slow.beats) <= set(a.beats)
    assert a.downbeats[0] in slow.beats and set(slow.downbeats) <= set(slow.beats)
    fast = a.double_tempo()
    assert len(fast.beats) == 2 * len(a.beats) - 1
    assert fast.bpm == pytest.approx(2 * a.bpm, rel=0.02)
    assert signals.f_measure(song.downbeats, fast.downbeats[::2]) >= 0.9
    back = fast.halve_tempo()
    assert back.corrections == beats.Corrections() and np.array_equal(back.beats, a.beats)
    assert np.array_equal(fast.reset().beats, a.tracked_beats)


def test_phase_shift(analysed) -> None:
    _, a = analysed("steady_120")
    half = a.shift_phase(beats=0.5)
    inner = half.beats[1:-1]
    ibi = np.diff(a.beats)
    assert np.allclose(inner - a.beats[1:len(inner) + 1], 0.5 * ibi[1:len(inner) + 1], atol=1e-9)
    late = a.shift_phase(seconds=0.02)
    assert np.allclose(late.beats, a.beats + 0.02)
    assert np.allclose(late.downbeats, a.downbeats + 0.02)
    assert late.shift_phase(seconds=-0.02).beats == pytest.approx(a.beats)


def test_downbeat_shift(analysed) -> None:
    song, a = analysed("steady_120")
    moved = a.shift_downbeat(1)
    idx = np.searchsorted(a.beats, a.downbeats)
    assert set(np.searchsorted(moved.beats, moved.downbeats)) >= set(idx[:-1] + 1)
    assert signals.f_measure(song.downbeats, moved.downbeats) == 0.0
    assert signals.f_measure(song.downbeats, moved.shift_downbeat(-1).downbeats) >= 0.9
    assert np.array_equal(a.shift_downbeat(4).downbeats, a.downbeats)


def test_set_bpm_gives_a_fixed_grid_on_the_music(analysed) -> None:
    song, a = analysed("steady_96")
    fixed = a.set_bpm(96.0)
    assert np.allclose(np.diff(fixed.beats), 60 / 96)
    assert signals.f_measure(song.beats, fixed.beats) >= 0.95
    assert signals.timing_error(song.beats, fixed.beats) <= 0.010
    assert signals.f_measure(song.downbeats, fixed.downbeats) >= 0.9
    assert fixed.halve_tempo().bpm == pytest.approx(48.0)
    assert fixed.set_bpm(None).corrections == beats.Corrections()
    with pytest.raises(ValueError):
        a.set_bpm(0)


@pytest.mark.parametrize("correct, refusal", [
    (lambda a: a.set_bpm(1e-3), "0.001 BPM is not a tempo to cut on"),
    (lambda a: a.set_bpm(1e12), "1e[+]12 BPM is not a tempo to cut on"),
    (lambda a: a.set_bpm(float("nan")), "nan BPM is not a tempo to cut on"),
    (lambda a: a.shift_phase(beats=1e6), "no beats"),
    (lambda a: a.shift_phase(seconds=-600), "no beats"),
    (lambda a: a.double_tempo().double_tempo().double_tempo(), "960 BPM"),
    (lambda a: a.halve_tempo().halve_tempo().halve_tempo().halve_tempo(), "7.5 BPM"),
    (lambda a: a.set_beats_per_bar(17), "a bar has 1 to 16 beats, not 17"),
    (lambda a: a.set_beats_per_bar(16).shift_downbeat(10**30), "the song has 80"),
    (lambda a: a.set_beats_per_bar(16).set_bpm(20), "no whole bar of 16 beats"),
])
def test_a_correction_that_leaves_no_grid_is_refused(analysed, correct, refusal: str) -> None:
    _, a = analysed("steady_120")
    with pytest.raises(ValueError, match=refusal):
        correct(a)


def test_halving_a_grid_of_two_beats_is_refused() -> None:
    two = beats.Analysis(2.0, np.array([0.5, 1.0]), np.array([0]), 1, [(0.0, 2.0, "verse")])
    with pytest.raises(ValueError, match="one beat"):
        two.halve_tempo()
    assert two.double_tempo().beats.tolist() == [0.5, 0.75, 1.0]


def test_meter_correction(analysed) -> None:
    _, a = analysed("steady_120")
    three = a.set_beats_per_bar(3)
    assert three.beats_per_bar == 3
    assert np.all(np.diff(np.searchsorted(three.beats, three.downbeats)) == 3)
    assert three.downbeats[0] == a.downbeats[0]


def test_round_trip(analysed) -> None:
    _, a = analysed("verse_chorus")
    edited = a.halve_tempo().shift_phase(beats=0.25).shift_downbeat(2)
    for original in (a, edited):
        text = json.dumps(original.to_dict())
        copy = beats.Analysis.from_dict(json.loads(text))
        assert copy.corrections == original.corrections
        assert copy.sections == original.sections
        assert copy.beats_per_bar == original.beats_per_bar and copy.duration == original.duration
        assert np.allclose(copy.beats, original.beats, atol=1e-6)
        assert np.allclose(copy.downbeats, original.downbeats, atol=1e-6)
        assert np.allclose(copy.tracked_beats, original.tracked_beats, atol=1e-6)
    with pytest.raises(ValueError):
        beats.Analysis.from_dict({**a.to_dict(), "version": 999})


def test_bars(analysed) -> None:
    song, a = analysed("steady_120")
    bars = beats.bars(a)
    assert len(bars) == len(song.downbeats)
    starts = np.array([s for s, _ in bars])
    ends = np.array([e for _, e in bars])
    assert np.allclose(starts, a.downbeats)
    assert np.allclose(ends[:-1], starts[1:])
    assert np.allclose(ends - starts, 2.0, atol=0.01)
