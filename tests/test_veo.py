"""Veo through the Gemini API, driven by the job queue against a faithful fake (tests/fakes/veo.py):
the long-running operation, inline stills, failures and safety filtering, Google's error bodies and
quota waits, no cancel, and the key kept to Google's API (never across the download redirect)."""

from __future__ import annotations

import base64
import logging
import time

import pytest

from drive import assert_no_key, close_later, pump, run, shots, still
from fakes.server import Cdn, Fault
from fakes.veo import KEY, FakeVeo, google_error, quota_exceeded
from shotline.addon.services import config, registry
from shotline.addon.services.base import JobControl, ServiceError, SubmissionUncertain
from shotline.addon.services.veo import VeoService

SECRETS = (KEY,)
shot = shots(prompt="a neon hologram of a cat driving at top speed")


@pytest.fixture
def veo(monkeypatch):
    cdn = Cdn()
    fake = FakeVeo(cdn)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("SHOTLINE_VEO_URL", fake.url)
    monkeypatch.delitem(config._keys, "veo", raising=False)
    monkeypatch.delitem(config._urls, "veo", raising=False)
    service = VeoService()
    service.poll_interval = 0.01
    service.api().base_delay = 0.01
    yield service, fake, cdn
    close_later(fake, cdn)


# -- the operation -----------------------------------------------------------------------------------------------------

def test_text_to_video_polls_the_operation_and_downloads_without_leaking_the_key(veo, queue, tmp_path):
    service, fake, cdn = veo
    job, events = run(queue, service, shot(negative_prompt="text, watermark"), tmp_path)
    assert job.state == "done", job.message
    assert job.remote_id.startswith("models/veo-3.1-generate-preview/operations/")
    assert fake.bodies == [{"instances": [{"prompt": "a neon hologram of a cat driving at top speed"}],
                            "parameters": {"aspectRatio": "16:9", "durationSeconds": 4, "sampleCount": 1,
                                           "resolution": "720p", "negativePrompt": "text, watermark"}}]
    assert any("runs and bills to the end" in e.message for e in events if e.kind == "progress")
    (file_call,) = fake.calls_to(r"/v1beta/files/")
    assert file_call.headers["x-goog-api-key"] == KEY  # Google's own file URL needs the key...
    assert cdn.calls_to(r"/files/") and cdn.keys_seen() == []  # ...the host it redirects to must not get it
    result = job.result
    assert (result.fps, result.frames, result.width, result.height) == (24, 96, 1280, 720)
    assert_no_key(cdn, SECRETS, job.message)


def test_first_and_last_frame_go_inline_and_a_tall_8_s_shot_at_1080p(veo, queue, tmp_path):
    service, fake, _cdn = veo
    request = shot(reference_image=still(tmp_path / "a.png"), last_frame_image=still(tmp_path / "b.png"),
                   frames=24 * 7, width=1080, height=1920)
    job, _ = run(queue, service, request, tmp_path)
    assert job.state == "done", job.message
    ((instance,), parameters) = fake.bodies[0]["instances"], fake.bodies[0]["parameters"]
    for name in ("image", "lastFrame"):
        assert instance[name]["mimeType"] == "image/png"
        assert base64.b64decode(instance[name]["bytesBase64Encoded"])[:4] == b"\x89PNG"
    assert parameters == {"aspectRatio": "9:16", "durationSeconds": 8, "sampleCount": 1, "resolution": "1080p"}
    assert (job.result.width, job.result.height, job.result.frames) == (1080, 1920, 192)


def test_reference_images_are_assets_at_8_s(veo, queue, tmp_path):
    service, fake, _cdn = veo
    refs = (still(tmp_path / "singer.png"), still(tmp_path / "club.png", (90, 0, 0)))
    job, _ = run(queue, service, shot(reference_images=refs), tmp_path)
    assert job.state == "done", job.message
    instance = fake.bodies[0]["instances"][0]
    assert [r["referenceType"] for r in instance["referenceImages"]] == ["ASSET", "ASSET"]
    assert fake.bodies[0]["parameters"]["durationSeconds"] == 8


def test_veo_2_takes_no_resolution(veo, queue, tmp_path):
    service, fake, _cdn = veo
    job, _ = run(queue, service, shot(model="veo-2.0-generate-001", frames=24 * 5), tmp_path)
    assert job.state == "done", job.message
    assert fake.bodies[0]["parameters"] == {"aspectRatio": "16:9", "durationSeconds": 5, "sampleCount": 1}


@pytest.mark.parametrize("request_, reason", [
    (shot(frames=24 * 9), "at most 8 s"),
    (shot(model="veo-3.0-generate-001", reference_image="/x/a.png", last_frame_image="/x/b.png"),
     "cannot end on a last-frame image"),
    (shot(last_frame_image="/x/b.png"), "without a first frame"),
    (shot(reference_images=("/x/r.png",), reference_image="/x/a.png"), "not both"),
    (shot(model="veo-3.1-lite-generate-preview", reference_images=("/x/r.png",)), "no reference images"),
    (shot(reference_images=("/x/r.png",)), "r.png is not there"),
    (shot(model="veo-4"), "has no model"),
])
def test_requests_a_model_cannot_take_are_refused_before_anything_is_sent(veo, request_, reason):
    service, fake, _cdn = veo
    with pytest.raises(ServiceError, match=reason):
        service.check(request_)
    assert fake.calls == []


def test_a_field_google_refuses_reads_its_message_and_makes_nothing(veo, queue, tmp_path):
    service, fake, _cdn = veo
    job, _ = run(queue, service, shot(options='{"seed": 5}'), tmp_path)
    assert job.state == "failed"
    assert job.message.startswith('Veo answered 400: Invalid JSON payload received. Unknown name "seed"')
    assert fake.creates == 0


def test_capabilities_and_estimates():
    service = VeoService()
    caps = service.capabilities_for("")
    assert not caps.can_cancel and not caps.seed and caps.negative_prompt and caps.last_frame
    assert caps.aspect_ratios == ("16:9", "9:16") and caps.reference_images == 3
    assert not service.capabilities_for("veo-3.0-generate-001").last_frame
    assert service.estimate_cost(shot(frames=24 * 5)) == pytest.approx(6 * 0.40)  # billed as 6 s
    assert service.estimate_cost(shot(model="veo-2.0-generate-001")) is None
    assert registry.get("veo").label == "Veo"


def test_test_connection_reads_the_model(veo):
    service, fake, _cdn = veo
    assert service.test_connection() == "Veo: connected (Veo 3.1 is available)."
    fake.revoke()
    with pytest.raises(ServiceError, match=r"refused the key \(400: API key not valid"):
        service.test_connection()


# -- outcomes ------------------------------------------------------------------------------------------------------

def test_a_safety_filtered_result_is_a_clear_final_failure(veo, queue, tmp_path):
    service, fake, _cdn = veo
    fake.filter_next("Your prompt could not be submitted: it may violate our policies on minors.")
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and job.message.startswith("Google's safety filters blocked the Veo clip (Your "
                                                              "prompt could not be submitted")
    assert job.attempts == 1 and fake.creates == 1


def test_an_operation_error_is_reported(veo, queue, tmp_path):
    service, fake, _cdn = veo
    fake.fail_next("Video generation failed due to an internal error.", code=13)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed"
    assert job.message == ("Veo failed (INTERNAL: Video generation failed due to an internal error.). "
                           "Generate again to retry.")


def test_an_operation_refused_under_the_usage_guidelines_is_a_content_policy_failure(veo, queue, tmp_path):
    service, fake, _cdn = veo
    fake.fail_next("The prompt contains words that violate the usage guidelines.", code=3)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "content policy" in job.message


def test_cancel_stops_waiting_and_says_the_job_still_runs_and_bills(veo, queue, tmp_path, caplog):
    service, fake, _cdn = veo
    fake.never_finish()
    q = queue(service)
    job = q.submit("shot", service.id, shot(), tmp_path / "take.mp4")
    pump(q, lambda: "runs and bills to the end" in job.message)
    q.cancel(job.id)
    pump(q, lambda: job.is_finished)
    assert job.state == "cancelled"
    assert {c.method for c in fake.calls} <= {"GET", "POST"}
    assert "runs and bills to the end" in caplog.text


def test_an_operation_that_never_finishes_fails_at_the_deadline(veo, queue, tmp_path):
    service, fake, _cdn = veo
    service.max_wait = 0.2
    fake.never_finish()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "had not finished after" in job.message and "bill" in job.message


# -- faults --------------------------------------------------------------------------------------------------------

def test_429_resource_exhausted_waits_as_the_body_says_and_makes_one_operation(veo, queue, tmp_path):
    service, fake, _cdn = veo
    fake.fault("create", Fault.status_(429, quota_exceeded("0.05s")), times=2)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert fake.creates == 1 and len(fake.calls_to(r":predictLongRunning$")) == 3


def test_a_burst_of_5xx_on_the_operation_is_ridden_out(veo, queue, tmp_path):
    service, fake, _cdn = veo
    fake.fault("status", Fault.status_(503, google_error(503, "UNAVAILABLE", "The model is overloaded.")),
               times=3)
    fake.fault("status", Fault.status_(429, quota_exceeded("0.02s")))
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message


def test_a_hanging_operation_reply_times_out_and_is_asked_again(veo, queue, tmp_path):
    service, fake, _cdn = veo
    service.api().timeout = (2.0, 0.3)
    fake.fault("status", Fault.hang(1.5))
    started = time.monotonic()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("fault", [Fault.lost_reply(), Fault.after(500, google_error(500, "INTERNAL", "Internal"))])
def test_a_lost_create_reply_stays_uncertain_and_is_not_sent_again(veo, queue, tmp_path, fault):
    service, fake, _cdn = veo
    fake.fault("create", fault)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and job.message.startswith("Submission uncertain") and "Veo dashboard" in job.message
    assert fake.creates == 1 and len(fake.calls_to(r":predictLongRunning$")) == 1


def test_submit_raises_submission_uncertain_to_its_caller(veo):
    service, fake, _cdn = veo
    fake.fault("create", Fault.lost_reply())
    with pytest.raises(SubmissionUncertain):
        service.submit(shot(), JobControl())


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_a_download_cut_short_is_fetched_again(veo, queue, tmp_path, kind):
    service, fake, cdn = veo
    cdn.download_fault(kind)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert job.result.frames == 96 and len(fake.calls_to(r"/v1beta/files/")) == 2
    assert cdn.keys_seen() == []


def test_an_html_page_instead_of_the_clip_fails_readably(veo, queue, tmp_path):
    service, _fake, cdn = veo
    cdn.download_fault("html")
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "HTML page" in job.message
    assert not list(tmp_path.iterdir())


def test_a_file_google_no_longer_keeps_says_so(veo, tmp_path):
    service, fake, _cdn = veo
    ctl = JobControl()
    remote_id = service.submit(shot(), ctl)
    while not service.poll(remote_id, ctl).done:
        pass
    fake.expire_files()
    with pytest.raises(ServiceError, match="no longer has the clip"):
        service.fetch(remote_id, tmp_path / "take.part", ctl)


def test_an_expired_file_host_link_is_not_mistaken_for_a_refused_key(veo, tmp_path):
    service, fake, cdn = veo
    fake.file_link = lambda data: (cdn.publish(data), cdn.expire_all())[0]
    ctl = JobControl()
    remote_id = service.submit(shot(), ctl)
    while not service.poll(remote_id, ctl).done:
        pass
    with pytest.raises(ServiceError, match="link has expired"):
        service.fetch(remote_id, tmp_path / "take.part", ctl)
    assert cdn.keys_seen() == []


def test_a_revoked_key_fails_without_showing_it(veo, queue, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    service, fake, cdn = veo
    fake.steps = 4
    q = queue(service)
    job = q.submit("shot", service.id, shot(), tmp_path / "take.mp4")
    pump(q, lambda: job.remote_id is not None)
    fake.revoke()
    pump(q, lambda: job.is_finished)
    assert job.state == "failed"
    assert job.message.startswith("Veo refused the key (400: API key not valid") and "GEMINI_API_KEY" in job.message
    assert_no_key(cdn, SECRETS, job.message, caplog.text)


def test_the_key_never_reaches_the_file_host_messages_or_the_log(veo, queue, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    service, fake, cdn = veo
    fake.fault("create", Fault.status_(429, quota_exceeded("0.01s")))
    fake.fault("status", Fault.status_(500, google_error(500, "INTERNAL", f"bad key {KEY} upstream")))
    cdn.download_fault("reset")
    job, events = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert_no_key(cdn, SECRETS, caplog.text, *(e.message for e in events))
