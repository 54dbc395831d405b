"""Helpers for tests that build timelines and look at what the sequencer renders."""

from __future__ import annotations

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


def set_fps(scene, fps: Fraction) -> None:
    """Blender's fps/fps_base for an exact rate (24000/1001 -> 24 / 1.001)."""
    whole = round(float(fps))
    scene.render.fps = whole
    scene.render.fps_base = whole / float(fps)


def add_shot(scene, name: str, left: int, length: int, channel: int = 1, fit: str = 'HOLD'):
    strip = compat.new_effect(compat.strips(scene.sequence_editor), name, 'COLOR', channel, left, length)
    from shotline.addon.blend import shots
    shots.make_shot(strip)
    strip.shotline.prompt = f"{name} prompt"
    strip.shotline.fit = fit
    return strip


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
