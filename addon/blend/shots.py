"""Shots on the timeline: finding them, their take strips, their song and their requests."""

from __future__ import annotations

import json
import os
import random
from fractions import Fraction
import uuid

import bpy

from .. import timing
from ..services.base import Request
from . import cast, compat

SHOT_TYPES = {'TEXT', 'COLOR'}


def scene_fps(scene) -> Fraction:
    return timing.scene_rate(scene.render.fps, scene.render.fps_base)


def is_shot(strip) -> bool:
    return strip.shotline.role == 'SHOT'


def can_become_shot(strip) -> bool:
    return strip.type in SHOT_TYPES and strip.shotline.role == 'NONE'


def make_shot(strip, placeholder: str = "") -> None:
    """Make `strip` a shot. `placeholder` is text Shotline puts on the strip for the director to
    replace (a bar range, a section name): it is never sent as a prompt."""
    props = strip.shotline
    props.role = 'SHOT'
    if not props.shot_id:
        props.shot_id = uuid.uuid4().hex
    props.seed = random.randrange(2**31)
    props.placeholder = placeholder
    claim(strip)


def owner_tag(strip) -> str:
    """The scene and name a strip was made under (a copy Blender makes gets another name)."""
    return f"{strip.id_data.name}\x1f{strip.name}"


def claim(strip) -> None:
    """Record `strip` as the original of its shot id (see identity.py)."""
    strip.shotline.owner = owner_tag(strip)


def shots(scene) -> list:
    ed = scene.sequence_editor
    return [s for s in compat.strips_all(ed) if is_shot(s)] if ed else []


def by_id(scene, shot_id: str, role: str = 'SHOT'):
    ed = scene.sequence_editor
    if not ed or not shot_id:
        return None
    return next((s for s in compat.strips_all(ed) if s.shotline.role == role and s.shotline.shot_id == shot_id), None)


def take_strip(scene, shot):
    return by_id(scene, shot.shotline.shot_id, 'TAKE')


def loop_strips(scene, shot) -> list:
    ed = scene.sequence_editor
    sid = shot.shotline.shot_id
    return [s for s in compat.strips_all(ed) if s.shotline.role == 'LOOP' and s.shotline.shot_id == sid]


def prompt(strip) -> str:
    """What the director wrote: the prompt field, or a Text strip's own text when the field is
    empty and the text is not Shotline's placeholder. Empty when there is nothing to send."""
    props = strip.shotline
    text = props.prompt.strip()
    if not text and strip.type == 'TEXT':
        text = strip.text.strip()
        if text == props.placeholder.strip():
            return ""
    return text


def is_untouched(strip) -> bool:
    """A shot Shotline made that the director has not used yet: nothing written or chosen on it
    (prompt, inputs, options, workflow, pins), no takes, no job."""
    props = strip.shotline
    return not (prompt(strip) or props.negative_prompt.strip() or props.reference_image or props.last_frame_image
                or props.source_video or props.audio or len(props.references) or props.options.strip()
                or props.workflow or props.pins.strip() or props.cast.strip() or len(props.takes) or props.job_id)


def input_file(value: str, label: str) -> str:
    """The absolute path of one of the shot's input files, or ""; a missing file is refused now."""
    if not value:
        return ""
    path = bpy.path.abspath(value)
    if not os.path.isfile(path):
        raise ValueError(f"The {label} is missing: {path}")
    return path


def parse_pins(text: str) -> dict[str, str]:
    """"seed=3.noise_seed, prompt=6.text" -> {"seed": "3.noise_seed", "prompt": "6.text"}."""
    pins = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        field, sep, target = part.partition("=")
        if not sep or "." not in target.strip():
            raise ValueError(f"A pin is FIELD=NODE_ID.INPUT, not \"{part.strip()}\"")
        pins[field.strip()] = target.strip()
    return pins


def _options(scene, props, service) -> str:
    """The model options, and for a workflow service the workflow (the shot's, else the project's) and pins."""
    text = props.options.strip()
    if not service.uses_workflow:
        return text
    try:
        options = json.loads(text) if text else {}
    except ValueError as err:
        raise ValueError(f"The shot's options are not valid JSON ({err})") from None
    if not isinstance(options, dict):
        raise ValueError("The shot's options must be a JSON object")
    path = props.workflow or scene.shotline.workflow
    if not path:
        raise ValueError(f"{service.label} needs a workflow: choose one in the Project panel (or on the shot)")
    options["workflow"] = input_file(path, "workflow")
    options["pins"] = parse_pins(props.pins)
    return json.dumps(options, ensure_ascii=False)


def build_request(scene, shot, service, inputs, seed: int | None = None) -> Request:
    """What to ask `service` for so a take covers `shot` at the scene's rate and size. `inputs` are the
    shot's stills, video and sound (sources.gather); `seed` overrides the shot's (a variation)."""
    text = prompt(shot)
    if not text:
        raise ValueError(f"Shot \"{shot.name}\" has no prompt")
    props = shot.shotline
    left, right = compat.span(shot)
    fps = scene_fps(scene)
    caps = service.capabilities_for(props.model)
    clip_fps = fps if not caps.fps or fps in caps.fps else min(caps.fps, key=lambda r: (abs(r - fps), -r))
    frames = timing.request_frames(right - left, fps, clip_fps, caps.durations, caps.frame_multiple, caps.max_frames,
                                   compat.RETIMES_TO_LAST_FRAME)
    if seed is None and props.random_seed:
        props.seed = random.randrange(2**31)
    width, height = output_size(scene)
    references = cast.reference_paths(scene, shot, caps.reference_images)[0]  # the note: cast.left_out
    return Request(
        shot_name=shot.name, prompt=text, negative_prompt=props.negative_prompt, seed=props.seed if seed is None else seed,
        frames=frames, fps=clip_fps, model=props.model, options=_options(scene, props, service),
        reference_image=inputs.first_frame, last_frame_image=inputs.last_frame,
        source_video=inputs.source_video, audio=inputs.audio,
        reference_images=references, width=width, height=height,
    )


def output_size(scene) -> tuple[int, int]:
    """The scene's output size in pixels, made even (H.264 needs it)."""
    percent = scene.render.resolution_percentage / 100
    return (max(2, int(scene.render.resolution_x * percent) // 2 * 2),
            max(2, int(scene.render.resolution_y * percent) // 2 * 2))
