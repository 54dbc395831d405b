"""The project's cast: members, their stills, and which shots they are in."""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, StringProperty

from ..addon.blend import cast, compat
from .common import selected_shots

KINDS = [('CHARACTER', "Character", "A person or creature whose face must stay the same"),
         ('PLACE', "Place", "A location that must look the same"),
         ('PROP', "Prop", "An object that must look the same")]


def _active_member(context):
    scene = compat.sequencer_scene(context)
    return cast.active(scene) if scene is not None else None


class _MemberAndShots:
    @classmethod
    def poll(cls, context):
        if _active_member(context) is None:
            return False
        if not selected_shots(context):
            cls.poll_message_set("Select one or more shots")
            return False
        return True


class SEQUENCER_OT_shotline_cast_add(bpy.types.Operator):
    """Add a character, place or prop to the project's cast"""

    bl_idname = "sequencer.shotline_cast_add"
    bl_label = "Add Cast Member"
    bl_options = {'REGISTER', 'UNDO'}

    name: StringProperty(name="Name", description="As prompts name it (empty: the kind's name)",
                         options={'SKIP_SAVE'})  # type: ignore
    kind: EnumProperty(name="Kind", items=KINDS, default='CHARACTER')  # type: ignore

    @classmethod
    def poll(cls, context):
        return compat.sequencer_scene(context) is not None

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        try:
            member = cast.add_member(compat.sequencer_scene(context), self.name, self.kind)
        except ValueError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Added {member.name} to the cast")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_cast_remove(bpy.types.Operator):
    """Remove the active cast member (and its name from the shots' cast fields)"""

    bl_idname = "sequencer.shotline_cast_remove"
    bl_label = "Remove Cast Member"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _active_member(context) is not None

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        name = cast.active(scene).name
        changed = cast.remove_member(scene, scene.shotline.cast_index)
        self.report({'INFO'}, f"Removed {name}" + (f" (from {changed} shot(s))" if changed else ""))
        return {'FINISHED'}


class SEQUENCER_OT_shotline_cast_add_image(bpy.types.Operator):
    """Add reference stills of the active cast member"""

    bl_idname = "sequencer.shotline_cast_add_image"
    bl_label = "Add Cast Image"
    bl_options = {'REGISTER', 'UNDO'}

    filepath: StringProperty(subtype='FILE_PATH')  # type: ignore
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})  # type: ignore
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})  # type: ignore
    filter_image: BoolProperty(default=True, options={'HIDDEN', 'SKIP_SAVE'})  # type: ignore
    filter_folder: BoolProperty(default=True, options={'HIDDEN', 'SKIP_SAVE'})  # type: ignore

    @classmethod
    def poll(cls, context):
        return _active_member(context) is not None

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context):
        member = _active_member(context)
        chosen = [os.path.join(self.directory, f.name) for f in self.files if f.name]  # several may be picked
        chosen = chosen or ([self.filepath] if os.path.basename(self.filepath) else [])
        if not chosen:
            self.report({'ERROR'}, "Choose an image")
            return {'CANCELLED'}
        refused = []
        for path in chosen:
            try:
                cast.add_image(member, path)
            except ValueError as err:
                refused.append(str(err))
        if len(refused) == len(chosen):
            self.report({'ERROR'}, "; ".join(refused))
            return {'CANCELLED'}
        for reason in refused:
            self.report({'WARNING'}, reason)
        self.report({'INFO'}, f"{member.name}: {len(member.images)} image(s)")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_cast_remove_image(bpy.types.Operator):
    """Remove this still from the active cast member"""

    bl_idname = "sequencer.shotline_cast_remove_image"
    bl_label = "Remove Cast Image"
    bl_options = {'REGISTER', 'UNDO'}

    index: IntProperty(name="Index")  # type: ignore

    @classmethod
    def poll(cls, context):
        return _active_member(context) is not None

    def execute(self, context):
        images = _active_member(context).images
        if not 0 <= self.index < len(images):
            self.report({'ERROR'}, f"No image {self.index + 1}: the member has {len(images)}")
            return {'CANCELLED'}
        images.remove(self.index)
        return {'FINISHED'}


class SEQUENCER_OT_shotline_cast_assign(_MemberAndShots, bpy.types.Operator):
    """Put the active cast member in the selected shots (their cast fields)"""

    bl_idname = "sequencer.shotline_cast_assign"
    bl_label = "Add to Selected Shots"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        member = _active_member(context)
        changed = cast.assign(selected_shots(context), member)
        self.report({'INFO'}, f"{member.name} added to {changed} shot(s)")
        return {'FINISHED'}


class SEQUENCER_OT_shotline_cast_unassign(_MemberAndShots, bpy.types.Operator):
    """Take the active cast member out of the selected shots' cast fields"""

    bl_idname = "sequencer.shotline_cast_unassign"
    bl_label = "Remove from Selected Shots"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        member = _active_member(context)
        chosen = selected_shots(context)
        changed = cast.unassign(chosen, member)
        named = [s.name for s in chosen if member.name in cast.who(scene, s).names]
        still = f"; still named by the prompt of {', '.join(named)}" if named else ""
        self.report({'INFO'}, f"{member.name} removed from {changed} shot(s){still}")
        return {'FINISHED'}


classes = (SEQUENCER_OT_shotline_cast_add, SEQUENCER_OT_shotline_cast_remove, SEQUENCER_OT_shotline_cast_add_image,
           SEQUENCER_OT_shotline_cast_remove_image, SEQUENCER_OT_shotline_cast_assign,
           SEQUENCER_OT_shotline_cast_unassign)
register, unregister = bpy.utils.register_classes_factory(classes)
