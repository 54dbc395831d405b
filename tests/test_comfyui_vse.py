"""The director's own ComfyUI workflow through Blender: a project workflow, shots generated with the
Generate operator over a pool of fake ComfyUI servers (one down from the start, one killed
mid-batch), every shot run exactly once and placed; what the workflow cannot take refused before
anything is queued; pins on the shot; the batch's --workflow and --pin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import bpy
import pytest

from fakes.clips import real_clip
from fakes.comfyui import FakeComfyUI
from shotline.addon.blend import compat, prefs, runtime, shots
from shotline.addon.services import config, registry
from vse import add_shot, op, select, set_fps

WORKFLOWS = Path(__file__).with_name("workflows")
FPS = Fraction(25)


@pytest.fixture
def pool(scene, monkeypatch):
    """Three fake servers listed in the preferences' ComfyUI address, serving playable clips."""
    made = []

    def make(count: int = 3):
        for _ in range(count):
            fake = FakeComfyUI(steps=3, step_time=0.02)
            fake.clip = lambda _workflow: real_clip(FPS, 125)
            made.append(fake)
        prefs.get().comfyui_url = ", ".join(f.url for f in made)  # typed into the preferences
        service = registry.get("comfyui")
        monkeypatch.setattr(service, "poll_interval", 0.05)
        return made

    system = bpy.context.preferences.system
    was_online, system.use_online_access = system.use_online_access, True
    set_fps(scene, FPS)
    scene.shotline.workflow = str(WORKFLOWS / "wan22_t2v_api.json")
    yield make
    system.use_online_access = was_online
    prefs.get().comfyui_url = ""
    config.set_url("comfyui", "")
    for fake in made:
        fake.close()


def _shots(scene, count: int) -> list:
    made = []
    for n in range(count):
        shot = add_shot(scene, f"Шот {n + 1}", 1 + 60 * n, 50, channel=2)
        shot.shotline.prompt = f"Qəmgin mahnı, kadr {n + 1}"
        shot.shotline.service = "comfyui"
        made.append(shot)
    return made


def test_nine_shots_over_a_pool_with_servers_down_run_once_each(pool, scene):
    down, dying, up = pool(3)
    down.kill()  # down from the start
    made = _shots(scene, 9)
    select(scene, made)
    assert op(scene, "shotline_generate") == {'FINISHED'}
    deadline = time.monotonic() + 120
    # let it finish one and hand it over (a clip still on a dead server must be made again), then it dies
    while not any(s.shotline.status == 'PLACED' and dying.runs_of(s.shotline.prompt) for s in made):
        assert time.monotonic() < deadline
        runtime.pump()
        time.sleep(0.02)
    dying.kill()
    runtime.run_until_idle(180, interval=0.02)
    for shot in made:
        assert shot.shotline.status == 'PLACED', (shot.name, shot.shotline.status_message)
        assert compat.span(shots.take_strip(scene, shot)) == compat.span(shot)
        runs = sum(f.runs_of(shot.shotline.prompt) for f in (down, dying, up))
        assert runs == 1, f"{shot.name} ran {runs} times"
    assert sum(down.runs.values()) == 0 and sum(up.runs.values()) >= 1


def test_a_workflow_error_names_the_node(pool, scene):
    (fake,) = pool(1)
    fake.refuse("3", "Value not in list: sampler_name: 'eulr' not in ['euler', 'dpmpp_2m']")
    (shot,) = _shots(scene, 1)
    select(scene, [shot])
    op(scene, "shotline_generate")
    runtime.run_until_idle(60, interval=0.02)
    assert shot.shotline.status == 'FAILED'
    assert "node 3" in shot.shotline.status_message and "eulr" in shot.shotline.status_message


def test_what_the_workflow_cannot_take_is_refused_before_queueing_and_pins_settle_it(pool, scene):
    (fake,) = pool(1)
    scene.shotline.workflow = str(WORKFLOWS / "custom_prompt_blend_api.json")
    (shot,) = _shots(scene, 1)
    select(scene, [shot])
    with pytest.raises(RuntimeError, match="Nothing was queued"):
        op(scene, "shotline_generate")
    assert "prompt" in shot.shotline.status_message and "pin" in shot.shotline.status_message.lower()
    assert fake.prompts == {}
    shot.shotline.pins = "prompt=50.text, seed=3.seed"  # the encoder and the sampler the director means
    assert op(scene, "shotline_generate") == {'FINISHED'}
    runtime.run_until_idle(60, interval=0.02)
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    assert fake.runs_of("Qəmgin mahnı, kadr 1") == 1


def test_the_batch_takes_a_workflow_and_pins(pool, scene, tmp_path):
    (fake,) = pool(1)
    blend = tmp_path / "film.blend"
    for n in range(2):
        shot = add_shot(scene, f"Шот {n + 1}", 1 + 60 * n, 50, channel=2)
        shot.shotline.prompt = f"batch kadr {n + 1}"
    scene.shotline.workflow = ""
    bpy.data.libraries.write(str(blend), {scene}, fake_user=True)
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    env = dict(os.environ, SHOTLINE_COMFYUI_URLS=fake.url)
    run = subprocess.run([sys.executable, str(scripts / "batch.py"), str(blend), "--generate", "--online",
                          "--workflow", str(WORKFLOWS / "wan22_t2v_api.json"), "--pin", "seed=57.noise_seed"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert [s["status"] for s in summary["shots"]] == ['PLACED', 'PLACED']
    assert fake.runs_of("batch kadr 1") == 1 and fake.runs_of("batch kadr 2") == 1
    seeds = {p["57"]["inputs"]["noise_seed"] for p in fake.prompts.values()}
    assert len(seeds) == 2, "each shot's own seed went where the pin says"


def test_the_workflows_content_is_kept_with_the_file_and_a_change_is_said(pool, scene, tmp_path):
    (fake,) = pool(1)
    workflow = tmp_path / "мой_workflow.json"
    workflow.write_bytes((WORKFLOWS / "wan22_t2v_api.json").read_bytes())
    scene.shotline.workflow = str(workflow)
    (shot,) = _shots(scene, 1)
    select(scene, [shot])
    op(scene, "shotline_generate")
    runtime.run_until_idle(60, interval=0.02)
    first = scene.shotline.workflow_key
    assert len(first) == 64 and shot.shotline.status == 'PLACED'
    data = json.loads(workflow.read_text(encoding="utf-8"))
    data["57"]["inputs"]["steps"] = 30  # the director tunes it in ComfyUI and exports again
    workflow.write_text(json.dumps(data), encoding="utf-8")
    select(scene, [shot])
    op(scene, "shotline_generate")
    runtime.run_until_idle(60, interval=0.02)
    assert scene.shotline.workflow_key != first
    assert len(shot.shotline.takes) == 2, "a changed workflow is another request: a new take"
    assert json.loads(workflow.read_text(encoding="utf-8"))["57"]["inputs"]["steps"] == 30, "never edited"
