"""What every Shotline operator needs: the sequencer scene and the selected shots."""

from __future__ import annotations

from ..addon.blend import compat, shots


_STANDS_FOR = {'TAKE', 'LOOP', 'COMPARE'}  # roles of strips that stand for their shot when selected


def scene_with_editor(context):
    scene = compat.sequencer_scene(context)
    return scene if scene is not None and scene.sequence_editor is not None else None


def selected_shots(context) -> list:
    """The selected shots; a selected take or loop strip stands for its shot."""
    scene = compat.sequencer_scene(context)
    found = []
    for strip in compat.selected_strips(context):
        role = strip.shotline.role
        shot = strip if role == 'SHOT' else shots.by_id(scene, strip.shotline.shot_id) if role in _STANDS_FOR else None
        if shot is not None and shot not in found:
            found.append(shot)
    return found


def context_shot(context):
    """The active strip's shot: the strip itself, or the shot a take strip belongs to."""
    strip = compat.active_strip(context)
    scene = compat.sequencer_scene(context)
    if strip is None or scene is None:
        return None
    if strip.shotline.role == 'SHOT':
        return strip
    if strip.shotline.role in _STANDS_FOR:
        return shots.by_id(scene, strip.shotline.shot_id)
    return None
