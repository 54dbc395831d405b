"""Every difference between Blender 4.5 LTS and 5.x that Shotline meets, in one place.

4.5 has `sequences` and `strips`, 5.x only `strips`; 5.x shows the sequencer scene as
`context.sequencer_scene` (maybe not `context.scene`); 5.1+ renamed the timing
properties (left_handle ...); retiming keys behave differently (see `conform`).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import bpy

StripType = getattr(bpy.types, "Strip", None) or bpy.types.Sequence

_NEW_TIMING = "left_handle" in StripType.bl_rna.properties
HAS_SEQUENCER_SCENE = "sequencer_scene" in bpy.types.WorkSpace.bl_rna.properties
# 4.5 retimes a clip to its last frame, 5.x to the end of it (timing.conformed_length's `anchor_last`)
RETIMES_TO_LAST_FRAME = bpy.app.version < (5, 0, 0)


def strips(ed) -> bpy.types.bpy_prop_collection:
    return ed.strips if hasattr(ed, "strips") else ed.sequences


# the sequence editor's collection of every strip, meta contents included ("sequences_all" up to 4.5)
STRIPS_ALL = "strips_all" if "strips_all" in bpy.types.SequenceEditor.bl_rna.properties else "sequences_all"


def strips_all(ed):
    return getattr(ed, STRIPS_ALL)


def sequencer_scene(context) -> bpy.types.Scene | None:
    """The scene the sequencer shows (5.x may show another scene than the window's, or none)."""
    if HAS_SEQUENCER_SCENE:
        scene = getattr(context, "sequencer_scene", None)
        if scene is not None:
            return scene
    return context.scene


def selected_strips(context) -> list:
    found = getattr(context, "selected_strips", None)
    if found is None:
        found = getattr(context, "selected_sequences", None)
    if found is None:
        scene = sequencer_scene(context)
        ed = scene.sequence_editor if scene else None
        found = [s for s in strips_all(ed) if s.select] if ed else []
    return list(found)


def active_strip(context):
    scene = sequencer_scene(context)
    ed = scene.sequence_editor if scene else None
    return ed.active_strip if ed else None


def span(strip) -> tuple[int, int]:
    """Visible range of a strip, end exclusive."""
    if _NEW_TIMING:
        return strip.left_handle, strip.right_handle
    return strip.frame_final_start, strip.frame_final_end


def set_span(strip, left: int, right: int) -> None:
    if _NEW_TIMING:
        strip.left_handle, strip.right_handle = left, right
    else:
        strip.frame_final_start, strip.frame_final_end = left, right


def content_start(strip) -> float:
    return strip.content_start if _NEW_TIMING else strip.frame_start


def set_content_start(strip, frame: float) -> None:
    if _NEW_TIMING:
        strip.content_start = frame
    else:
        strip.frame_start = frame


def content_frames(strip) -> int:
    """Frames of the strip's content on the timeline (after retiming), ignoring handles."""
    return strip.content_duration if _NEW_TIMING else strip.frame_duration


def scene_override(scene) -> dict:
    """A context where `scene` is the one editing operators act on."""
    override = dict(scene=scene)
    if HAS_SEQUENCER_SCENE:
        override["sequencer_scene"] = scene
    return override


def operators_on(scene):
    """A context for running operators on `scene`: none when it is already the current scene.

    Blender 4.5 reads a temp_override's context from C without taking the GIL (Python 3.11's
    PyThreadState_GetDict answers for whichever thread holds it), so an operator run under an
    override while job workers run Python corrupts memory. The current scene needs no override."""
    context = bpy.context
    if context.scene == scene and (not HAS_SEQUENCER_SCENE or getattr(context, "sequencer_scene", None) == scene):
        return nullcontext()
    return context.temp_override(**scene_override(scene))


def conform(strip, scene, frames: int) -> None:
    """Retime a movie strip so its whole content spans `frames` timeline frames.

    Blender's retiming operator is used on every version: writing a retiming key's
    `timeline_frame` crashes bpy 5.2 when the scene holds an effect strip (a Text or Color
    shot), and `retiming_keys.add()` crashes 4.5 on a strip without retiming data.
    The operator's length is then checked: a take must not drift by a frame.
    """
    if len(strip.retiming_keys):
        strip.retiming_keys.reset()
    natural = content_frames(strip)
    if frames == natural:
        return
    start = round(content_start(strip))
    set_span(strip, start, start + natural)  # the operator miscounts a trimmed strip (85 frames for 90)
    with _only_selected(strip, scene):
        with operators_on(scene):
            bpy.ops.sequencer.retiming_segment_speed_set(speed=_speed(natural, frames))
    if content_frames(strip) != frames:
        raise RuntimeError(f"retiming gave {content_frames(strip)} frames instead of {frames}")


def _speed(natural: int, frames: int) -> float:
    """The retiming percentage that makes `natural` content frames span `frames`.

    5.x maps the end of the last frame (its end key sits one past it); 4.5 maps the last
    frame itself (its end key sits on it), so there the spans between first and last frame match.
    """
    if not RETIMES_TO_LAST_FRAME or natural < 2 or frames < 2:
        return 100.0 * natural / frames
    return 100.0 * (natural - 1) / (frames - 1)


@contextmanager
def _only_selected(strip, scene):
    """Make `strip` the only selected and the active strip (4.5: in the window's scene) for an operator."""
    ed = scene.sequence_editor
    previous = [s for s in strips_all(ed) if s.select]
    active = ed.active_strip
    window = bpy.context.window_manager.windows[0]
    window_scene = window.scene
    for s in previous:
        s.select = False
    strip.select = True
    ed.active_strip = strip
    window.scene = scene
    try:
        yield
    finally:
        window.scene = window_scene
        strip.select = False
        for s in previous:
            s.select = True
        ed.active_strip = active


def new_effect(collection, name: str, type: str, channel: int, frame_start: int, length: int, **inputs):
    """`new_effect` took `frame_end` up to 4.5 and takes `length` from 5.0."""
    if "length" in collection.bl_rna.functions["new_effect"].parameters:
        return collection.new_effect(name=name, type=type, channel=channel, frame_start=frame_start,
                                     length=length, **inputs)
    return collection.new_effect(name=name, type=type, channel=channel, frame_start=frame_start,
                                 frame_end=frame_start + length, **inputs)


def redraw_sequencers() -> None:
    """Redraw every sequencer (after a timer changed what its panels show)."""
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == 'SEQUENCE_EDITOR':
                area.tag_redraw()
