"""Luma through the job queue against a faithful fake (tests/fakes/luma.py): Ray 3.2 on the
Agents API, Ray 2 on the Dream Machine API, failures, a lost create found again in the Dream
Machine's list, no cancel, and every network fault, with the keys kept out of sight."""

from __future__ import annotations

import base64
import logging
import time

import pytest

from drive import assert_no_key, close_later, pump, run, shots, still
from fakes.luma import KEY, FakeLuma
from fakes.server import Cdn, Fault
from shotline.addon.services import config, registry
from shotline.addon.services.base import JobControl, ServiceError, SubmissionUncertain
from shotline.addon.services.luma import AGENTS, DREAM_MACHINE, LumaService

AGENTS_KEY = "luma-agents-5ecret-fedcba9876543210"
SECRETS = (KEY, AGENTS_KEY)
shot = shots(prompt="slow push-in, rain on the window")


@pytest.fixture
def luma(monkeypatch):
    cdn = Cdn()
    fake = FakeLuma(cdn)
    monkeypatch.setenv("LUMAAI_API_KEY", KEY)
    monkeypatch.delenv("LUMA_AGENTS_API_KEY", raising=False)
    monkeypatch.setenv("SHOTLINE_LUMA_URL", fake.url)
    for store in (config._keys, config._urls):
        for name in ("luma", "luma-agents"):
            monkeypatch.delitem(store, name, raising=False)
    service = LumaService()
    service.poll_interval = 0.01
    for surface in (AGENTS, DREAM_MACHINE):
        service.api(surface).base_delay = 0.01
    yield service, fake, cdn
    close_later(fake, cdn)


# -- the two APIs ----------------------------------------------------------------------------------------------------

def test_ray_3_2_goes_to_the_agents_api_and_says_it_cannot_be_cancelled(luma, queue, tmp_path):
    service, fake, cdn = luma
    job, events = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert job.remote_id.startswith("agents:")
    assert fake.bodies == [{"type": "video", "model": "ray-3.2", "prompt": "slow push-in, rain on the window",
                            "aspect_ratio": "16:9", "video": {"duration": "5s", "resolution": "720p"}}]
    (create,) = fake.calls_to(r"^/v1/generations$", "POST")
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert any("runs and bills to the end" in e.message for e in events if e.kind == "progress")
    result = job.result
    assert (result.fps, result.frames, result.width, result.height) == (24, 120, 1280, 720)
    assert result.cost is None
    assert_no_key(cdn, SECRETS, job.message)


def test_ray_3_2_takes_first_and_last_frame_inline(luma, queue, tmp_path):
    service, fake, _cdn = luma
    request = shot(reference_image=still(tmp_path / "a.png"), last_frame_image=still(tmp_path / "b.png"),
                   width=1080, height=1920)
    job, _ = run(queue, service, request, tmp_path)
    assert job.state == "done", job.message
    (body,) = fake.bodies
    assert body["aspect_ratio"] == "9:16" and body["video"]["resolution"] == "1080p"
    for name in ("start_frame", "end_frame"):
        frame = body["video"][name]
        assert frame["media_type"] == "image/png" and base64.b64decode(frame["data"])[:4] == b"\x89PNG"
    assert (job.result.width, job.result.height) == (1080, 1920)


def test_ray_2_goes_to_the_dream_machine_api(luma, queue, tmp_path):
    service, fake, _cdn = luma
    job, _ = run(queue, service, shot(model="ray-2", frames=24 * 7, width=1920, height=1080), tmp_path)
    assert job.state == "done", job.message
    assert job.remote_id.startswith("dm:")
    assert fake.calls_to(r"^/dream-machine/v1/generations/video$", "POST")
    assert fake.bodies == [{"model": "ray-2", "prompt": "slow push-in, rain on the window", "aspect_ratio": "16:9",
                            "duration": "9s", "resolution": "1080p"}]
    assert (job.result.frames, job.result.width, job.result.height) == (216, 1920, 1080)


def test_each_api_gets_its_own_key_when_the_agents_key_is_set(luma, queue, tmp_path, monkeypatch):
    service, fake, cdn = luma
    monkeypatch.setenv("LUMA_AGENTS_API_KEY", AGENTS_KEY)
    fake.keys["agents"] = AGENTS_KEY
    service.api(AGENTS).base_delay = 0.01
    for model in ("ray-3.2", "ray-flash-2"):
        job, _ = run(queue, service, shot(model=model), tmp_path, name=f"{model}.mp4")
        assert job.state == "done", job.message
    assert {c.headers["authorization"] for c in fake.calls_to(r"^/v1/")} == {f"Bearer {AGENTS_KEY}"}
    assert {c.headers["authorization"] for c in fake.calls_to(r"^/dream-machine/")} == {f"Bearer {KEY}"}
    assert_no_key(cdn, SECRETS)


@pytest.mark.parametrize("request_, reason", [
    (shot(model="ray-2", reference_image="/x/first.png"), "only as web links.*use ray-3.2"),
    (shot(model="ray-flash-2", last_frame_image="/x/last.png"), "only as web links"),
    (shot(frames=24 * 8, reference_image="/x/first.png"), "10 s clips from text only"),
    (shot(frames=24 * 11), "at most 10 s"),
    (shot(model="ray-2", frames=24 * 10), "at most 9 s"),
    (shot(negative_prompt="blur"), "cannot take a negative prompt"),
    (shot(prompt=" "), "needs a prompt"),
    (shot(model="ray-3"), "has no model"),
])
def test_requests_a_model_cannot_take_are_refused_before_anything_is_sent(luma, request_, reason):
    service, fake, _cdn = luma
    with pytest.raises(ServiceError, match=reason):
        service.check(request_)
    assert fake.calls == []


def test_a_field_the_api_refuses_reads_its_detail_and_makes_nothing(luma, queue, tmp_path):
    service, fake, _cdn = luma
    job, _ = run(queue, service, shot(options='{"seed": 3}'), tmp_path)
    assert job.state == "failed" and job.message == "Luma (Agents API) answered 400: Unknown fields: seed."
    assert fake.creates == 0


def test_capabilities_say_luma_cannot_cancel():
    service = LumaService()
    assert service.models() == ["ray-3.2", "ray-2", "ray-flash-2"]
    caps = service.capabilities_for("")
    assert not caps.can_cancel and caps.first_frame and caps.last_frame and not caps.seed
    assert caps.durations == (5.0, 10.0) and "21:9" in caps.aspect_ratios
    assert not service.capabilities_for("ray-2").first_frame
    assert service.estimate_cost(shot()) is None
    assert registry.get("luma").label == "Luma"


def test_test_connection_checks_both_apis(luma):
    service, _fake, _cdn = luma
    assert service.test_connection() == ("Luma: Agents API: connected; Dream Machine API: connected "
                                         "(4200 credits).")


# -- outcomes --------------------------------------------------------------------------------------------------------

def test_content_moderation_on_the_agents_api_is_a_clear_final_failure(luma, queue, tmp_path):
    service, fake, _cdn = luma
    fake.fail_next("The prompt was flagged", code="content_moderated")
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "content policy (The prompt was flagged)" in job.message
    assert job.attempts == 1 and fake.creates == 1


def test_content_moderation_on_the_dream_machine_api_is_read_from_the_reason(luma, queue, tmp_path):
    service, fake, _cdn = luma
    fake.fail_next("400: prompt not allowed because advanced moderation failed", code=None)
    job, _ = run(queue, service, shot(model="ray-2"), tmp_path)
    assert job.state == "failed" and "content policy" in job.message and fake.creates == 1


def test_a_generation_failure_says_to_generate_again(luma, queue, tmp_path):
    service, fake, _cdn = luma
    fake.fail_next("Upstream model error")
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed"
    assert job.message == "Luma failed (generation_failed: Upstream model error). Generate again to retry."


def test_cancel_stops_waiting_but_says_the_job_still_runs_and_bills(luma, queue, tmp_path, caplog):
    service, fake, _cdn = luma
    fake.never_finish()
    q = queue(service)
    job = q.submit("shot", service.id, shot(), tmp_path / "take.mp4")
    pump(q, lambda: "cannot stop a started job: it runs and bills" in job.message)
    q.cancel(job.id)
    pump(q, lambda: job.is_finished)
    assert job.state == "cancelled"
    assert [c.method for c in fake.calls if c.method not in ("GET", "POST")] == []  # Luma has no cancel
    assert "runs and bills to the end" in caplog.text


def test_a_generation_that_never_finishes_fails_at_the_deadline(luma, queue, tmp_path):
    service, fake, _cdn = luma
    service.max_wait = 0.2
    fake.never_finish()
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and "had not finished after" in job.message and "bill" in job.message


# -- faults ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [Fault.lost_reply(), Fault.after(502, {"detail": "Bad Gateway"})])
def test_a_lost_dream_machine_create_is_found_in_the_list_not_made_twice(luma, queue, tmp_path, fault):
    service, fake, _cdn = luma
    first, _ = run(queue, service, shot(model="ray-2"), tmp_path, name="first.mp4")  # the same request, earlier
    fake.fault("create_dm", fault)
    job, _ = run(queue, service, shot(model="ray-2"), tmp_path)
    assert job.state == "done", job.message
    assert fake.creates == 2 and len(fake.calls_to(r"generations/video$", "POST")) == 2
    assert fake.calls_to(r"^/dream-machine/v1/generations$", "GET")
    assert job.remote_id != first.remote_id and job.remote_id.split(":")[1] in fake.generations


def test_a_lost_dream_machine_create_that_is_not_in_the_list_stays_uncertain(luma):
    service, fake, _cdn = luma
    fake.fault("create_dm", Fault.lost_reply())
    fake.fault("list", Fault.status_(500, {"detail": "Internal Server Error"}), times=10)
    with pytest.raises(SubmissionUncertain):
        service.submit(shot(model="ray-2"), JobControl())
    assert fake.creates == 1


@pytest.mark.parametrize("fault", [Fault.lost_reply(), Fault.after(502, {"detail": "Bad Gateway"})])
def test_a_lost_agents_create_stays_uncertain_and_is_not_sent_again(luma, queue, tmp_path, fault):
    service, fake, _cdn = luma
    fake.fault("create", fault)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "failed" and job.message.startswith("Submission uncertain")
    assert fake.creates == 1 and len(fake.calls_to(r"^/v1/generations$", "POST")) == 1


def test_429_on_create_waits_as_asked_and_makes_one_generation(luma, queue, tmp_path):
    service, fake, _cdn = luma
    fake.fault("create", Fault.status_(429, {"detail": "Too many concurrent generations"}, retry_after=0.05),
               times=2)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert fake.creates == 1


def test_a_burst_of_5xx_on_status_is_ridden_out(luma, queue, tmp_path):
    service, fake, _cdn = luma
    fake.fault("status", Fault.status_(502, {"detail": "Upstream error"}), times=4)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message


def test_a_hanging_status_reply_times_out_and_is_asked_again(luma, queue, tmp_path):
    service, fake, _cdn = luma
    service.api(DREAM_MACHINE).timeout = (2.0, 0.3)
    fake.fault("status_dm", Fault.hang(1.5))
    started = time.monotonic()
    job, _ = run(queue, service, shot(model="ray-flash-2"), tmp_path)
    assert job.state == "done", job.message
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_a_download_cut_short_is_fetched_again(luma, queue, tmp_path, kind):
    service, _fake, cdn = luma
    cdn.download_fault(kind)
    job, _ = run(queue, service, shot(), tmp_path)
    assert job.state == "done", job.message
    assert job.result.frames == 120


def test_an_html_page_instead_of_the_clip_fails_readably(luma, queue, tmp_path):
    service, _fake, cdn = luma
    cdn.download_fault("html")
    job, _ = run(queue, service, shot(model="ray-2"), tmp_path)  # one link per generation: no fresh one
    assert job.state == "failed" and "HTML page" in job.message
    assert not list(tmp_path.iterdir())


def test_an_expired_agents_link_is_replaced_by_a_fresh_one(luma, tmp_path):
    service, fake, cdn = luma
    ctl = JobControl()
    remote_id = service.submit(shot(), ctl)
    while not service.poll(remote_id, ctl).done:
        pass
    cdn.expire_all()  # an hour later
    result = service.fetch(remote_id, tmp_path / "take.part", ctl)
    assert result.frames == 120 and len(cdn.calls_to(r"/files/")) == 2


def test_an_expired_dream_machine_link_says_so(luma, tmp_path):
    service, fake, cdn = luma
    ctl = JobControl()
    remote_id = service.submit(shot(model="ray-2"), ctl)
    while not service.poll(remote_id, ctl).done:
        pass
    cdn.expire_all()
    with pytest.raises(ServiceError, match="link has expired"):
        service.fetch(remote_id, tmp_path / "take.part", ctl)


def test_a_revoked_key_fails_without_showing_it(luma, queue, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    service, fake, cdn = luma
    fake.steps["agents"] = ["queued"] * 4
    q = queue(service)
    job = q.submit("shot", service.id, shot(), tmp_path / "take.mp4")
    pump(q, lambda: job.remote_id is not None)
    fake.revoke()
    pump(q, lambda: job.is_finished)
    assert job.state == "failed" and job.message.startswith("Luma (Agents API) refused the key (401")
    assert_no_key(cdn, SECRETS, job.message, caplog.text)


def test_the_key_never_reaches_the_file_host_messages_or_the_log(luma, queue, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    service, fake, cdn = luma
    fake.fault("create_dm", Fault.lost_reply())
    fake.fault("status_dm", Fault.status_(503, {"detail": f"token {KEY} rejected upstream"}))
    cdn.download_fault("reset")
    job, events = run(queue, service, shot(model="ray-2"), tmp_path)
    assert job.state == "done", job.message
    assert_no_key(cdn, SECRETS, caplog.text, *(e.message for e in events))
