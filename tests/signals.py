"""Synthetic songs with exact ground truth for the beat tracker, and the scores used against it.

Every song is built from a tempo map and drum/bass/pad patterns. Each drum hit, bass note and chord starts at an
exact sample, so the ground truth (beats, downbeats, section boundaries) is the list of sample positions the events
were written at, never something measured from the audio. Beats stay in the ground truth where the pattern leaves
them empty (syncopation, a silent breakdown): the grid a musician counts keeps running.

numpy only, deterministic (every random source is seeded).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

RATE = 44100
LEAD_IN_S = 0.37  # silence before the first downbeat, so nothing can assume a beat at time 0
TAIL_S = 0.6  # ring-out after the last event

# Note frequencies (Hz) of the chord roots used by the progressions.
_ROOTS = {"A": 55.0, "F": 43.65, "C": 65.41, "G": 49.0, "D": 73.42}
_MINOR = {"A", "D"}


@dataclass(frozen=True)
class Section:
    """A run of bars with one groove; tempo goes linearly from bpm to bpm_end (per beat) inside it."""

    bars: int
    bpm: float
    label: str = "verse"
    bpm_end: float | None = None
    gain_db: float = 0.0
    parts: tuple[str, ...] = ("kick", "snare", "hat", "bass", "pad")


@dataclass(frozen=True)
class Groove:
    """Step patterns of one bar: step -> velocity, on a grid of steps_per_beat steps per beat."""

    beats_per_bar: int = 4
    steps_per_beat: int = 4
    kick: dict[int, float] = field(default_factory=lambda: {0: 1.0, 4: 1.0, 8: 1.0, 12: 1.0})
    snare: dict[int, float] = field(default_factory=lambda: {4: 1.0, 12: 1.0})
    hat: dict[int, float] = field(default_factory=lambda: {s: (0.5 if s % 4 == 0 else 0.7) for s in range(0, 16, 2)})
    bass: dict[int, float] = field(default_factory=lambda: {s: 1.0 for s in range(0, 16, 2)})
    bass_len_steps: int = 2
    progression: str = "AFCG"


@dataclass
class Song:
    name: str
    audio: np.ndarray  # float32 (n,) or (n, 2)
    rate: int
    beats: np.ndarray  # seconds
    downbeats: np.ndarray  # seconds
    beats_per_bar: int
    bpm: float  # the tempo the ground truth counts (median)
    sections: list[tuple[float, float, str]]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.rate


# -- instruments: each returns one hit or note, starting at its first sample --------------------------------------

@lru_cache(maxsize=8)
def _kick_body(rate: int) -> np.ndarray:
    t = np.arange(int(0.35 * rate)) / rate
    freq = 48.0 + 110.0 * np.exp(-t / 0.025)
    return np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / 0.11)


def _kick(rate: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    body = _kick_body(rate).copy()
    n = int(0.01 * rate)
    body[:n] += rng.standard_normal(n) * np.exp(-np.arange(n) / (0.0015 * rate)) * 0.4
    return vel * body


def _snare(rate: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * rate)) / rate
    tone = np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.04) * 0.5
    noise = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / 0.07) * 0.45
    return vel * (tone + noise)


def _hat(rate: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.07 * rate)) / rate
    noise = np.diff(rng.standard_normal(t.size + 2), n=2) * 0.12
    return vel * noise * np.exp(-t / 0.018)


def _saw(freqs: tuple[float, ...], t: np.ndarray, harmonics: int, rate: int) -> np.ndarray:
    out = np.zeros_like(t)
    for f in freqs:
        for k in range(1, harmonics + 1):
            if k * f < rate / 2:
                out += np.sin(2 * np.pi * k * f * t) / k
    return out


# Tonal sounds are the same every time they recur: cache them by (rate, pitch, length in samples).
@lru_cache(maxsize=256)
def _bass(rate: int, freq: float, length: int) -> np.ndarray:
    t = np.arange(length) / rate
    env = np.minimum(1.0, t / 0.004) * np.exp(-t / 0.35) * np.minimum(1.0, (t[-1] - t) / 0.02)
    return 0.35 * env * _saw((freq,), t, 8, rate)


@lru_cache(maxsize=256)
def _pad(rate: int, root: float, minor: bool, length: int) -> np.ndarray:
    t = np.arange(length) / rate
    third = 2 ** ((3 if minor else 4) / 12)
    notes = (root * 4, root * 4 * third, root * 6, root * 4 * 1.003, root * 6 * 0.997)
    env = np.minimum(1.0, t / 0.12) * np.minimum(1.0, (t[-1] - t) / 0.15)
    return 0.05 * env * _saw(notes, t, 5, rate)


# -- song assembly -------------------------------------------------------------------------------------------------

def _beat_times(sections: list[Section], beats_per_bar: int) -> tuple[np.ndarray, list[int]]:
    """Beat times (one extra at the end) and the index of each section's first beat."""
    intervals, starts = [], []
    for sec in sections:
        starts.append(len(intervals))
        n = sec.bars * beats_per_bar
        end = sec.bpm if sec.bpm_end is None else sec.bpm_end
        intervals += list(60.0 / np.linspace(sec.bpm, end, n))
    times = LEAD_IN_S + np.concatenate([[0.0], np.cumsum(intervals)])
    return times, starts


def _sample_at(times: np.ndarray, beat: float, rate: int) -> int:
    """Sample index of a fractional beat position (linear between the beats around it)."""
    i = int(np.floor(beat))
    return int(round((times[i] + (beat - i) * (times[i + 1] - times[i])) * rate))


def _place(out: np.ndarray, start: int, sound: np.ndarray) -> None:
    end = min(out.shape[0], start + sound.size)
    out[start:end] += sound[: end - start]


def build(name: str, sections: list[Section], groove: Groove, seed: int = 0, rate: int = RATE,
          grooves: dict[int, Groove] | None = None, stereo: bool = False) -> Song:
    """Render the song. grooves maps a section index to its own groove (same meter) where it differs."""
    rng = np.random.default_rng(seed)
    bpb, spb = groove.beats_per_bar, groove.steps_per_beat
    times, starts = _beat_times(sections, bpb)
    total = int((times[-1] + TAIL_S) * rate)
    out = np.zeros(total)
    bar = 0
    gt_sections = []
    for si, (sec, first) in enumerate(zip(sections, starts)):
        g = (grooves or {}).get(si, groove)
        gain = 10 ** (sec.gain_db / 20)
        gt_sections.append((times[first], times[first + sec.bars * bpb], sec.label))
        for b in range(sec.bars):
            beat0 = first + b * bpb
            chord = g.progression[bar % len(g.progression)]
            bar += 1

            bar_len = times[beat0 + bpb] - times[beat0]

            def start(step: int, beat: int = beat0) -> int:
                return _sample_at(times, beat + step / spb, rate)

            for part, pattern, make in (("kick", g.kick, _kick), ("snare", g.snare, _snare), ("hat", g.hat, _hat)):
                if part in sec.parts:
                    for step, vel in pattern.items():
                        _place(out, start(step), make(rate, vel * (1 + 0.08 * rng.standard_normal()) * gain, rng))
            if "bass" in sec.parts:
                note = _bass(rate, _ROOTS[chord], int(bar_len * g.bass_len_steps / (bpb * spb) * rate))
                for step, vel in g.bass.items():
                    _place(out, start(step), vel * gain * note)
            if "pad" in sec.parts:
                _place(out, start(0), gain * _pad(rate, _ROOTS[chord], chord in _MINOR, int(bar_len * rate)))
    # times ends with the end of the last bar, where nothing is played: not a beat.
    beats = np.round(times[:-1] * rate) / rate
    downbeats = beats[::bpb]
    audio = (out / np.max(np.abs(out)) * 0.9).astype(np.float32)
    if stereo:
        audio = np.stack([audio, 0.8 * audio], axis=1)
    return Song(name, audio, rate, beats, downbeats, bpb, float(np.median(60 / np.diff(beats))), gt_sections)


def click(bpm: float, bars: int, rate: int = RATE, first_s: float = 0.0) -> Song:
    """A metronome: a 1 kHz click on every beat of `bars` bars of 4/4, louder on the one. The first click is on
    the file's first sample unless `first_s` says otherwise (the catalogue's songs all have a lead-in)."""
    t = np.arange(int(0.03 * rate)) / rate
    tick = np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.005)
    beats = np.round((first_s + np.arange(4 * bars) * 60.0 / bpm) * rate) / rate
    out = np.zeros(int((beats[-1] + TAIL_S) * rate))
    for k, beat in enumerate(beats):
        _place(out, int(round(beat * rate)), tick * (1.0 if k % 4 == 0 else 0.6))
    audio = (out * 0.9).astype(np.float32)
    return Song(f"click_{bpm:g}", audio, rate, beats, beats[::4], 4, float(bpm), [(0.0, len(out) / rate, "verse")])


def _grid(steps: list[int], vel: float = 1.0) -> dict[int, float]:
    return {s: vel for s in steps}


def catalogue() -> dict[str, Callable[[], Song]]:
    """Name -> zero-argument builder of every test song. Steps are sixteenths: 0, 4, 8, 12 are the beats of 4/4."""
    # kick 1, 3, 3&; snare 2, 4; eighth hats; bass on 1 and 3
    rock = Groove(kick=_grid([0, 8, 10]), bass=_grid([0, 8]), bass_len_steps=8)
    # kick 1, 3; snare 2, 4; soft hats
    half_time = Groove(kick=_grid([0, 8]), snare=_grid([4, 12], 0.9),
                       hat={s: (0.4 if s % 4 else 0.3) for s in range(0, 16, 2)}, bass=_grid([0, 8]), bass_len_steps=8)
    # oom-pah-pah: kick and bass on 1, soft snare on 2 and 3
    waltz = Groove(beats_per_bar=3, kick=_grid([0]), snare=_grid([4, 8], 0.5), hat=_grid([0, 4, 8], 0.5),
                   bass=_grid([0]), bass_len_steps=4, progression="CGAF")
    # kick 1, 1a, 3& (none on 3 or 4), snare 2, 4 with ghost notes: a dotted pulse competes with the beat
    syncopated = Groove(kick=_grid([0, 3, 10]), snare={4: 1.0, 12: 1.0, 7: 0.25, 15: 0.25},
                        hat={s: (0.6 if s % 4 else 0.5) for s in range(0, 16, 2)}, bass=_grid([0, 3, 10]),
                        bass_len_steps=2)
    # 66 BPM with even hi-hat eighths: trackers tend to count the eighths (132)
    ballad = Groove(kick=_grid([0, 10]), snare=_grid([4, 12], 0.8), hat=_grid(list(range(0, 16, 2)), 0.45),
                    bass=_grid([0, 8]), bass_len_steps=8, progression="CAFG")
    # two-step at 174: kick 1, 3&; snare 2, 4; trackers tend to count half time (87)
    dnb = Groove(kick=_grid([0, 10]), snare=_grid([4, 12]), hat=_grid(list(range(0, 16, 2)), 0.6),
                 bass=_grid([0]), bass_len_steps=16, progression="DDFC")
    # a verse's groove: kick 1, 3 and hats, no snare
    sparse = Groove(kick=_grid([0, 8]), snare={}, hat=_grid(list(range(0, 16, 2)), 0.5), bass=_grid([0, 8]),
                    bass_len_steps=8)
    quiet = ("hat", "pad")
    return {
        "steady_120": lambda: build("steady_120", [Section(20, 120)], Groove(), seed=1),
        "steady_96": lambda: build("steady_96", [Section(16, 96)], rock, seed=2, rate=48000),
        "steady_140": lambda: build("steady_140", [Section(24, 140)], half_time, seed=3, stereo=True),
        "tempo_change": lambda: build("tempo_change", [Section(10, 120), Section(8, 96, "chorus")], rock, seed=4),
        "tempo_ramp": lambda: build("tempo_ramp", [Section(20, 110, bpm_end=130)], Groove(), seed=5),
        "quiet_intro": lambda: build("quiet_intro", [Section(8, 120, "intro", gain_db=-24, parts=quiet),
                                                     Section(10, 120, "chorus"),
                                                     Section(4, 120, "outro", gain_db=-24, parts=quiet)],
                                     Groove(), seed=6),
        "waltz_3_4": lambda: build("waltz_3_4", [Section(24, 138)], waltz, seed=7),
        "syncopated": lambda: build("syncopated", [Section(16, 100)], syncopated, seed=8),
        "ballad_66": lambda: build("ballad_66", [Section(10, 66)], ballad, seed=9),
        "dnb_174": lambda: build("dnb_174", [Section(24, 174)], dnb, seed=10),
        "breakdown": lambda: build("breakdown", [Section(8, 124, "chorus"), Section(4, 124, "breakdown", parts=()),
                                                 Section(8, 124, "drop")], Groove(), seed=11),
        "verse_chorus": lambda: build("verse_chorus", [Section(8, 128, "verse", gain_db=-12),
                                                       Section(8, 128, "chorus"),
                                                       Section(8, 128, "verse", gain_db=-12),
                                                       Section(8, 128, "chorus")], Groove(), seed=12,
                                      grooves={0: sparse, 2: sparse}),
    }


# -- scores --------------------------------------------------------------------------------------------------------

def match(reference: np.ndarray, estimate: np.ndarray, window: float = 0.07) -> list[tuple[int, int]]:
    """One-to-one pairs (ref index, est index) within the window, in time order.

    For points on a line with a fixed window, pairing greedily in time order gives a maximum matching.
    """
    pairs, j = [], 0
    for i, r in enumerate(reference):
        while j < len(estimate) and estimate[j] < r - window:
            j += 1
        if j < len(estimate) and estimate[j] <= r + window:
            pairs.append((i, j))
            j += 1
    return pairs


def f_measure(reference: np.ndarray, estimate: np.ndarray, window: float = 0.07) -> float:
    if len(reference) == 0 or len(estimate) == 0:
        return 0.0
    hits = len(match(reference, estimate, window))
    return 2 * hits / (len(reference) + len(estimate))


def timing_error(reference: np.ndarray, estimate: np.ndarray, window: float = 0.07) -> float:
    """Median absolute error (s) of the matched beats."""
    pairs = match(reference, estimate, window)
    if not pairs:
        return float("inf")
    return float(np.median([abs(estimate[j] - reference[i]) for i, j in pairs]))


def cmlt(reference: np.ndarray, estimate: np.ndarray, tolerance: float = 0.175) -> float:
    """Correct metrical level, total (Davies, Degara & Plumbley 2009, as mir_eval computes it): the share of
    estimated beats that lie within tolerance x the reference interval of a reference beat not taken yet, and
    whose own interval (to the previous estimate; the next one for a first beat) is within tolerance of it."""
    if len(reference) < 2 or len(estimate) < 2:
        return 0.0
    used = np.zeros(len(reference), dtype=bool)
    good = 0
    for m, t in enumerate(estimate):
        i = int(np.argmin(np.abs(reference - t)))
        if used[i]:
            continue
        if m == 0 or i == 0:  # no predecessor: compare the following intervals
            j = min(i + 1, len(reference) - 1)
            ref_ibi = reference[j] - reference[j - 1]
            k = min(m + 1, len(estimate) - 1)
            est_ibi = estimate[k] - estimate[k - 1]
        else:
            ref_ibi = reference[i] - reference[i - 1]
            est_ibi = t - estimate[m - 1]
        if abs(t - reference[i]) < tolerance * ref_ibi and abs(1 - est_ibi / ref_ibi) < tolerance:
            used[i] = True
            good += 1
    return good / max(len(reference), len(estimate))
