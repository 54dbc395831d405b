"""Helpers for tests that build timelines and look at what the sequencer renders."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import bpy
import numpy as np
from PIL import Image

from shotline.addon import framecode
from shotline.addon.blend import compat
from shotline.addon.services.animatic import AnimaticService
from shotline.addon.services.base import JobControl, Request


def make_clip(folder: Path, frames: int, fps: Fraction, size=(320, 180), seed=1, prompt="test clip") -> Path:
    """An animatic clip with the frame code burned in, made synchronously."""
    service = AnimaticService(staging_root=folder)
    request = Request(shot_name="clip", prompt=prompt, frames=frames, fps=Fraction(fps), width=size[0],
                      height=size[1], seed=seed)
    ctl = JobControl()
    remote = service.submit(request, ctl)
    dest = folder / f"clip_{frames}_{str(fps).replace('/', '-')}_{size[0]}x{size[1]}_{seed}.mp4"
    service.fetch(remote, dest, ctl)
    return dest


PRESETS = {Fraction(24000, 1001): "23.98", Fraction(30000, 1001): "29.97", Fraction(60000, 1001): "59.94"}


def set_fps(scene, fps: Fraction) -> None:
    """Set the scene's rate as a director does: with Blender's own frame-rate preset when there is
    one (29.97 is fps 30, fps_base 1.001 stored as a float32), else as a custom rate."""
    fps = Fraction(fps)
    name = PRESETS.get(fps, str(fps.numerator) if fps.denominator == 1 else None)
    preset = bpy.utils.preset_find(name, "framerate") if name else None
    if preset:
        with bpy.context.temp_override(scene=scene):
            bpy.ops.script.execute_preset(filepath=preset, menu_idname="RENDER_MT_framerate_presets")
    elif fps.denominator == 1001:  # a custom NTSC-style rate, typed as Blender's presets do
        scene.render.fps, scene.render.fps_base = fps.numerator // 1000, 1.001
    else:
        scene.render.fps, scene.render.fps_base = fps.numerator, fps.denominator
    assert round(scene.render.fps / scene.render.fps_base, 3) == round(float(fps), 3)


def fixed_rate_service(monkeypatch, fps: Fraction):
    """An animatic that, like the cloud services, only delivers clips at `fps`: registered as a
    service a shot can pick, so requests are built from the scene as for any service."""
    from shotline.addon.services.base import Capabilities

    class FixedRate(AnimaticService):
        id, label = f"animatic-{float(fps):g}fps", f"Animatic at {float(fps):g} fps"
        capabilities = Capabilities(first_frame=True, fps=(Fraction(fps),), max_frames=framecode.MAX_INDEX + 1)

    return add_service(monkeypatch, FixedRate())


def add_service(monkeypatch, service):
    """Register `service` for one test, listed in the shot's Service menu as the add-on's own are."""
    from shotline.addon.blend import props
    from shotline.addon.services import registry

    monkeypatch.setitem(registry._SERVICES, service.id, service)
    props.refresh_services()
    return service


def add_shot(scene, name: str, left: int, length: int, channel: int = 1, fit: str = 'HOLD'):
    strip = compat.new_effect(compat.strips(scene.sequence_editor), name, 'COLOR', channel, left, length)
    from shotline.addon.blend import shots
    shots.make_shot(strip)
    strip.shotline.prompt = f"{name} prompt"
    strip.shotline.fit = fit
    return strip


def unwritable(tmp_path: Path) -> Path:
    """A folder nothing can be written into (as root, chmod does not stop writes: /sys does)."""
    if os.geteuid() == 0:
        return Path("/sys/shotline-readonly")
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def select(scene, chosen) -> None:
    """Select exactly `chosen`, as a click and shift-clicks in the timeline do."""
    for s in compat.strips_all(scene.sequence_editor):
        s.select = s in chosen


def op(scene, name: str, **kw):
    """Run a Shotline operator (bpy.ops.sequencer.NAME) on `scene`, as the sequencer's buttons do."""
    with compat.operators_on(scene):
        return getattr(bpy.ops.sequencer, name)(**kw)


def editor_op(scene, name: str, **kw):
    """Run one of Blender's own sequencer operators (duplicate, split, copy, paste) as in the
    timeline: they need a sequencer area, so the window's first area is made one."""
    window = bpy.context.window_manager.windows[0]
    area = window.screen.areas[0]
    area.type = 'SEQUENCE_EDITOR'
    region = next(r for r in area.regions if r.type == 'WINDOW')
    with bpy.context.temp_override(window=window, area=area, region=region, **compat.scene_override(scene)):
        return getattr(bpy.ops.sequencer, name)(**kw)


def generate(scene, chosen, timeout: float = 300) -> None:
    """Select `chosen`, press Generate Selected Shots and pump until every take is placed."""
    from shotline.addon.blend import runtime

    select(scene, chosen)
    assert op(scene, "shotline_generate") == {'FINISHED'}
    runtime.run_until_idle(timeout, interval=0.02)


def render_frame(scene, frame: int, out: Path) -> np.ndarray:
    """The sequencer's output at `frame` as an RGB array (no caches: each frame rendered afresh)."""
    ed = scene.sequence_editor
    ed.use_cache_raw = ed.use_cache_final = False
    scene.render.use_sequencer = True
    scene.view_settings.view_transform = 'Standard'
    scene.render.image_settings.file_format = 'PNG'
    scene.render.filepath = str(out)
    scene.frame_current = frame
    with bpy.context.temp_override(scene=scene):
        bpy.ops.render.render(write_still=True)
    with Image.open(out) as image:
        return np.asarray(image.convert("RGB"))


def shown_source_frame(scene, frame: int, out: Path) -> int | None:
    return framecode.read(render_frame(scene, frame, out))
