"""A shot's takes: choose, step, mark, delete to the trash, reuse settings, refit."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, IntProperty

from ..addon.blend import placement, shots, takes
from .common import context_shot, scene_with_editor, selected_shots


def _locked(operator, shot) -> bool:
    if shot.shotline.locked:
        operator.report({'ERROR'}, f"{shot.name} is locked on take {shot.shotline.active_take + 1}: unlock it first")
        return True
    return False


class _TakeOperator:
    """An operator on one take of the active shot (`index` -1: the active take)."""

    index: IntProperty(name="Take", default=-1, options={'SKIP_SAVE'})  # type: ignore

    @classmethod
    def poll(cls, context):
        shot = context_shot(context)
        return shot is not None and len(shot.shotline.takes) > 0

    def chosen(self, shot) -> int:
        index = self.index if self.index >= 0 else shot.shotline.active_take
        if not 0 <= index < len(shot.shotline.takes):
            self.report({'ERROR'}, f"Shot \"{shot.name}\" has no take {index + 1}")
            return -1
        return index


class SEQUENCER_OT_shotline_use_take(_TakeOperator, bpy.types.Operator):
    """Show this take in the shot's take strip"""

    bl_idname = "sequencer.shotline_use_take"
    bl_label = "Use Take"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        shot = context_shot(context)
        index = self.chosen(shot)
        if index < 0 or (index != shot.shotline.active_take and _locked(self, shot)):
            return {'CANCELLED'}
        try:
            placed = takes.use_take(scene_with_editor(context), shot, index)
        except placement.PlacementError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        if placed.channel_note:
            self.report({'INFO'}, placed.channel_note)
        return {'FINISHED'}


class SEQUENCER_OT_shotline_step_take(bpy.types.Operator):
    """Show the shot's next or previous take"""

    bl_idname = "sequencer.shotline_step_take"
    bl_label = "Next Take"
    bl_options = {'REGISTER', 'UNDO'}

    previous: BoolProperty(name="Previous", default=False, options={'SKIP_SAVE'})  # type: ignore

    @classmethod
    def poll(cls, context):
        shot = context_shot(context)
        return shot is not None and len(shot.shotline.takes) > 1

    def execute(self, context):
        shot = context_shot(context)
        if _locked(self, shot):
            return {'CANCELLED'}
        try:
            index = takes.step(scene_with_editor(context), shot, -1 if self.previous else 1)
        except placement.PlacementError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        self.report({'INFO'}, f"{shot.name}: take {index + 1} of {len(shot.shotline.takes)}")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_favourite_take(_TakeOperator, bpy.types.Operator):
    """Mark or unmark this take as one of your picks"""

    bl_idname = "sequencer.shotline_favourite_take"
    bl_label = "Favourite"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        shot = context_shot(context)
        index = self.chosen(shot)
        if index < 0:
            return {'CANCELLED'}
        take = shot.shotline.takes[index]
        take.favourite = not take.favourite
        return {'FINISHED'}


class SEQUENCER_OT_shotline_delete_take(_TakeOperator, bpy.types.Operator):
    """Remove this take from the shot; its file goes to the trash folder until you empty the trash"""

    bl_idname = "sequencer.shotline_delete_take"
    bl_label = "Delete Take"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        shot = context_shot(context)
        index = self.chosen(shot)
        if index < 0:
            return {'CANCELLED'}
        try:
            note = takes.delete(scene_with_editor(context), shot, index)
        except (ValueError, OSError, placement.PlacementError) as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        self.report({'INFO'}, note)
        return {'FINISHED'}


class SEQUENCER_OT_shotline_reuse_take(_TakeOperator, bpy.types.Operator):
    """Put the settings that made this take (prompt, model, seed, inputs) back on the shot"""

    bl_idname = "sequencer.shotline_reuse_take"
    bl_label = "Reuse Settings"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        shot = context_shot(context)
        index = self.chosen(shot)
        if index < 0 or _locked(self, shot):
            return {'CANCELLED'}
        takes.reuse_settings(shot, index)
        self.report({'INFO'}, f"{shot.name}: settings of take {index + 1} (seed {shot.shotline.seed})")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_restore_take(bpy.types.Operator):
    """Put this deleted take back on its shot"""

    bl_idname = "sequencer.shotline_restore_take"
    bl_label = "Restore Take"
    bl_options = {'REGISTER', 'UNDO'}

    index: IntProperty(name="Trashed Take", default=0, min=0)  # type: ignore

    @classmethod
    def poll(cls, context):
        scene = scene_with_editor(context)
        return scene is not None and len(scene.shotline.trash) > 0

    def execute(self, context):
        scene = scene_with_editor(context)
        if self.index >= len(scene.shotline.trash):
            self.report({'ERROR'}, f"The trash has no take {self.index + 1}")
            return {'CANCELLED'}
        try:
            note = takes.restore(scene, self.index)
        except (ValueError, OSError) as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        self.report({'INFO'}, note)
        return {'FINISHED'}


class SEQUENCER_OT_shotline_empty_trash(bpy.types.Operator):
    """Delete from disk the files of deleted takes (only those)"""

    bl_idname = "sequencer.shotline_empty_trash"
    bl_label = "Empty Trash"
    bl_options = {'REGISTER'}

    @classmethod
    def poll(cls, context):
        scene = scene_with_editor(context)
        return scene is not None and len(scene.shotline.trash) > 0

    def invoke(self, context, event):
        count, size = takes.trash_size(scene_with_editor(context))
        return context.window_manager.invoke_confirm(
            self, event, title="Empty Trash?", confirm_text="Delete Files",
            message=f"{count} deleted take file(s), {size / 1e6:.1f} MB, are removed from disk.")

    def execute(self, context):
        try:
            removed = takes.empty_trash(scene_with_editor(context))
        except OSError as err:
            self.report({'ERROR'}, f"Cannot empty the trash: {err}")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Removed {removed} deleted take file(s)")
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


classes = (SEQUENCER_OT_shotline_use_take, SEQUENCER_OT_shotline_step_take, SEQUENCER_OT_shotline_favourite_take,
           SEQUENCER_OT_shotline_delete_take, SEQUENCER_OT_shotline_reuse_take, SEQUENCER_OT_shotline_restore_take,
           SEQUENCER_OT_shotline_empty_trash,
           SEQUENCER_OT_shotline_refit_takes)
register, unregister = bpy.utils.register_classes_factory(classes)
