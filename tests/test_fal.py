"""fal through its queue protocol, driven the way the job queue drives it (submit -> poll -> fetch
into a .part file), against the fake fal (tests/fakes/fal.py) and its CDN: the happy path, every
fault, cancel, resume after a restart, and that the key never leaves the API host."""

from __future__ import annotations

import json
import logging
import time
from fractions import Fraction

import pytest

from drive import assert_no_leak, media, quick, run_alone
from fakes.fal import FalFake
from fakes.server import Cdn, Fault
from shotline.addon.jobs import JobQueue
from shotline.addon.services import config, fal as fal_module, models
from shotline.addon.services.base import JobControl, Request, ServiceError
from shotline.addon.services.fal import FalService

KEY = "fal-key-id-0042:fal-SECRET-c0ffee"
SECRETS = (KEY, "SECRET-c0ffee")
TIMEOUT = 15.0

VEO = Request(shot_name="Shot 1", prompt="neon rain over a rooftop", frames=100, fps=Fraction(25), width=1920,
              height=1080, seed=7, model="fal-ai/veo3.1/fast")


# -- fixtures ------------------------------------------------------------------------------------------------------

@pytest.fixture
def cdn():
    with Cdn() as c:
        yield c


@pytest.fixture
def fake(cdn, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    with FalFake(cdn, key=KEY) as f:
        monkeypatch.setitem(config._keys, "fal", KEY)
        monkeypatch.setitem(config._urls, "fal", f.url)
        monkeypatch.setitem(config._urls, "fal_rest", f.url)
        yield f
    assert_no_leak(cdn, caplog, SECRETS)


@pytest.fixture
def svc(fake):
    service = FalService()
    service.poll_interval = 0.01
    quick(service.api())
    quick(service.rest())
    return service


# -- the happy path ------------------------------------------------------------------------------------------------

def test_a_shot_becomes_a_take(svc, fake, cdn, tmp_path):
    job, events = run_alone(svc, VEO, tmp_path)
    assert job.state == "done", job.message
    r = job.result
    # What the file says, not what was asked: Veo delivers 24 fps; the 4 s it was asked for covers the 100 frames.
    assert (r.path, r.fps, r.frames, r.width, r.height) == (job.dest, Fraction(24), 96, 1920, 1080)
    assert r.cost == pytest.approx(0.40)
    assert job.dest.read_bytes()[4:8] == b"ftyp"
    [made] = fake.jobs.values()
    assert made.endpoint == "fal-ai/veo3.1/fast"
    assert made.input == {"prompt": "neon rain over a rooftop", "seed": 7, "duration": "4s", "aspect_ratio": "16:9",
                          "resolution": "1080p", "generate_audio": False}
    # Polled under owner/alias, without the endpoint's sub-path; the key on every API call.
    assert {c.path for c in fake.calls_to("/status$")} == {f"/fal-ai/veo3.1/requests/{made.id}/status"}
    assert all(c.headers["authorization"] == f"Key {KEY}" for c in fake.calls)
    assert len(cdn.calls) == 1
    record = json.loads(job.remote_id)
    assert record["request_id"] == made.id and record["cancel_url"].endswith(f"/requests/{made.id}/cancel")
    assert any("position 2" in e.message for e in events) and any(e.message == "Generating" for e in events)


def test_first_and_last_frames_go_as_data_uris(svc, fake, tmp_path):
    files = media(tmp_path)
    request = Request(shot_name="S", prompt="she turns", frames=101, fps=Fraction(24), width=1280, height=720,
                      seed=1, model="fal-ai/kling-video/v2.5-turbo/pro/image-to-video", reference_image=files["image"],
                      last_frame_image=files["last"], negative_prompt="blur", options='{"cfg_scale": 0.6}')
    job, _ = run_alone(svc, request, tmp_path)
    assert job.state == "done", job.message
    [made] = fake.jobs.values()
    assert made.input["image_url"].startswith("data:image/png;base64,")  # lossless: exactly the picture
    assert made.input["tail_image_url"].startswith("data:image/png;base64,")
    assert (made.input["duration"], made.input["negative_prompt"], made.input["cfg_scale"]) == ("5", "blur", 0.6)
    assert job.result.fps == 24 and job.result.frames == 120


def test_large_audio_and_video_go_through_fal_storage(svc, fake, cdn, tmp_path, monkeypatch):
    monkeypatch.setattr(fal_module, "INLINE_MAX_BYTES", 100)
    files = media(tmp_path)
    request = Request(shot_name="S", prompt="", frames=100, fps=Fraction(25), width=640, height=360, seed=1,
                      model="fal-ai/sync-lipsync/v2", source_video=files["video"], audio=files["audio"])
    job, _ = run_alone(svc, request, tmp_path)
    assert job.state == "done", job.message
    [made] = fake.jobs.values()
    assert [name for name, _ in fake.uploads] == ["source.mp4", "voice.wav"]
    assert made.input["video_url"].startswith(cdn.url) and made.input["audio_url"].startswith(cdn.url)
    assert made.input["sync_mode"] == "cut_off"
    for upload in fake.calls_to("^/files/upload$"):  # the CDN upload carries the storage token, not the key
        assert upload.headers["authorization"].startswith("Bearer ") and KEY not in upload.headers["authorization"]


@pytest.mark.parametrize("model", [m.id for m in models.table().for_service("fal")])
def test_every_model_in_the_table_gets_inputs_fal_accepts(model, svc, fake, tmp_path):
    entry = models.table().find("fal", model)
    files = media(tmp_path)
    fps = Fraction(24)
    frames = 81 if entry.frames else int(fps * (entry.durations[0] if entry.durations else 4))
    request = Request(
        shot_name="S", prompt="a dancer in the rain", frames=frames, fps=fps, width=1280, height=720, seed=3,
        model=model, negative_prompt="blur" if "negative_prompt" in entry.inputs else "",
        reference_image=files["image"] if "first_frame" in entry.inputs else "",
        last_frame_image=files["last"] if "last_frame" in entry.inputs else "",
        source_video=files["video"] if "source_video" in entry.inputs else "",
        audio=files["audio"] if "audio" in entry.inputs else "")
    svc.check(request)
    ctl = JobControl()
    remote = svc.submit(request, ctl)  # a wrong input name or encoding would be fal's 422 here
    while not svc.poll(remote, ctl).done:
        pass
    result = svc.fetch(remote, tmp_path / "take.mp4.part", ctl)
    assert result.frames and result.fps == (entry.fps or result.fps)


def test_an_unknown_status_is_waited_out_and_logged(svc, fake, tmp_path, caplog):
    fake.steps = ["IN_QUEUE", "PAUSED_FOR_MAINTENANCE", "COMPLETED"]
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "done", job.message
    assert any("unknown status" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_saved_job_is_polled_again_after_a_restart(svc, fake, tmp_path):
    fake.steps = ["IN_QUEUE"] * 30 + ["IN_PROGRESS", "COMPLETED"]
    job, _ = run_alone(svc, VEO, tmp_path, until=lambda q, j: j.remote_id is not None)
    record = json.loads(json.dumps(job.to_record()))  # as saved in the .blend
    fake.steps = ["COMPLETED"]
    fresh = FalService()  # a new session: nothing in memory but the record
    fresh.poll_interval = 0.01
    q = JobQueue({"fal": fresh}, retry_delay=0.01)
    resumed = q.resume(record)
    deadline = time.monotonic() + TIMEOUT
    while not resumed.is_finished:
        assert time.monotonic() < deadline
        q.pump()
        time.sleep(0.002)
    assert q.shutdown(wait=True, timeout=TIMEOUT)
    assert resumed.state == "done", resumed.message
    assert fake.creates == 1


# -- faults --------------------------------------------------------------------------------------------------------

def test_429_with_retry_after_is_honoured(svc, fake, tmp_path):
    fake.fault("status", Fault.status_(429, {"detail": "Too many requests"}, retry_after=0.3))
    fake.fault("submit", Fault.status_(429, {"detail": "Too many requests"}, retry_after=0.2))
    t0 = time.monotonic()
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "done", job.message
    assert time.monotonic() - t0 >= 0.5
    assert fake.creates == 1 and len(fake.calls_to(r"^/fal-ai/veo3\.1/fast$")) == 2  # the 429 made nothing


def test_a_burst_of_server_errors_on_status_is_retried(svc, fake, tmp_path):
    fake.fault("status", Fault.status_(503, {"detail": "Service Unavailable", "error_type":
                                             "runner_scheduling_failure"}), times=4)
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "done", job.message


def test_a_hanging_status_reply_times_out_and_is_asked_again(svc, fake, tmp_path):
    quick(svc.api(), read_timeout=0.3)
    fake.fault("status", Fault.hang(3.0))
    t0 = time.monotonic()
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "done", job.message
    assert time.monotonic() - t0 < 2.5  # gave up on the hung reply after the read timeout
    assert len(fake.calls_to("/status$")) >= len(fake.steps) + 1


@pytest.mark.parametrize("fault", [Fault.lost_reply(), Fault.after(502)], ids=["lost reply", "502 after making"])
def test_an_ambiguous_submit_is_reported_not_repeated(svc, fake, tmp_path, fault):
    fake.fault("submit", fault)
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "failed"
    assert job.message.startswith("Submission uncertain") and "fal dashboard" in job.message
    assert fake.creates == 1 and len(fake.calls_to(r"^/fal-ai/veo3\.1/fast$")) == 1  # fal has no list: no retry
    assert job.attempts == 1


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_a_download_cut_short_is_fetched_again(svc, fake, cdn, tmp_path, kind):
    cdn.download_fault(kind)
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "done", job.message
    assert len(cdn.calls) == 2 and job.result.frames == 96


def test_an_html_page_instead_of_the_video_fails(svc, fake, cdn, tmp_path):
    cdn.download_fault("html", times=10)
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "failed" and "HTML page" in job.message
    assert not job.dest.exists()


def test_an_expired_output_link_says_so(svc, fake, cdn, tmp_path):
    cdn.ttl = -1.0
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "failed" and "expired" in job.message


def test_a_failed_job_reports_fals_reason(svc, fake, tmp_path):
    fake.fail_next([{"loc": ["body", "prompt"], "msg": "Generation failed: out of capacity", "type": "model_error"}])
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "failed" and job.attempts == 1
    assert job.message == "The fal job failed: prompt: Generation failed: out of capacity"


def test_a_content_policy_refusal_is_clear_and_not_retried(svc, fake, tmp_path):
    fake.content_policy_next()
    job, _ = run_alone(svc, VEO, tmp_path)
    assert job.state == "failed" and job.attempts == 1
    assert "content checker flagged it (violence)" in job.message and "will not help" in job.message


def test_a_wrong_input_gets_fals_422_before_anything_is_made(svc, fake, tmp_path):
    job, _ = run_alone(svc, Request(**{**VEO.__dict__, "options": '{"bogus_field": 1}'}), tmp_path)
    assert job.state == "failed" and "bogus_field: Extra inputs are not permitted" in job.message
    assert fake.creates == 0


def test_a_key_revoked_mid_job_is_named_with_where_to_set_it(svc, fake, tmp_path):
    fake.steps = ["IN_QUEUE"] * 30 + ["COMPLETED"]
    job, _ = run_alone(svc, VEO, tmp_path, until=lambda q, j: bool(j.remote_id and fake.revoke()))
    assert job.state == "failed" and fake.creates == 1
    assert job.message.startswith("fal refused the key (401") and "Preferences > Add-ons > Shotline > fal" in job.message
    assert "FAL_KEY" in job.message and not any(s in job.message for s in SECRETS)


def test_connection(svc, fake):
    assert svc.test_connection() == "fal accepted the key."
    fake.revoke()
    with pytest.raises(ServiceError, match=r"fal refused the key \(401") as e:
        svc.test_connection()
    assert not any(s in str(e.value) for s in SECRETS)


def test_no_key_no_call(fake, monkeypatch):
    monkeypatch.delitem(config._keys, "fal")
    monkeypatch.delenv("FAL_KEY", raising=False)
    with pytest.raises(ServiceError, match="No fal key: set it in Preferences"):
        FalService().test_connection()
    assert fake.calls == []


# -- cancel --------------------------------------------------------------------------------------------------------

def test_cancel_reaches_fal(svc, fake, tmp_path):
    fake.steps = ["IN_QUEUE"] * 1000
    q = JobQueue({"fal": svc}, retry_delay=0.01)
    job = q.submit("shot", "fal", VEO, tmp_path / "take_001.mp4")
    deadline = time.monotonic() + TIMEOUT
    while not fake.calls_to("/status$"):
        assert time.monotonic() < deadline
        q.pump()
        time.sleep(0.002)
    assert q.cancel(job.id)
    while not job.is_finished:
        assert time.monotonic() < deadline
        q.pump()
        time.sleep(0.002)
    assert q.shutdown(wait=True, timeout=TIMEOUT)
    assert job.state == "cancelled"
    [made] = fake.jobs.values()
    assert made.cancelled and len(fake.calls_to("/cancel$", "PUT")) == 1


def test_cancel_never_raises(svc, fake):
    svc.cancel("not a record")
    done = json.dumps({"request_id": "x", "status_url": f"{fake.url}/a/b/requests/x/status",
                       "response_url": f"{fake.url}/a/b/requests/x", "cancel_url": f"{fake.url}/a/b/requests/x/cancel"})
    svc.cancel(done)  # NOT_FOUND
    fake.close()
    svc.cancel(done)  # nobody there
