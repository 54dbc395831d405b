"""Shotline on a Flamenco farm: the shotline-batch job compiler (run in Node through a stand-in for
the Manager's script runtime), submitting it to a fake Manager, and its tasks run end to end."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import bpy
import pytest

from fakes.flamenco import FakeFlamenco, harness
from shotline.addon import flamenco
from shotline.addon.blend import compat, shots
from vse import set_fps

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "flamenco" / "shotline-batch.js"
BATCH = ROOT / "scripts" / "batch.py"
SHOTS = ["Певица в дожде", "Город ночью", "«chorus» wide", "Outro"]


def _compile(job: dict) -> dict:
    run = harness(SCRIPT, "compile", job)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _job(blend: str = "/farm/видео/клип.blend", **options) -> dict:
    return flamenco.build_job(blend, SHOTS, "/farm/shotline/scripts/batch.py", **options)


# -- the job compiler ---------------------------------------------------------------------------------------------

def test_four_shots_make_four_shot_tasks_one_after_the_other_and_an_assemble_task():
    job = _compile(_job(service="runway", model="gen4.5", online=True, preview_output="/farm/preview/клип.mp4"))
    tasks = job["tasks"]
    assert [t["name"] for t in tasks] == [f"shot: {name}" for name in SHOTS] + ["assemble"]
    assert {t["type"] for t in tasks} == {"blender"}
    for i, (task, name) in enumerate(zip(tasks, SHOTS)):
        (command,) = task["commands"]
        assert command["name"] == "blender-render"
        assert command["parameters"] == {
            "exe": "{blender}", "exeArgs": "{blenderArgs}", "argsBefore": [], "blendfile": "/farm/видео/клип.blend",
            "args": ["--python", "/farm/shotline/scripts/batch.py", "--", "--generate", "--service", "runway",
                     "--model", "gen4.5", "--online", "--shot", name]}
        assert task["dependencies"] == ([f"shot: {SHOTS[i - 1]}"] if i else [])  # one writer of the .blend at a time
    render, verdict = tasks[-1]["commands"]
    assert render["parameters"]["args"] == ["--render-output", "/farm/preview/клип.mp4", "--render-anim"]
    assert verdict["parameters"]["args"] == ["--python", "/farm/shotline/scripts/batch.py", "--"]  # never generates
    assert tasks[-1]["dependencies"] == [f"shot: {name}" for name in SHOTS]


def test_each_shot_keeps_its_own_service_when_the_job_names_none_and_no_preview_is_no_render():
    tasks = _compile(_job())["tasks"]
    assert tasks[0]["commands"][0]["parameters"]["args"][3:] == ["--generate", "--shot", SHOTS[0]]
    assert len(tasks[-1]["commands"]) == 1


@pytest.mark.parametrize("shots, says", [("Shot 1", "not a JSON list"), ("[]", "one or more"),
                                         ('["A", "A"]', "named twice"), ('["A", 3]', "one or more")])
def test_a_bad_shot_list_is_a_compile_error(shots, says):
    job = _job()
    job["settings"]["shots"] = shots
    run = harness(SCRIPT, "compile", job)
    assert run.returncode == 1 and says in run.stderr


# -- submitting to the Manager ------------------------------------------------------------------------------------

@pytest.fixture
def manager():
    fake = FakeFlamenco(SCRIPT)
    yield fake
    fake.close()


def test_the_job_is_submitted_with_the_job_types_etag_and_its_status_read_back(manager):
    client = flamenco.Manager(manager.url)
    assert client.version() == "3.7"
    state = client.submit(_job(preview_output="/farm/preview/клип.mp4"))
    assert state.status == "queued" and not state.finished and state.name == "Shotline: клип (4 shots)"
    (stored,) = manager.jobs.values()
    assert stored["type"] == "shotline-batch" and stored["type_etag"] == manager.job_type["etag"]
    assert stored["submitter_platform"] == "linux" and json.loads(stored["settings"]["shots"]) == SHOTS
    assert len(stored["tasks"]) == 5
    manager.set_status(state.id, "active", "shot: Певица в дожде")
    assert client.status(state.id).activity == "shot: Певица в дожде"
    manager.set_status(state.id, "completed")
    assert client.status(state.id).finished


def test_the_manager_checks_the_job_against_the_job_types_settings(manager):
    job = _job()
    job["settings"]["online"] = "yes"
    with pytest.raises(flamenco.FlamencoError, match="refused the job: .*'online' must be a bool"):
        flamenco.Manager(manager.url).submit(job)
    del job["settings"]["online"], job["settings"]["batch_script"]
    with pytest.raises(flamenco.FlamencoError, match="required settings missing: batch_script"):
        flamenco.Manager(manager.url).submit(job)
    assert manager.jobs == {}


def test_a_manager_without_the_job_type_says_where_the_script_goes(manager):
    manager.type_name = "other"
    with pytest.raises(flamenco.FlamencoError, match="copy scripts/flamenco/shotline-batch.js into its scripts"):
        flamenco.Manager(manager.url).submit(_job())


def test_a_manager_that_is_down_is_said_so(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(flamenco.FlamencoError, match=f"Cannot reach Flamenco Manager at http://127.0.0.1:{port}"):
        flamenco.Manager(f"http://127.0.0.1:{port}").submit(_job())


def test_only_a_saved_blend_on_shared_storage_goes():
    with pytest.raises(ValueError, match="absolute path"):
        flamenco.build_job("клип.blend", SHOTS, "/farm/batch.py")


# -- the tasks, run in order ---------------------------------------------------------------------------------------

RENDER = """
import sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
bpy.context.scene.render.filepath = sys.argv[2]
bpy.ops.render.render(animation=True)
"""


def _four_shot_file(folder: Path) -> Path:
    """A saved .blend with four 12-frame shots for the local animatic service, and PNG output."""
    scene = bpy.data.scenes.new("Farm")
    set_fps(scene, Fraction(25))
    scene.render.resolution_x, scene.render.resolution_y = 64, 36
    scene.frame_start, scene.frame_end = 1, 48
    strips = compat.strips(scene.sequence_editor_create())
    for i, name in enumerate(SHOTS):
        strip = compat.new_effect(strips, name, 'COLOR', 1, 1 + 12 * i, 12)
        shots.make_shot(strip)
        strip.shotline.prompt = f"{name}, neon"
    blend = folder / "клип.blend"
    bpy.data.libraries.write(str(blend), {scene}, fake_user=True)
    bpy.data.scenes.remove(scene)
    return blend


def _run(command: dict) -> subprocess.CompletedProcess:
    """A task's blender-render command with the bpy module in place of Blender: the batch as
    `python batch.py FILE ...`, a render by the few lines Blender's --render-output/--render-anim mean."""
    params = command["parameters"]
    assert command["name"] == "blender-render" and params["exeArgs"] == "{blenderArgs}"
    args = params["args"]
    if args[0] == "--python":
        assert args[2] == "--"
        argv = [args[1], params["blendfile"], *args[3:]]
    else:
        assert args[0] == "--render-output" and args[2:] == ["--render-anim"]
        argv = ["-c", RENDER, params["blendfile"], args[1]]
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)


def test_the_tasks_run_in_order_place_one_take_per_shot_and_a_retry_pays_nothing(addon, tmp_path):
    blend = _four_shot_file(tmp_path)
    preview = tmp_path / "preview" / "frame_"
    job = _compile(flamenco.build_job(str(blend), SHOTS, str(BATCH), preview_output=str(preview)))
    done: set[str] = set()
    for task in job["tasks"]:
        assert set(task["dependencies"]) <= done, f"{task['name']} would run before what it needs"
        for command in task["commands"]:
            run = _run(command)
            assert run.returncode == 0, task["name"] + "\n" + run.stdout[-2000:] + run.stderr[-2000:]
        done.add(task["name"])
    summary = json.loads(run.stdout.strip().splitlines()[-1])  # the assemble task's verdict
    assert [(s["shot"], s["status"], s["takes"]) for s in summary["shots"]] == [(n, 'PLACED', 1) for n in SHOTS]
    assert len(list((tmp_path / "shotline").rglob("take_*.mp4"))) == 4
    assert len(list(preview.parent.glob("frame_*.png"))) == 48
    again = _run(job["tasks"][0]["commands"][0])  # Flamenco retrying a shot task that had placed its take
    assert again.returncode == 0 and "generating 0 shots" in again.stdout
    assert len(list((tmp_path / "shotline").rglob("take_*.mp4"))) == 4


def test_a_failed_shot_is_no_task_failure_to_retry_but_the_assemble_task_fails(addon, tmp_path):
    blend = _four_shot_file(tmp_path)
    job = _compile(flamenco.build_job(str(blend), SHOTS[:1], str(BATCH), service="runway"))  # offline: refused
    shot, assemble = (task["commands"][0] for task in job["tasks"])
    run = _run(shot)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "needs online access" in run.stdout
    verdict = _run(assemble)
    assert verdict.returncode == 1
    first = json.loads(verdict.stdout.strip().splitlines()[-1])["shots"][0]
    assert first["status"] == 'FAILED' and "needs online access" in first["message"]
    shot["parameters"]["args"][-1] = "Nobody"
    unknown = _run(shot)
    assert unknown.returncode == 1 and '--shot Nobody: no such shot in scene "Farm"' in unknown.stderr


# -- sending from Blender and from the command line ----------------------------------------------------------------

def test_send_to_farm_from_blender_submits_the_saved_files_shots(manager, scene, tmp_path):
    from shotline.addon.blend import farm, prefs
    from vse import add_shot, op

    for i, name in enumerate(SHOTS):
        add_shot(scene, name, 1 + 12 * i, 12)
    settings = prefs.get()
    with pytest.raises(RuntimeError, match="Set the Flamenco Manager's address"):
        op(scene, "shotline_send_to_farm")
    settings.flamenco_url = manager.url
    try:
        with pytest.raises(RuntimeError, match="Save the file first"):
            op(scene, "shotline_send_to_farm")
        blend = tmp_path / "клип.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        if bpy.data.is_dirty:  # the bpy 4.5 module never clears it (Blender 4.5 itself does on saving)
            with pytest.raises(RuntimeError, match="would not see the changes since the last save"):
                op(bpy.context.scene, "shotline_send_to_farm")
            return
        assert op(bpy.context.scene, "shotline_send_to_farm") == {'FINISHED'}
        farm.wait(30)
        (stored,) = manager.jobs.values()
        assert stored["settings"]["blendfile"] == str(blend)
        assert json.loads(stored["settings"]["shots"]) == SHOTS
        assert stored["settings"]["batch_script"] == str(farm.BATCH_SCRIPT) and farm.BATCH_SCRIPT.is_file()
        assert "Flamenco job" in farm.answer() and "queued" in farm.answer()
        bpy.ops.wm.read_homefile(use_empty=True)
        assert farm.answer() == "", "the answer was about the file closed"
    finally:
        settings.flamenco_url = ""


def test_the_batch_sends_to_the_farm(manager, tmp_path):
    blend = _four_shot_file(tmp_path)
    run = subprocess.run([sys.executable, str(BATCH), str(blend), "--flamenco", manager.url, "--shot", SHOTS[1],
                          "--shot", SHOTS[0], "--service", "animatic", "--farm-batch-script", "/farm/batch.py"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"sent to {manager.url}: job " in run.stdout
    (stored,) = manager.jobs.values()
    assert json.loads(stored["settings"]["shots"]) == [SHOTS[1], SHOTS[0]]
    assert stored["settings"]["batch_script"] == "/farm/batch.py" and stored["settings"]["service"] == "animatic"
    down = subprocess.run([sys.executable, str(BATCH), str(blend), "--flamenco", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=120)
    assert down.returncode != 0 and "Flamenco Manager" in down.stderr and "Traceback" not in down.stderr
