"""SwarmUI through the job queue against a fake that speaks its HTTP routes and its generate
websocket (tests/fakes/swarmui.py): a batch, text and first-frame bodies, session renewal, errors,
lost connections that never lead to a second generation, hostile output paths, and cancel on the
job's own session only."""

from __future__ import annotations

from fractions import Fraction

import pytest

from drive import close_later, pump, quick, run, shots, still
from fakes.swarmui import MODELS, FakeSwarmUI
from shotline.addon.jobs import Job
from shotline.addon.services import config
from shotline.addon.services.base import JobControl, ServiceError
from shotline.addon.services.swarmui import SwarmUIService

T2V, I2V = MODELS[0], MODELS[1]
shot = shots(prompt="neon rain on the singer", frames=49, fps=Fraction(16), width=832, height=480, model=T2V)


def make(monkeypatch, fake: FakeSwarmUI, token: str = "") -> SwarmUIService:
    monkeypatch.setenv("SHOTLINE_SWARMUI_URL", fake.url)
    if token:
        monkeypatch.setenv("SHOTLINE_SWARMUI_TOKEN", token)
    else:
        monkeypatch.delenv("SHOTLINE_SWARMUI_TOKEN", raising=False)
    monkeypatch.delitem(config._keys, "swarmui", raising=False)
    monkeypatch.delitem(config._urls, "swarmui", raising=False)
    service = SwarmUIService()
    service.poll_interval = 0.01
    quick(service.api())
    return service


@pytest.fixture
def swarm(monkeypatch):
    fake = FakeSwarmUI()
    yield make(monkeypatch, fake), fake
    close_later(fake)


def generating(job: Job):
    return lambda: job.remote_id is not None and job.state == "generating"


# -- generating ------------------------------------------------------------------------------------------------------

def test_a_four_shot_batch_lands_four_takes_each_in_its_own_session(swarm, queue, tmp_path):
    service, fake = swarm
    q = queue(service)
    jobs = [q.submit(f"shot{i}", service.id, shot(shot_name=f"Shot {i}", prompt=f"take number {i}", seed=i),
                     tmp_path / f"take_{i}.mp4") for i in range(4)]
    events = pump(q, lambda: all(j.is_finished for j in jobs))
    assert [j.state for j in jobs] == ["done"] * 4, [j.message for j in jobs]
    assert fake.generations == 4 and fake.unknown == []
    assert len({b["session_id"] for b in fake.bodies}) == 4
    for i, job in enumerate(jobs):
        result = job.result
        assert (result.fps, result.frames, result.width, result.height) == (16, 49, 832, 480)
        assert result.path == tmp_path / f"take_{i}.mp4" and result.path.read_bytes()[4:8] == b"ftyp"
    assert {c.path for c in fake.calls_to(r"^/View/")} == {
        f"/View/local/raw/2026-12-01/{n:04d}-take%20number%20{i}.mp4"
        for n, i in ((n + 1, int(b["prompt"][-1])) for n, b in enumerate(fake.bodies))}
    assert any(e.progress and 0 < e.progress < 1 and "Generating on SwarmUI" in e.message for e in events)


def test_a_model_loading_for_longer_than_a_poll_is_shown(monkeypatch, queue, tmp_path):
    fake = FakeSwarmUI(steps=2, step_delay=0.6)
    try:
        job, events = run(queue, make(monkeypatch, fake), shot(), tmp_path)
    finally:
        close_later(fake)
    assert job.state == "done", job.message
    messages = [e.message for e in events]
    assert messages.index("SwarmUI is loading the model") < messages.index("Generating on SwarmUI (50% of this step)")


def test_text_to_video_sends_swarmuis_parameters(swarm, queue, tmp_path):
    service, fake = swarm
    job, _ = run(queue, service, shot(negative_prompt="watermark", width=1280, height=719,
                                      options='{"steps": 8}'), tmp_path)
    assert job.state == "done", job.message
    (body,) = fake.bodies
    body.pop("session_id")
    assert body == {"images": 1, "prompt": "neon rain on the singer", "negativeprompt": "watermark", "seed": 7,
                    "width": 1280, "height": 720, "model": T2V, "videofps": 16, "videoformat": "h264-mp4",
                    "text2videoframes": 49, "steps": 8}
    assert fake.unknown == ["steps"]  # the fake does not know every SwarmUI parameter; SwarmUI does


def test_first_and_last_frame_go_as_init_image_and_end_image(swarm, queue, tmp_path):
    service, fake = swarm
    first, last = still(tmp_path / "first.png"), still(tmp_path / "last.png", color=(10, 10, 200))
    job, _ = run(queue, service, shot(model=I2V, reference_image=first, last_frame_image=last, frames=33,
                                      fps=Fraction(24000, 1001)), tmp_path)
    assert job.state == "done", job.message
    (body,) = fake.bodies
    assert body["initimage"].startswith("data:image/png;base64,") and body["initimagecreativity"] == 0
    assert body["videoendimage"].startswith("data:image/png;base64,")
    assert (body["model"], body["videomodel"], body["videoframes"], body["videofps"]) == (I2V, I2V, 33, 24)
    assert "text2videoframes" not in body and fake.unknown == []
    assert job.result.frames == 33


def test_a_session_gone_before_it_is_used_is_renewed(swarm, queue, tmp_path):
    service, fake = swarm
    fake.expire_next_session()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert fake.sessions_made == 2 and fake.generations == 1
    assert len(fake.calls_to(r"GenerateText2ImageWS")) == 2


def test_test_connection_lists_the_models_in_a_new_session(swarm):
    service, fake = swarm
    assert service.models() == []
    fake.expire_sessions()
    assert service.test_connection() == "SwarmUI 0.9.7.2: connected (3 models)."
    assert service.models() == sorted(MODELS)
    with pytest.raises(ServiceError, match="has no model"):
        service.check(shot(model="Wan/nope"))


def test_a_token_goes_as_the_swarm_token_cookie(monkeypatch, queue, tmp_path):
    fake = FakeSwarmUI(token="tok.en.value")
    try:
        service = make(monkeypatch, fake, token="tok.en.value")
        job, _ = run(queue, service, shot(), tmp_path)
        assert job.state == "done", job.message
        assert all(c.headers.get("cookie") == "swarm_token=tok.en.value" for c in fake.calls)
    finally:
        close_later(fake)


# -- errors ----------------------------------------------------------------------------------------------------------

def test_an_error_from_swarmui_reaches_the_jobs_message(swarm, queue, tmp_path):
    service, fake = swarm
    fake.fail_next("All available backends failed to load the model 'Wan/wan2.1_t2v_1.3B_fp16'.")
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and job.attempts == 1
    assert job.message == "SwarmUI failed: All available backends failed to load the model 'Wan/wan2.1_t2v_1.3B_fp16'."
    assert fake.generations == 1


def test_a_parameter_swarmui_refuses_is_reported_and_generates_nothing(swarm, queue, tmp_path):
    service, fake = swarm
    job, _ = run(queue, service, shot(model="Wan/not_installed"), tmp_path)
    assert job.state == "failed"
    assert job.message.startswith("SwarmUI failed: Invalid value for parameter Model")
    assert fake.generations == 0


@pytest.mark.parametrize("request_, reason", [
    (shot(model=""), "Choose a SwarmUI model"),
    (shot(last_frame_image="/nowhere/last.png"), "only when it starts from a first frame"),
    (shot(reference_image="/nowhere/first.png"), "first.png is not there"),
    (shot(options="[1]"), "JSON object"),
])
def test_requests_it_cannot_take_are_refused_before_anything_is_sent(swarm, request_, reason):
    service, fake = swarm
    with pytest.raises(ServiceError, match=reason):
        service.check(request_)
    assert fake.calls == []


def test_a_lost_reply_never_runs_the_generation_twice(swarm, queue, tmp_path):
    service, fake = swarm
    fake.lose_next()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and job.message.startswith("Submission uncertain")
    assert "image history" in job.message
    assert fake.generations == 1 and len(fake.calls_to(r"GenerateText2ImageWS")) == 1


def test_a_connection_broken_mid_generation_is_not_generated_again(swarm, queue, tmp_path):
    service, fake = swarm
    fake.drop_next()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "connection to SwarmUI broke during the generation" in job.message
    assert fake.generations == 1 and len(fake.calls_to(r"GenerateText2ImageWS")) == 1


def test_a_job_from_before_a_restart_fails_clearly_and_is_not_rerun(swarm, queue, tmp_path):
    service, fake = swarm
    q = queue(service)
    record = Job(key="shot", service_id=service.id, request=shot(), dest=tmp_path / "take.mp4",
                 remote_id="swarmui-0123", state="generating").to_record()
    job = q.resume(record)
    pump(q, lambda: job.is_finished)
    assert job.state == "failed" and "before Blender last closed" in job.message
    assert fake.calls == []


@pytest.mark.parametrize("path", ["View/local/raw/../../../Data/Settings.fds", "/etc/passwd",
                                  "http://evil.example/clip.mp4", "View/local\\..\\..\\secret.mp4",
                                  "View//etc/clip.mp4", "Output/local/raw/clip.mp4"])
def test_a_hostile_output_path_is_refused(swarm, queue, tmp_path, path):
    service, fake = swarm
    fake.output_next(path)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "refuses to fetch" in job.message
    assert [c.method for c in fake.calls if not c.path.startswith("/API/")] == []
    assert list(tmp_path.iterdir()) == []


# -- cancel ----------------------------------------------------------------------------------------------------------

def test_cancel_interrupts_its_own_session_only(swarm, queue, tmp_path):
    service, fake = swarm
    fake.never_finish()
    fake.never_finish()
    q = queue(service)
    first = q.submit("a", service.id, shot(prompt="first"), tmp_path / "a.mp4")
    second = q.submit("b", service.id, shot(prompt="second"), tmp_path / "b.mp4")
    pump(q, lambda: generating(first)() and generating(second)())
    q.cancel(first.id)
    pump(q, lambda: first.is_finished)
    assert first.state == "cancelled" and not second.is_finished
    session = {b["prompt"]: b["session_id"] for b in fake.bodies}
    assert fake.interrupted == [session["first"]]
    q.cancel(second.id)
    pump(q, lambda: second.is_finished)
    assert fake.interrupted == [session["first"], session["second"]] and fake.generations == 2
    assert list(tmp_path.iterdir()) == []


def test_poll_and_fetch_by_hand(swarm, tmp_path):
    service, fake = swarm
    ctl = JobControl()
    remote_id = service.submit(shot(), ctl)
    while not service.poll(remote_id, ctl).done:
        pass
    result = service.fetch(remote_id, tmp_path / "take.part", ctl)
    assert result.frames == 49 and (tmp_path / "take.part").stat().st_size > 0
    with pytest.raises(ServiceError, match="cannot be followed again"):
        service.poll(remote_id, ctl)
