"""Panels and their polls, drawn with a recording layout (nothing is drawn headless)."""

from __future__ import annotations

from fractions import Fraction

import bpy

from shotline.addon.blend import compat, shots
from shotline.panels import shot as shot_panels
from vse import add_shot, set_fps


class Layout:
    """Records what a panel draws; every layout call returns another recorder."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.log.append((name, args, kwargs))
            return Layout(self.log)
        return call

    def __setattr__(self, name, value):
        if name == "log":
            object.__setattr__(self, name, value)
        else:
            self.log.append(("set", name, value))


def _draw(panel_cls, context):
    log = []
    fake = type("FakePanel", (), {"layout": Layout(log)})()
    panel_cls.draw(fake, context)
    return log


def _texts(log):
    return " | ".join(str(kw.get("text", "")) for name, _a, kw in log if name in {"label", "operator", "progress"})


def test_project_panel_shows_the_song_and_the_generate_button(scene):
    set_fps(scene, Fraction(24))
    with bpy.context.temp_override(**compat.scene_override(scene)):
        ctx = bpy.context
        assert shot_panels.SEQUENCER_PT_shotline_project.poll(ctx)
        log = _draw(shot_panels.SEQUENCER_PT_shotline_project, ctx)
    assert "No sound strip" in _texts(log)
    assert any(name == "operator" and args[0] == "sequencer.shotline_generate" for name, args, _kw in log)


def test_shot_panel_polls_on_shots_and_their_takes_only(scene):
    set_fps(scene, Fraction(24))
    shot = add_shot(scene, "Panel shot", 1, 24)
    plain = compat.new_effect(compat.strips(scene.sequence_editor), "plain", 'COLOR', 5, 1, 24)
    ed = scene.sequence_editor
    with bpy.context.temp_override(**compat.scene_override(scene)):
        ed.active_strip = plain
        assert not shot_panels.SEQUENCER_PT_shotline_shot.poll(bpy.context)
        ed.active_strip = shot
        assert shot_panels.SEQUENCER_PT_shotline_shot.poll(bpy.context)
        shot.shotline.status, shot.shotline.progress = 'GENERATING', 0.4
        log = _draw(shot_panels.SEQUENCER_PT_shotline_shot, bpy.context)
    drawn = _texts(log)
    assert "Panel shot" in drawn
    assert "Generating 40%" in drawn or "Generating" in drawn
    assert any(name == "operator" and args[0] == "sequencer.shotline_cancel" for name, args, _kw in log)
    assert any(name == "template_list" for name, _a, _kw in log)
    assert shots.is_shot(shot)


def test_failed_shot_shows_its_reason(scene):
    shot = add_shot(scene, "Broken", 1, 24)
    shot.shotline.status, shot.shotline.status_message = 'FAILED', "Shot \"Broken\" has no prompt"
    with bpy.context.temp_override(**compat.scene_override(scene)):
        scene.sequence_editor.active_strip = shot
        drawn = _texts(_draw(shot_panels.SEQUENCER_PT_shotline_shot, bpy.context))
    assert "Failed" in drawn and "has no prompt" in drawn
