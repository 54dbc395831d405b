"""Replicate through its predictions protocol, driven through the real JobQueue against the fake
Replicate (tests/fakes/replicate.py) and its CDN: the happy path, every fault, the reconcile of a
lost create, cancel, and that the token never leaves the API host."""

from __future__ import annotations

import json
import logging
import time
from fractions import Fraction

import pytest

from drive import assert_no_leak, media, quick, run_alone
from fakes.replicate import ReplicateFake
from fakes.server import Cdn, Fault
from shotline.addon.services import config, models, replicate as replicate_module
from shotline.addon.services.base import JobControl, Request, ServiceError
from shotline.addon.services.replicate import ReplicateService

TOKEN = "r8_SECRETtokenForTheTests0123456789"

KLING = Request(shot_name="Shot 2", prompt="a slow dolly through fog", frames=96, fps=Fraction(24), width=1080,
                height=1920, seed=11, model="kwaivgi/kling-v2.5-turbo-pro", negative_prompt="text")


@pytest.fixture
def cdn():
    with Cdn(ttl=3600) as c:
        yield c


@pytest.fixture
def fake(cdn, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    with ReplicateFake(cdn, token=TOKEN) as f:
        monkeypatch.setitem(config._keys, "replicate", TOKEN)
        monkeypatch.setitem(config._urls, "replicate", f.api_url)
        yield f
    assert_no_leak(cdn, caplog, (TOKEN,))


@pytest.fixture
def svc(fake):
    service = ReplicateService()
    service.poll_interval = 0.01
    quick(service.api())
    return service


@pytest.fixture
def table(tmp_path):
    """A user model table for one test; the shipped one again afterwards."""
    yield lambda entries: models.use(_write(tmp_path / "config", entries))
    models.use(None)


def _write(folder, entries):
    folder.mkdir(exist_ok=True)
    (folder / "models.json").write_text(json.dumps({"models": entries}))
    return folder


# -- the happy path ------------------------------------------------------------------------------------------------

def test_a_shot_becomes_a_take(svc, fake, cdn, tmp_path):
    job, events = run_alone(svc, KLING, tmp_path)
    assert job.state == "done", job.message
    r = job.result
    assert (r.fps, r.frames, r.width, r.height) == (Fraction(24), 120, 720, 1280)  # 4 s asked: 5 s made, 9:16
    assert r.cost is None  # no price for it in the table
    [prediction] = fake.predictions.values()
    assert prediction["input"] == {"prompt": "a slow dolly through fog", "negative_prompt": "text", "duration": 5,
                                   "aspect_ratio": "9:16"}
    assert fake.calls_to("^/v1/models/kwaivgi/kling-v2.5-turbo-pro/predictions$", "POST")
    assert all(c.headers["authorization"] == f"Bearer {TOKEN}" for c in fake.calls)
    assert json.loads(job.remote_id)["id"] == prediction["id"]
    progress = [e.progress for e in events if e.kind == "progress" and e.progress is not None]
    assert progress and progress == sorted(progress) and 0 < progress[0] < 1  # read from the tqdm logs
    assert len(cdn.calls) == 1


def test_cost_from_run_time_for_models_billed_by_it(svc, fake, tmp_path, table):
    assert table([{"service": "replicate", "id": "kwaivgi/kling-v2.5-turbo-pro",
                   "compute_price_per_second": 0.01}]) == ()
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.result.cost == pytest.approx(0.425)  # metrics.predict_time 42.5 s


def test_a_version_goes_to_the_predictions_endpoint(svc, fake, tmp_path, table):
    version = "kwaivgi/kling-v2.5-turbo-pro:" + "ab" * 32
    table([{"service": "replicate", "id": version, "label": "Kling pinned",
            "inputs": {"prompt": "prompt", "duration": "duration"}, "durations": [5, 10], "fps": "24"}])
    job, _ = run_alone(svc, Request(**{**KLING.__dict__, "model": version, "negative_prompt": ""}), tmp_path)
    assert job.state == "done", job.message
    [create] = fake.calls_to("^/v1/predictions$", "POST")
    assert create.json()["version"] == version


def test_first_frame_and_veo_references_go_as_data_uris(svc, fake, tmp_path):
    files = media(tmp_path)
    request = Request(shot_name="S", prompt="the singer", frames=192, fps=Fraction(24), width=1920, height=1080,
                      seed=5, model="google/veo-3.1-fast", reference_image=files["image"],
                      reference_images=(files["image"], files["last"]))
    job, _ = run_alone(svc, request, tmp_path)
    assert job.state == "done", job.message
    [prediction] = fake.predictions.values()
    given = prediction["input"]
    assert given["image"].startswith("data:image/png;base64,") and len(given["image"]) <= 1_000_000
    assert len(given["reference_images"]) == 2 and (given["duration"], given["resolution"]) == (8, "1080p")
    assert given["generate_audio"] is False and job.result.frames == 192


def test_large_audio_goes_through_the_files_api(svc, fake, tmp_path, monkeypatch):
    monkeypatch.setattr(replicate_module, "INLINE_MAX_BYTES", 100)
    files = media(tmp_path)
    request = Request(shot_name="S", prompt="she sings", frames=120, fps=Fraction(24), width=1280, height=720,
                      seed=5, model="wan-video/wan-2.7-i2v", reference_image=files["image"], audio=files["audio"])
    job, _ = run_alone(svc, request, tmp_path)
    assert job.state == "done", job.message
    [(name, data, mime)] = fake.files
    assert name == "voice.wav" and data.startswith(b"RIFF") and "wav" in mime
    [prediction] = fake.predictions.values()
    assert prediction["input"]["audio"].startswith(f"{fake.api_url}/files/")
    assert prediction["input"]["first_frame"].startswith("data:image/png")


@pytest.mark.parametrize("model", [m.id for m in models.table().for_service("replicate")])
def test_every_model_in_the_table_gets_inputs_replicate_accepts(model, svc, fake, tmp_path):
    entry = models.table().find("replicate", model)
    files = media(tmp_path)
    request = Request(
        shot_name="S", prompt="a dancer", frames=96, fps=Fraction(24), width=1280, height=720, seed=3, model=model,
        negative_prompt="blur" if "negative_prompt" in entry.inputs else "",
        reference_image=files["image"] if "first_frame" in entry.inputs else "",
        last_frame_image=files["last"] if "last_frame" in entry.inputs else "",
        source_video=files["video"] if "source_video" in entry.inputs else "",
        audio=files["audio"] if "audio" in entry.inputs else "")
    ctl = JobControl()
    remote = svc.submit(request, ctl)  # a wrong input would be Replicate's 422 here
    while not svc.poll(remote, ctl).done:
        pass
    assert svc.fetch(remote, tmp_path / "take.mp4.part", ctl).frames


def test_an_unknown_status_is_waited_out_and_logged(svc, fake, tmp_path, caplog):
    fake.steps = ["starting", "queued_for_gpu", "succeeded"]
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "done", job.message
    assert any("unknown status" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


# -- a create whose reply is lost ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [Fault.lost_reply(), Fault.after(502), Fault.after(504)],
                         ids=["lost reply", "502 after making", "504 after making"])
def test_a_lost_create_is_found_in_the_list_not_made_twice(svc, fake, tmp_path, fault, caplog):
    fake.fault("create", fault)
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "done", job.message
    assert fake.creates == 1 and len(fake.calls_to("^/v1/predictions$", "GET")) == 1
    assert json.loads(job.remote_id)["id"] == next(iter(fake.predictions))
    assert any("found its prediction" in r.getMessage() for r in caplog.records)


def test_a_lost_create_that_made_nothing_is_reported(svc, fake, tmp_path):
    fake.fault("create", Fault.reset())  # the connection dropped: nothing was made, but the client cannot know
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "failed" and job.message.startswith("Submission uncertain")
    assert fake.creates == 0 and len(fake.calls_to("^/v1/models/", "POST")) == 1


def test_another_prediction_is_not_taken_for_the_lost_one(svc, fake, tmp_path):
    ctl = JobControl()
    svc.submit(Request(**{**KLING.__dict__, "prompt": "a slow dolly through smoke"}), ctl)  # the previous take
    fake.fault("create", Fault.reset())
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "failed" and "Submission uncertain" in job.message


# -- faults --------------------------------------------------------------------------------------------------------

def test_429_with_retry_after_is_honoured(svc, fake, tmp_path):
    throttled = {"detail": "Request was throttled. Your rate limit resets in ~1s.", "status": 429}
    fake.fault("create", Fault.status_(429, throttled, retry_after=0.2))
    fake.fault("get", Fault.status_(429, throttled, retry_after=0.3))
    t0 = time.monotonic()
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "done", job.message
    assert time.monotonic() - t0 >= 0.5
    assert fake.creates == 1 and len(fake.calls_to("^/v1/models/", "POST")) == 2


def test_a_burst_of_server_errors_on_status_is_retried(svc, fake, tmp_path):
    fake.fault("get", Fault.status_(503, {"title": "Service Unavailable", "status": 503}), times=4)
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "done", job.message


def test_a_hanging_status_reply_times_out_and_is_asked_again(svc, fake, tmp_path):
    quick(svc.api(), read_timeout=0.3)
    fake.fault("get", Fault.hang(3.0))
    t0 = time.monotonic()
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "done", job.message
    assert time.monotonic() - t0 < 2.5  # gave up on the hung reply after the read timeout
    assert len(fake.calls_to("^/v1/predictions/[a-z0-9]+$", "GET")) >= len(fake.steps) + 1


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_a_download_cut_short_is_fetched_again(svc, fake, cdn, tmp_path, kind):
    cdn.download_fault(kind)
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "done", job.message
    assert len(cdn.calls) == 2 and job.result.frames == 120


def test_an_html_page_instead_of_the_video_fails(svc, fake, cdn, tmp_path):
    cdn.download_fault("html", times=10)
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "failed" and "HTML page" in job.message


def test_an_expired_output_link_says_so(svc, fake, cdn, tmp_path):
    cdn.ttl = -1.0  # Replicate deletes API outputs after an hour
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "failed" and "expired" in job.message


def test_a_failed_prediction_reports_its_error(svc, fake, tmp_path):
    fake.fail_next("CUDA out of memory")
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "failed" and job.attempts == 1
    assert job.message == "The Replicate job failed: CUDA out of memory"


def test_a_content_policy_refusal_is_clear_and_not_retried(svc, fake, tmp_path):
    fake.content_policy_next()
    job, _ = run_alone(svc, KLING, tmp_path)
    assert job.state == "failed" and job.attempts == 1
    assert job.message.startswith("Replicate refused the shot: The input or output was flagged as sensitive")
    assert "will not help" in job.message


def test_a_wrong_input_gets_replicates_422(svc, fake, tmp_path):
    job, _ = run_alone(svc, Request(**{**KLING.__dict__, "options": '{"motion": 3}'}), tmp_path)
    assert job.state == "failed" and "Additional property motion is not allowed" in job.message
    assert fake.creates == 0


def test_a_key_revoked_mid_job(svc, fake, tmp_path):
    fake.steps = ["starting"] * 30 + ["succeeded"]
    job, _ = run_alone(svc, KLING, tmp_path, until=lambda q, j: bool(j.remote_id and fake.revoke()))
    assert job.state == "failed" and fake.creates == 1
    assert job.message.startswith("Replicate refused the key (401: You did not pass a valid authentication token)")
    assert "Preferences > Add-ons > Shotline > Replicate (or REPLICATE_API_TOKEN)" in job.message


def test_connection(svc, fake):
    assert svc.test_connection() == "Replicate accepted the key (account director)."
    fake.revoke()
    with pytest.raises(ServiceError, match=r"Replicate refused the key \(401") as e:
        svc.test_connection()
    assert TOKEN not in str(e.value)


def test_a_prediction_cancelled_elsewhere_fails_with_that_reason(svc, fake, tmp_path):
    fake.steps = ["starting"] * 1000

    def cancel_on_the_website(q, job):
        if job.remote_id:
            fake.predictions[json.loads(job.remote_id)["id"]]["status"] = "canceled"
        return False

    job, _ = run_alone(svc, KLING, tmp_path, until=cancel_on_the_website)
    assert job.state == "failed" and job.message == "The job was cancelled on Replicate."


# -- cancel --------------------------------------------------------------------------------------------------------

def test_cancel_reaches_replicate(svc, fake, tmp_path):
    fake.steps = ["starting"] * 1000
    asked = []

    def cancel_when_polled(q, job):
        if job.remote_id and fake.calls_to("^/v1/predictions/[a-z0-9]+$", "GET") and not asked:
            asked.append(q.cancel(job.id))
        return False

    job, _ = run_alone(svc, KLING, tmp_path, until=cancel_when_polled)
    assert asked == [True] and job.state == "cancelled"
    [prediction] = fake.predictions.values()
    assert prediction["status"] == "canceled" and len(fake.calls_to("/cancel$", "POST")) == 1


def test_cancel_never_raises(svc, fake):
    svc.cancel("{}")
    gone = json.dumps({"id": "x", "get": f"{fake.api_url}/predictions/x", "cancel": f"{fake.api_url}/predictions/x/cancel"})
    svc.cancel(gone)
    fake.close()
    svc.cancel(gone)
