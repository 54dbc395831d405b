"""A/B compare of two takes of the active shot in the preview."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty

from ..addon.blend import compare, placement
from .common import context_shot, scene_with_editor

MODE_ITEMS = [
    ('SIDE_BY_SIDE', "Side by Side", "Take A in the left half of the picture, take B in the right half"),
    ('WIPE', "Wipe", "Both takes fill the picture: A left of the wipe line, B right of it"),
]


class SEQUENCER_OT_shotline_compare_takes(bpy.types.Operator):
    """Compare two takes of the active shot in the preview, side by side or with a wipe, over the
    shot's frames (run it again to change the takes or move the wipe)"""

    bl_idname = "sequencer.shotline_compare_takes"
    bl_label = "Compare Takes"
    bl_options = {'REGISTER', 'UNDO'}

    # numbered as the takes list shows them (the first take is 1); 0 picks the default
    a: IntProperty(name="A", min=0, description="Take shown left, as numbered in the takes list "
                   "(0: the active take)")  # type: ignore
    b: IntProperty(name="B", min=0, description="Take shown right, as numbered in the takes list "
                   "(0: the take before A)")  # type: ignore
    mode: EnumProperty(name="Mode", items=MODE_ITEMS, default='SIDE_BY_SIDE')  # type: ignore
    position: FloatProperty(name="Wipe Position", min=0.0, max=1.0, default=0.5, subtype='FACTOR',
                            description="Where the wipe line is: 0 the left edge, 1 the right edge")  # type: ignore

    @classmethod
    def poll(cls, context):
        shot = context_shot(context)
        if shot is None or scene_with_editor(context) is None:
            cls.poll_message_set("Make a shot (or its take strip) the active strip")
            return False
        if len(shot.shotline.takes) < 2:
            cls.poll_message_set("The shot needs two takes to compare")
            return False
        return True

    def draw(self, _context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "a")
        layout.prop(self, "b")
        layout.prop(self, "mode")
        row = layout.row()
        row.active = self.mode == 'WIPE'
        row.prop(self, "position", slider=True)

    def execute(self, context):
        shot = context_shot(context)
        try:
            compare.start(scene_with_editor(context), shot, self.a - 1 if self.a else None,
                          self.b - 1 if self.b else None, self.mode, self.position)
        except (compare.CompareError, placement.PlacementError, RuntimeError) as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        return {'FINISHED'}


class SEQUENCER_OT_shotline_end_compare(bpy.types.Operator):
    """End the active shot's A/B compare: its compare strips are removed, nothing else changes"""

    bl_idname = "sequencer.shotline_end_compare"
    bl_label = "End Compare"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        scene = scene_with_editor(context)
        shot = context_shot(context)
        return scene is not None and shot is not None and compare.active(scene, shot)

    def execute(self, context):
        removed = compare.end(scene_with_editor(context), context_shot(context))
        self.report({'INFO'}, f"Compare ended ({removed} strip(s) removed)")
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_compare_takes, SEQUENCER_OT_shotline_end_compare)
register, unregister = bpy.utils.register_classes_factory(classes)
