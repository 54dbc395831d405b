"""Money and keys, as a director meets them in Blender: the estimate before sending, the budget cap,
the cost on the take and the project's total, an identical request never paid twice, Test
Connection, the Jobs panel and the preferences. Runway's fake stands in for any paid service."""

from __future__ import annotations

from fractions import Fraction

import bpy
import pytest

from fakes.clips import real_clip
from fakes.runway import KEY, FakeRunway
from fakes.server import Cdn
from shotline.addon.blend import connection, prefs, runtime
from shotline.addon.services import config, registry
from shotline.panels import jobs as jobs_panel
from test_panels import SHOT, _draw, _labels, _operators, _props, _show
from vse import add_shot, op, select, set_fps

PRICE = 0.12  # USD per second of Gen-4.5 (12 credits of $0.01)


@pytest.fixture
def runway(scene, monkeypatch):
    cdn = Cdn()
    fake = FakeRunway(cdn, steps=("RUNNING",))
    fake.clip = lambda *_job: real_clip(Fraction(24), 240)
    monkeypatch.setenv("RUNWAYML_API_SECRET", KEY)
    monkeypatch.setenv("SHOTLINE_RUNWAY_URL", fake.url)
    for store in (config._keys, config._urls):
        monkeypatch.delitem(store, "runway", raising=False)
    service = registry.get("runway")
    monkeypatch.setattr(service, "poll_interval", 0.05)
    system = bpy.context.preferences.system
    was_online, system.use_online_access = system.use_online_access, True
    set_fps(scene, Fraction(25))
    yield fake
    system.use_online_access = was_online
    fake.close()
    cdn.close()


def _shot(scene, name: str, left: int, seconds: int = 2):
    shot = add_shot(scene, name, left, seconds * 25, channel=2)
    shot.shotline.service, shot.shotline.model = "runway", "gen4.5"
    shot.shotline.random_seed, shot.shotline.seed = False, 42
    return shot


def _generate(scene, made, **kw):
    select(scene, made)
    result = op(scene, "shotline_generate", **kw)
    runtime.run_until_idle(60, interval=0.02)
    return result


def test_the_batch_is_estimated_before_anything_is_sent(runway, scene):
    made = [_shot(scene, "A", 1), _shot(scene, "B", 100, seconds=4)]
    plan = runtime.plan(scene, made)
    assert plan.cost == pytest.approx((2 + 4) * PRICE)
    assert plan.unknown_prices == 0
    assert runway.calls == [], "estimating sends nothing"


def test_the_budget_stops_new_paid_jobs(runway, scene):
    scene.shotline.budget = 0.5
    made = [_shot(scene, f"Шот {n}", 1 + 60 * n) for n in range(3)]  # 3 x 2 s x $0.12 = $0.72
    select(scene, made)
    with pytest.raises(RuntimeError, match="Nothing was queued"):
        op(scene, "shotline_generate")
    assert runway.creates == 0
    assert all("Over budget" in s.shotline.status_message and "Raise the budget" in s.shotline.status_message
               for s in made)
    assert _generate(scene, made[:2]) == {'FINISHED'}  # $0.48 fits
    assert runway.creates == 2


def test_the_cost_lands_on_the_take_and_in_the_project_total(runway, scene):
    shot = _shot(scene, "A", 1)
    _generate(scene, [shot])
    take = shot.shotline.takes[0]
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    assert not take.cost_estimated, "Runway reports the cost of a finished task"
    assert take.cost > 0 and scene.shotline.spent == pytest.approx(take.cost)
    second = _shot(scene, "B", 100)
    _generate(scene, [second])
    assert scene.shotline.spent == pytest.approx(take.cost + second.shotline.takes[0].cost)


def test_the_same_request_again_shows_its_take_instead_of_paying(runway, scene):
    shot = _shot(scene, "A", 1)
    _generate(scene, [shot])
    assert runway.creates == 1 and len(shot.shotline.takes) == 1
    _generate(scene, [shot])
    assert runway.creates == 1, "paid twice for the same request"
    _show(scene, shot)
    assert len(shot.shotline.takes) == 1 and "Same request as take 1" in shot.shotline.status_message
    offered = [props for name, text, props in _operators(_draw(SHOT, scene)) if name == "sequencer.shotline_generate"]
    assert offered == [{"force": True}], "the shot offers to pay for a new take"
    shot.shotline.prompt += ", at dawn"  # another request: a new take
    _generate(scene, [shot])
    assert runway.creates == 2 and len(shot.shotline.takes) == 2
    _generate(scene, [shot], force=True)  # the director insists
    assert runway.creates == 3 and len(shot.shotline.takes) == 3


def test_test_connection_answers_in_the_preferences(runway, scene):
    answer = connection.start("runway")
    assert not answer.done and "Testing Runway" in answer.text, "the call runs off the main thread"
    connection.wait(10)
    assert connection.answer("runway").ok, connection.answer("runway").text
    runway.revoke()
    connection.start("runway")
    connection.wait(10)
    answer = connection.answer("runway")
    assert not answer.ok and "refused the key" in answer.text and KEY not in answer.text
    bpy.context.preferences.system.use_online_access = False
    answer = connection.start("runway")
    assert not answer.ok and "Online access is off" in answer.text


def test_the_preferences_offer_a_hidden_key_an_address_and_test_connection_per_service(scene):
    settings = prefs.get()
    for service in prefs.configurable_services():
        if service.key_env:  # (ComfyUI has no key: only addresses)
            assert settings.bl_rna.properties[f"{service.id}_key"].subtype == 'PASSWORD'
        assert f"{service.id}_url" in settings.bl_rna.properties
    log = _draw(type("Preferences", (), {"draw": lambda self, _context: prefs.draw(self.layout, settings)}), scene)
    tests = [props["service"] for name, _text, props in _operators(log)
             if name == "preferences.shotline_test_connection"]
    assert tests == [s.id for s in prefs.configurable_services()]
    assert "luma_agents_key" in _props(log) and "swarmui_key" in _props(log)
    assert {s.id for s in prefs.configurable_services()} >= {"fal", "replicate", "runway", "luma", "veo"}


def test_the_jobs_panel_lists_the_scenes_jobs_with_cancel_and_retry(runway, scene):
    done = _shot(scene, "Готово", 1)
    _generate(scene, [done])
    runway.never_finish()
    running = _shot(scene, "Идёт", 100)
    select(scene, [running])
    op(scene, "shotline_generate")
    runtime.pump()
    log = _draw(jobs_panel.SEQUENCER_PT_shotline_jobs, scene)
    texts = [text for text, _icon in _labels(log)]
    assert "Готово" in texts and "Идёт" in texts and "Runway · gen4.5" in texts
    cancels = [props for name, _text, props in _operators(log) if name == "sequencer.shotline_cancel_job"]
    assert cancels == [{"job_id": running.shotline.job_id}]
    assert op(scene, "shotline_cancel_job", job_id=running.shotline.job_id) == {'FINISHED'}
    runtime.run_until_idle(30, interval=0.02)
    retries = [props for name, _text, props in _operators(_draw(jobs_panel.SEQUENCER_PT_shotline_jobs, scene))
               if name == "sequencer.shotline_retry_job"]
    assert retries == [{"job_id": running.shotline.job_id}]
    assert _props(log) == []


def test_model_options_go_as_they_are_and_bad_ones_are_refused_before_sending(runway, scene):
    shot = _shot(scene, "A", 1)
    shot.shotline.options = '{"contentModeration": {"publicFigureThreshold": "low"}}'
    _generate(scene, [shot])
    assert shot.shotline.status == 'PLACED', shot.shotline.status_message
    assert runway.bodies[-1]["contentModeration"] == {"publicFigureThreshold": "low"}
    broken = _shot(scene, "B", 100)
    broken.shotline.options = "{cfg: 0.5"
    select(scene, [broken])
    with pytest.raises(RuntimeError, match="Nothing was queued"):
        op(scene, "shotline_generate")
    assert "not valid JSON" in broken.shotline.status_message and runway.creates == 1
