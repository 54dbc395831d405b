"""Switching a shot between its takes (the take strip's file is swapped)."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty

from ..addon.blend import placement, runtime
from .common import context_shot, scene_with_editor


class SEQUENCER_OT_shotline_use_take(bpy.types.Operator):
    """Show this take in the shot's take strip"""

    bl_idname = "sequencer.shotline_use_take"
    bl_label = "Use Take"
    bl_options = {'REGISTER', 'UNDO'}

    index: IntProperty(name="Take", default=-1)  # type: ignore

    @classmethod
    def poll(cls, context):
        shot = context_shot(context)
        return shot is not None and len(shot.shotline.takes) > 0

    def execute(self, context):
        shot = context_shot(context)
        takes = shot.shotline.takes
        index = self.index if self.index >= 0 else shot.shotline.active_take
        if not 0 <= index < len(takes):
            self.report({'ERROR'}, f"Shot \"{shot.name}\" has no take {index + 1}")
            return {'CANCELLED'}
        try:
            placed = runtime.use_take(scene_with_editor(context), shot, index)
        except placement.PlacementError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        if placed.channel_note:
            self.report({'INFO'}, placed.channel_note)
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_use_take,)
register, unregister = bpy.utils.register_classes_factory(classes)
