"""Runway through the job queue against a faithful fake (tests/fakes/runway.py): each create
endpoint, the task states, content-policy failures, cancel, and every network fault, with the key
kept off the file host, out of messages and out of the log."""

from __future__ import annotations

import base64
import logging
import time

import pytest

from drive import assert_no_key, close_later, pump, run, shots, still
from fakes.runway import KEY, FakeRunway
from fakes.server import Cdn, Fault
from shotline.addon.services import config, registry
from shotline.addon.services.base import JobControl, ServiceError, SubmissionUncertain
from shotline.addon.services.runway import RunwayService

SECRETS = (KEY, KEY[4:40])  # the key, and a long piece of it without the key_ prefix
shot = shots(prompt="neon rain on the singer", frames=48)


@pytest.fixture
def runway(monkeypatch):
    cdn = Cdn()
    fake = FakeRunway(cdn)
    monkeypatch.setenv("RUNWAYML_API_SECRET", KEY)
    monkeypatch.setenv("SHOTLINE_RUNWAY_URL", fake.url)
    monkeypatch.delitem(config._keys, "runway", raising=False)
    monkeypatch.delitem(config._urls, "runway", raising=False)
    service = RunwayService()
    service.poll_interval = 0.01
    service.api().base_delay = 0.01
    yield service, fake, cdn
    close_later(fake, cdn)


# -- each endpoint ---------------------------------------------------------------------------------------------------

def test_text_to_video_goes_through_every_state_and_lands_a_take(runway, queue, tmp_path):
    service, fake, cdn = runway
    job, events = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    messages = [e.message for e in events]
    assert any("free Runway slot" in m for m in messages) and "Queued at Runway" in messages
    assert any(e.progress and 0 < e.progress < 1 for e in events if e.kind == "progress")
    (create,) = fake.calls_to(r"/v1/text_to_video")
    assert create.headers["x-runway-version"] == "2024-11-06"
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert fake.bodies == [{"model": "gen4.5", "promptText": "neon rain on the singer", "ratio": "1280:720",
                            "duration": 2, "seed": 7}]
    result = job.result
    assert (result.fps, result.frames, result.width, result.height) == (24, 48, 1280, 720)
    assert result.cost == pytest.approx(12 * 2 * 0.01)  # the task's own cost, in credits at $0.01
    assert result.path.read_bytes()[4:8] == b"ftyp"
    assert_no_key(cdn, SECRETS, job.message)


def test_first_and_last_frame_as_data_uris_a_large_still_shrunk_under_5_mb(runway, queue, tmp_path):
    service, fake, cdn = runway
    first = still(tmp_path / "first.png", size=(2600, 2600), noise=True)
    last = still(tmp_path / "last.png")
    job, _ = run(queue, service, shot(model="veo3.1_fast", reference_image=first, last_frame_image=last,
                                      negative_prompt="text, watermark", width=1920, height=1080), tmp_path)
    assert job.state == "done", job.message
    (body,) = fake.bodies
    assert body["ratio"] == "1920:1080" and body["duration"] == 4 and body["audio"] is False
    assert body["negativePrompt"] == "text, watermark" and "seed" not in body
    (first_ref, last_ref) = body["promptImage"]
    assert (first_ref["position"], last_ref["position"]) == ("first", "last")
    # too large as a PNG: a JPEG under the limit; the small still goes whole, lossless
    assert first_ref["uri"].startswith("data:image/jpeg;base64,") and len(first_ref["uri"]) <= 5_000_000
    assert base64.b64decode(last_ref["uri"].split(",", 1)[1])[:4] == b"\x89PNG"
    assert (job.result.width, job.result.height) == (1920, 1080)


def test_a_first_frame_alone_is_sent_as_a_string(runway, queue, tmp_path):
    service, fake, _cdn = runway
    job, _ = run(queue, service, shot(model="gen4_turbo", reference_image=still(tmp_path / "a.png"),
                                      frames=130, width=720, height=1280), tmp_path)
    assert job.state == "done", job.message
    (body,) = fake.bodies
    assert isinstance(body["promptImage"], str) and body["ratio"] == "720:1280" and body["duration"] == 6
    assert fake.calls_to(r"/v1/image_to_video")


def test_video_to_video_uploads_the_source_without_the_key(runway, queue, tmp_path):
    service, fake, cdn = runway
    source = tmp_path / "live.mp4"
    source.write_bytes(b"\0\0\0\x18ftypisom" + b"\0" * 5000)
    job, _ = run(queue, service, shot(model="aleph2", source_video=str(source), prompt="make it winter"), tmp_path)
    assert job.state == "done", job.message
    (body,) = fake.bodies
    assert body["videoUri"].startswith("runway://") and body["promptText"] == "make it winter"
    assert list(fake.uploads.values()) == [source.read_bytes()]
    assert cdn.calls_to(r"/uploads/") and cdn.keys_seen() == []


def test_act_two_puts_a_performance_on_a_character_still(runway, queue, tmp_path):
    service, fake, _cdn = runway
    performance = tmp_path / "singer.mp4"
    performance.write_bytes(b"\0\0\0\x18ftypisom" + b"\0" * 2000)
    job, _ = run(queue, service, shot(model="act_two", prompt="", reference_image=still(tmp_path / "c.png"),
                                      source_video=str(performance)), tmp_path)
    assert job.state == "done", job.message
    (body,) = fake.bodies
    assert body["character"]["type"] == "image" and body["character"]["uri"].startswith("data:image/png")
    assert body["reference"] == {"type": "video", "uri": body["reference"]["uri"]}
    assert body["reference"]["uri"].startswith("runway://") and body["ratio"] == "1280:720"
    assert "promptText" not in body and "duration" not in body


@pytest.mark.parametrize("request_, reason", [
    (shot(model="gen4_turbo"), "needs a first-frame image"),
    (shot(frames=24 * 12), "makes at most 10 s"),
    (shot(negative_prompt="blur"), "cannot take a negative prompt"),
    (shot(model="veo3.1", last_frame_image="/nowhere/last.png"), "without a first frame"),
    (shot(model="gen5"), "has no model"),
    (shot(model="aleph2"), "needs a source video"),
    (shot(prompt="x" * 1001), "at most 1000 characters"),
    (shot(options="[1]"), "JSON object"),
])
def test_requests_a_model_cannot_take_are_refused_before_anything_is_sent(runway, request_, reason):
    service, fake, _cdn = runway
    with pytest.raises(ServiceError, match=reason):
        service.check(request_)
    assert fake.calls == []


def test_a_field_the_api_refuses_reads_field_by_field_and_makes_nothing(runway, queue, tmp_path):
    service, fake, _cdn = runway
    job, _ = run(queue, service, shot(options='{"ratio": "999:1"}'), tmp_path)
    assert job.state == "failed"
    assert job.message.startswith("Runway refused the request (400): ratio: Invalid enum value")
    assert fake.creates == 0 and len(fake.calls_to(r"/v1/text_to_video")) == 1


def test_capabilities_and_estimates_follow_the_model():
    service = RunwayService()
    assert service.models()[0] == "gen4.5"
    veo = service.capabilities_for("veo3.1")
    assert veo.last_frame and veo.negative_prompt and not veo.seed and veo.durations == (4.0, 6.0, 8.0)
    assert "1920:1080" in veo.aspect_ratios and veo.can_cancel
    assert not service.capabilities_for("gen4_turbo").text_to_video
    assert service.capabilities_for("").price_per_second == pytest.approx(0.12)
    assert service.estimate_cost(shot(frames=24 * 3)) == pytest.approx(3 * 0.12)
    assert service.estimate_cost(shot(model="veo3", frames=24 * 3)) == pytest.approx(8 * 0.40)  # billed as 8 s
    assert registry.get("runway").label == "Runway"


def test_test_connection_reports_the_credit_balance(runway):
    service, _fake, _cdn = runway
    assert service.test_connection() == "Runway: connected (12500 credits left)."


# -- task outcomes ---------------------------------------------------------------------------------------------------

def test_content_policy_failure_is_clear_and_not_retried(runway, queue, tmp_path):
    service, fake, _cdn = runway
    fake.fail_next("SAFETY.INPUT.TEXT", "The prompt was flagged by content moderation.")
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed"
    assert "content policy (SAFETY.INPUT.TEXT: The prompt was flagged" in job.message
    assert "refused again" in job.message and job.attempts == 1 and fake.creates == 1


def test_an_internal_failure_says_to_generate_again(runway, queue, tmp_path):
    service, fake, _cdn = runway
    fake.fail_next("INTERNAL.BAD_OUTPUT.CODE01", "Bad output")
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "INTERNAL.BAD_OUTPUT.CODE01: Bad output" in job.message
    assert "Generate again" in job.message and fake.creates == 1


def test_a_task_cancelled_on_runways_side_fails_instead_of_waiting_for_ever(runway, queue, tmp_path):
    service, fake, _cdn = runway
    fake.cancel_next()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "cancelled on Runway's side" in job.message


def test_a_task_that_never_finishes_is_cancelled_at_the_deadline(runway, queue, tmp_path):
    service, fake, _cdn = runway
    service.max_wait = 0.2
    fake.never_finish()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "had not finished after" in job.message
    assert len(fake.calls_to(r"/v1/tasks/", "DELETE")) == 1


def test_cancel_deletes_the_running_task(runway, queue, tmp_path):
    service, fake, _cdn = runway
    fake.never_finish()
    q = queue(service)
    job = q.submit("shot", service.id, shot(), tmp_path / "take.mp4")
    pump(q, lambda: job.remote_id is not None and job.state == "generating")
    q.cancel(job.id)
    pump(q, lambda: job.is_finished)
    assert job.state == "cancelled"
    (delete,) = fake.calls_to(r"/v1/tasks/", "DELETE")
    assert delete.path.endswith(job.remote_id) and fake.tasks[job.remote_id]["deleted"]
    assert not (tmp_path / "take.mp4").exists()


# -- faults ----------------------------------------------------------------------------------------------------------

def test_429_on_create_waits_as_asked_and_makes_one_task(runway, queue, tmp_path):
    service, fake, _cdn = runway
    fake.fault("create", Fault.status_(429, {"error": "You have exceeded your daily generation limit."},
                                       retry_after=0.05), times=2)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert fake.creates == 1 and len(fake.calls_to(r"/v1/text_to_video")) == 3


def test_a_burst_of_5xx_on_status_is_ridden_out(runway, queue, tmp_path):
    service, fake, _cdn = runway
    fake.fault("status", Fault.status_(503, {"error": "Service Unavailable"}), times=3)
    fake.fault("status", Fault.status_(500, "<html><body>Internal Server Error</body></html>"), times=2)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert fake.creates == 1


def test_a_hanging_status_reply_times_out_and_is_asked_again(runway, queue, tmp_path):
    service, fake, _cdn = runway
    service.api().timeout = (2.0, 0.3)
    fake.fault("status", Fault.hang(1.5))
    started = time.monotonic()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("fault", [Fault.lost_reply(), Fault.after(502, {"error": "Bad Gateway"})])
def test_a_create_whose_reply_is_lost_makes_no_second_task(runway, queue, tmp_path, fault):
    service, fake, _cdn = runway
    fake.fault("create", fault)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and job.message.startswith("Submission uncertain")
    assert "Runway dashboard" in job.message
    assert fake.creates == 1 and len(fake.calls_to(r"/v1/text_to_video")) == 1


def test_submit_raises_submission_uncertain_to_its_caller(runway):
    service, fake, _cdn = runway
    fake.fault("create", Fault.lost_reply())
    with pytest.raises(SubmissionUncertain):
        service.submit(shot(), JobControl())


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_a_download_cut_short_is_fetched_again(runway, queue, tmp_path, kind):
    service, fake, cdn = runway
    cdn.download_fault(kind)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert job.result.frames == 48 and len(cdn.calls_to(r"/files/")) == 2


def test_an_html_page_instead_of_the_clip_fails_readably(runway, queue, tmp_path):
    service, fake, cdn = runway
    cdn.download_fault("html", times=2)  # the fresh link gets one too
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "HTML page" in job.message
    assert not list(tmp_path.iterdir())


def test_an_expired_output_link_is_refreshed_by_getting_the_task_again(runway, tmp_path):
    service, fake, cdn = runway
    ctl = JobControl()
    remote_id = service.submit(shot(), ctl)
    while not service.poll(remote_id, ctl).done:
        pass
    cdn.expire_all()  # a day later: the link from the last poll is dead
    polls = len(fake.calls_to(r"/v1/tasks/", "GET"))
    result = service.fetch(remote_id, tmp_path / "take.part", ctl)
    assert result.frames == 48 and (tmp_path / "take.part").stat().st_size > 0
    assert len(fake.calls_to(r"/v1/tasks/", "GET")) == polls + 1
    assert [c.path for c in cdn.calls_to(r"/files/")][0] != [c.path for c in cdn.calls_to(r"/files/")][1]


def test_a_revoked_key_fails_without_showing_it(runway, queue, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    service, fake, cdn = runway
    fake.steps = ["PENDING"] * 3
    q = queue(service)
    job = q.submit("shot", service.id, shot(), tmp_path / "take.mp4")
    pump(q, lambda: job.remote_id is not None)
    fake.revoke()
    pump(q, lambda: job.is_finished)
    assert job.state == "failed"
    assert job.message.startswith("Runway refused the key (401") and "RUNWAYML_API_SECRET" in job.message
    assert_no_key(cdn, SECRETS, job.message, caplog.text)


def test_the_key_never_reaches_the_file_host_messages_or_the_log(runway, queue, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    service, fake, cdn = runway
    fake.fault("create", Fault.status_(429, {"error": "Too many"}, retry_after=0.01))
    fake.fault("status", Fault.status_(502, {"error": f"upstream said Bearer {KEY}"}))
    cdn.download_fault("reset")
    job, events = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert_no_key(cdn, SECRETS, caplog.text, *(e.message for e in events))
