"""Placement cost: time per placed take for 200 takes, against a bare `new_movie` + trim.

The reference does the least Blender needs to show a clip on a shot (add the strip, set its
handles); Shotline also retimes it to real speed, finds a free channel and records the take.
Prints per-take milliseconds and the ratio, for first placements and for take swaps.
"""

from __future__ import annotations

import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]
import shotline_dev  # noqa: E402

TAKES = 200


def main() -> None:
    shotline_dev.expose_checkout()
    shotline_dev.enable()
    import bpy

    from shotline.addon.blend import compat, placement
    from vse import add_shot, make_clip, set_fps

    folder = Path(tempfile.mkdtemp(prefix="shotline-bench-"))
    clips = [make_clip(folder, 60, Fraction(24), seed=1), make_clip(folder, 75, Fraction(25), seed=2)]
    rates = [Fraction(24), Fraction(25)]  # known from the service's result, as in the add-on
    scene = bpy.context.scene
    set_fps(scene, Fraction(30))
    ed = scene.sequence_editor_create()
    shots = [add_shot(scene, f"S{i:03d}", 1 + i * 50, 48) for i in range(TAKES)]

    t0 = time.perf_counter()
    for i, shot in enumerate(shots):
        placement.place_take(scene, shot, str(clips[i % 2]), rates[i % 2])
    ours = (time.perf_counter() - t0) / TAKES

    t0 = time.perf_counter()
    for i, shot in enumerate(shots):
        placement.place_take(scene, shot, str(clips[(i + 1) % 2]), rates[(i + 1) % 2])
    swap = (time.perf_counter() - t0) / TAKES

    t0 = time.perf_counter()
    for i, shot in enumerate(shots):
        left, right = compat.span(shot)
        strip = compat.strips(ed).new_movie(name=f"ref{i}", filepath=str(clips[i % 2]), channel=5,
                                            frame_start=left)
        compat.set_span(strip, left, right)
    reference = (time.perf_counter() - t0) / TAKES

    print(f"Blender {bpy.app.version_string}, {TAKES} takes on {TAKES} shots, 30 fps scene, 24 and 25 fps clips")
    print(f"first placement: {ours * 1000:.2f} ms per take = {ours / reference:.1f}x a bare new_movie + trim "
          f"({reference * 1000:.2f} ms)")
    print(f"take swap:       {swap * 1000:.2f} ms per take = {swap / reference:.1f}x the reference")
    shotline_dev.disable()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    import os

    os._exit(0)
