"""Making shots: from selected strips, or a new one at the playhead."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

from ..addon.blend import compat, placement, runtime, shots, song
from .common import scene_with_editor

PLACEHOLDER = "Describe the shot"


class SEQUENCER_OT_shotline_make_shots(bpy.types.Operator):
    """Turn the selected Text and Color strips into shots"""

    bl_idname = "sequencer.shotline_make_shots"
    bl_label = "Make Shots"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return scene_with_editor(context) is not None

    def execute(self, context):
        for note in runtime.resolve_copies():
            self.report({'INFO'}, note)
        selected = compat.selected_strips(context)
        made = [s for s in selected if shots.can_become_shot(s)]
        for strip in made:
            shots.make_shot(strip)
        skipped = len(selected) - len(made)
        if not made:
            self.report({'WARNING'}, "Select Text or Color strips that are not shots yet")
            return {'CANCELLED'}
        note = f" ({skipped} skipped: only Text and Color strips become shots)" if skipped else ""
        self.report({'INFO'}, f"Made {len(made)} shot(s){note}")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_add_shot(bpy.types.Operator):
    """Add a new shot (a Text strip) at the playhead"""

    bl_idname = "sequencer.shotline_add_shot"
    bl_label = "Add Shot"
    bl_options = {'REGISTER', 'UNDO'}

    prompt: StringProperty(name="Prompt", default="")  # type: ignore
    length: IntProperty(name="Length", description="Frames (0: two seconds)", default=0, min=0)  # type: ignore
    channel: IntProperty(name="Channel", default=2, min=1, max=127)  # type: ignore

    @classmethod
    def poll(cls, context):
        return compat.sequencer_scene(context) is not None

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        ed = scene.sequence_editor or scene.sequence_editor_create()
        length = self.length or round(2 * float(shots.scene_fps(scene)))
        start = scene.frame_current
        try:
            channel = placement.free_channel(scene, self.channel, start, start + length)
        except placement.PlacementError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        strip = compat.new_effect(compat.strips(ed), "Shot", 'TEXT', channel, start, length)
        strip.text = self.prompt or PLACEHOLDER
        shots.make_shot(strip, placeholder=PLACEHOLDER)
        strip.shotline.prompt = self.prompt
        for other in compat.strips_all(ed):
            other.select = False
        strip.select = True
        ed.active_strip = strip
        return {'FINISHED'}


class SEQUENCER_OT_shotline_set_song(bpy.types.Operator):
    """Use the active sound strip as the song the timing follows"""

    bl_idname = "sequencer.shotline_set_song"
    bl_label = "Set Song"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        strip = compat.active_strip(context)
        return strip is not None and strip.type == 'SOUND'

    def execute(self, context):
        strip = compat.active_strip(context)
        song.choose(compat.sequencer_scene(context), strip)
        self.report({'INFO'}, f"Song: {strip.name}")
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_make_shots, SEQUENCER_OT_shotline_add_shot, SEQUENCER_OT_shotline_set_song)
register, unregister = bpy.utils.register_classes_factory(classes)
