"""Switching a shot between its takes (the take strip's file is swapped)."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty

from ..addon.blend import placement, runtime, shots
from .common import context_shot, scene_with_editor, selected_shots


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


class SEQUENCER_OT_shotline_refit_takes(bpy.types.Operator):
    """Fit the take strips of the selected shots (all shots when none is selected) to their shots again,
    after moving or trimming shots by hand"""

    bl_idname = "sequencer.shotline_refit_takes"
    bl_label = "Refit Takes"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return scene_with_editor(context) is not None

    def execute(self, context):
        scene = scene_with_editor(context)
        chosen = selected_shots(context) or shots.shots(scene)
        refitted = 0
        for shot in chosen:
            try:
                refitted += placement.refit(scene, shot) is not None
            except (placement.PlacementError, RuntimeError) as err:
                self.report({'WARNING'}, f"{shot.name}: {err}")
        self.report({'INFO'}, f"Refitted {refitted} take strip(s)")
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_use_take, SEQUENCER_OT_shotline_refit_takes)
register, unregister = bpy.utils.register_classes_factory(classes)
