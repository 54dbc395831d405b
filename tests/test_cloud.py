"""The cloud services through Blender, as a director uses them: shots generated with the
Generate operator against faithful fakes on 127.0.0.1 (tests/fakes/), takes placed, rendered
and read back; faults injected; the key kept out of the file, the file host and every message."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import bpy
import pytest

from fakes.clips import real_clip
from fakes.server import Cdn, Fault
from shotline.addon import probe, timing
from shotline.addon.blend import compat, prefs, runtime, shots
from shotline.addon.services import config, registry
from vse import add_shot, op, select, set_fps, shown_source_frame

CLIP_FPS = Fraction(24)  # what these services deliver, whatever the scene's rate
NTSC_30 = Fraction(30000, 1001)


@dataclass(frozen=True)
class Cloud:
    id: str
    key_env: str
    model: str
    create_route: str
    status_route: str
    reconciles: bool  # a lost create is found again by listing the service's jobs
    refreshes_links: bool  # a failed download is tried again from a fresh link (Runway's change per read)

    def make(self, cdn: Cdn):
        """The fake, its key and the address the service is pointed at."""
        if self.id == "fal":
            from fakes.fal import FalFake
            fake = FalFake(cdn, key="fal-key-id:fal-5ecret-0123456789")
            return fake, fake.key, fake.url
        if self.id == "replicate":
            from fakes.replicate import ReplicateFake
            fake = ReplicateFake(cdn, token="r8_5ecretTokenForTests0123456789")
            return fake, fake.token, fake.api_url
        fake_module = importlib.import_module(f"fakes.{self.id}")
        fake = {"runway": "FakeRunway", "luma": "FakeLuma", "veo": "FakeVeo"}[self.id]
        fake = getattr(fake_module, fake)(cdn)
        return fake, fake_module.KEY, fake.url


CLOUDS = [
    Cloud("fal", "FAL_KEY", "fal-ai/kling-video/v2.5-turbo/pro/text-to-video", "submit", "status", False, False),
    Cloud("replicate", "REPLICATE_API_TOKEN", "kwaivgi/kling-v2.5-turbo-pro", "create", "get", True, False),
    Cloud("runway", "RUNWAYML_API_SECRET", "gen4.5", "create", "status", False, True),
    Cloud("luma", "LUMAAI_API_KEY", "ray-2", "create_dm", "status_dm", True, False),
    Cloud("veo", "GEMINI_API_KEY", "", "create", "status", False, False),
]


@pytest.fixture(params=CLOUDS, ids=lambda c: c.id)
def cloud(request, scene, monkeypatch):
    """A fake service serving playable 24 fps clips, reached through the shipped service with the
    address and key a director would set; online access allowed."""
    spec: Cloud = request.param
    cdn = Cdn()
    fake, key, url = spec.make(cdn)
    fake.clip = lambda *_job: real_clip(CLIP_FPS, 240)
    monkeypatch.setenv(spec.key_env, key)
    monkeypatch.setenv(f"SHOTLINE_{spec.id.upper()}_URL", url)
    for store in (config._keys, config._urls):
        monkeypatch.delitem(store, spec.id, raising=False)
    service = registry.get(spec.id)
    monkeypatch.setattr(service, "poll_interval", 0.05)
    service.api().base_delay = 0.01  # backoff in hundredths: the faults below retry in seconds, not minutes
    monkeypatch.setattr(runtime.queue(), "_retry_delay", 0.05)
    system = bpy.context.preferences.system
    was_online = system.use_online_access
    system.use_online_access = True
    yield spec, fake, cdn, key
    system.use_online_access = was_online
    fake.close()
    cdn.close()


def _shots(scene, spec: Cloud, count: int, seconds: int = 2) -> list:
    fps = shots.scene_fps(scene)
    made = []
    for n in range(count):
        shot = add_shot(scene, f"Шот {n + 1}", 1 + n * timing.nearest_frame(seconds + 1, fps),
                        timing.nearest_frame(seconds, fps), channel=2)
        shot.shotline.prompt = f"Qəmgin mahnı, kadr {n + 1}: neon rain"
        shot.shotline.service = spec.id
        shot.shotline.model = spec.model
        made.append(shot)
    return made


def _generate(scene, made, timeout: float = 120, on_pump=None) -> None:
    select(scene, made)
    assert op(scene, "shotline_generate") == {'FINISHED'}
    runtime.run_until_idle(timeout, interval=0.02, on_pump=on_pump)


@pytest.mark.parametrize("scene_fps", [Fraction(25), NTSC_30], ids=["25", "29.97"])
def test_a_24_fps_take_plays_at_its_real_speed(cloud, scene, scene_fps, tmp_path):
    spec, fake, cdn, key = cloud
    set_fps(scene, scene_fps)
    made = _shots(scene, spec, 2)
    _generate(scene, made)
    out = tmp_path / "frame.png"
    for shot in made:
        assert shot.shotline.status == 'PLACED', shot.shotline.status_message
        take = shot.shotline.takes[0]
        assert timing.rate(take.fps) == CLIP_FPS, "the rate is read from the file"
        assert take.service == spec.id and take.model == spec.model
        strip = shots.take_strip(scene, shot)
        left, right = compat.span(shot)
        assert compat.span(strip) == (left, right)
        for offset in (0, 1, right - left - 1):
            clock = timing.source_position(offset, CLIP_FPS, scene_fps)
            shown = shown_source_frame(scene, left + offset, out)
            assert shown is not None and abs(shown - clock) <= Fraction(1, 2) + Fraction(1, 1000), (
                f"{shot.name} + {offset}: source frame {shown}, the clock says {float(clock):.3f}")
    assert fake.creates == 2
    assert cdn.keys_seen() == []


def test_six_shots_with_every_fault_end_placed_or_failed_with_the_reason(cloud, scene):
    spec, fake, cdn, key = cloud
    set_fps(scene, Fraction(25))
    made = _shots(scene, spec, 6, seconds=1)
    fake.fault(spec.create_route, Fault.status_(429, {"error": "Too many requests"}, retry_after=0.2))
    fake.fault(spec.create_route, Fault.lost_reply())
    fake.fault(spec.status_route, Fault.status_(503), times=2)
    fake.fault(spec.status_route, Fault.hang(0.2))
    cdn.download_fault("reset")
    cdn.download_fault("truncate")
    cdn.download_fault("html")
    fake.succeed_next()  # the first job made is the one whose reply is lost
    _refuse_next(spec, fake)
    start = time.monotonic()
    _generate(scene, made, timeout=180)
    outcomes = {s.name: (s.shotline.status, s.shotline.status_message) for s in made}
    failed = {name: message for name, (status, message) in outcomes.items() if status == 'FAILED'}
    placed = [s for s in made if s.shotline.status == 'PLACED']
    assert len(placed) + len(failed) == 6, outcomes
    reasons = sorted(failed.values())
    expected = 3 - spec.reconciles - spec.refreshes_links
    assert len(failed) == expected, outcomes
    assert any(_is_policy(r) for r in reasons), reasons
    assert spec.refreshes_links or any("HTML page" in r for r in reasons), reasons
    assert spec.reconciles or any("Submission uncertain" in r and "dashboard" in r for r in reasons), reasons
    assert fake.creates == 6, "a lost create was made again (paid twice)"
    for shot in placed:
        path = Path(bpy.path.abspath(shots.take_strip(scene, shot).filepath))
        assert probe.read_clip(path).frames == 240, "a partial or foreign file was placed"
    for shot in made:
        assert key not in shot.shotline.status_message
    assert cdn.keys_seen() == []
    assert time.monotonic() - start < 180


def _refuse_next(spec: Cloud, fake) -> None:
    """The service's own way of refusing a job on content grounds."""
    if spec.id in ("fal", "replicate"):
        fake.content_policy_next()
    elif spec.id == "runway":
        fake.fail_next("SAFETY.INPUT.TEXT", "Prompt flagged by content moderation")
    elif spec.id == "luma":
        fake.fail_next("The prompt did not pass moderation", None)
    else:
        fake.filter_next("Your prompt may violate our usage guidelines (safety filters).")


def _is_policy(message: str) -> bool:
    text = message.lower()
    return any(word in text for word in ("content", "policy", "moderat", "safety", "flagged"))


def test_with_online_access_off_nothing_is_sent(cloud, scene):
    spec, fake, _cdn, _key = cloud
    bpy.context.preferences.system.use_online_access = False
    (shot,) = _shots(scene, spec, 1)
    select(scene, [shot])
    with pytest.raises(RuntimeError, match="Nothing was queued"):
        op(scene, "shotline_generate")
    assert "needs online access" in shot.shotline.status_message
    assert "Preferences > System > Network" in shot.shotline.status_message
    assert fake.calls == []


def test_the_key_from_the_preferences_never_reaches_the_file(cloud, scene, tmp_path, monkeypatch):
    spec, fake, cdn, key = cloud
    monkeypatch.delenv(spec.key_env)
    settings = prefs.get()
    setattr(settings, f"{spec.id}_key", key)  # typed into the preferences
    try:
        (shot,) = _shots(scene, spec, 1)
        _generate(scene, [shot])
    finally:
        setattr(settings, f"{spec.id}_key", "")
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    blend = tmp_path / "film.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert key.encode() not in blend.read_bytes()
    assert all(key not in c.headers.get("authorization", "") for c in cdn.calls)


# -- Blender killed right after a submit ---------------------------------------------------------------------------

KILLED_AFTER_SUBMIT = """
import json, os, signal, sys, time
sys.path.insert(0, {scripts!r})
import shotline_dev
shotline_dev.expose_checkout()
import bpy
shotline_dev.enable()
from shotline.addon import journal
from shotline.addon.blend import compat, mediafolder, runtime, shots

bpy.context.preferences.system.use_online_access = True
phase, blend = sys.argv[1], sys.argv[2]
if phase == "submit":
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 320, 180
    strip = compat.new_effect(compat.strips(scene.sequence_editor_create()), "Певица", 'COLOR', 2, 1, 48)
    shots.make_shot(strip)
    strip.shotline.prompt, strip.shotline.service, strip.shotline.model = "Qəmgin mahnı", "runway", "gen4.5"
    bpy.ops.wm.save_as_mainfile(filepath=blend)  # the last save: before the submit
    scene = bpy.context.scene
    strip = compat.strips_all(scene.sequence_editor)["Певица"]
    strip.select = True
    with compat.operators_on(scene):
        bpy.ops.sequencer.shotline_generate()
    book = mediafolder.journal_file(scene)
    deadline = time.monotonic() + 60
    while not journal.pending(book):
        assert time.monotonic() < deadline, "never journalled"
        runtime.pump()
        time.sleep(0.01)
    print("journalled", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no save, no clean-up: as a crash or a power cut
else:
    bpy.ops.wm.open_mainfile(filepath=blend)
    runtime.run_until_idle(120, interval=0.02)
    scene = bpy.context.scene
    strip = compat.strips_all(scene.sequence_editor)["Певица"]
    take = shots.take_strip(scene, strip)
    print(json.dumps({{"status": strip.shotline.status, "message": strip.shotline.status_message,
                      "takes": len(strip.shotline.takes), "span": list(compat.span(take)) if take else None,
                      "shot": list(compat.span(strip))}}), flush=True)
    os._exit(0)
"""


def test_blender_killed_after_a_submit_adopts_the_job_when_the_file_opens(tmp_path):
    from fakes.runway import KEY, FakeRunway

    cdn = Cdn()
    fake = FakeRunway(cdn, steps=("PENDING", "RUNNING", "RUNNING", "RUNNING", "RUNNING"))
    fake.clip = lambda *_job: real_clip(CLIP_FPS, 240)
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AFTER_SUBMIT.format(scripts=str(Path(__file__).resolve().parents[1] / "scripts")))
    env = dict(os.environ, RUNWAYML_API_SECRET=KEY, SHOTLINE_RUNWAY_URL=fake.url)
    blend = str(tmp_path / "фильм.blend")
    try:
        first = subprocess.run([sys.executable, str(script), "submit", blend], capture_output=True, text=True,
                               env=env, timeout=180)
        assert "journalled" in first.stdout and first.returncode == -9, first.stdout[-2000:] + first.stderr[-2000:]
        assert fake.creates == 1
        second = subprocess.run([sys.executable, str(script), "open", blend], capture_output=True, text=True,
                                env=env, timeout=240)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        facts = json.loads(second.stdout.strip().splitlines()[-1])
        assert facts["status"] == 'PLACED' and facts["takes"] == 1, facts
        assert facts["span"] == facts["shot"]
        assert fake.creates == 1, "the job was submitted again: paid twice"
        assert KEY not in Path(blend).read_text("latin-1")
    finally:
        fake.close()
        cdn.close()


def test_the_batch_run_again_after_a_kill_waits_for_the_adopted_job(tmp_path):
    """A farm retries a shot task Blender was killed in: the batch must not send the shot again."""
    from fakes.runway import KEY, FakeRunway

    cdn = Cdn()
    fake = FakeRunway(cdn, steps=("PENDING", "RUNNING", "RUNNING", "RUNNING", "RUNNING"))
    fake.clip = lambda *_job: real_clip(CLIP_FPS, 240)
    script = tmp_path / "killed.py"
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    script.write_text(KILLED_AFTER_SUBMIT.format(scripts=str(scripts)))
    env = dict(os.environ, RUNWAYML_API_SECRET=KEY, SHOTLINE_RUNWAY_URL=fake.url)
    blend = str(tmp_path / "film.blend")
    try:
        first = subprocess.run([sys.executable, str(script), "submit", blend], capture_output=True, text=True,
                               env=env, timeout=180)
        assert first.returncode == -9, first.stdout[-2000:] + first.stderr[-2000:]
        again = subprocess.run([sys.executable, str(scripts / "batch.py"), blend, "--generate", "--online"],
                               capture_output=True, text=True, env=env, timeout=240)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert "resuming 1 shots" in again.stdout and "generating 0 shots" in again.stdout
        (shot,) = json.loads(again.stdout.strip().splitlines()[-1])["shots"]
        assert shot["status"] == 'PLACED' and shot["takes"] == 1
        assert fake.creates == 1, "the batch sent the shot again: paid twice"
    finally:
        fake.close()
        cdn.close()
