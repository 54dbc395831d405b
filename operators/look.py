"""Match to Neighbour: a starting grade on the active shot's take, towards the live footage beside it."""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty

from ..addon.blend import look
from .common import context_shot, scene_with_editor


class SEQUENCER_OT_shotline_match_neighbour(bpy.types.Operator):
    """Give the shot's take a starting grade (a Color Balance modifier, first in its stack) that brings its
    colours towards the live footage next to the shot; your own modifiers on the take stay on top"""

    bl_idname = "sequencer.shotline_match_neighbour"
    bl_label = "Match to Neighbour"
    bl_options = {'REGISTER', 'UNDO'}

    strength: FloatProperty(name="Strength", description="How far the take's colours move towards the footage's",
                            default=1.0, min=0.0, max=1.0, subtype='FACTOR')  # type: ignore

    @classmethod
    def poll(cls, context):
        return scene_with_editor(context) is not None and context_shot(context) is not None

    def execute(self, context):
        scene, shot = scene_with_editor(context), context_shot(context)
        try:
            matched = look.match_neighbour(scene, shot, self.strength)
        except (look.MatchError, RuntimeError, ValueError) as err:  # RuntimeError: a frame not rendered
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        side = "before" if matched.neighbour.before else "after"
        self.report({'INFO'}, f"Graded \"{matched.take.name}\" towards \"{matched.neighbour.strip.name}\" "
                              f"({side} the shot) with its \"{look.MODIFIER_NAME}\" modifier")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_clear_match(bpy.types.Operator):
    """Remove the Match to Neighbour grade from the shot's take (your own modifiers stay)"""

    bl_idname = "sequencer.shotline_clear_match"
    bl_label = "Clear Match"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return scene_with_editor(context) is not None and context_shot(context) is not None

    def execute(self, context):
        shot = context_shot(context)
        if not look.clear_match(scene_with_editor(context), shot):
            self.report({'INFO'}, f"Shot \"{shot.name}\"'s take has no \"{look.MODIFIER_NAME}\" grade")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Removed the \"{look.MODIFIER_NAME}\" grade from shot \"{shot.name}\"'s take")
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_match_neighbour, SEQUENCER_OT_shotline_clear_match)
register, unregister = bpy.utils.register_classes_factory(classes)
