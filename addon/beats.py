"""Tempo, beats, downbeats and sections of a song, in numpy only (Blender ships numpy and nothing else we rely on).

Pipeline (shared/research/beat-and-musicvideo.md, A.4):

1. downmix, decimate to about 22 kHz, STFT at about 100 frames/s, log-spaced bands. Onset strength is the
   spectral flux of the log-compressed bands (level-independent: a quiet intro still has onsets); band fluxes of
   the linear bands say which instrument is loud (low: kick and bass, 1-5 kHz: snare, below 2.5 kHz: accents);
2. local tempo: autocorrelation of the onset strength in 8 s windows, decoded by Viterbi over log-spaced tempo
   bins, so the tempo may step or drift inside the song; a second path from another tempo family (not an
   octave of the first: a dotted rhythm can out-correlate the beat) is kept as a candidate;
3. beats by dynamic programming (Ellis 2007) with each frame's expected period. No weak edge beats are trimmed
   against the whole song (only beats with no onset compared with their neighbours: a ring-out, silence);
4. metrical level: of each candidate grid, its halves and its double, keep the one whose beats explain the
   accents best, with no empty every-other beat, and with a backbeat (see _level_score): trackers commonly
   double a ballad with hi-hat eighths or halve drum-and-bass;
5. each beat moves onto its onset peak (sub-frame); beats with none (a silent breakdown) are spaced evenly
   between their neighbours, so the grid keeps running;
6. downbeats: Viterbi over the position in the bar (3 or 4 beats) scored by chord changes and low-band onsets;
7. sections: level and band-balance novelty between bars, labelled by level and rhythm density.

All times are seconds in the song file's own time. `Analysis` keeps the tracked grid and the user's
`Corrections`; its `beats`, `downbeats` and tempo read the corrected grid.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

FPS = 100.0  # target onset frame rate
WINDOW_S = 0.046  # STFT window: long enough to resolve kick from bass
WORK_RATE = 22050  # decimate towards this rate; band content above ~10 kHz adds nothing to onsets
TIGHTNESS = 100.0  # Ellis's alpha: cost of a beat interval that differs from the local period
BPM_MIN, BPM_MAX = 30.0, 300.0
BINS_PER_OCTAVE = 40  # tempo resolution of the curve
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0  # log-normal tempo prior (Ellis 2007)
# Flux peak minus true onset: the log rise peaks while the attack is still in the window's leading half
# (measured on the synthetic kicks, snares and hats of tests/signals.py).
ONSET_LAG_S = -0.0094


# -- front end -----------------------------------------------------------------------------------------------------

def _mono(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:  # a matrix product: 0.02-0.05 s where mean(axis=1) takes 0.3 s (5-minute stereo song)
        x = x @ np.full(x.shape[1], 1.0 / max(1, x.shape[1]), dtype=np.float32)
    return x


def _decimate(x: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Integer decimation to about WORK_RATE. The low-pass is three passes of a q-sample box (a binomial filter):
    cheap, and it keeps aliased hi-hats out of the snare band."""
    q = max(1, int(round(rate / WORK_RATE)))
    if q == 1:
        return x, float(rate)
    box = np.full(q, 1.0 / q, dtype=np.float32)
    for _ in range(3):
        x = np.convolve(x, box, mode="same")
    return x[::q].astype(np.float32), rate / q


def _band_matrix(n_fft: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced triangular bands (12 per octave, 30 Hz to 11 kHz), merged where they are narrower than a bin;
    returns (bins x bands weights, band centre frequencies)."""
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    edges = 440.0 * 2.0 ** (np.arange(-48, 48) / 12.0)
    edges = edges[(edges >= 30) & (edges <= min(11000.0, rate / 2))]
    bins = np.unique(np.round(edges * n_fft / rate).astype(int))
    weights = np.zeros((freqs.size, bins.size - 2), dtype=np.float32)
    for b in range(bins.size - 2):
        lo, mid, hi = bins[b], bins[b + 1], bins[b + 2]
        weights[lo:mid + 1, b] = np.linspace(0, 1, mid - lo + 1)
        weights[mid:hi + 1, b] = np.linspace(1, 0, hi - mid + 1)
        weights[mid, b] = 1.0
    return weights, freqs[bins[1:-1]]


def _chroma_matrix(n_fft: int, rate: float) -> np.ndarray:
    """bins x 12 pitch classes, 55 Hz to 2 kHz (bass notes and chords)."""
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    out = np.zeros((freqs.size, 12), dtype=np.float32)
    ok = (freqs >= 55) & (freqs <= 2000)
    pitch = np.round(12 * np.log2(freqs[ok] / 440.0)).astype(int) % 12
    out[np.nonzero(ok)[0], pitch] = 1.0
    return out


@dataclass
class _Features:
    fps: float
    onset: np.ndarray  # full spectral flux, normalised
    accent: np.ndarray  # flux below ~2.5 kHz (kick, snare body, bass, chords), normalised
    low: np.ndarray  # flux below ~150 Hz (kick, bass)
    snare: np.ndarray  # flux 1-5 kHz (snare and clap noise)
    chroma: np.ndarray  # frames x 12
    level_db: np.ndarray  # frame level
    bands: np.ndarray  # frames x 4 coarse band powers (sections)


def _features(x: np.ndarray, rate: float, progress: Callable[[float], None]) -> _Features:
    hop = int(round(rate / FPS))
    fps = rate / hop
    n_fft = 1 << int(round(np.log2(WINDOW_S * rate)))
    bands, centres = _band_matrix(n_fft, rate)
    mats = np.concatenate([bands, _chroma_matrix(n_fft, rate)], axis=1)
    n_frames = len(x) // hop + 1
    padded = np.concatenate([np.zeros(n_fft // 2, np.float32), x, np.zeros(n_fft, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    window = np.hanning(n_fft)
    out = np.empty((n_frames, mats.shape[1]), dtype=np.float32)
    power = np.empty(n_frames, dtype=np.float64)
    chunk = 2048  # frames per FFT batch: bounds memory on long songs
    for start in range(0, n_frames, chunk):
        stop = min(n_frames, start + chunk)
        mag = np.abs(np.fft.rfft(frames[start:stop] * window, axis=1)).astype(np.float32)
        out[start:stop] = mag @ mats
        power[start:stop] = np.einsum("ij,ij->i", mag, mag)
        progress(stop / n_frames)
    spec, chroma = out[:, : bands.shape[1]], out[:, bands.shape[1]:]
    spec /= max(float(spec.max()), 1e-9)
    # Log flux finds onsets whatever their level (a quiet intro); linear flux says which instrument is loud.
    log_rise = np.maximum(0.0, np.diff(np.log1p(1000.0 * spec), axis=0, prepend=0.0))
    rise = np.maximum(0.0, np.diff(spec, axis=0, prepend=0.0))
    level_db = 10 * np.log10(power / max(power.max(), 1e-20) + 1e-10)
    coarse = np.searchsorted([150.0, 800.0, 4000.0], centres)
    bands = np.stack([spec[:, coarse == c].sum(axis=1) ** 2 for c in range(4)], axis=1)

    def flux(lo: float, hi: float) -> np.ndarray:
        return _normalise(rise[:, (centres >= lo) & (centres < hi)].sum(axis=1), fps, level_db)

    return _Features(
        fps=fps,
        onset=_normalise(log_rise.sum(axis=1), fps, level_db),
        accent=flux(0, 2500),
        low=flux(0, 150),
        snare=flux(1000, 5000),
        chroma=np.log1p(chroma / max(float(chroma.max()), 1e-9) * 100),
        level_db=level_db,
        bands=bands,
    )


def _moving_mean(x: np.ndarray, width: int) -> np.ndarray:
    width = max(1, width | 1)
    c = np.concatenate([[0.0], np.cumsum(np.pad(x, width // 2, mode="edge"))])
    return (c[width:] - c[:-width]) / width


def _normalise(flux: np.ndarray, fps: float, level_db: np.ndarray) -> np.ndarray:
    """Remove the local mean (a dense texture is not an onset) and scale by the spread of the audible part."""
    o = np.maximum(0.0, flux - _moving_mean(flux, int(0.5 * fps)))
    audible = level_db > -70
    scale = o[audible].std() if audible.sum() > 10 else 0.0
    return o / scale if scale > 0 else o


# -- tempo curve ---------------------------------------------------------------------------------------------------

def _tempo_bins() -> np.ndarray:
    n = int(np.floor(np.log2(BPM_MAX / BPM_MIN) * BINS_PER_OCTAVE)) + 1
    return BPM_MIN * 2.0 ** (np.arange(n) / BINS_PER_OCTAVE)


def _tempogram(onset: np.ndarray, fps: float, window_s: float = 8.0, hop_s: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed autocorrelation sampled at the tempo bins: (window centres in frames, bpm bins, salience)."""
    win = int(window_s * fps)
    hop = int(hop_s * fps)
    padded = np.pad(onset, (win // 2, win // 2))
    starts = np.arange(0, max(1, len(onset)), hop)
    segs = padded[starts[:, None] + np.arange(win)[None, :]] * np.hanning(win)
    n = 1 << int(np.ceil(np.log2(2 * win)))
    spec = np.fft.rfft(segs, n=n, axis=1)
    acf = np.fft.irfft(spec * np.conj(spec), n=n, axis=1)[:, :win]
    acf /= (win - np.arange(win))[None, :]  # unbiased: long lags overlap fewer frames
    bpm = _tempo_bins()
    lags = 60.0 * fps / bpm
    lo = np.floor(lags).astype(int)
    frac = lags - lo
    sal = acf[:, lo] * (1 - frac) + acf[:, np.minimum(lo + 1, win - 1)] * frac
    sal = np.maximum(sal, 0.0)
    sal /= np.maximum(sal.max(axis=1, keepdims=True), 1e-12)
    return starts, bpm, sal


def _viterbi_tempo(sal: np.ndarray, bpm: np.ndarray, jump_cost: float = 30.0) -> np.ndarray:
    """Best tempo-bin path: salience times prior, minus jump_cost x (octaves of tempo change)^2 between windows:
    a step of a few semitones of tempo is cheap, an octave jump between sections is not (the octave is chosen
    for the whole song afterwards)."""
    prior = np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    score = sal * prior
    n_win, n_bins = score.shape
    step = np.arange(n_bins)
    trans = -jump_cost * ((step[:, None] - step[None, :]) / BINS_PER_OCTAVE) ** 2  # from x to
    acc = score[0].copy()
    back = np.zeros((n_win, n_bins), dtype=int)
    for w in range(1, n_win):
        cand = acc[:, None] + trans
        back[w] = np.argmax(cand, axis=0)
        acc = cand[back[w], step] + score[w]
    path = np.empty(n_win, dtype=int)
    path[-1] = int(np.argmax(acc))
    for w in range(n_win - 1, 0, -1):
        path[w - 1] = back[w, path[w]]
    return path


def _period_curves(onset: np.ndarray, fps: float, families: int = 2) -> list[np.ndarray]:
    """Expected beat period (frames) at every frame, for the best tempo path and for the best paths of other
    tempo families (not octaves of an earlier one: a dotted or triplet pulse can out-correlate the beat)."""
    centres, bpm, sal = _tempogram(onset, fps)
    frames = np.arange(len(onset))
    curves = []
    for _ in range(families):
        path = _viterbi_tempo(sal, bpm)
        curves.append(np.interp(frames, centres, 60.0 * fps / bpm[path]))
        octaves = np.log2(bpm[None, :] / bpm[path][:, None])
        sal = np.where(np.abs(octaves - np.round(octaves)) < 0.1, 0.0, sal)
    return curves


# -- beat tracking -------------------------------------------------------------------------------------------------

def _dp_beats(onset: np.ndarray, period: np.ndarray, cost_per_beat: float = 0.1) -> np.ndarray:
    """Ellis's dynamic programme with a per-frame period; returns beat frames.

    score[t] = onset[t] - cost_per_beat + max(0, max over tau in [t - 2P, t - P/2] of score[tau] - penalty),
    penalty = TIGHTNESS * log(interval / P)^2. A chain may start anywhere (the max with 0), and the small
    cost per beat stops it in digital silence at either end while it still runs through a silent breakdown
    between strong parts. Frames go in blocks shorter than P/2 (within a block no frame can precede another,
    so a block is one vectorised step) that share the period of their first frame.
    """
    n = len(onset)
    score = np.zeros(n)
    back = np.full(n, -1)
    t0 = 0
    while t0 < n:
        p = float(period[t0])
        size = max(1, int(p // 2))
        t = np.arange(t0, min(n, t0 + size))
        lags = np.arange(max(1, int(np.ceil(p / 2))), int(2 * p) + 1)
        penalty = TIGHTNESS * np.log(lags / p) ** 2
        tau = t[:, None] - lags[None, :]
        cand = np.where(tau >= 0, score[np.maximum(tau, 0)] - penalty, -np.inf)
        best = np.argmax(cand, axis=1)
        rows = np.arange(len(t))
        best_val = cand[rows, best]
        chained = best_val > 0
        score[t] = onset[t] - cost_per_beat + np.where(chained, best_val, 0.0)
        back[t] = np.where(chained, tau[rows, best], -1)
        t0 += size
    beats = [int(np.argmax(score))]
    while back[beats[-1]] >= 0:
        beats.append(int(back[beats[-1]]))
    return np.array(beats[::-1])


def _trim_edges(beats: np.ndarray, onset: np.ndarray, ratio: float = 0.25) -> np.ndarray:
    """Drop first/last beats that have no onset of their own compared with the beats next to them (a ring-out
    or digital silence). Weakness is judged against the neighbours, never the whole song, so a quiet intro or
    outro keeps its beats."""
    strength = _peak_near(onset, beats.astype(float), 3)
    lo, hi = 0, len(beats)
    while hi - lo > 8 and strength[hi - 1] < ratio * np.median(strength[hi - 9:hi - 1]):
        hi -= 1
    while hi - lo > 8 and strength[lo] < ratio * np.median(strength[lo + 1:lo + 9]):
        lo += 1
    return beats[lo:hi]


def _refine(beats: np.ndarray, onset: np.ndarray, reach: int = 3) -> np.ndarray:
    """Move each beat onto its onset peak (parabolic sub-frame peak within +-reach frames). Beats without a
    clear peak (silence, a held chord) are spaced evenly between the nearest anchored beats."""
    pos = beats.astype(float)
    anchored = np.zeros(len(beats), dtype=bool)
    n = len(onset)
    for k, b in enumerate(np.round(beats).astype(int)):
        lo, hi = max(1, b - reach), min(n - 1, b + reach + 1)
        if hi <= lo:
            continue
        i = lo + int(np.argmax(onset[lo:hi]))
        y0, y1, y2 = onset[i - 1], onset[i], onset[min(i + 1, n - 1)]
        if y1 < 0.5 or y1 < y0 or y1 < y2:  # no peak, or one within the noise (half a standard deviation)
            continue
        denom = y0 - 2 * y1 + y2
        pos[k] = i + (0.5 * (y0 - y2) / denom if denom < 0 else 0.0)
        anchored[k] = True
    if 2 <= anchored.sum() < len(beats):
        idx = np.arange(len(beats))
        a = idx[anchored]
        inner = (idx > a[0]) & (idx < a[-1]) & ~anchored
        pos[inner] = np.interp(idx[inner], a, pos[a])
    return pos


# -- metrical level ------------------------------------------------------------------------------------------------

def _peak_near(env: np.ndarray, frames: np.ndarray, reach: int = 2) -> np.ndarray:
    idx = np.clip(np.round(frames).astype(int)[:, None] + np.arange(-reach, reach + 1)[None, :], 0, len(env) - 1)
    return env[idx].max(axis=1)


def _alternation(x: np.ndarray, window: int = 8) -> float:
    """0..1: how much x alternates beat by beat (|sum of (-1)^k x_k| / sum |x_k|), per window of beats so a
    phase slip between windows does not cancel it, averaged with the windows' mass as weights."""
    n = len(x) // window * window
    if n == 0:
        return 0.0
    w = x[:n].reshape(-1, window)
    mass = np.abs(w).sum(axis=1)
    alt = np.abs((w * (-1.0) ** np.arange(window)).sum(axis=1)) / np.maximum(mass, 1e-12)
    return float(np.average(alt, weights=mass)) if mass.sum() > 0 else 0.0


def _accent_peaks(accent: np.ndarray, reach: int = 5) -> np.ndarray:
    """Frames that are the maximum of the accent within +-reach frames (one per event) and not negligible."""
    padded = np.pad(accent, reach)
    local_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)
    peaks = np.nonzero((accent == local_max) & (accent > 0))[0]
    if len(peaks) == 0:
        return peaks
    return peaks[accent[peaks] >= 0.1 * np.percentile(accent[peaks], 90)]


def _level_score(beats: np.ndarray, feats: _Features) -> float:
    """How likely a beat grid is the counted beat: fit x tempo prior x exp(backbeat - emptiness).

    - fit: F-measure of the beats against the accent peaks, recall weighted by accent strength (too slow a grid
      misses strong accents; an eighth-note bass line off the beat matters less than a snare);
    - emptiness: every other beat without an accent means the grid counts subdivisions (a ballad's hi-hat
      eighths). Presence, not loudness, so a loud kick and a softer snare do not look alternating;
    - backbeat: snare hits on every beat of one parity and none of the other (2 and 4) mark the counted beat
      in most popular music; a grid twice too fast has them on only half of one parity, a grid twice too slow
      between its beats (drum-and-bass's half-time feel still counts 174 with its snare on 2 and 4).
    """
    peaks = _accent_peaks(feats.accent)
    if len(beats) < 8 or len(peaks) == 0:
        return 0.0
    a = feats.accent
    near = np.abs(peaks - beats[np.clip(np.searchsorted(beats, peaks), 0, len(beats) - 1)]) <= 2
    near |= np.abs(peaks - beats[np.clip(np.searchsorted(beats, peaks) - 1, 0, len(beats) - 1)]) <= 2
    recall = float(a[peaks][near].sum() / a[peaks].sum())
    floor = 0.3 * np.percentile(a[peaks], 90)
    present = np.minimum(_peak_near(a, beats) / floor, 1.0)
    precision = float(present.mean())
    fit = 2 * recall * precision / max(recall + precision, 1e-9)
    bpm = 60.0 * feats.fps / np.median(np.diff(beats))
    prior = np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    return fit * prior * np.exp(_backbeat(beats, feats) - _alternation(present))


def _backbeat(beats: np.ndarray, feats: _Features, window: int = 8) -> float:
    """0..1: per window of beats, |share of even beats with a snare - share of odd beats with one|, averaged.
    A snare hit is a strong snare-band onset that is brighter (more snare band, less low band) than the
    average beat, so a kick leaking into the snare band does not count."""
    snare = _peak_near(feats.snare, beats)
    low = _peak_near(feats.low, beats)
    bright = snare / np.maximum(snare + low, 1e-9)
    strong = snare >= 0.3 * np.percentile(snare, 90)
    if not strong.any():
        return 0.0
    hit = (strong & (bright > bright[strong].mean())).astype(float)
    n = len(hit) // window * window
    if n == 0:
        return 0.0
    w = hit[:n].reshape(-1, window)
    return float(np.abs(w[:, 0::2].mean(axis=1) - w[:, 1::2].mean(axis=1)).mean())


def _choose_level(feats: _Features, curves: list[np.ndarray]) -> np.ndarray:
    """Track each candidate tempo curve; score its grid, the grid's two halves (every other beat) and the grid
    with midpoints added (double tempo); keep the grid whose beats explain the accents best (_level_score).
    Midpoints need no second tracking pass: _refine moves them onto their onsets."""
    best, best_score = np.zeros(0), -1.0
    for period in curves:
        frames = _trim_edges(_dp_beats(feats.onset, period), feats.onset).astype(float)
        doubled = np.sort(np.concatenate([frames, (frames[:-1] + frames[1:]) / 2]))
        for grid in (frames, frames[0::2], frames[1::2], doubled):
            if len(grid) < 2 or not BPM_MIN <= 60 * feats.fps / np.median(np.diff(grid)) <= BPM_MAX:
                continue
            score = _level_score(grid, feats)
            if score > best_score:
                best, best_score = grid, score
    return best


# -- downbeats -----------------------------------------------------------------------------------------------------

def _downbeat_strength(beats: np.ndarray, feats: _Features) -> np.ndarray:
    """Per beat: chord change into it plus low-band onset on it, each scaled by its mean over the audible beats,
    centred locally. Changes to or from silence are no chord changes."""
    f = np.round(beats).astype(int)
    edges = np.append(f, min(len(feats.chroma) - 1, f[-1] + int(np.median(np.diff(f)))))
    spans = list(zip(edges[:-1], np.maximum(edges[1:], edges[:-1] + 1)))
    chroma = np.array([feats.chroma[a:b].mean(axis=0) for a, b in spans])
    audible = np.array([feats.level_db[a:b].mean() for a, b in spans]) > -50
    norm = np.linalg.norm(chroma, axis=1) + 1e-9
    cos = np.einsum("ij,ij->i", chroma[1:], chroma[:-1]) / (norm[1:] * norm[:-1])
    change = np.concatenate([[0.0], np.where(audible[1:] & audible[:-1], 1.0 - cos, 0.0)])
    low = np.where(audible, _peak_near(feats.low, beats), 0.0)
    s = np.zeros(len(beats))
    for cue in (change, low):
        scale = cue[audible].mean() if audible.any() else 0.0
        if scale > 0:
            s += cue / scale
    return s - _moving_mean(s, 13)


def _bar_positions(strength: np.ndarray, beats_per_bar: int, switch_cost: float) -> tuple[np.ndarray, float]:
    """Viterbi over position-in-bar; returns (position per beat, mean contrast of downbeats vs other beats)."""
    n, m = len(strength), beats_per_bar
    acc = np.where(np.arange(m) == 0, strength[0], 0.0)
    back = np.zeros((n, m), dtype=int)
    for k in range(1, n):
        stay = np.roll(acc, 1)  # position p-1 -> p
        best_other = int(np.argmax(acc))
        jump = acc[best_other] - switch_cost
        back[k] = np.where(stay >= jump, (np.arange(m) - 1) % m, best_other)
        acc = np.maximum(stay, jump) + np.where(np.arange(m) == 0, strength[k], 0.0)
    pos = np.empty(n, dtype=int)
    pos[-1] = int(np.argmax(acc))
    for k in range(n - 1, 0, -1):
        pos[k - 1] = back[k, pos[k]]
    down = pos == 0
    contrast = strength[down].mean() - strength[~down].mean() if down.any() and (~down).any() else 0.0
    return pos, float(contrast)


def _downbeats(beats: np.ndarray, feats: _Features, meter: int | None) -> tuple[np.ndarray, int]:
    if len(beats) < 8:
        return np.arange(0, len(beats), meter or 4), meter or 4
    strength = _downbeat_strength(beats, feats)
    switch = 4.0 * float(np.std(strength))
    options = [meter] if meter else [4, 3]
    results = {m: _bar_positions(strength, m, switch) for m in options}
    best = max(options, key=lambda m: results[m][1])
    pos = results[best][0]
    return np.nonzero(pos == 0)[0], best


# -- sections ------------------------------------------------------------------------------------------------------

def _bar_features(bar_starts: np.ndarray, feats: _Features) -> np.ndarray:
    """Per bar: level, onset density (x10, so one unit weighs like a few dB) and 4 coarse band levels. Levels are
    medians over the bar's frames (an attack leaking over the bar line does not count) in dB floored at -60
    (the noise of an empty band is no change). The last bar is cut to a typical bar length: no ring-out."""
    f = np.round(bar_starts * feats.fps).astype(int)
    typical = int(np.median(np.diff(f))) if len(f) > 1 else len(feats.onset)
    ends = np.minimum(np.append(f[1:], f[-1] + typical), len(feats.onset))
    db = np.maximum(-60.0, np.column_stack([feats.level_db, 10 * np.log10(feats.bands + 1e-10)]))
    rows = []
    for a, b in zip(f, np.maximum(ends, f + 1)):
        levels = np.median(db[a:b], axis=0)
        rows.append(np.concatenate([levels[:1], [10 * feats.onset[a:b].mean()], levels[1:]]))
    return np.array(rows)


def _section_cuts(x: np.ndarray, span: int = 4, threshold: float = 3.0) -> list[int]:
    """Bar indices where the mean features of the next `span` bars differ most from the previous ones
    (a box-kernel novelty), strongest first, at least `span` bars apart and from either end."""
    n = len(x)
    novelty = np.zeros(n)
    for j in range(span, n - span + 1):
        novelty[j] = np.abs(x[j - span:j].mean(axis=0) - x[j:j + span].mean(axis=0)).mean()
    cuts: list[int] = []
    for j in np.argsort(-novelty):
        if novelty[j] < threshold:
            break
        if all(abs(int(j) - c) >= span for c in cuts):
            cuts.append(int(j))
    return sorted(cuts)


def _label_sections(level: np.ndarray, density: np.ndarray) -> list[str]:
    """Labels from level and onset density: near-silent or rhythm-less parts are intro/breakdown/outro by
    position; the loudest parts chorus (drop right after a breakdown; verse if the song has one part only);
    other parts verse, or intro/outro when that level does not come back elsewhere in the song."""
    loud = level.max()
    quiet = (density < 0.3 * density.max()) | (level < loud - 20)
    labels: list[str] = []
    last = len(level) - 1
    for i in range(len(level)):
        if quiet[i]:
            labels.append("intro" if i == 0 else "outro" if i == last else "breakdown")
        elif level[i] >= loud - 3:
            labels.append("drop" if labels and labels[-1] == "breakdown" else "chorus" if last else "verse")
        else:
            recurs = np.sum(~quiet & (np.abs(level - level[i]) < 3)) > 1
            labels.append("verse" if recurs or 0 < i < last else "intro" if i == 0 else "outro")
    return labels


def _sections(bar_starts: np.ndarray, feats: _Features, duration: float) -> list[tuple[float, float, str]]:
    """Coarse song parts on bar boundaries."""
    if len(bar_starts) < 2:
        return [(0.0, duration, "verse")]
    x = _bar_features(bar_starts, feats)
    bounds = [0] + _section_cuts(x) + [len(x)]
    level = np.array([x[a:b, 0].mean() for a, b in zip(bounds[:-1], bounds[1:])])
    density = np.array([x[a:b, 1].mean() for a, b in zip(bounds[:-1], bounds[1:])])
    times = np.append(bar_starts, duration)
    times[0] = 0.0
    return [(float(times[a]), float(times[b]), label)
            for a, b, label in zip(bounds[:-1], bounds[1:], _label_sections(level, density))]


# -- public API ----------------------------------------------------------------------------------------------------

FORMAT_VERSION = 1  # of Analysis.to_dict(); a cache with another version is recomputed
TEMPO_WINDOW = 8  # beats per local tempo estimate: two bars of 4/4 average out the beats' timing jitter
# A local tempo spread (max - min) above this share of the median is a tempo change. Steady songs spread under
# 0.9 %, a step from 120 to 96 BPM 20 %, a ramp from 110 to 130 15 % (tests/signals.py).
TEMPO_CHANGE = 0.02
GRID_BPM = (15.0, 600.0)  # a corrected grid's tempo: an octave beyond what the tracker looks for on either side
MAX_BEATS_PER_BAR = 16


@dataclass(frozen=True)
class Corrections:
    """The user's edits to the tracked grid. Applied in this order: tempo (a hand-set BPM, else octave steps),
    meter, downbeat shift, phase shift."""

    tempo_octaves: int = 0  # +1 doubles the tempo, -1 halves it
    bpm: float | None = None  # fixed-tempo grid anchored on the tracked downbeats
    beats_per_bar: int | None = None  # meter set by hand
    downbeat_shift: int = 0  # beats to move every downbeat by
    phase_beats: float = 0.0  # grid shift as a fraction of the local beat interval
    phase_s: float = 0.0  # grid shift in seconds


@dataclass(frozen=True, eq=False)
class Analysis:
    """A song's analysis. tracked_* are what the tracker found; beats, downbeats and beats_per_bar are the grid
    after the corrections, which is what callers read. Times are seconds in the song file."""

    duration: float
    tracked_beats: np.ndarray
    tracked_downbeats: np.ndarray  # indices into tracked_beats
    tracked_beats_per_bar: int
    sections: list[tuple[float, float, str]]  # (start, end, label)
    corrections: Corrections = field(default_factory=Corrections)
    beats: np.ndarray = field(init=False)
    downbeats: np.ndarray = field(init=False)
    beats_per_bar: int = field(init=False)

    def __post_init__(self) -> None:
        beats, down, bpb = _apply(self)
        object.__setattr__(self, "beats", beats)
        object.__setattr__(self, "downbeats", beats[down])
        object.__setattr__(self, "beats_per_bar", bpb)

    @property
    def tempo_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, bpm) of the corrected grid at the middle of each beat interval. The local tempo is the median
        slope (Theil-Sen) of the TEMPO_WINDOW beats around the interval: a beat's own timing jitter and one
        misplaced beat (a click on the file's first sample) do not read as a tempo change. Windows stay whole
        at the ends of the grid, where a shorter one would be noisier."""
        b = self.beats
        if len(b) < 2:
            return np.zeros(0), np.zeros(0)
        w = min(TEMPO_WINDOW, len(b))
        windows = np.lib.stride_tricks.sliding_window_view(b, w)
        i, j = np.triu_indices(w, 1)
        seconds_per_beat = np.median((windows[:, j] - windows[:, i]) / (j - i), axis=1)
        first = np.clip(np.arange(len(b) - 1) - w // 2 + 1, 0, len(b) - w)
        return (b[:-1] + b[1:]) / 2, 60.0 / seconds_per_beat[first]

    @property
    def bpm(self) -> float:
        """The median local tempo; for a steady grid the tempo through all its beats (beats half the grid apart),
        which a beat's jitter barely moves: a 120 BPM click reads 120.0, not 120.1."""
        _, bpm = self.tempo_curve
        if not len(bpm):
            return 0.0
        if self.tempo_changes:
            return float(np.median(bpm))
        half = len(self.beats) // 2
        return float(60.0 / np.median((self.beats[half:] - self.beats[:-half]) / half))

    @property
    def bpm_range(self) -> tuple[float, float]:
        _, bpm = self.tempo_curve
        return (float(bpm.min()), float(bpm.max())) if len(bpm) else (0.0, 0.0)

    @property
    def tempo_changes(self) -> bool:
        """Whether the tempo really changes (a step, a ramp), not just the jitter of a steady song."""
        _, bpm = self.tempo_curve
        return bool(len(bpm)) and float(np.ptp(bpm) / np.median(bpm)) > TEMPO_CHANGE

    @property
    def tempo_text(self) -> str:
        """The tempo as shown: "120.0 BPM", or the range "96-120 BPM" when the tempo changes."""
        if self.tempo_changes:
            low, high = self.bpm_range
            return f"{low:.0f}-{high:.0f} BPM"
        return f"{self.bpm:.1f} BPM"

    # corrections: each returns a new Analysis, or raises ValueError (a message for the director) when the grid
    # would be no grid to cut on; reset() returns to the tracked grid
    def corrected(self, **changes: object) -> Analysis:
        result = dataclasses.replace(self, corrections=dataclasses.replace(self.corrections, **changes))
        if len(result.beats) < 2:
            raise ValueError(f"that would leave {('no beats', 'one beat')[len(result.beats)]} in the song")
        low, high = GRID_BPM
        if not low <= result.bpm <= high:
            raise ValueError(f"that would make the grid {result.bpm:.4g} BPM (it must stay within "
                             f"{low:.0f}-{high:.0f} BPM)")
        if not bars(result):
            raise ValueError(f"that would leave no whole bar of {result.beats_per_bar} beats in the song")
        return result

    def halve_tempo(self) -> Analysis:
        c = self.corrections
        return self.corrected(bpm=c.bpm / 2) if c.bpm else self.corrected(tempo_octaves=c.tempo_octaves - 1)

    def double_tempo(self) -> Analysis:
        c = self.corrections
        return self.corrected(bpm=c.bpm * 2) if c.bpm else self.corrected(tempo_octaves=c.tempo_octaves + 1)

    def set_bpm(self, bpm: float | None) -> Analysis:
        """A fixed-tempo grid at bpm (None goes back to the tracked tempo)."""
        low, high = GRID_BPM
        if bpm is not None and not low <= bpm <= high:  # checked first: 10^9 BPM would fill the memory with beats
            raise ValueError(f"{bpm:.4g} BPM is not a tempo to cut on: set {low:.0f}-{high:.0f} BPM")
        return self.corrected(bpm=None if bpm is None else float(bpm), tempo_octaves=0)

    def set_beats_per_bar(self, beats_per_bar: int | None) -> Analysis:
        if beats_per_bar is not None and not 1 <= beats_per_bar <= MAX_BEATS_PER_BAR:
            raise ValueError(f"a bar has 1 to {MAX_BEATS_PER_BAR} beats, not {beats_per_bar}")
        return self.corrected(beats_per_bar=beats_per_bar)

    def shift_phase(self, beats: float = 0.0, seconds: float = 0.0) -> Analysis:
        c = self.corrections
        return self.corrected(phase_beats=c.phase_beats + beats, phase_s=c.phase_s + seconds)

    def shift_downbeat(self, beats: int) -> Analysis:
        shift = self.corrections.downbeat_shift + int(beats)
        if abs(shift) >= len(self.beats):  # checked first: a shift past int64 would overflow the arithmetic
            raise ValueError(f"that would move the downbeats {shift} beats; the song has {len(self.beats)}")
        return self.corrected(downbeat_shift=shift)

    def reset(self) -> Analysis:
        return dataclasses.replace(self, corrections=Corrections())

    def to_dict(self) -> dict:
        """JSON-safe."""
        return {
            "version": FORMAT_VERSION,
            "duration": float(self.duration),
            "tracked_beats": [round(float(t), 6) for t in self.tracked_beats],
            "tracked_downbeats": [int(i) for i in self.tracked_downbeats],
            "tracked_beats_per_bar": int(self.tracked_beats_per_bar),
            "sections": [[float(a), float(b), str(label)] for a, b, label in self.sections],
            "corrections": dataclasses.asdict(self.corrections),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Analysis:
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported analysis format version {d.get('version')!r}")
        return cls(
            duration=float(d["duration"]),
            tracked_beats=np.asarray(d["tracked_beats"], dtype=float),
            tracked_downbeats=np.asarray(d["tracked_downbeats"], dtype=int),
            tracked_beats_per_bar=int(d["tracked_beats_per_bar"]),
            sections=[(float(a), float(b), str(label)) for a, b, label in d["sections"]],
            corrections=Corrections(**d["corrections"]),
        )


def bars(analysis: Analysis) -> list[tuple[float, float]]:
    """(start, end) of every bar of the corrected grid, from one downbeat to the next; the last bar ends
    beats_per_bar beats after its downbeat if that is inside the song."""
    b, idx = analysis.beats, np.searchsorted(analysis.beats, analysis.downbeats)
    out = [(float(b[i]), float(b[j])) for i, j in zip(idx[:-1], idx[1:])]
    if len(idx) and len(b) > 1:
        i, n = int(idx[-1]), analysis.beats_per_bar
        end = b[i + n] if i + n < len(b) else b[i] + n * float(np.median(np.diff(b)))
        if end <= analysis.duration + 1e-6:
            out.append((float(b[i]), float(end)))
    return out


def _fixed_grid(anchors: np.ndarray, bpm: float, start: float, stop: float) -> np.ndarray:
    """Constant-tempo grid over [start, stop) whose phase is the circular mean of the anchors' phases."""
    period = 60.0 / bpm
    phase = np.angle(np.exp(2j * np.pi * anchors / period).mean()) / (2 * np.pi) * period
    first = phase + np.ceil((start - phase) / period) * period
    return np.arange(first, stop, period)


def _regular_downbeats(beats: np.ndarray, anchor: float, per_bar: int) -> np.ndarray:
    """Every per_bar-th beat, through the beat nearest the anchor time."""
    if len(beats) == 0:
        return np.zeros(0, dtype=int)
    return np.arange(int(np.argmin(np.abs(beats - anchor))) % per_bar, len(beats), per_bar)


def _apply(a: Analysis) -> tuple[np.ndarray, np.ndarray, int]:
    """Corrected beats, downbeat indices into them, beats per bar."""
    c = a.corrections
    beats = np.asarray(a.tracked_beats, dtype=float)
    down = np.asarray(a.tracked_downbeats, dtype=int)
    bpb = c.beats_per_bar or a.tracked_beats_per_bar
    if len(beats) < 2:
        return beats, down[down < len(beats)], bpb
    anchor = beats[down[0]] if len(down) else beats[0]
    if c.bpm:
        anchors = beats[down] if len(down) > 1 else beats
        half = 30.0 / c.bpm
        beats = _fixed_grid(anchors, c.bpm, beats[0] - half, min(a.duration, beats[-1] + half))
    for _ in range(max(0, c.tempo_octaves)):
        beats = np.sort(np.concatenate([beats, (beats[:-1] + beats[1:]) / 2]))
    for _ in range(max(0, -c.tempo_octaves)):
        if len(beats):
            beats = beats[int(np.argmin(np.abs(beats - anchor))) % 2::2]
    if c.bpm or c.tempo_octaves or c.beats_per_bar:
        down = _regular_downbeats(beats, anchor, bpb)
    if c.downbeat_shift and len(down):
        down = down + c.downbeat_shift
        down = down[(down >= 0) & (down < len(beats))]
        if len(down):  # keep the bars going up to both ends of the grid
            down = np.concatenate([np.arange(down[0] % bpb, down[0], bpb), down,
                                   np.arange(down[-1] + bpb, len(beats), bpb)]).astype(int)
    if c.phase_beats or c.phase_s:
        ibi = np.diff(beats)
        local = np.append(ibi, ibi[-1]) if len(ibi) else np.zeros(len(beats))
        beats = beats + c.phase_s + c.phase_beats * local
        inside = np.nonzero((beats >= 0) & (beats <= a.duration))[0]
        down = np.searchsorted(inside, down[np.isin(down, inside)])
        beats = beats[inside]
    return beats, down, bpb


def analyze(samples: np.ndarray, rate: int, meter: int | None = None,
            progress: Callable[[float], None] | None = None) -> Analysis:
    """Beats, downbeats, meter and sections of a song. samples: mono (n,) or (n, channels), any sample rate;
    meter: beats per bar if known, else 4 or 3 is detected. progress(fraction done) is called on the calling
    thread several times a second; what it raises stops the analysis and comes out of analyze (a cancel)."""
    if meter is not None and meter < 1:
        raise ValueError(f"meter must be at least 1 beat per bar, got {meter}")
    report = progress or (lambda _done: None)
    report(0.0)
    x = _mono(samples)
    duration = len(x) / rate
    if duration < 1.0:  # too short to hold two beats at the slowest tempo we look for
        return Analysis(duration, np.zeros(0), np.zeros(0, dtype=int), meter or 4, [(0.0, duration, "verse")])
    # Shares of the time, measured on a 5-minute song: decimation 0.2, spectra 0.5, tempo and beats 0.25.
    work, work_rate = _decimate(x, rate)
    report(0.2)
    feats = _features(work, work_rate, lambda done: report(0.2 + 0.5 * done))
    frames = _choose_level(feats, _period_curves(feats.onset, feats.fps))
    report(0.95)
    beats = _refine(frames, feats.onset) / feats.fps - ONSET_LAG_S
    down, bpb = _downbeats(beats * feats.fps, feats, meter)
    sections = _sections(beats[down] if len(down) else beats[:1], feats, duration)
    report(1.0)
    return Analysis(duration, beats, down, bpb, sections)
