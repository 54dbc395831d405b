"""The command-line batch: analyse, lay out and generate a saved .blend in a separate process, no UI."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import bpy
import pytest

import signals
from shotline.addon.blend import compat, shots
from test_music import _write_wav
from vse import set_fps

BATCH = Path(__file__).resolve().parent.parent / "scripts" / "batch.py"
SHOT_LIST = "Bars;Prompt\n4;Певица в неоновом дожде\n4;Gecə şəhərin işıqları\n4;«chorus» wide\n4;outro, slow\n"


def _song_file(folder: Path) -> Path:
    """A saved .blend with a 20-bar song at 120 BPM in a 25 fps scene, and nothing else."""
    truth = signals.catalogue()["steady_120"]()
    scene = bpy.data.scenes.new("Batch")
    set_fps(scene, Fraction(25))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    ed = scene.sequence_editor_create()
    compat.strips(ed).new_sound("Song", str(_write_wav(folder / "song.wav", truth.audio, truth.rate)), 1, 1)
    blend = folder / "batch.blend"
    window = bpy.context.window_manager.windows[0]
    previous, window.scene = window.scene, scene
    try:
        bpy.data.libraries.write(str(blend), {scene}, fake_user=True)
    finally:
        window.scene = previous
        bpy.data.scenes.remove(scene)
    return blend


def _batch(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BATCH), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One batch run: analyse, bar markers, lay out a shot list from bar 5, generate, save elsewhere."""
    folder = tmp_path_factory.mktemp("batch")
    blend = _song_file(folder)
    listing = folder / "shots.csv"
    listing.write_text(SHOT_LIST, encoding="utf-8")
    out = folder / "done.blend"
    run = _batch(str(blend), "--analyze", "--markers", "bars", "--lay-out", f"list:{listing}", "--first-bar", "5",
                 "--generate", "--save", str(out))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run, out


def test_batch_lays_out_and_generates_a_saved_file(generated):
    run, out = generated
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["file"] == str(out) and out.is_file()
    statuses = [s["status"] for s in summary["shots"]]
    assert len(statuses) == 4 and set(statuses) == {'PLACED'}, summary  # bars 5-20 of 20, four at a time
    assert all(s["takes"] == 1 for s in summary["shots"])


def test_batch_prints_a_line_per_step_and_per_shot_not_blenders_log(generated):
    run, _out = generated
    lines = (run.stdout + run.stderr).splitlines()
    assert not [line for line in lines if "append frame" in line.lower() or "Fra:" in line]
    progress = [m for line in lines if (m := re.fullmatch(r"  Shot 0[1-4]: placed \((\d)/4\)", line))]
    assert [m.group(1) for m in progress] == ["1", "2", "3", "4"]
    steps = [r"opened .*/batch\.blend", r"Info: Song: .* 20 bars .*", r"Info: Laid out 4 shots", r"generating 4 shots",
             r"  Shot 0[1-4]: placed \(\d/4\)", r"saved .*/done\.blend", r"\{.*\}"]
    assert [line for line in lines if not any(re.fullmatch(step, line) for step in steps)] == []
    assert len(lines) == 10  # opened, analysed, laid out, generating, 4 shots, saved, the summary


def test_the_batch_makes_variations_and_skips_a_locked_shot(addon, generated, tmp_path):
    _run, out = generated
    bpy.ops.wm.open_mainfile(filepath=str(out))
    scene = next(s for s in bpy.data.scenes if s.sequence_editor)
    locked = sorted(shots.shots(scene), key=lambda s: s.name)[0]
    locked.shotline.locked = True
    blend = tmp_path / "locked.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    run = _batch(str(blend), "--generate", "--all", "--takes", "2", "--save", str(blend))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "generating 6 takes (2 a shot)" in run.stdout
    assert f"not queued: {locked.name}: locked on take 1, skipped (unlock it to generate again)" in run.stdout
    takes = {s["shot"]: s["takes"] for s in json.loads(run.stdout.strip().splitlines()[-1])["shots"]}
    assert takes.pop(locked.name) == 1 and set(takes.values()) == {3}, takes  # two variations each


def test_batch_generates_with_the_service_and_model_asked_for(tmp_path):
    from fakes.clips import real_clip
    from fakes.runway import KEY, FakeRunway
    from fakes.server import Cdn

    blend = _song_file(tmp_path)
    listing = tmp_path / "shots.csv"
    listing.write_text("Bars;Prompt\n4;Певица в неоновом дожде\n", encoding="utf-8")
    cdn = Cdn()
    fake = FakeRunway(cdn, steps=("RUNNING",))
    fake.clip = lambda *_job: real_clip(Fraction(24), 240)
    env = dict(os.environ, RUNWAYML_API_SECRET=KEY, SHOTLINE_RUNWAY_URL=fake.url)
    try:
        offline = _batch(str(blend), "--analyze", "--lay-out", f"list:{listing}", "--generate", "--service", "runway",
                         "--model", "gen4.5", env=env)
        assert offline.returncode == 1 and "needs online access" in offline.stdout and fake.calls == []
        run = _batch(str(blend), "--analyze", "--lay-out", f"list:{listing}", "--generate", "--service", "runway",
                     "--model", "gen4.5", "--online", env=env)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        (shot,) = json.loads(run.stdout.strip().splitlines()[-1])["shots"]
        assert shot["status"] == 'PLACED' and fake.creates == 1
        assert fake.bodies[0]["model"] == "gen4.5"
        wrong = _batch(str(blend), "--generate", "--service", "sora", env=env)
        assert wrong.returncode != 0 and "--service sora: no such service" in wrong.stderr
        wrong = _batch(str(blend), "--generate", "--service", "runway", "--model", "gen9", env=env)
        assert wrong.returncode != 0 and "--model gen9: runway has no such model" in wrong.stderr
    finally:
        fake.close()
        cdn.close()


def test_batch_says_what_is_wrong(tmp_path):
    run = _batch(str(tmp_path / "missing.blend"), timeout=120)
    assert run.returncode != 0
    assert "No such .blend file" in run.stderr and "Traceback" not in run.stderr


# The demo's preview render, on a 48-frame scene: what the terminal shows of it.
RENDER = """
import os, sys
from pathlib import Path
sys.path.insert(0, {scripts!r})
import shotline_dev
shotline_dev.expose_checkout()
import bpy
import demo
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 24, 1.0
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = {size}, {size}, 100
ed = scene.sequence_editor_create()
strips = ed.strips if hasattr(ed, "strips") else ed.sequences
strips.new_effect(name="Red", type='COLOR', channel=1, frame_start=1,
                  **({{"length": 48}} if bpy.app.version >= (5, 0, 0) else {{"frame_end": 49}}))
scene.frame_start, scene.frame_end = 1, 48
try:
    demo.render_preview(scene, Path({out!r}))
except RuntimeError as err:
    print("render failed:", err, flush=True)
    os._exit(1)
os._exit(0)
"""


def _render(tmp_path, size: int) -> subprocess.CompletedProcess:
    code = RENDER.format(scripts=str(BATCH.parent), size=size, out=str(tmp_path / "preview.mp4"))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_the_preview_render_prints_progress_not_a_line_per_frame(tmp_path):
    run = _render(tmp_path, 64)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (tmp_path / "preview.mp4").stat().st_size > 0
    progress = [f"Rendering preview: {p}% ({f}/48 frames)" for p, f in ((25, 12), (50, 24), (75, 36), (100, 48))]
    lines = run.stdout.splitlines()
    assert progress[0] in lines, run.stdout
    assert lines[lines.index(progress[0]):] == progress  # from the render's start, nothing else
    output = (run.stdout + run.stderr).lower()
    assert "append frame" not in output and "fra:" not in output


def test_a_failed_preview_render_shows_what_blender_said(tmp_path):
    run = _render(tmp_path, 65000)  # more pixels than a video frame may have: the encoder refuses
    assert run.returncode == 1
    assert "render failed:" in run.stdout and not (tmp_path / "preview.mp4").exists()
    tail = run.stderr.partition("Blender's last output:\n")[2]
    assert "65000x65000" in tail, run.stderr
