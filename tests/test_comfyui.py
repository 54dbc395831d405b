"""ComfyUI through the job queue against fake ComfyUI servers (tests/fakes/comfyui.py): progress over
the websocket and over /history, uploads, refusals naming the node, hostile output names, cancel on
the right server, a lost /prompt reply, a pool of servers where one is down and one dies, and image
sequences and animated WebP/GIF made into clips Blender places."""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import bpy
import pytest

from drive import close_later, pump, quick, run, shots, still
from fakes.clips import tiny_mp4
from fakes.comfyui import FakeComfyUI
from fakes.server import Fault
from shotline.addon import probe
from shotline.addon.blend import compat
from shotline.addon.jobs import JobQueue
from shotline.addon.services import comfyui as comfy_module
from shotline.addon.services import config
from shotline.addon.services.base import JobControl, ServiceError
from shotline.addon.services.comfyui import ComfyUIService, _animation_fps, pick_output
from shotline.addon.services.comfyui.pool import MAX_MOVES, Placement, Pool
from shotline.addon.services.websocket import (BINARY, PING, PONG, TEXT, Closed, WebSocket,
                                                       encode_frame)

T2V = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "wan2.2_ti2v_5B.safetensors"}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
    "4": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 832, "height": 480, "length": 33,
                                                               "batch_size": 1}},
    "5": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 6.0, "sampler_name": "euler",
                                               "scheduler": "simple", "denoise": 1.0, "model": ["1", 0],
                                               "positive": ["2", 0], "negative": ["3", 0],
                                               "latent_image": ["4", 0]}},
    "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
    "7": {"class_type": "CreateVideo", "inputs": {"images": ["6", 0], "fps": 16.0}},
    "8": {"class_type": "SaveVideo", "inputs": {"video": ["7", 0], "filename_prefix": "video/shotline",
                                                "format": "auto", "codec": "auto"}},
}
I2V = {**T2V,
       "9": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
       "4": {"class_type": "WanImageToVideo", "inputs": {"width": 832, "height": 480, "length": 33, "batch_size": 1,
                                                          "start_image": ["9", 0], "positive": ["2", 0],
                                                          "negative": ["3", 0], "vae": ["1", 2]}}}
# Pinned, so these tests do not depend on what workflow.analyse guesses.
T2V_PINS = {"prompt": "2.text", "negative_prompt": "3.text", "seed": "5.seed", "width": "4.width",
            "height": "4.height", "frames": "4.length", "fps": "7.fps"}
I2V_PINS = {**T2V_PINS, "first_frame": "9.image"}
# The decoded frames saved as PNGs (no rate anywhere: the shot's is the clip's), or as an animated WebP.
FRAMES = {k: v for k, v in T2V.items() if k != "7"} | {
    "8": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "frames/shotline"}}}
FRAMES_PINS = {k: v for k, v in T2V_PINS.items() if k != "fps"}
WEBP = FRAMES | {"8": {"class_type": "SaveAnimatedWEBP", "inputs": {
    "images": ["6", 0], "filename_prefix": "anim/shotline", "fps": 6.0, "lossless": False, "quality": 90,
    "method": "default"}}}
WEBP_PINS = {**FRAMES_PINS, "fps": "8.fps"}


@pytest.fixture
def servers():
    """Makes fake ComfyUI servers; all are stopped after the test."""
    made = []

    def make(n: int = 1, **kw) -> list[FakeComfyUI]:
        made.extend(FakeComfyUI(**kw) for _ in range(n))
        return made[-n:]

    yield make
    close_later(*made)


@pytest.fixture
def flow(tmp_path):
    """Writes a workflow file; returns the shot options naming it."""
    def write(graph=T2V, pins=T2V_PINS, name="workflow_api.json") -> str:
        path = tmp_path / name
        path.write_text(json.dumps(graph))
        return json.dumps({"workflow": str(path), "pins": pins})
    return write


def service_for(*fakes, move_after: float = 0.2) -> ComfyUIService:
    service = ComfyUIService([f.url for f in fakes], move_after=move_after)
    service.poll_interval, service.ws_wait, service.settle, service.check_every = 0.01, 0.2, 0.05, 0.5
    for server in service.pool.servers:
        quick(server.api)
    return service


def queued(fake: FakeComfyUI, prompt_id: str | None = None) -> dict:
    """The workflow the fake was asked to run (the only one, or `prompt_id`'s)."""
    if prompt_id is None:
        (prompt_id,) = fake.prompts
    return fake.prompts[prompt_id]


shot = shots(prompt="neon rain on the singer", negative_prompt="text, watermark")


# -- one server ----------------------------------------------------------------------------------------------------

def test_a_shot_runs_with_websocket_progress_and_lands_a_take(servers, flow, queue, tmp_path):
    (fake,) = servers()
    service = service_for(fake)
    job, events = run(queue, service, shot(options=flow()), tmp_path)
    assert job.state == "done", job.message
    remote = json.loads(job.remote_id)
    assert remote["server"] == fake.url and fake.runs == {remote["prompt_id"]: 1}
    graph = queued(fake)
    assert graph["2"]["inputs"]["text"] == "neon rain on the singer"
    assert graph["3"]["inputs"]["text"] == "text, watermark"
    assert graph["5"]["inputs"]["seed"] == 7
    assert (graph["4"]["inputs"]["width"], graph["4"]["inputs"]["height"], graph["4"]["inputs"]["length"]) == \
        (1280, 720, 96)
    assert graph["7"]["inputs"]["fps"] == 24
    steps = [e.progress for e in events if e.kind == "progress" and e.progress]
    assert steps and all(0 < p <= 1 for p in steps), "the sampler's steps reach the job"
    assert any("Generating on ComfyUI at 127.0.0.1" in e.message and "(node 5)" in e.message for e in events)
    paths = [c.path for c in fake.calls]
    assert paths.index("/ws") < paths.index("/prompt"), "listening before queueing: no event is missed"
    assert fake.calls_to(r"^/ws$")[0].query["clientId"] == [remote["client_id"]]
    assert fake.pongs > 0 and fake.unmasked == 0
    assert len(fake.calls_to(r"^/history/")) <= 2, "the websocket told the progress, not polling"
    (view,) = fake.calls_to(r"^/view$")
    assert view.query == {"filename": ["shotline_00001_.mp4"], "subfolder": ["video"], "type": ["output"]}
    result = job.result
    assert (result.fps, result.frames, result.width, result.height, result.cost) == (24, 48, 1280, 720, 0.0)
    assert result.path.read_bytes() == tiny_mp4()


def test_without_a_websocket_history_and_queue_are_followed(servers, flow, queue, tmp_path):
    (fake,) = servers(steps=6, step_time=0.03)
    fake.websocket = False
    service = service_for(fake)
    job, events = run(queue, service, shot(options=flow()), tmp_path)
    assert job.state == "done", job.message
    assert len(fake.calls_to(r"^/history/")) > 2 and fake.calls_to(r"^/queue$", "GET")
    assert any(e.message.startswith("Generating on ComfyUI") for e in events)
    assert sum(fake.runs.values()) == 1


def test_a_vhs_gifs_entry_holding_an_mp4_is_the_clip(servers, flow, queue, tmp_path):
    (fake,) = servers()
    fake.ui_key = "gifs"
    job, _ = run(queue, service_for(fake), shot(options=flow()), tmp_path)
    assert job.state == "done", job.message


def test_stills_are_uploaded_by_content_and_the_load_node_names_them(servers, flow, queue, tmp_path):
    (fake,) = servers()
    service = service_for(fake)
    first = still(tmp_path / "first frame.png")
    request = shot(options=flow(I2V, I2V_PINS), reference_image=first)
    job, _ = run(queue, service, request, tmp_path)
    assert job.state == "done", job.message
    (name,) = fake.uploads
    assert name.startswith("shotline/") and name.endswith(".png")
    assert fake.uploads[name] == (tmp_path / "first frame.png").read_bytes()
    assert queued(fake)["9"]["inputs"]["image"] == name
    (upload,) = fake.calls_to(r"^/upload/image$")
    assert b'name="overwrite"\r\n\r\nfalse' in upload.body
    job2, _ = run(queue, service, request, tmp_path, name="take2.mp4")  # the same file: the same name
    assert job2.state == "done" and list(fake.uploads) == [name]


def test_a_workflow_without_a_place_for_the_shots_inputs_is_refused_before_anything_is_sent(servers, flow):
    (fake,) = servers()
    service = service_for(fake)
    with pytest.raises(ServiceError, match=r"(?i)first[_ ]frame"):
        service.check(shot(options=flow(), reference_image="/nowhere/first.png"))
    with pytest.raises(ServiceError, match="needs a workflow"):
        service.check(shot())
    with pytest.raises(ServiceError, match="pins"):
        service.check(shot(options=json.dumps({"workflow": "/x.json", "pins": ["seed"]})))
    assert fake.calls == []


def test_a_workflow_comfyui_refuses_names_the_node(servers, flow, queue, tmp_path):
    (fake,) = servers()
    fake.refuse("5", "Value not in list: sampler_name: 'eulr' not in ['euler', 'dpmpp_2m']")
    job, _ = run(queue, service_for(fake), shot(options=flow()), tmp_path)
    assert job.state == "failed" and job.attempts == 1
    assert "node 5 (KSampler)" in job.message and "'eulr' not in" in job.message
    assert fake.runs == {} and len(fake.calls_to(r"^/prompt$")) == 1


@pytest.mark.parametrize("websocket", [True, False])
def test_an_execution_error_names_the_node_and_its_exception(servers, flow, queue, tmp_path, websocket):
    (fake,) = servers()
    fake.websocket = websocket
    fake.fail_at("5", "CUDA out of memory. Tried to allocate 2.00 GiB", "torch.OutOfMemoryError")
    job, _ = run(queue, service_for(fake), shot(options=flow()), tmp_path)
    assert job.state == "failed"
    assert job.message == "ComfyUI failed at node 5 (KSampler): CUDA out of memory. Tried to allocate 2.00 GiB"
    assert not fake.calls_to(r"^/view$")


@pytest.mark.parametrize("name, subfolder", [
    ("../../.ssh/id_rsa.mp4", ""), ("/etc/passwd.mp4", ""), ("C:\\Windows\\x.mp4", ""), ("C:x.mp4", ""),
    ("a\\..\\b.mp4", ""), ("x.mp4", "../.."), ("x.mp4", "/etc"),
])
def test_hostile_output_names_are_refused_without_asking_for_them(servers, flow, queue, tmp_path, name, subfolder):
    (fake,) = servers()
    fake.files_for = lambda prompt_id, node_id, node: [(name, subfolder, tiny_mp4())]
    job, _ = run(queue, service_for(fake), shot(options=flow()), tmp_path)
    assert job.state == "failed" and "points outside its folders: refused" in job.message
    assert not fake.calls_to(r"^/view$")


def test_a_video_comes_first_then_an_animation_then_one_nodes_frames_in_counter_order():
    def files(*names):
        return [{"filename": n, "subfolder": "", "type": "output"} for n in names]

    # The counter outgrows its five digits: "100000" sorts before "99999" as text.
    frames = {"images": files("f_100000_.png", "f_99999_.png", "f_100001_.png", "f_99998_.png")}
    kind, items = pick_output({"3": frames, "4": {"images": files("g_00001_.png")}})
    assert kind == "frames" and [i["filename"] for i in items] == [
        "f_99998_.png", "f_99999_.png", "f_100000_.png", "f_100001_.png"]
    animated = {"images": files("a_00001_.webp"), "animated": [True]}
    assert pick_output({"3": frames, "8": animated}) == ("animation", animated["images"])
    video = {"gifs": files("v.mp4")}
    assert pick_output({"3": frames, "5": animated, "8": video}, ("8",)) == ("video", video["gifs"])
    with pytest.raises(ServiceError, match="without saving a video, an animation or frames"):
        pick_output({"3": {"text": ["hello"]}})


def test_an_animations_own_frame_durations_set_its_rate():
    # ComfyUI writes int(1000 / fps) ms: the asked rate when that is what the file says...
    assert _animation_fps([41] * 5, 1, Fraction(24000, 1001)) == Fraction(24000, 1001)
    assert _animation_fps([62] * 5, 1, Fraction(16)) == 16
    assert _animation_fps([60] * 5, 10, Fraction(16)) == 16  # a GIF: hundredths of a second
    assert _animation_fps([248, 62, 124], 1, Fraction(16)) == 16  # repeated frames merged
    assert _animation_fps([83] * 5, 1, Fraction(24)) == 24  # 12 fps: each frame is two at 24
    # ... else the whole rate of the shortest frame, else the exact rate it gives.
    assert _animation_fps([83, 249, 83], 1, Fraction(25)) == 12
    assert _animation_fps([80, 80, 80], 1, Fraction(24)) == Fraction(25, 2)
    assert _animation_fps([0, 0], 1, Fraction(24)) == 24  # no durations stated


def _blender_frames(path, fps: Fraction) -> int:
    """How many frames Blender's own movie strip finds in the clip, in a scene at the clip's rate."""
    scene = bpy.data.scenes.new("comfyui clip")
    try:
        scene.render.fps, scene.render.fps_base = fps.numerator, fps.denominator
        editor = scene.sequence_editor_create()
        strip = compat.strips(editor).new_movie("clip", str(path), 1, 1)
        assert Fraction(strip.fps).limit_denominator(1001) == fps
        return compat.content_frames(strip)
    finally:
        bpy.data.scenes.remove(scene)


@pytest.mark.parametrize("saves, graph, pins, size", [
    ("png", FRAMES, FRAMES_PINS, (320, 180)),
    ("webp", WEBP, WEBP_PINS, (320, 180)),
    ("gif", WEBP, WEBP_PINS, (321, 181)),  # an odd size loses its last column and row: H.264 needs even
])
def test_frames_and_animations_become_a_clip_at_the_workflows_rate(servers, flow, queue, tmp_path, saves, graph,
                                                                   pins, size):
    (fake,) = servers()
    fake.saves = saves
    fake.counter = 99_990  # past 99999 the names grow a digit: the order is still the counter's
    request = shot(options=flow(graph, pins), frames=24, fps=Fraction(16), width=size[0], height=size[1])
    job, events = run(queue, service_for(fake), request, tmp_path)
    assert job.state == "done", job.message
    views = fake.calls_to(r"^/view$")
    assert len(views) == (24 if saves == "png" else 1)
    if saves != "png":
        assert queued(fake)["8"]["inputs"]["fps"] == 16, "the shot's rate, filled into the saver"
    result = job.result
    assert (result.fps, result.frames, result.width, result.height) == (16, 24, 320, 180)
    assert probe.read_clip(result.path) == probe.ClipInfo(Fraction(16), 24, 320, 180)
    assert _blender_frames(result.path, Fraction(16)) == 24
    assert {"Encoding"} <= {e.message for e in events if e.kind == "downloading"}


@pytest.mark.parametrize("name, subfolder", [("../x_00002_.png", ""), ("x_00002_.png", "../..")])
def test_a_hostile_frame_name_is_refused_before_any_frame_is_read(servers, flow, queue, tmp_path, name, subfolder):
    (fake,) = servers()
    fake.saves = "png"
    fake.files_for = lambda prompt_id, node_id, node: [("x_00001_.png", "", b"png"), (name, subfolder, b"png")]
    job, _ = run(queue, service_for(fake), shot(options=flow(FRAMES, FRAMES_PINS)), tmp_path)
    assert job.state == "failed" and "points outside its folders: refused" in job.message
    assert not fake.calls_to(r"^/view$")


def test_a_frame_that_is_not_an_image_fails_the_job(servers, flow, queue, tmp_path):
    (fake,) = servers()
    fake.saves = "png"
    fake.files_for = lambda prompt_id, node_id, node: [("x_00001_.png", "", b"<html>not found</html>")]
    job, _ = run(queue, service_for(fake), shot(options=flow(FRAMES, FRAMES_PINS)), tmp_path)
    assert job.state == "failed" and "x_00001_.png is not a readable image" in job.message


def test_cancel_while_encoding_frames_stops_the_child_and_leaves_nothing(servers, flow, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the frames and the child's scratch go here
    (tmp_path / "tmp").mkdir()
    (fake,) = servers()
    fake.saves = "png"
    service = service_for(fake)
    q = JobQueue({service.id: service}, retry_delay=0.01)
    try:
        job = q.submit("shot", service.id, shot(options=flow(FRAMES, FRAMES_PINS), frames=600, width=320,
                                                height=180), tmp_path / "take.mp4")
        pump(q, lambda: job.message == "Encoding", timeout=60)
        q.cancel(job.id)
        cancelled_at = time.monotonic()
        pump(q, lambda: job.is_finished)
        assert time.monotonic() - cancelled_at < 3.0
    finally:
        assert q.shutdown(wait=True, timeout=10)
    assert job.state == "cancelled"
    assert list((tmp_path / "tmp").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp", "workflow_api.json"]
    if sys.platform.startswith("linux"):
        running = [e.name for e in Path("/proc").iterdir() if e.name.isdigit() and _mentions(e, str(tmp_path))]
        assert running == []


def _mentions(process, text: str) -> bool:
    try:
        return text in (process / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _busy(fake: FakeComfyUI) -> None:
    """Something of someone else's in the fake's queue, so the pool prefers the other server."""
    import requests
    requests.post(f"{fake.url}/prompt", json={"prompt": {"1": {"class_type": "SaveVideo", "inputs": {}}}})


def test_cancel_of_a_pending_prompt_deletes_it_from_its_own_servers_queue(servers, flow, tmp_path):
    a, b = servers(2)
    a.hold(), b.hold()
    _busy(a)
    service = service_for(a, b)
    q = JobQueue({service.id: service}, retry_delay=0.01)
    try:
        job = q.submit("shot", service.id, shot(options=flow()), tmp_path / "take.mp4")
        pump(q, lambda: job.remote_id is not None and "Queued on ComfyUI" in job.message)
        prompt_id = json.loads(job.remote_id)["prompt_id"]
        assert json.loads(job.remote_id)["server"] == b.url
        q.cancel(job.id)
        pump(q, lambda: job.is_finished)
    finally:
        assert q.shutdown(wait=True, timeout=10)
    assert job.state == "cancelled"
    (delete,) = b.calls_to(r"^/queue$", "POST")
    assert delete.json() == {"delete": [prompt_id]}
    assert not b.calls_to(r"^/interrupt$") and not a.calls_to(r"^/(queue|interrupt)$", "POST")
    b.release()
    time.sleep(0.1)
    assert b.runs == {}


def test_cancel_of_a_running_prompt_interrupts_it_on_its_own_server(servers, flow, tmp_path):
    a, b = servers(2, steps=200, step_time=0.02)
    a.hold()
    _busy(a)
    service = service_for(a, b)
    q = JobQueue({service.id: service}, retry_delay=0.01)
    try:
        job = q.submit("shot", service.id, shot(options=flow()), tmp_path / "take.mp4")
        pump(q, lambda: (job.progress or 0) > 0)
        prompt_id = json.loads(job.remote_id)["prompt_id"]
        q.cancel(job.id)
        pump(q, lambda: job.is_finished)
    finally:
        assert q.shutdown(wait=True, timeout=10)
    assert job.state == "cancelled"
    (interrupt,) = b.calls_to(r"^/interrupt$")
    assert interrupt.json() == {"prompt_id": prompt_id}
    assert not a.calls_to(r"^/(queue|interrupt)$", "POST")
    deadline = time.monotonic() + 5
    while prompt_id not in b.history and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b.history[prompt_id]["status"]["status_str"] == "error" and b.runs == {}


@pytest.mark.parametrize("fault, posts", [(Fault.lost_reply(), 1), (Fault.reset(), 2), (Fault.after(502), 1)])
def test_a_lost_prompt_reply_runs_the_prompt_exactly_once(servers, flow, queue, tmp_path, fault, posts):
    (fake,) = servers()
    fake.fault("prompt", fault)
    job, _ = run(queue, service_for(fake), shot(options=flow()), tmp_path)
    assert job.state == "done", job.message
    prompt_id = json.loads(job.remote_id)["prompt_id"]
    sent = fake.calls_to(r"^/prompt$", "POST")
    assert len(sent) == posts and {c.json()["prompt_id"] for c in sent} == {prompt_id}
    assert fake.runs == {prompt_id: 1}


def test_a_job_from_an_earlier_session_is_followed_by_its_remote_id(servers, flow, tmp_path):
    (fake,) = servers()
    first = service_for(fake)
    remote_id = first.submit(shot(options=flow()), JobControl())
    later = service_for(fake)  # Blender restarted: only the remote id is left
    deadline = time.monotonic() + 10
    while not later.poll(remote_id, JobControl()).done:
        assert time.monotonic() < deadline
    result = later.fetch(remote_id, tmp_path / "take.mp4.part", JobControl())
    assert result.frames == 48 and sum(fake.runs.values()) == 1


# -- several servers ----------------------------------------------------------------------------------------------

def test_nine_shots_over_three_servers_one_down_one_dying_each_run_exactly_once(servers, flow, tmp_path):
    a, b, c = servers(3, steps=6, step_time=0.04)
    a.kill()  # down from the start
    service = service_for(a, b, c)
    q = JobQueue({service.id: service}, retry_delay=0.01)
    options = flow()
    try:
        jobs = [q.submit(f"shot{i}", service.id, shot(prompt=f"shot number {i}", options=options),
                         tmp_path / f"take{i}.mp4") for i in range(9)]
        # Mid-batch, mid-render, with every clip it finished already fetched: what it runs and holds is lost.
        pump(q, lambda: sum(c.runs.values()) >= 1 and c.running is not None and c.step >= 3
             and len(c.calls_to(r"^/view$")) == sum(c.runs.values()), timeout=20)
        c.kill()
        pump(q, lambda: all(j.is_finished for j in jobs), timeout=30)
    finally:
        assert q.shutdown(wait=True, timeout=10)
    assert [j.state for j in jobs] == ["done"] * 9, [j.message for j in jobs]
    for i in range(9):
        assert b.runs_of(f"shot number {i}") + c.runs_of(f"shot number {i}") == 1, i
    assert a.runs == {} and c.runs and b.runs
    lost = [j for j in jobs if json.loads(j.remote_id)["server"] == c.url
            and json.loads(j.remote_id)["prompt_id"] not in c.runs]
    assert lost, "some shots queued on the dead server were finished on another"


def test_a_server_that_was_down_rejoins_when_it_answers(servers, flow, queue, tmp_path):
    a, b = servers(2)
    a.kill()
    service = service_for(a, b)
    job, _ = run(queue, service, shot(options=flow()), tmp_path)
    assert json.loads(job.remote_id)["server"] == b.url
    a.revive()
    b.hold()
    _busy(b)
    job2, _ = run(queue, service, shot(options=flow()), tmp_path, name="take2.mp4")
    assert job2.state == "done" and json.loads(job2.remote_id)["server"] == a.url


def test_a_job_whose_server_dies_with_no_other_fails_retryably(servers, flow, queue, tmp_path):
    (a,) = servers(steps=100, step_time=0.02)
    service = service_for(a, move_after=0.05)
    q = queue(service)
    job = q.submit("shot", service.id, shot(options=flow()), tmp_path / "take.mp4")
    pump(q, lambda: (job.progress or 0) > 0)
    a.kill()
    pump(q, lambda: job.is_finished)
    assert job.state == "failed" and job.attempts == 3
    assert "no other server can take the shot" in job.message


# -- the pool on its own -----------------------------------------------------------------------------------------

def test_the_pool_picks_the_least_loaded_server_that_answers(servers):
    a, b, c = servers(3)
    a.hold(), b.hold(), c.hold()
    _busy(a), _busy(a), _busy(b)
    pool = Pool([a.url, b.url, c.url])
    server = pool.choose()
    assert server.url == c.url and server.reserved == 1
    second = pool.choose()
    assert second.url == b.url  # c is now reserved for a prompt on its way: b and c tie, b is listed first
    c.kill()
    pool.release(server), pool.release(second)
    assert pool.choose().url == b.url and pool.down_for(pool.server(c.url)) >= 0
    c.revive()
    assert pool.queued(pool.server(c.url)) == 0 and pool.down_for(pool.server(c.url)) == 0


def test_the_pool_locates_a_prompt_and_moves_it_only_past_the_grace(servers):
    a, b = servers(2)
    a.hold()
    now = [100.0]
    pool = Pool([a.url, b.url], move_after=30, clock=lambda: now[0])
    import requests
    placement = Placement.new(a.url)
    requests.post(f"{a.url}/prompt", json={"prompt": T2V, "prompt_id": placement.prompt_id})
    assert pool.locate(placement).state == "pending"
    assert pool.locate(Placement.new(a.url)).state == "gone"
    a.kill()
    where = pool.locate(placement)
    assert where.state == "down" and not pool.should_move(placement, where)
    now[0] += 31
    assert pool.should_move(placement, where)
    queued_on = []
    new = pool.move(placement, lambda server, p: queued_on.append((server.url, p)))
    assert queued_on == [(b.url, new)] and new.moves == 1 and new.origin == placement.prompt_id
    assert new == placement.moved(b.url) and new.prompt_id != placement.prompt_id
    assert Placement.from_text(new.to_text()) == new
    requests.post(f"{b.url}/prompt", json={"prompt": T2V, "prompt_id": new.prompt_id})
    found, where = pool.find_moved(placement)
    assert found == new and where.state in ("pending", "running", "finished")
    assert not pool.should_move(placement.moved(b.url, MAX_MOVES), where)


def test_servers_come_from_the_preferences_then_the_environment(monkeypatch):
    monkeypatch.delitem(config._urls, "comfyui", raising=False)
    monkeypatch.setenv("SHOTLINE_COMFYUI_URLS", "gpu1:8188, http://gpu2:8188/")
    service = ComfyUIService()
    assert [s.url for s in service.pool.servers] == ["http://gpu1:8188", "http://gpu2:8188"]
    assert service.max_concurrency == 4 and service.estimate_cost(shot()) == 0.0
    config.set_url("comfyui", "https://render.example:443")  # what the preferences push
    try:
        assert [s.url for s in service.pool.servers] == ["https://render.example:443"]
        config.set_url("comfyui", "ftp://x")
        with pytest.raises(ServiceError, match="Not a ComfyUI server address"):
            service.pool
    finally:
        config.set_url("comfyui", "")


def test_test_connection_says_which_servers_answer(servers):
    a, b = servers(2)
    b.kill()
    assert service_for(a, b).test_connection().startswith("ComfyUI: 1 of 2 up: 127.0.0.1:")
    a.kill()
    with pytest.raises(ServiceError, match="No ComfyUI server is answering"):
        service_for(a, b).test_connection()


# -- the websocket client on its own -----------------------------------------------------------------------------

def _server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin=fin, mask=False)


def test_websocket_frames_split_fragmented_pinged_and_closed():
    ours, theirs = socket.socketpair()
    ws = WebSocket(ours)
    try:
        message = _server_frame(TEXT, b'{"type": "progress"', fin=False) + _server_frame(PING, b"hi") \
            + _server_frame(0, b', "data": {}}') + _server_frame(BINARY, b"\0\0\0\1" + b"x" * 70000)
        theirs.sendall(message[:5])
        assert ws.recv(0.05) is None  # half a frame: kept for later
        theirs.sendall(message[5:])
        assert ws.recv(1.0) == '{"type": "progress", "data": {}}'
        assert ws.recv(1.0) == b"\0\0\0\1" + b"x" * 70000
        pong = theirs.recv(64)
        assert pong[0] == 0x80 | PONG and pong[1] & 0x80, "a pong, masked, as a client must"
        assert bytes(b ^ pong[2 + i % 4] for i, b in enumerate(pong[6:8])) == b"hi"
        theirs.sendall(_server_frame(0x8, b"\x03\xe8"))
        with pytest.raises(Closed):
            ws.recv(1.0)
        assert theirs.recv(64)[0] == 0x88  # our close answer
    finally:
        ws.close()
        theirs.close()


def test_websocket_refused_handshake_is_an_error(servers):
    (fake,) = servers()
    fake.websocket = False
    with pytest.raises(Exception, match="refused the websocket"):
        WebSocket.connect(fake.url.replace("http", "ws") + "/ws?clientId=x", timeout=2)
