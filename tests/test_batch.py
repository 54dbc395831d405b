"""The command-line batch: analyse, lay out and generate a saved .blend in a separate process, no UI."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import bpy

import signals
from shotline.addon.blend import compat
from test_music import _write_wav
from vse import set_fps

BATCH = Path(__file__).resolve().parent.parent / "scripts" / "batch.py"


def test_batch_lays_out_and_generates_a_saved_file(tmp_path):
    truth = signals.catalogue()["steady_120"]()
    scene = bpy.data.scenes.new("Batch")
    set_fps(scene, Fraction(25))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    ed = scene.sequence_editor_create()
    compat.strips(ed).new_sound("Song", str(_write_wav(tmp_path / "song.wav", truth.audio, truth.rate)), 1, 1)
    blend = tmp_path / "batch.blend"
    window = bpy.context.window_manager.windows[0]
    previous, window.scene = window.scene, scene
    try:
        bpy.data.libraries.write(str(blend), {scene}, fake_user=True)
    finally:
        window.scene = previous
        bpy.data.scenes.remove(scene)
    out = tmp_path / "done.blend"
    run = subprocess.run([sys.executable, str(BATCH), str(blend), "--analyze", "--markers", "bars",
                          "--lay-out", "every:4", "--first-bar", "5", "--generate", "--save", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["file"] == str(out) and out.is_file()
    statuses = [s["status"] for s in summary["shots"]]
    assert len(statuses) == 4 and set(statuses) == {'PLACED'}, summary  # bars 5-20 of 20, four at a time
    assert all(s["takes"] == 1 for s in summary["shots"])


def test_batch_says_what_is_wrong(tmp_path):
    run = subprocess.run([sys.executable, str(BATCH), str(tmp_path / "missing.blend")], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0
    assert "No such .blend file" in run.stderr and "Traceback" not in run.stderr
